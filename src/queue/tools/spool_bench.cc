// spool_bench: measures how many messages per second the spool accepts when
// many sessions write concurrently, each doing what the SMTP server does per
// message: create, append content, finish, and wait for the group sync.
//
//   spool_bench DIR [syncfs|fsync] [threads=50] [messages_per_thread=200] [bytes=4096]
//
// Prints messages/s, syncs performed and the average batch size. DIR is
// emptied of the messages it wrote afterwards.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "base/log.h"
#include "queue/spool.h"

using tern::queue::Envelope;
using tern::queue::Recipient;
using tern::queue::Spool;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [syncfs|fsync] [threads] [messages_per_thread] [bytes]\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  auto mode = (argc > 2 && std::string(argv[2]) == "fsync") ? Spool::SyncMode::kFsyncEach : Spool::SyncMode::kSyncfs;
  int threads = argc > 3 ? std::atoi(argv[3]) : 50;
  int per_thread = argc > 4 ? std::atoi(argv[4]) : 200;
  size_t bytes = argc > 5 ? static_cast<size_t>(std::atoll(argv[5])) : 4096;

  auto spool = Spool::open(dir, mode);
  if (!spool) {
    std::fprintf(stderr, "open: %s\n", spool.error().to_string().c_str());
    return 1;
  }
  std::string content(bytes, 'x');
  std::atomic<int> failures{0};
  std::vector<std::vector<std::string>> ids(threads);
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        auto writer = (*spool)->create();
        if (!writer) { ++failures; continue; }
        Envelope env;
        env.mail_from = "sender@example.org";
        Recipient rcpt;
        rcpt.address = "rcpt@example.net";
        env.recipients.push_back(rcpt);
        if (!(*writer)->append(content) || !(*writer)->finish(env) || !(*spool)->sync()) {
          ++failures;
          continue;
        }
        ids[t].push_back((*writer)->id());
      }
    });
  }
  for (auto& w : workers) w.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto stats = (*spool)->stats();
  int total = threads * per_thread;
  std::printf("mode=%s threads=%d messages=%d bytes=%zu seconds=%.3f msgs_per_sec=%.0f syncs=%llu avg_batch=%.1f failures=%d\n",
              mode == Spool::SyncMode::kSyncfs ? "syncfs" : "fsync", threads, total, bytes, seconds, total / seconds,
              static_cast<unsigned long long>(stats.syncs),
              stats.syncs ? static_cast<double>(stats.synced_requests) / static_cast<double>(stats.syncs) : 0.0,
              failures.load());
  for (const auto& list : ids) {
    for (const auto& id : list) (void)(*spool)->remove(id);
  }
  (void)(*spool)->sync();
  return failures.load() == 0 ? 0 : 1;
}
