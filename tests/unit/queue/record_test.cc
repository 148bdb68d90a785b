// Tests for the spool record codec: CRC32C, envelope/state encodings and the
// record scanner's handling of torn and corrupt data.
#include "queue/record.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

namespace tern::queue {
namespace {

Envelope sample_envelope() {
  Envelope env;
  env.id = "0123456789abcd";
  env.mail_from = "sender@example.org";
  Recipient a;
  a.address = "alice@example.net";
  a.original = "Alice@Example.NET";
  a.notify = kNotifyFailure | kNotifyDelay;
  a.orcpt_type = "rfc822";
  a.orcpt = "alice@old.example.net";
  a.state = Recipient::State::kFailed;
  a.attempts = 3;
  a.next_attempt = -5;
  a.last_reply = "550 5.1.1 no such user";
  Recipient b;
  b.address = "bob@example.net";
  env.recipients = {a, b};
  env.body = 2;
  env.smtputf8 = true;
  env.ret = 2;
  env.envid = "QQ314159";
  env.requiretls = true;
  env.received_at = 1'700'000'123;
  env.client_ip = "2001:db8::1";
  env.client_helo = "mx.example.org";
  env.auth_user = "alice";
  env.listener = "submission";
  env.protocol = "ESMTPSA";
  env.held = true;
  env.size = 123456789012ULL;
  env.attributes = {{"arc", "pass"}, {"dkim", "pass header.d=example.org"}, {"", std::string("\0x", 2)}};
  return env;
}

TEST(Crc32cTest, KnownVectors) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);  // the standard check value
  EXPECT_EQ(crc32c(""), 0u);
  // Incremental computation equals one-shot.
  EXPECT_EQ(crc32c("6789", crc32c("12345")), crc32c("123456789"));
  // Long inputs take the 8-bytes-per-step path; chaining must agree with it.
  std::string long_input;
  for (int i = 0; i < 1000; ++i) long_input += static_cast<char>(i * 7 + 3);
  uint32_t whole = crc32c(long_input);
  EXPECT_EQ(crc32c(std::string_view(long_input).substr(13), crc32c(std::string_view(long_input).substr(0, 13))), whole);
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);  // RFC 3720 B.4 test vector
}

TEST(EnvelopeCodecTest, RoundTripsEveryField) {
  Envelope env = sample_envelope();
  auto decoded = decode_envelope(encode_envelope(env));
  ASSERT_TRUE(decoded) << decoded.error().text;
  EXPECT_EQ(*decoded, env);
}

TEST(EnvelopeCodecTest, EmptyEnvelopeRoundTrips) {
  Envelope env;
  auto decoded = decode_envelope(encode_envelope(env));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, env);
}

TEST(EnvelopeCodecTest, RejectsTruncatedPayloads) {
  std::string payload = encode_envelope(sample_envelope());
  size_t failures = 0;
  for (size_t cut = 1; cut < payload.size(); ++cut) {
    if (!decode_envelope(std::string_view(payload).substr(0, cut))) ++failures;
  }
  // Cuts at a field boundary decode (to a shorter envelope); most do not.
  EXPECT_GT(failures, payload.size() / 2);
}

TEST(EnvelopeCodecTest, RejectsOutOfRangeValues) {
  Envelope env;
  env.body = 7;
  EXPECT_FALSE(decode_envelope(encode_envelope(env)));
}

TEST(StateCodecTest, ApplyReplacesStateOnly) {
  Envelope stored = sample_envelope();
  Envelope changed = stored;
  changed.held = false;
  changed.recipients[1].state = Recipient::State::kDelivered;
  changed.recipients[1].attempts = 1;
  changed.recipients[1].last_reply = "250 ok";
  changed.recipients[0].last_reply = "";
  changed.mail_from = "ignored@example.org";  // not part of state
  Envelope target = stored;
  ASSERT_TRUE(apply_state(encode_state(changed), target));
  EXPECT_FALSE(target.held);
  EXPECT_EQ(target.recipients[1].state, Recipient::State::kDelivered);
  EXPECT_EQ(target.recipients[1].last_reply, "250 ok");
  EXPECT_EQ(target.recipients[0].last_reply, "");
  EXPECT_EQ(target.mail_from, stored.mail_from);
  EXPECT_EQ(target.recipients[0].address, stored.recipients[0].address);
}

TEST(StateCodecTest, OutOfRangeIndexChangesNothing) {
  Envelope big = sample_envelope();
  big.held = false;
  big.recipients.push_back(Recipient{});
  Envelope target = sample_envelope();
  Envelope before = target;
  EXPECT_FALSE(apply_state(encode_state(big), target));
  EXPECT_EQ(target, before);
}

TEST(EnvelopeCodecTest, DelayWarnedRoundTripsAndIsAbsentWhenFalse) {
  Envelope env = sample_envelope();
  env.delay_warned = true;
  auto decoded = decode_envelope(encode_envelope(env));
  ASSERT_TRUE(decoded) << decoded.error().text;
  EXPECT_TRUE(decoded->delay_warned);
  EXPECT_EQ(*decoded, env);
  // Unset, the record is what versions before tag 18 wrote (no field at
  // all), and it reads back as false.
  env.delay_warned = false;
  std::string without = encode_envelope(env);
  env.delay_warned = true;
  EXPECT_EQ(encode_envelope(env).size(), without.size() + 3);  // tag 18, length 1, value 1
  auto old = decode_envelope(without);
  ASSERT_TRUE(old);
  EXPECT_FALSE(old->delay_warned);
}

TEST(StateCodecTest, DelayWarnedTag3RoundTrips) {
  Envelope stored = sample_envelope();
  Envelope changed = stored;
  changed.delay_warned = true;
  std::string payload = encode_state(changed);
  // Tag 3, length 1, value 1 follows the held flag (tag 1).
  EXPECT_NE(payload.find(std::string("\x03\x01\x01", 3)), std::string::npos);
  Envelope target = stored;
  ASSERT_TRUE(apply_state(payload, target));
  EXPECT_TRUE(target.delay_warned);
  EXPECT_EQ(target, changed);
}

TEST(StateCodecTest, OldStateRecordWithoutTag3StillDecodes) {
  // A state record as written before tag 3 existed: held = 1, recipient 1
  // delivered after one attempt. Hand-built so that the test does not depend
  // on the current encoder.
  std::string recipient;
  recipient += std::string("\x0a\x01\x01", 3);  // 10 index = 1
  recipient += std::string("\x06\x01\x01", 3);  // 6 state = delivered
  recipient += std::string("\x07\x01\x01", 3);  // 7 attempts = 1
  recipient += std::string("\x08\x01\x00", 3);  // 8 next_attempt = 0
  std::string payload = std::string("\x01\x01\x01", 3) + "\x02" + static_cast<char>(recipient.size()) + recipient;
  // A field from a newer version (tag 99) is skipped.
  payload += std::string("\x63\x02zz", 4);
  Envelope target = sample_envelope();
  ASSERT_TRUE(apply_state(payload, target));
  EXPECT_TRUE(target.held);
  EXPECT_FALSE(target.delay_warned);
  EXPECT_EQ(target.recipients[1].state, Recipient::State::kDelivered);
  EXPECT_EQ(target.recipients[1].attempts, 1u);
  // A later state record without tag 3 clears the flag (state records are complete).
  target.delay_warned = true;
  ASSERT_TRUE(apply_state(payload, target));
  EXPECT_FALSE(target.delay_warned);
}

constexpr uint64_t kNonce = 0x5eed;

// A segment holding one message: content, envelope and (optionally) COMMIT.
std::string build_segment(const Envelope& env, std::string_view content, bool commit) {
  std::string seg = segment_header(kNonce);
  append_message_record(seg, RecordType::kContent, env.id, content, kNonce);
  append_message_record(seg, RecordType::kEnvelope, env.id, encode_envelope(env), kNonce);
  if (commit) append_message_record(seg, RecordType::kCommit, env.id, encode_commit(content.size()), kNonce);
  return seg;
}

SpoolReplay replay_of(std::initializer_list<std::string_view> segments) {
  SpoolReplay replay;
  uint64_t serial = 1;
  for (auto s : segments) replay.apply(scan_segment_bytes(s, serial++));
  replay.finish();
  return replay;
}

TEST(SegmentTest, CommittedMessageWithLaterStateWins) {
  Envelope env = sample_envelope();
  std::string seg = build_segment(env, "hello", true);
  Envelope later = env;
  later.recipients[1].attempts = 9;
  append_message_record(seg, RecordType::kState, env.id, encode_state(later), kNonce);
  SegmentScan scan = scan_segment_bytes(seg, 7);
  EXPECT_TRUE(scan.magic_ok);
  EXPECT_TRUE(scan.problem.empty()) << scan.problem;
  EXPECT_EQ(scan.valid_end, seg.size());
  ASSERT_EQ(scan.records.size(), 4u);
  EXPECT_EQ(scan.records[0].loc.segment, 7u);
  // The content payload is id length, id, then the bytes.
  EXPECT_EQ(seg.substr(scan.records[0].loc.offset + 1 + env.id.size(), 5), "hello");
  SpoolReplay replay = replay_of({seg});
  ASSERT_EQ(replay.committed.count(env.id), 1u);
  const auto& m = replay.committed.at(env.id);
  EXPECT_EQ(m.size, 5u);
  EXPECT_EQ(m.envelope.recipients[1].attempts, 9u);
  EXPECT_TRUE(m.state_loc.has_value());
}

TEST(SegmentTest, ZeroTailEndsTheLogCleanly) {
  Envelope env = sample_envelope();
  std::string seg = build_segment(env, "hello", true);
  for (size_t zeros : {size_t{3}, size_t{9}, size_t{65536}}) {
    SCOPED_TRACE(zeros);
    SegmentScan scan = scan_segment_bytes(seg + std::string(zeros, '\0'));
    EXPECT_TRUE(scan.problem.empty()) << scan.problem;
    EXPECT_EQ(scan.valid_end, seg.size());
    EXPECT_EQ(scan.records.size(), 3u);
  }
  // Bytes that are not all zero after the last record are still damage.
  SegmentScan torn = scan_segment_bytes(seg + std::string(8, '\0') + "x" + std::string(100, '\0'));
  EXPECT_FALSE(torn.problem.empty());
  EXPECT_EQ(torn.valid_end, seg.size());
}

TEST(SegmentTest, UncommittedAndBadMagic) {
  SpoolReplay replay;
  replay.apply(scan_segment_bytes(build_segment(sample_envelope(), "x", false)));
  EXPECT_EQ(replay.finish(), 1u);
  EXPECT_TRUE(replay.committed.empty());
  SegmentScan garbage = scan_segment_bytes("From: not a spool file\r\n\r\n");
  EXPECT_FALSE(garbage.magic_ok);
  EXPECT_FALSE(scan_segment_bytes("").magic_ok);
}

TEST(SegmentTest, CommitWithWrongContentSizeIsRejected) {
  Envelope env = sample_envelope();
  std::string seg = segment_header(kNonce);
  append_message_record(seg, RecordType::kContent, env.id, "abc", kNonce);
  append_message_record(seg, RecordType::kEnvelope, env.id, encode_envelope(env), kNonce);
  append_message_record(seg, RecordType::kCommit, env.id, encode_commit(4), kNonce);
  SpoolReplay replay = replay_of({seg});
  EXPECT_TRUE(replay.committed.empty());
  EXPECT_EQ(replay.bad_records, 1u);
}

TEST(SegmentTest, RecordsOfInterleavedMessagesAreKeptApart) {
  Envelope a = sample_envelope(), b = sample_envelope();
  b.id = "0000000000001b";
  std::string seg = segment_header(kNonce);
  append_message_record(seg, RecordType::kContent, a.id, "a1-", kNonce);
  append_message_record(seg, RecordType::kContent, b.id, "b1-", kNonce);
  append_message_record(seg, RecordType::kContent, a.id, "a2", kNonce);
  append_message_record(seg, RecordType::kEnvelope, b.id, encode_envelope(b), kNonce);
  append_message_record(seg, RecordType::kCommit, b.id, encode_commit(3), kNonce);
  append_message_record(seg, RecordType::kEnvelope, a.id, encode_envelope(a), kNonce);
  append_message_record(seg, RecordType::kCommit, a.id, encode_commit(5), kNonce);
  SpoolReplay replay = replay_of({seg});
  ASSERT_EQ(replay.committed.size(), 2u);
  EXPECT_EQ(replay.committed.at(a.id).content.size(), 2u);
  EXPECT_EQ(replay.committed.at(a.id).size, 5u);
  EXPECT_EQ(replay.committed.at(b.id).size, 3u);
}

TEST(SegmentTest, DoneInALaterSegmentRemovesTheMessage) {
  Envelope env = sample_envelope();
  std::string first = build_segment(env, "body", true);
  std::string second = segment_header(kNonce + 1);
  append_message_record(second, RecordType::kDone, env.id, "", kNonce + 1);
  EXPECT_EQ(replay_of({first}).committed.size(), 1u);
  EXPECT_TRUE(replay_of({first, second}).committed.empty());
  // Records for messages whose segment is already gone are ignored.
  EXPECT_TRUE(replay_of({second}).committed.empty());
}

TEST(SegmentTest, ACompactedCopyReplacesTheOriginal) {
  Envelope env = sample_envelope();
  std::string first = build_segment(env, "body", true);
  Envelope moved = env;
  moved.recipients[0].attempts = 3;
  std::string second = build_segment(moved, "body", true);
  SpoolReplay replay = replay_of({first, second});
  ASSERT_EQ(replay.committed.size(), 1u);
  EXPECT_EQ(replay.committed.at(env.id).content.front().segment, 2u);
  EXPECT_EQ(replay.committed.at(env.id).envelope.recipients[0].attempts, 3u);
  // A torn copy leaves the original in place.
  std::string torn = second.substr(0, second.size() - 3);
  SpoolReplay partial = replay_of({first, torn});
  ASSERT_EQ(partial.committed.size(), 1u);
  EXPECT_EQ(partial.committed.at(env.id).content.front().segment, 1u);
}

TEST(SegmentTest, BitFlipStopsTheScanAndKeepsEarlierRecords) {
  Envelope env = sample_envelope();
  std::string seg = build_segment(env, "body", true);
  size_t committed_end = seg.size();
  Envelope later = env;
  later.recipients[1].attempts = 4;
  append_message_record(seg, RecordType::kState, env.id, encode_state(later), kNonce);
  seg[seg.size() - 2] ^= 0x40;
  SegmentScan scan = scan_segment_bytes(seg);
  EXPECT_EQ(scan.valid_end, committed_end);
  EXPECT_NE(scan.problem.find("CRC"), std::string::npos) << scan.problem;
  SpoolReplay replay = replay_of({seg});
  EXPECT_EQ(replay.committed.at(env.id).envelope.recipients[1].attempts, 0u);
}

TEST(SegmentTest, WrongNonceFailsTheCrc) {
  Envelope env = sample_envelope();
  std::string seg = segment_header(kNonce + 5);
  append_message_record(seg, RecordType::kEnvelope, env.id, encode_envelope(env), kNonce);
  EXPECT_TRUE(scan_segment_bytes(seg).records.empty());
}

TEST(SegmentTest, HugeLengthIsRejectedWithoutAllocating) {
  std::string seg = build_segment(sample_envelope(), "body", true);
  size_t end = seg.size();
  seg += std::string("\xff\xff\xff\x7f", 4) + "S" + std::string(4, '\0');
  SegmentScan scan = scan_segment_bytes(seg);
  EXPECT_EQ(scan.valid_end, end);
  EXPECT_FALSE(scan.problem.empty());
}

// The fuzz corpus's hand-made segment seeds (tests/fuzz/corpus/
// queue_spool_record/seg-*) must stay valid segments, or the fuzzer would
// start from nothing useful.
TEST(SegmentTest, CorpusSeedsAreValidSegments) {
  auto read = [](const std::string& name) {
    std::ifstream in(std::string(TERN_SOURCE_DIR) + "/tests/fuzz/corpus/queue_spool_record/" + name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  SpoolReplay interleaved = replay_of({read("seg-interleaved-done")});
  ASSERT_EQ(interleaved.committed.size(), 1u);  // the other one is done
  EXPECT_EQ(interleaved.committed.begin()->second.size, 11u);
  SpoolReplay with_state = replay_of({read("seg-committed-state")});
  ASSERT_EQ(with_state.committed.size(), 1u);
  EXPECT_EQ(with_state.committed.begin()->second.envelope.recipients[0].state, Recipient::State::kDelivered);
  EXPECT_EQ(with_state.committed.begin()->second.envelope.attributes.at("header.prepend"), "X: y\r\n");
  EXPECT_EQ(replay_of({read("seg-torn")}).committed.size(), 1u);
  EXPECT_TRUE(replay_of({read("seg-no-commit")}).committed.empty());
  EXPECT_TRUE(replay_of({read("seg-bitflip")}).committed.empty());
}

}  // namespace
}  // namespace tern::queue
