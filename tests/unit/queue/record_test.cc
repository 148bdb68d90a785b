// Tests for the spool record codec: CRC32C, envelope/state encodings and the
// record scanner's handling of torn and corrupt data.
#include "queue/record.h"

#include <gtest/gtest.h>

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

std::string build_file(const Envelope& env, std::string_view content, bool commit) {
  std::string file = spool_header(0);
  append_record(file, RecordType::kContent, content);
  append_record(file, RecordType::kEnvelope, encode_envelope(env));
  if (commit) append_record(file, RecordType::kCommit, encode_commit(content.size()));
  return file;
}

TEST(ScanTest, CommittedFileWithLaterStateWins) {
  Envelope env = sample_envelope();
  std::string file = build_file(env, "hello", true);
  Envelope later = env;
  later.recipients[1].attempts = 9;
  append_record(file, RecordType::kState, encode_state(later));
  ScanResult scan = scan_spool_bytes(file);
  EXPECT_TRUE(scan.committed);
  EXPECT_TRUE(scan.problem.empty()) << scan.problem;
  EXPECT_EQ(scan.valid_end, file.size());
  EXPECT_EQ(scan.content_size, 5u);
  ASSERT_EQ(scan.content.size(), 1u);
  EXPECT_EQ(file.substr(scan.content[0].offset, scan.content[0].length), "hello");
  EXPECT_EQ(scan.envelope.recipients[1].attempts, 9u);
}

TEST(ScanTest, UncommittedAndBadMagic) {
  EXPECT_FALSE(scan_spool_bytes(build_file(sample_envelope(), "x", false)).committed);
  ScanResult garbage = scan_spool_bytes("From: not a spool file\r\n\r\n");
  EXPECT_FALSE(garbage.magic_ok);
  EXPECT_FALSE(garbage.committed);
  EXPECT_FALSE(scan_spool_bytes("").magic_ok);
}

TEST(ScanTest, CommitWithWrongContentSizeIsRejected) {
  std::string file = spool_header(0);
  append_record(file, RecordType::kContent, "abc");
  append_record(file, RecordType::kEnvelope, encode_envelope(sample_envelope()));
  append_record(file, RecordType::kCommit, encode_commit(4));
  EXPECT_FALSE(scan_spool_bytes(file).committed);
}

TEST(ScanTest, BitFlipInStateRecordKeepsPreviousState) {
  Envelope env = sample_envelope();
  std::string file = build_file(env, "body", true);
  size_t committed_end = file.size();
  Envelope later = env;
  later.recipients[1].attempts = 4;
  append_record(file, RecordType::kState, encode_state(later));
  file[file.size() - 2] ^= 0x40;
  ScanResult scan = scan_spool_bytes(file);
  EXPECT_TRUE(scan.committed);
  EXPECT_EQ(scan.valid_end, committed_end);
  EXPECT_NE(scan.problem.find("CRC"), std::string::npos) << scan.problem;
  EXPECT_EQ(scan.envelope.recipients[1].attempts, 0u);
}

TEST(ScanTest, HugeLengthIsRejectedWithoutAllocating) {
  std::string file = build_file(sample_envelope(), "body", true);
  size_t end = file.size();
  file += std::string("\xff\xff\xff\x7f", 4) + "S" + std::string(4, '\0');
  ScanResult scan = scan_spool_bytes(file);
  EXPECT_TRUE(scan.committed);
  EXPECT_EQ(scan.valid_end, end);
  EXPECT_FALSE(scan.problem.empty());
}

}  // namespace
}  // namespace tern::queue
