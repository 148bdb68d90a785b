// Tests for queue id generation: format, ordering and uniqueness under
// concurrency and clock steps.
#include "queue/queue_id.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <thread>
#include <vector>

namespace tern::queue {
namespace {

TEST(QueueIdTest, FormatAndValidation) {
  QueueIdGenerator gen;
  std::string id = gen.next();
  EXPECT_EQ(id.size(), kQueueIdLength);
  EXPECT_TRUE(is_queue_id(id));
  EXPECT_FALSE(is_queue_id("../../etc/pass"));
  EXPECT_FALSE(is_queue_id("0123456789ABCD"));  // uppercase not in alphabet
  EXPECT_FALSE(is_queue_id("0123456789abc"));
  EXPECT_FALSE(is_queue_id("0123456789abci"));  // 'i' excluded (look-alike)
}

TEST(QueueIdTest, SortsByTimeAndSurvivesClockSteppingBack) {
  QueueIdGenerator gen;
  std::string a = gen.next(1'000'000);
  std::string b = gen.next(1'000'000);  // same microsecond
  std::string c = gen.next(999'000);    // clock stepped back
  std::string d = gen.next(2'000'000);
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_LT(c, d);
}

TEST(QueueIdTest, ObserveMakesLaterIdsSortAfter) {
  QueueIdGenerator first;
  std::string old = first.next(5'000'000);
  QueueIdGenerator restarted;
  restarted.observe(old);
  EXPECT_GT(restarted.next(4'000'000), old);
}

TEST(QueueIdTest, SequenceOverflowStaysUnique) {
  QueueIdGenerator gen;
  std::set<std::string> ids;
  for (int i = 0; i < 40000; ++i) ids.insert(gen.next(7'000'000));
  EXPECT_EQ(ids.size(), 40000u);
}

TEST(QueueIdTest, UniqueAcrossThreads) {
  QueueIdGenerator gen;
  std::vector<std::vector<std::string>> per_thread(8);
  std::vector<std::thread> threads;
  for (auto& out : per_thread) {
    threads.emplace_back([&gen, &out] {
      for (int i = 0; i < 5000; ++i) out.push_back(gen.next());
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> all;
  for (const auto& out : per_thread) {
    EXPECT_TRUE(std::is_sorted(out.begin(), out.end()));
    all.insert(out.begin(), out.end());
  }
  EXPECT_EQ(all.size(), 40000u);
}

}  // namespace
}  // namespace tern::queue
