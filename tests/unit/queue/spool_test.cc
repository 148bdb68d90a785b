// Tests for the spool: write/finish/sync/recover round trips, crash leftovers
// (uncommitted messages, torn writes at every offset, garbage files), state
// persistence across reopen, segment rotation, deletion and compaction, and
// group commit under 50 concurrent writers.
#include "queue/spool.h"

#include <chrono>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fs.h"
#include "queue/record.h"
#include "test_dir.h"

namespace tern::queue {
namespace {

using testing::TempDir;

Envelope make_envelope(int recipients = 2) {
  Envelope env;
  env.mail_from = "sender@example.org";
  for (int i = 0; i < recipients; ++i) {
    Recipient r;
    r.address = "rcpt" + std::to_string(i) + "@example.net";
    r.original = r.address;
    r.notify = kNotifyFailure;
    env.recipients.push_back(r);
  }
  env.received_at = 1'700'000'000;
  env.client_ip = "192.0.2.7";
  env.client_helo = "client.example.org";
  env.listener = "mx";
  env.protocol = "ESMTPS";
  env.attributes["spf"] = "pass";
  return env;
}

std::unique_ptr<Spool> open_spool(const std::string& dir, Spool::SyncMode mode = Spool::SyncMode::kFsyncEach) {
  auto spool = Spool::open(dir, mode);
  EXPECT_TRUE(spool) << spool.error().text;
  return spool ? std::move(*spool) : nullptr;
}

// A spool that appends at the end of its files (no zero-filled tail), for
// tests that treat the file size as the end of the log.
std::unique_ptr<Spool> open_unprefilled_spool(const std::string& dir) {
  Spool::Options o;
  o.prefill_bytes = 0;
  auto spool = Spool::open(dir, o);
  EXPECT_TRUE(spool) << spool.error().text;
  return spool ? std::move(*spool) : nullptr;
}

// Writes one committed, synced message and returns its id.
std::string write_message(Spool& spool, const Envelope& env, std::string_view content) {
  auto writer = spool.create();
  EXPECT_TRUE(writer);
  EXPECT_TRUE((*writer)->append(content));
  EXPECT_TRUE((*writer)->finish(env));
  EXPECT_TRUE(spool.sync());
  return (*writer)->id();
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    auto nl = text.find('\n');
    if (nl == std::string_view::npos) break;  // a torn last line was never complete
    lines.push_back(text.substr(0, nl));
    text.remove_prefix(nl + 1);
  }
  return lines;
}

std::string big_content() {
  std::string content;
  for (int i = 0; content.size() < 200'000; ++i) content += "Line " + std::to_string(i) + " of a long message\r\n";
  return content;
}

TEST(SpoolTest, WriteFinishSyncRecoverRoundTrip) {
  TempDir tmp;
  std::string dir = tmp.sub("queue");
  std::string content = big_content();  // several content records
  Envelope env = make_envelope();
  std::string id;
  {
    auto spool = open_spool(dir);
    auto writer = spool->create();
    ASSERT_TRUE(writer);
    id = (*writer)->id();
    EXPECT_TRUE(is_queue_id(id));
    // Odd-sized pieces exercise chunk boundaries.
    for (size_t pos = 0; pos < content.size(); pos += 7777) {
      ASSERT_TRUE((*writer)->append(std::string_view(content).substr(pos, 7777)));
    }
    EXPECT_EQ((*writer)->size(), content.size());
    ASSERT_TRUE((*writer)->finish(env));
    ASSERT_TRUE(spool->sync());
    EXPECT_FALSE((*writer)->append("late"));  // closed after finish
  }
  auto spool = open_spool(dir);
  auto recovered = spool->recover();
  ASSERT_TRUE(recovered);
  ASSERT_EQ(recovered->size(), 1u);
  Envelope expected = env;
  expected.id = id;
  expected.size = content.size();
  EXPECT_EQ((*recovered)[0], expected);

  auto loaded = spool->load(id);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(*loaded, expected);
  auto read = spool->read_content(id);
  ASSERT_TRUE(read);
  EXPECT_EQ(*read, content);

  auto reader = spool->open_content(id);
  ASSERT_TRUE(reader);
  EXPECT_EQ((*reader)->size(), content.size());
  std::string streamed, chunk;
  size_t chunks = 0;
  for (;;) {
    auto more = (*reader)->next(chunk);
    ASSERT_TRUE(more);
    if (!*more) break;
    streamed += chunk;
    ++chunks;
  }
  EXPECT_EQ(streamed, content);
  EXPECT_GT(chunks, 1u);
}

TEST(SpoolTest, EmptyContentIsAllowed) {
  TempDir tmp;
  auto spool = open_spool(tmp.path());
  std::string id = write_message(*spool, make_envelope(1), "");
  auto content = spool->read_content(id);
  ASSERT_TRUE(content);
  EXPECT_EQ(*content, "");
}

std::vector<std::string> segment_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().extension() == ".seg") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Copies the spool directory's segment files as they are now: what the disk
// would hold if the process died at this moment with everything written so
// far reaching it.
void snapshot(const std::string& from, const std::string& to) {
  ASSERT_TRUE(fs::make_dirs(to));
  for (const auto& f : segment_files(from)) {
    write_bytes(fs::join(to, std::filesystem::path(f).filename().string()), read_bytes(f));
  }
}

uint64_t nonce_of(const std::string& segment_bytes) {
  uint64_t nonce = 0;
  for (int i = 0; i < 8; ++i) nonce |= static_cast<uint64_t>(static_cast<uint8_t>(segment_bytes[8 + i])) << (8 * i);
  return nonce;
}

TEST(SpoolTest, AbortedAndUnfinishedMessagesLeaveNothing) {
  TempDir tmp;
  {
    auto spool = open_spool(tmp.path());
    {
      auto w1 = spool->create();
      ASSERT_TRUE(w1);
      ASSERT_TRUE((*w1)->append(std::string(100'000, 'a')));  // one content record already written
      (*w1)->abort();
      EXPECT_FALSE((*w1)->finish(make_envelope()));
      auto w2 = spool->create();
      ASSERT_TRUE(w2);
      ASSERT_TRUE((*w2)->append("x"));
    }
    EXPECT_EQ(spool->stats().messages, 0u);
    EXPECT_TRUE(spool->sync());
  }
  auto spool = open_spool(tmp.path());
  auto recovered = spool->recover();
  ASSERT_TRUE(recovered);
  EXPECT_TRUE(recovered->empty());
}

TEST(SpoolTest, UncommittedMessagesAreDroppedAtRecovery) {
  TempDir tmp;
  std::string dir = tmp.sub("live"), crashed = tmp.sub("crashed");
  std::string kept;
  {
    auto spool = open_spool(dir);
    kept = write_message(*spool, make_envelope(), "kept\r\n");
    // kill -9 during DATA: content records have reached the kernel, the
    // COMMIT has not.
    auto writer = spool->create();
    ASSERT_TRUE(writer);
    ASSERT_TRUE((*writer)->append(std::string(150'000, 'z')));
    snapshot(dir, crashed);
  }
  auto segs = segment_files(crashed);
  ASSERT_FALSE(segs.empty());
  // A crash in the middle of the final write: envelope but no COMMIT.
  std::string last = read_bytes(segs.back());
  Envelope half = make_envelope();
  half.id = "00000000000001";
  append_message_record(last, RecordType::kContent, half.id, "abc", nonce_of(last));
  append_message_record(last, RecordType::kEnvelope, half.id, encode_envelope(half), nonce_of(last));
  write_bytes(segs.back(), last);
  // A crash right after a segment was created: an empty file.
  write_bytes(fs::join(crashed, "00000000000000ff.seg"), "");

  auto spool = open_spool(crashed);
  auto recovered = spool->recover();
  ASSERT_TRUE(recovered);
  ASSERT_EQ(recovered->size(), 1u);
  EXPECT_EQ((*recovered)[0].id, kept);
  auto content = spool->read_content(kept);
  ASSERT_TRUE(content);
  EXPECT_EQ(*content, "kept\r\n");
  EXPECT_FALSE(fs::exists(fs::join(crashed, "00000000000000ff.seg")));
}

TEST(SpoolTest, StateUpdatesSurviveReopen) {
  TempDir tmp;
  std::string id;
  Envelope expected;
  {
    auto spool = open_spool(tmp.path());
    id = write_message(*spool, make_envelope(3), "body\r\n");
    auto env = spool->load(id);
    ASSERT_TRUE(env);
    env->held = true;
    env->recipients[0].state = Recipient::State::kDelivered;
    env->recipients[0].attempts = 1;
    env->recipients[0].last_reply = "250 2.0.0 ok";
    env->recipients[1].attempts = 2;
    env->recipients[1].next_attempt = 1'700'000'600;
    env->recipients[1].last_reply = "451 4.7.1 try later";
    ASSERT_TRUE(spool->append_state(*env));
    env->recipients[2].state = Recipient::State::kFailed;
    env->recipients[2].last_reply = "550 5.1.1 unknown";
    ASSERT_TRUE(spool->append_state(*env));
    ASSERT_TRUE(spool->sync());
    expected = *env;
  }
  auto spool = open_spool(tmp.path());
  auto recovered = spool->recover();
  ASSERT_TRUE(recovered);
  ASSERT_EQ(recovered->size(), 1u);
  EXPECT_EQ((*recovered)[0], expected);
}

TEST(SpoolTest, TornLastWriteRecoversPreviousStateAtEveryOffset) {
  TempDir tmp;
  std::string base_dir = tmp.sub("base");
  std::string id, full, name;
  size_t before_last = 0;
  Envelope previous;
  {
    auto spool = open_unprefilled_spool(base_dir);
    id = write_message(*spool, make_envelope(2), "content\r\n");
    auto env = spool->load(id);
    ASSERT_TRUE(env);
    env->recipients[0].attempts = 1;
    env->recipients[0].last_reply = "first";
    ASSERT_TRUE(spool->append_state(*env));
    previous = *env;
    auto segs = segment_files(base_dir);
    ASSERT_EQ(segs.size(), 1u);
    name = std::filesystem::path(segs[0]).filename().string();
    before_last = read_bytes(segs[0]).size();
    env->recipients[0].attempts = 2;
    env->recipients[0].state = Recipient::State::kDelivered;
    env->recipients[0].last_reply = "second";
    ASSERT_TRUE(spool->append_state(*env));
    ASSERT_TRUE(spool->sync());
    full = read_bytes(segs[0]);
  }
  ASSERT_GT(full.size(), before_last);
  for (size_t cut = before_last; cut < full.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    std::string dir = tmp.sub("cut" + std::to_string(cut));
    ASSERT_TRUE(fs::make_dirs(dir));
    write_bytes(fs::join(dir, name), std::string_view(full).substr(0, cut));
    auto spool = open_spool(dir);
    auto recovered = spool->recover();
    ASSERT_TRUE(recovered);
    ASSERT_EQ(recovered->size(), 1u);
    EXPECT_EQ((*recovered)[0], previous);
    // New records go to a new segment, so they are not hidden behind the
    // torn tail, and they survive the next restart.
    Envelope next = previous;
    next.recipients[1].attempts = 7;
    ASSERT_TRUE(spool->append_state(next));
    ASSERT_TRUE(spool->sync());
    spool.reset();
    spool = open_spool(dir);
    auto loaded = spool->load(id);
    ASSERT_TRUE(loaded);
    EXPECT_EQ(*loaded, next);
  }
}

TEST(SpoolTest, PrefilledTailIsTheCleanEndOfTheLog) {
  TempDir tmp;
  std::string base_dir = tmp.sub("base");
  std::string id, full, name;
  size_t before_last = 0, log_end = 0;
  Envelope previous;
  {
    auto spool = open_spool(base_dir);
    id = write_message(*spool, make_envelope(2), "content\r\n");
    // The committer zero-fills after a sync batch; the next sync returns
    // only after that.
    ASSERT_TRUE(spool->sync());
    auto segs = segment_files(base_dir);
    ASSERT_EQ(segs.size(), 1u);
    name = std::filesystem::path(segs[0]).filename().string();
    std::string bytes = read_bytes(segs[0]);
    ASSERT_GE(bytes.size(), size_t{4} << 20) << "the tail is preallocated";
    before_last = bytes.find_last_not_of('\0') + 1;
    auto env = spool->load(id);
    ASSERT_TRUE(env);
    previous = *env;
    env->recipients[0].attempts = 2;
    env->recipients[0].last_reply = "second";
    ASSERT_TRUE(spool->append_state(*env));
    ASSERT_TRUE(spool->sync());
    full = read_bytes(segs[0]);
    log_end = full.find_last_not_of('\0') + 1;
    ASSERT_GT(log_end, before_last) << "the state record overwrote zeros";
    EXPECT_EQ(full.size(), bytes.size()) << "no growth inside the prefilled region";
  }
  {
    // Reopened as is: both records, and the zeros are not reported as damage.
    auto spool = open_spool(base_dir);
    auto loaded = spool->load(id);
    ASSERT_TRUE(loaded);
    EXPECT_EQ(loaded->recipients[0].last_reply, "second");
  }
  // A torn last write inside the zeroed region: the file keeps its size,
  // the record is cut anywhere and the rest stays zero.
  for (size_t cut = before_last; cut < log_end; cut += 7) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    std::string dir = tmp.sub("cut" + std::to_string(cut));
    ASSERT_TRUE(fs::make_dirs(dir));
    std::string torn = full;
    std::fill(torn.begin() + static_cast<std::ptrdiff_t>(cut), torn.end(), '\0');
    write_bytes(fs::join(dir, name), torn);
    auto spool = open_spool(dir);
    auto recovered = spool->recover();
    ASSERT_TRUE(recovered);
    ASSERT_EQ(recovered->size(), 1u);
    EXPECT_EQ((*recovered)[0], previous);
  }
}

TEST(SpoolTest, SyncSoonSyncsAfterTheDelayOrWithTheNextBatch) {
  using std::chrono::milliseconds;
  TempDir tmp;
  auto spool = open_spool(tmp.path());
  std::string id = write_message(*spool, make_envelope(1), "content\r\n");
  ASSERT_TRUE(spool->sync());  // and the prefill after it
  // Alone: no sync at once, one within the delay.
  uint64_t before = spool->stats().syncs;
  ASSERT_TRUE(spool->remove(id));
  auto t0 = std::chrono::steady_clock::now();
  spool->sync_soon();
  std::this_thread::sleep_for(milliseconds(50));
  const uint64_t early = spool->stats().syncs;
  // (Checked only if that read came before the delay: a loaded machine can
  // oversleep.)
  if (std::chrono::steady_clock::now() - t0 < Spool::kLazySyncDelay) {
    EXPECT_EQ(early, before) << "a lazy request does not wake the committer";
  }
  while (spool->stats().syncs == before && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(spool->stats().syncs, before + 1);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, Spool::kLazySyncDelay - milliseconds(20));
  // With a regular request in between: that batch covers it, no second sync.
  std::string id2 = write_message(*spool, make_envelope(1), "more\r\n");
  before = spool->stats().syncs;
  ASSERT_TRUE(spool->remove(id2));
  spool->sync_soon();
  ASSERT_TRUE(spool->sync());
  std::this_thread::sleep_for(Spool::kLazySyncDelay + milliseconds(200));
  EXPECT_EQ(spool->stats().syncs, before + 1);
  // Pending at shutdown: synced before the spool closes, so the DONE record
  // is there after a reopen.
  std::string id3 = write_message(*spool, make_envelope(1), "last\r\n");
  ASSERT_TRUE(spool->remove(id3));
  spool->sync_soon();
  spool.reset();
  spool = open_spool(tmp.path());
  auto recovered = spool->recover();
  ASSERT_TRUE(recovered);
  EXPECT_TRUE(recovered->empty());
}

TEST(SpoolTest, GarbageFilesAreReportedNotFatal) {
  TempDir tmp;
  std::string good;
  {
    auto spool = open_spool(tmp.path());
    good = write_message(*spool, make_envelope(), "good");
  }
  std::string garbage;
  for (int i = 0; i < 5000; ++i) garbage.push_back(static_cast<char>((i * 7919) % 251));
  write_bytes(tmp.sub("0000000000000abc.seg"), garbage);
  write_bytes(tmp.sub("README"), "not a queue file");
  std::filesystem::create_directory(tmp.sub("subdir"));

  auto spool = open_spool(tmp.path());
  auto recovered = spool->recover();
  ASSERT_TRUE(recovered);
  ASSERT_EQ(recovered->size(), 1u);
  EXPECT_EQ((*recovered)[0].id, good);
  EXPECT_FALSE(fs::exists(tmp.sub("0000000000000abc.seg")));
  EXPECT_TRUE(fs::exists(tmp.sub("corrupt/0000000000000abc.seg")));
  EXPECT_TRUE(fs::exists(tmp.sub("README")));  // foreign files are left alone
  auto again = spool->recover();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->size(), 1u);
  // Still writable, and a restart does not trip over the quarantine directory.
  std::string more = write_message(*spool, make_envelope(), "more");
  spool.reset();
  spool = open_spool(tmp.path());
  auto third = spool->recover();
  ASSERT_TRUE(third);
  EXPECT_EQ(third->size(), 2u);
}

TEST(SpoolTest, CorruptContentIsDetectedOnRead) {
  TempDir tmp;
  auto spool = open_spool(tmp.path());
  std::string id = write_message(*spool, make_envelope(), "precious content");
  auto segs = segment_files(tmp.path());
  ASSERT_EQ(segs.size(), 1u);
  std::string bytes = read_bytes(segs[0]);
  auto at = bytes.find("precious");
  ASSERT_NE(at, std::string::npos);
  bytes[at] = 'P';
  write_bytes(segs[0], bytes);
  EXPECT_TRUE(spool->load(id));  // envelope is intact
  EXPECT_FALSE(spool->read_content(id));
}

TEST(SpoolTest, RemoveDeletesTheMessage) {
  TempDir tmp;
  std::string id;
  {
    auto spool = open_spool(tmp.path());
    id = write_message(*spool, make_envelope(), "x");
    ASSERT_TRUE(spool->remove(id));
    ASSERT_TRUE(spool->sync());
    EXPECT_FALSE(spool->load(id));
    EXPECT_FALSE(spool->remove(id));
    EXPECT_FALSE(spool->remove("../etc/passwd"));
    Envelope gone;
    gone.id = id;
    EXPECT_FALSE(spool->append_state(gone));
    auto recovered = spool->recover();
    ASSERT_TRUE(recovered);
    EXPECT_TRUE(recovered->empty());
  }
  auto spool = open_spool(tmp.path());
  auto recovered = spool->recover();
  ASSERT_TRUE(recovered);
  EXPECT_TRUE(recovered->empty());
}

TEST(SpoolTest, NewIdsSortAfterExistingOnesAfterRestart) {
  TempDir tmp;
  std::string first;
  {
    auto spool = open_spool(tmp.path());
    first = write_message(*spool, make_envelope(), "x");
  }
  auto spool = open_spool(tmp.path());
  auto writer = spool->create();
  ASSERT_TRUE(writer);
  EXPECT_GT((*writer)->id(), first);
}

Spool::Options small_segments(int64_t compact_after_seconds = 300) {
  Spool::Options o;
  o.segment_bytes = 64 * 1024;
  o.compact_after_seconds = compact_after_seconds;
  return o;
}

TEST(SpoolSegments, SegmentsRotateAndFinishedOnesAreDeleted) {
  TempDir tmp;
  auto opened = Spool::open(tmp.path(), small_segments());
  ASSERT_TRUE(opened);
  auto& spool = **opened;
  std::vector<std::string> ids;
  for (int i = 0; i < 100; ++i) ids.push_back(write_message(spool, make_envelope(1), std::string(4000, 'm')));
  EXPECT_GE(segment_files(tmp.path()).size(), 6u);
  for (const auto& id : ids) ASSERT_TRUE(spool.remove(id));
  ASSERT_TRUE(spool.sync());  // makes the DONE records durable, then deletes
  ASSERT_TRUE(spool.sync());
  EXPECT_EQ(segment_files(tmp.path()).size(), 1u);  // the active one
  EXPECT_EQ(spool.stats().messages, 0u);
}

TEST(SpoolSegments, OldSegmentsAreKeptWhileAnyMessageInThemIsQueued) {
  TempDir tmp;
  std::string deferred;
  {
    auto opened = Spool::open(tmp.path(), small_segments());  // no compaction yet (5 minutes)
    ASSERT_TRUE(opened);
    auto& spool = **opened;
    deferred = write_message(spool, make_envelope(1), "deferred\r\n");
    std::vector<std::string> ids;
    for (int i = 0; i < 60; ++i) ids.push_back(write_message(spool, make_envelope(1), std::string(4000, 'm')));
    for (const auto& id : ids) ASSERT_TRUE(spool.remove(id));
    ASSERT_TRUE(spool.sync());
    ASSERT_TRUE(spool.sync());
    // The first segment holds the deferred message and so do all later
    // ones (their DONE records must outlive it).
    EXPECT_GE(segment_files(tmp.path()).size(), 4u);
  }
  auto spool = open_spool(tmp.path());
  auto recovered = spool->recover();
  ASSERT_TRUE(recovered);
  ASSERT_EQ(recovered->size(), 1u);  // the 60 removed ones stay removed
  EXPECT_EQ((*recovered)[0].id, deferred);
}

TEST(SpoolSegments, CompactionCopiesALongQueuedMessageForward) {
  TempDir tmp;
  std::string deferred;
  Envelope state;
  {
    auto opened = Spool::open(tmp.path(), small_segments(0));
    ASSERT_TRUE(opened);
    auto& spool = **opened;
    deferred = write_message(spool, make_envelope(2), big_content());
    auto env = spool.load(deferred);
    ASSERT_TRUE(env);
    env->recipients[0].state = Recipient::State::kDelivered;
    env->recipients[1].attempts = 3;
    env->recipients[1].last_reply = "451 4.4.1 later";
    ASSERT_TRUE(spool.append_state(*env));
    state = *env;
    std::vector<std::string> ids;
    for (int i = 0; i < 60; ++i) ids.push_back(write_message(spool, make_envelope(1), std::string(4000, 'm')));
    for (const auto& id : ids) ASSERT_TRUE(spool.remove(id));
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(spool.sync());
    EXPECT_GE(spool.stats().compacted, 1u);
    EXPECT_LE(segment_files(tmp.path()).size(), 2u);
    auto content = spool.read_content(deferred);
    ASSERT_TRUE(content);
    EXPECT_EQ(*content, big_content());
    auto loaded = spool.load(deferred);
    ASSERT_TRUE(loaded);
    EXPECT_EQ(*loaded, state);
  }
  auto spool = open_spool(tmp.path());
  auto recovered = spool->recover();
  ASSERT_TRUE(recovered);
  ASSERT_EQ(recovered->size(), 1u);
  EXPECT_EQ((*recovered)[0], state);
  auto content = spool->read_content(deferred);
  ASSERT_TRUE(content);
  EXPECT_EQ(*content, big_content());
}

TEST(SpoolSegments, ALargeMessageMaySpanSegments) {
  TempDir tmp;
  std::string id;
  std::string content = big_content() + big_content();
  {
    Spool::Options o = small_segments();
    o.segment_bytes = 100 * 1024;
    auto opened = Spool::open(tmp.path(), o);
    ASSERT_TRUE(opened);
    id = write_message(**opened, make_envelope(1), content);
    EXPECT_GE(segment_files(tmp.path()).size(), 3u);
  }
  auto spool = open_spool(tmp.path());
  auto read = spool->read_content(id);
  ASSERT_TRUE(read);
  EXPECT_EQ(*read, content);
}

class GroupCommitTest : public ::testing::TestWithParam<Spool::SyncMode> {};

TEST_P(GroupCommitTest, ConcurrentWritersShareSyncs) {
  TempDir tmp;
  constexpr int kThreads = 50;
  constexpr int kPerThread = 4;
  std::vector<std::vector<std::pair<std::string, std::string>>> written(kThreads);
  std::atomic<int> failures{0};
  {
    auto spool = open_spool(tmp.path(), GetParam());
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          std::string content = "thread " + std::to_string(t) + " message " + std::to_string(i) + "\r\n" +
                                std::string(4096, static_cast<char>('a' + (t + i) % 26));
          auto writer = spool->create();
          if (!writer || !(*writer)->append(content) || !(*writer)->finish(make_envelope(1)) || !spool->sync()) {
            ++failures;
            continue;
          }
          written[t].emplace_back((*writer)->id(), content);
        }
      });
    }
    for (auto& th : threads) th.join();
    auto stats = spool->stats();
    EXPECT_EQ(stats.synced_requests, static_cast<uint64_t>(kThreads * kPerThread));
    // Group commit: far fewer syncs than requests.
    EXPECT_LT(stats.syncs, stats.synced_requests / 2) << "syncs=" << stats.syncs;
  }
  EXPECT_EQ(failures.load(), 0);
  auto spool = open_spool(tmp.path(), GetParam());
  auto recovered = spool->recover();
  ASSERT_TRUE(recovered);
  EXPECT_EQ(recovered->size(), static_cast<size_t>(kThreads * kPerThread));
  for (const auto& list : written) {
    for (const auto& [id, content] : list) {
      auto read = spool->read_content(id);
      ASSERT_TRUE(read) << id;
      EXPECT_EQ(*read, content);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, GroupCommitTest,
                         ::testing::Values(Spool::SyncMode::kSyncfs, Spool::SyncMode::kFsyncEach),
                         [](const auto& info) {
                           return std::string(info.param == Spool::SyncMode::kSyncfs ? "Syncfs" : "FsyncEach");
                         });

// kill -9 at an arbitrary moment: every message whose sync completed (what
// the server would have answered 250 for) must be recovered with its
// content; nothing else may be (the child never acknowledged it).
TEST(SpoolTest, AcknowledgedMessagesSurviveKill9) {
  TempDir tmp;
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pipe_fds[0]);
    auto spool = Spool::open(tmp.path(), Spool::SyncMode::kFsyncEach);
    if (!spool) ::_exit(2);
    std::vector<std::thread> writers;
    for (int t = 0; t < 8; ++t) {
      writers.emplace_back([&, t] {
        for (int i = 0;; ++i) {
          auto writer = (*spool)->create();
          if (!writer) ::_exit(3);
          std::string content(1000 + 37 * i, static_cast<char>('a' + t));
          if (!(*writer)->append(content) || !(*writer)->finish(make_envelope(1)) || !(*spool)->sync()) ::_exit(4);
          std::string ack = (*writer)->id() + "\n";  // "250 OK" to the client
          if (::write(pipe_fds[1], ack.data(), ack.size()) != static_cast<ssize_t>(ack.size())) ::_exit(5);
        }
      });
    }
    for (auto& w : writers) w.join();
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::string acks;
  char buf[4096];
  while (std::count(acks.begin(), acks.end(), '\n') < 40) {
    ssize_t n = ::read(pipe_fds[0], buf, sizeof buf);
    ASSERT_GT(n, 0) << "child died early";
    acks.append(buf, static_cast<size_t>(n));
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof buf)) > 0;) acks.append(buf, static_cast<size_t>(n));
  ::close(pipe_fds[0]);
  ASSERT_TRUE(WIFSIGNALED(status));

  auto spool = open_spool(tmp.path());
  auto recovered = spool->recover();
  ASSERT_TRUE(recovered);
  std::set<std::string> present;
  for (const auto& env : *recovered) {
    present.insert(env.id);
    auto content = spool->read_content(env.id);
    ASSERT_TRUE(content) << env.id;
    EXPECT_EQ(content->size(), env.size);
  }
  size_t acked = 0;
  for (auto line : split_lines(acks)) {
    ++acked;
    EXPECT_TRUE(present.count(std::string(line))) << "acknowledged message lost: " << line;
  }
  EXPECT_GE(acked, 40u);
  // At most one unacknowledged (in flight) message per writer thread survives.
  EXPECT_LE(present.size(), acked + 8);
}

TEST(SpoolTest, DestructorCompletesPendingSyncs) {
  TempDir tmp;
  std::atomic<int> completed{0};
  {
    auto spool = open_spool(tmp.path());
    for (int i = 0; i < 20; ++i) {
      spool->sync_async([&](Status st) {
        EXPECT_TRUE(st);
        ++completed;
      });
    }
  }
  EXPECT_EQ(completed.load(), 20);
}

}  // namespace
}  // namespace tern::queue
