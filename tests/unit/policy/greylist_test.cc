// Unit tests for greylisting with a manual clock: first attempt 451, early
// retry 451 with the time left, retry after the delay passes, remembered
// until expire, client networks (/24, /64) whitelisted after pass_after
// passed triplets, the retry window, the table bound, and persistence
// (reload after "restart", torn last record, compaction).
#include "policy/greylist.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "test_support.h"

namespace tern::policy {
namespace {

using testing::ip;
using Action = Verdict::Action;

class GreylistTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tern-greylist-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ + "/greylist";
  }
  void TearDown() override {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  std::unique_ptr<Greylist> open(GreylistOptions options = {}) {
    auto g = Greylist::open(path_, options, [this] { return now_; });
    EXPECT_TRUE(g) << (g ? "" : g.error().text);
    return g ? std::move(*g) : nullptr;
  }
  std::string file_text() {
    std::ifstream in(path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::string dir_, path_;
  int64_t now_ = 1'800'000'000;
};

TEST_F(GreylistTest, FirstAttemptThenRetryAfterDelay) {
  auto g = open({.delay = std::chrono::seconds(300)});
  Verdict first = g->check(ip("192.0.2.10"), "a@x.test", "b@me.test");
  EXPECT_EQ(first.action, Action::kTempFail);
  EXPECT_EQ(first.error().to_string(), "451 4.7.1 Greylisted, please try again in 300 seconds");
  now_ += 100;
  Verdict early = g->check(ip("192.0.2.10"), "a@x.test", "b@me.test");
  EXPECT_EQ(early.code, 451);
  EXPECT_EQ(early.text, "Greylisted, please try again in 200 seconds");
  now_ += 200;
  // The retry from another host of the same /24, with different case, passes.
  EXPECT_EQ(g->check(ip("192.0.2.77"), "A@X.test", "b@ME.test").action, Action::kContinue);
  now_ += 24 * 3600;
  EXPECT_EQ(g->check(ip("192.0.2.10"), "a@x.test", "b@me.test").action, Action::kContinue);
  // Another recipient is another triplet.
  EXPECT_EQ(g->check(ip("192.0.2.10"), "a@x.test", "c@me.test").action, Action::kTempFail);
  // Another /24 too.
  EXPECT_EQ(g->check(ip("192.0.3.10"), "a@x.test", "b@me.test").action, Action::kTempFail);
}

TEST_F(GreylistTest, PassedTripletExpires) {
  auto g = open({.delay = std::chrono::seconds(60), .expire = std::chrono::seconds(1000)});
  EXPECT_EQ(g->check(ip("192.0.2.1"), "", "b@me.test").action, Action::kTempFail);
  now_ += 60;
  EXPECT_EQ(g->check(ip("192.0.2.1"), "", "b@me.test").action, Action::kContinue);
  now_ += 999;  // seen again: expiry counts from the last sighting
  EXPECT_EQ(g->check(ip("192.0.2.1"), "", "b@me.test").action, Action::kContinue);
  now_ += 1000;
  EXPECT_EQ(g->check(ip("192.0.2.1"), "", "b@me.test").action, Action::kTempFail);
}

TEST_F(GreylistTest, RetryWindow) {
  auto g = open({.delay = std::chrono::seconds(60), .retry_window = std::chrono::seconds(3600)});
  EXPECT_EQ(g->check(ip("192.0.2.1"), "a@x.test", "b@me.test").action, Action::kTempFail);
  now_ += 3600;  // too late: starts over
  Verdict v = g->check(ip("192.0.2.1"), "a@x.test", "b@me.test");
  EXPECT_EQ(v.action, Action::kTempFail);
  EXPECT_EQ(v.text, "Greylisted, please try again in 60 seconds");
  now_ += 60;
  EXPECT_EQ(g->check(ip("192.0.2.1"), "a@x.test", "b@me.test").action, Action::kContinue);
}

TEST_F(GreylistTest, ClientNetworkWhitelistedAfterPassAfter) {
  auto g = open({.delay = std::chrono::seconds(60), .pass_after = 2});
  for (const char* rcpt : {"1@me.test", "2@me.test"}) {
    EXPECT_EQ(g->check(ip("2001:db8:1:2::1"), "a@x.test", rcpt).action, Action::kTempFail);
    now_ += 61;
    EXPECT_EQ(g->check(ip("2001:db8:1:2::1"), "a@x.test", rcpt).action, Action::kContinue);
  }
  // Any new triplet from the /64 is accepted at once.
  Verdict v = g->check(ip("2001:db8:1:2:ffff::9"), "new@y.test", "3@me.test");
  EXPECT_EQ(v.action, Action::kAccept);
  EXPECT_EQ(v.explanation, "greylist: client network 2001:db8:1:2::/64 whitelisted after 2 passed triplets");
  EXPECT_EQ(g->check(ip("2001:db8:1:3::1"), "new@y.test", "3@me.test").action, Action::kTempFail);
  EXPECT_EQ(Greylist::network_of(ip("::ffff:198.51.100.200")), "198.51.100.0/24");
}

TEST_F(GreylistTest, PassAfterZeroNeverWhitelists) {
  auto g = open({.delay = std::chrono::seconds(1), .pass_after = 0});
  EXPECT_EQ(g->check(ip("192.0.2.1"), "a@x.test", "1@me.test").action, Action::kTempFail);
  now_ += 1;
  EXPECT_EQ(g->check(ip("192.0.2.1"), "a@x.test", "1@me.test").action, Action::kContinue);
  EXPECT_EQ(g->check(ip("192.0.2.1"), "a@x.test", "2@me.test").action, Action::kTempFail);
}

TEST_F(GreylistTest, StateSurvivesRestart) {
  {
    auto g = open({.delay = std::chrono::seconds(60), .pass_after = 1});
    EXPECT_EQ(g->check(ip("192.0.2.1"), "a@x.test", "b@me.test").action, Action::kTempFail);
    EXPECT_EQ(g->check(ip("198.51.100.1"), "c@x.test", "d@me.test").action, Action::kTempFail);
    now_ += 60;
    EXPECT_EQ(g->check(ip("198.51.100.1"), "c@x.test", "d@me.test").action, Action::kContinue);
  }
  auto g = open({.delay = std::chrono::seconds(60), .pass_after = 1});
  EXPECT_EQ(g->triplet_count(), 2u);
  EXPECT_EQ(g->client_count(), 1u);
  // The pending triplet keeps its first sighting: already past the delay.
  EXPECT_EQ(g->check(ip("192.0.2.1"), "a@x.test", "b@me.test").action, Action::kContinue);
  // The whitelisted network is remembered.
  EXPECT_EQ(g->check(ip("198.51.100.9"), "z@x.test", "q@me.test").action, Action::kAccept);
}

TEST_F(GreylistTest, TornRecordAndBadFile) {
  {
    auto g = open({.delay = std::chrono::seconds(60)});
    EXPECT_EQ(g->check(ip("192.0.2.1"), "a@x.test", "b@me.test").action, Action::kTempFail);
  }
  {
    std::ofstream out(path_, std::ios::app);
    out << "T\t1\t2\t1\tgarbage";  // a crash in the middle of a record
  }
  now_ += 60;
  auto g = open({.delay = std::chrono::seconds(60)});
  EXPECT_EQ(g->triplet_count(), 1u);
  EXPECT_EQ(g->check(ip("192.0.2.1"), "a@x.test", "b@me.test").action, Action::kContinue);
  EXPECT_EQ(file_text().find("garbage"), std::string::npos);  // rewritten on load
  g.reset();
  {
    std::ofstream out(path_, std::ios::trunc);
    out << "something else\n";
  }
  auto bad = Greylist::open(path_, {}, [this] { return now_; });
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().text, path_ + ": not a tern greylist file");
}

TEST_F(GreylistTest, ExpiredEntriesDroppedOnLoadAndCompaction) {
  GreylistOptions options{.delay = std::chrono::seconds(60),
                          .expire = std::chrono::seconds(3600),
                          .retry_window = std::chrono::seconds(600)};
  {
    auto g = open(options);
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(g->check(ip("192.0.2.1"), "a@x.test", std::to_string(i) + "@me.test").action, Action::kTempFail);
    }
    EXPECT_TRUE(g->compact());
  }
  now_ += 601;
  auto g = open(options);
  EXPECT_EQ(g->triplet_count(), 0u);
  EXPECT_EQ(file_text(), "tern-greylist 1\n");
}

TEST_F(GreylistTest, TableBoundFailsOpen) {
  auto g = open({.delay = std::chrono::seconds(60), .max_entries = 3});
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(g->check(ip("192.0.2.1"), "a@x.test", std::to_string(i) + "@me.test").action, Action::kTempFail);
  }
  Verdict v = g->check(ip("192.0.2.1"), "a@x.test", "9@me.test");
  EXPECT_EQ(v.action, Action::kContinue);
  EXPECT_EQ(v.explanation, "greylist: table full (3), not greylisted");
  EXPECT_EQ(g->triplet_count(), 3u);
}

TEST(GreylistMemory, NoPathKeepsStateInMemory) {
  int64_t now = 1000;
  auto g = Greylist::open("", {.delay = std::chrono::seconds(5)}, [&] { return now; });
  ASSERT_TRUE(g);
  EXPECT_EQ((*g)->check(ip("192.0.2.1"), "a@x.test", "b@me.test").action, Action::kTempFail);
  now += 5;
  EXPECT_EQ((*g)->check(ip("192.0.2.1"), "a@x.test", "b@me.test").action, Action::kContinue);
}

}  // namespace
}  // namespace tern::policy
