// Tests for the spool: write/finish/sync/recover round trips, crash leftovers
// (uncommitted files, torn state appends, garbage), state persistence across
// reopen, and group commit under 50 concurrent writers.
#include "queue/spool.h"

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

TEST(SpoolTest, AbortAndDestructorRemoveUnfinishedFiles) {
  TempDir tmp;
  auto spool = open_spool(tmp.path());
  std::string path1, path2;
  {
    auto w1 = spool->create();
    ASSERT_TRUE(w1);
    path1 = tmp.sub((*w1)->id());
    ASSERT_TRUE((*w1)->append(std::string(100'000, 'a')));
    EXPECT_TRUE(fs::exists(path1));
    (*w1)->abort();
    EXPECT_FALSE(fs::exists(path1));
    auto w2 = spool->create();
    ASSERT_TRUE(w2);
    path2 = tmp.sub((*w2)->id());
    ASSERT_TRUE((*w2)->append("x"));
  }
  EXPECT_FALSE(fs::exists(path2));
}

TEST(SpoolTest, UncommittedFilesAreDroppedAtRecovery) {
  TempDir tmp;
  std::string kept, crashed_copy;
  {
    auto spool = open_spool(tmp.path());
    kept = write_message(*spool, make_envelope(), "kept\r\n");
    // Simulate kill -9 during DATA: snapshot a file whose content chunks
    // have reached the kernel but which has no COMMIT record.
    auto writer = spool->create();
    ASSERT_TRUE(writer);
    ASSERT_TRUE((*writer)->append(std::string(150'000, 'z')));
    std::string partial = read_bytes(tmp.sub((*writer)->id()));
    ASSERT_GT(partial.size(), 65536u);
    QueueIdGenerator ids;
    crashed_copy = ids.next(1);  // sorts first; a valid name
    write_bytes(tmp.sub(crashed_copy), partial);
    // A crash right after create(): empty file.
    write_bytes(tmp.sub(ids.next(2)), "");
    // A crash in the middle of the final write: envelope but no COMMIT.
    std::string no_commit = spool_header(0);
    append_record(no_commit, RecordType::kContent, "abc");
    append_record(no_commit, RecordType::kEnvelope, encode_envelope(make_envelope()));
    write_bytes(tmp.sub(ids.next(3)), no_commit);
  }
  auto spool = open_spool(tmp.path());
  auto recovered = spool->recover();
  ASSERT_TRUE(recovered);
  ASSERT_EQ(recovered->size(), 1u);
  EXPECT_EQ((*recovered)[0].id, kept);
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(tmp.path())) {
    if (e.is_regular_file()) ++files;
  }
  EXPECT_EQ(files, 1u);
  EXPECT_FALSE(fs::exists(tmp.sub(crashed_copy)));
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

TEST(SpoolTest, TornStateAppendRecoversPreviousStateAtEveryOffset) {
  TempDir tmp;
  std::string base_dir = tmp.sub("base");
  std::string id, full;
  size_t before_last = 0;
  Envelope previous;
  {
    auto spool = open_spool(base_dir);
    id = write_message(*spool, make_envelope(2), "content\r\n");
    auto env = spool->load(id);
    ASSERT_TRUE(env);
    env->recipients[0].attempts = 1;
    env->recipients[0].last_reply = "first";
    ASSERT_TRUE(spool->append_state(*env));
    previous = *env;
    before_last = read_bytes(fs::join(base_dir, id)).size();
    env->recipients[0].attempts = 2;
    env->recipients[0].state = Recipient::State::kDelivered;
    env->recipients[0].last_reply = "second";
    ASSERT_TRUE(spool->append_state(*env));
    ASSERT_TRUE(spool->sync());
    full = read_bytes(fs::join(base_dir, id));
  }
  ASSERT_GT(full.size(), before_last);
  for (size_t cut = before_last; cut < full.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    std::string dir = tmp.sub("cut" + std::to_string(cut));
    ASSERT_TRUE(fs::make_dirs(dir));
    write_bytes(fs::join(dir, id), std::string_view(full).substr(0, cut));
    auto spool = open_spool(dir);
    auto recovered = spool->recover();
    ASSERT_TRUE(recovered);
    ASSERT_EQ(recovered->size(), 1u);
    EXPECT_EQ((*recovered)[0], previous);
    // The torn tail was cut off, so a new append is visible afterwards.
    Envelope next = previous;
    next.recipients[1].attempts = 7;
    ASSERT_TRUE(spool->append_state(next));
    auto loaded = spool->load(id);
    ASSERT_TRUE(loaded);
    EXPECT_EQ(*loaded, next);
  }
}

TEST(SpoolTest, GarbageFilesAreReportedNotFatal) {
  TempDir tmp;
  std::string good;
  QueueIdGenerator ids;
  std::string garbage_id = ids.next(10);
  {
    auto spool = open_spool(tmp.path());
    good = write_message(*spool, make_envelope(), "good");
  }
  std::string garbage;
  for (int i = 0; i < 5000; ++i) garbage.push_back(static_cast<char>((i * 7919) % 251));
  write_bytes(tmp.sub(garbage_id), garbage);
  write_bytes(tmp.sub("README"), "not a queue file");
  std::filesystem::create_directory(tmp.sub("subdir"));

  auto spool = open_spool(tmp.path());
  auto recovered = spool->recover();
  ASSERT_TRUE(recovered);
  ASSERT_EQ(recovered->size(), 1u);
  EXPECT_EQ((*recovered)[0].id, good);
  EXPECT_FALSE(fs::exists(tmp.sub(garbage_id)));
  EXPECT_TRUE(fs::exists(tmp.sub("corrupt/" + garbage_id)));
  EXPECT_TRUE(fs::exists(tmp.sub("README")));  // foreign files are left alone
  // A second recovery does not trip over the quarantine directory.
  auto again = spool->recover();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->size(), 1u);
}

TEST(SpoolTest, CorruptContentIsDetectedOnRead) {
  TempDir tmp;
  auto spool = open_spool(tmp.path());
  std::string id = write_message(*spool, make_envelope(), "precious content");
  std::string bytes = read_bytes(tmp.sub(id));
  auto at = bytes.find("precious");
  ASSERT_NE(at, std::string::npos);
  bytes[at] = 'P';
  write_bytes(tmp.sub(id), bytes);
  EXPECT_TRUE(spool->load(id));  // envelope is intact
  EXPECT_FALSE(spool->read_content(id));
}

TEST(SpoolTest, RemoveDeletesTheMessage) {
  TempDir tmp;
  auto spool = open_spool(tmp.path());
  std::string id = write_message(*spool, make_envelope(), "x");
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

namespace tern::queue {
namespace {

using testing::TempDir;

size_t count_files(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) n += e.is_regular_file() ? 1 : 0;
  return n;
}

// Waits until the pool thread has stocked free/ (it then rests until the
// pool runs low), so that inode checks below are not racing it.
void wait_for_full_pool(const std::string& dir) {
  for (int i = 0; i < 1000 && count_files(dir + "/free") < 1024; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GE(count_files(dir + "/free"), 1024u);
}

std::set<ino_t> inodes_in(const std::string& dir) {
  std::set<ino_t> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    struct stat st;
    if (::stat(e.path().c_str(), &st) == 0) out.insert(st.st_ino);
  }
  return out;
}

TEST(SpoolRecycling, FinishedFilesAreReusedWithTheirOldContentGone) {
  TempDir tmp;
  std::string dir = tmp.sub("queue");
  auto spool = open_spool(dir);
  wait_for_full_pool(dir);
  std::string first = write_message(*spool, make_envelope(1), std::string(10000, 'x') + "\r\n");
  struct stat before;
  ASSERT_EQ(::stat((dir + "/" + first).c_str(), &before), 0);
  ASSERT_TRUE(spool->remove(first));
  size_t pooled = count_files(dir + "/free");
  std::string second = write_message(*spool, make_envelope(2), "short\r\n");
  EXPECT_NE(second, first);
  EXPECT_EQ(count_files(dir + "/free"), pooled - 1);
  struct stat after;
  ASSERT_EQ(::stat((dir + "/" + second).c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);  // the file just finished is reused first (LIFO)
  auto content = spool->read_content(second);
  ASSERT_TRUE(content);
  EXPECT_EQ(*content, "short\r\n");
  auto recovered = spool->recover();
  ASSERT_TRUE(recovered);
  ASSERT_EQ(recovered->size(), 1u);
  EXPECT_EQ((*recovered)[0].id, second);
  EXPECT_EQ((*recovered)[0].recipients.size(), 2u);
}

TEST(SpoolRecycling, PoolIsStockedAheadSoCreateNeedsNoNewInode) {
  TempDir tmp;
  std::string dir = tmp.sub("queue");
  auto spool = open_spool(dir);
  wait_for_full_pool(dir);
  std::set<ino_t> pooled = inodes_in(dir + "/free");
  std::string id = write_message(*spool, make_envelope(1), "hello\r\n");
  struct stat st;
  ASSERT_EQ(::stat((dir + "/" + id).c_str(), &st), 0);
  EXPECT_TRUE(pooled.count(st.st_ino)) << "create() allocated a new file instead of taking a pooled one";
  EXPECT_EQ(*spool->read_content(id), "hello\r\n");
}

TEST(SpoolRecycling, StaleRecycledFileUnderANewNameIsNeverRedelivered) {
  // A crash after a recycled file got its new name but before its truncation
  // reached the disk leaves the old, committed records under the new name.
  TempDir tmp;
  std::string dir = tmp.sub("queue");
  std::string old_id, stale_name;
  {
    auto spool = open_spool(dir);
    old_id = write_message(*spool, make_envelope(1), "delivered long ago\r\n");
    stale_name = write_message(*spool, make_envelope(1), "x\r\n");
    // Simulate: stale_name's file holds old_id's committed records.
    write_bytes(dir + "/" + stale_name, read_bytes(dir + "/" + old_id));
    ASSERT_TRUE(spool->remove(old_id));
  }
  auto spool = open_spool(dir);
  auto recovered = spool->recover();
  ASSERT_TRUE(recovered);
  EXPECT_TRUE(recovered->empty());
  EXPECT_FALSE(std::filesystem::exists(dir + "/" + stale_name));
}

}  // namespace
}  // namespace tern::queue

namespace tern::queue {
namespace {

TEST(SpoolRecycling, StateAppendedToAReusedLongerFileSurvivesRecovery) {
  TempDir tmp;
  std::string dir = tmp.sub("queue");
  std::string id;
  {
    auto spool = open_spool(dir);
    wait_for_full_pool(dir);  // then the file just removed is the one reused (LIFO)
    std::string big = write_message(*spool, make_envelope(3), std::string(200000, 'b') + "\r\n");
    ASSERT_TRUE(spool->remove(big));
    id = write_message(*spool, make_envelope(2), "short\r\n");
    // The reused file still holds the old bytes past the new records.
    EXPECT_GT(std::filesystem::file_size(dir + "/" + id), 200000u);
    Envelope held = *spool->load(id);
    held.held = true;
    held.recipients[1].attempts = 4;
    ASSERT_TRUE(spool->append_state(held));
    ASSERT_TRUE(spool->sync());
  }
  auto spool = open_spool(dir);
  auto recovered = spool->recover();
  ASSERT_TRUE(recovered);
  ASSERT_EQ(recovered->size(), 1u);
  EXPECT_TRUE((*recovered)[0].held);
  EXPECT_EQ((*recovered)[0].recipients[1].attempts, 4u);
  EXPECT_EQ(*spool->read_content(id), "short\r\n");
  // Recovery trimmed the stale tail; a later state append is still found.
  Envelope again = (*recovered)[0];
  again.held = false;
  ASSERT_TRUE(spool->append_state(again));
  auto loaded = spool->load(id);
  ASSERT_TRUE(loaded);
  EXPECT_FALSE(loaded->held);
}

TEST(SpoolRecycling, UncommittedNewIncarnationOverAnOldCommittedFileIsDropped) {
  // Crash while a reused file is being rewritten: new header and a little
  // content over the old message's committed records.
  TempDir tmp;
  std::string dir = tmp.sub("queue");
  std::string name;
  {
    auto spool = open_spool(dir);
    name = write_message(*spool, make_envelope(1), "old message body\r\n");
    std::string bytes = read_bytes(dir + "/" + name);
    std::string fresh = spool_header(0x1234);
    append_record(fresh, RecordType::kContent, "new", 0x1234);
    bytes.replace(0, fresh.size(), fresh);
    write_bytes(dir + "/" + name, bytes);
  }
  auto spool = open_spool(dir);
  auto recovered = spool->recover();
  ASSERT_TRUE(recovered);
  EXPECT_TRUE(recovered->empty());
}

}  // namespace
}  // namespace tern::queue
