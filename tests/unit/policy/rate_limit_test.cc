// Unit tests for the per-client rate limiter: bursts up to the limit, refill
// at the average rate, IPv6 counted per /64, unlimited when 0, the replies.
#include "policy/rate_limit.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace tern::policy {
namespace {

using testing::ip;
using Action = Verdict::Action;
using std::chrono::seconds;

TEST(RateLimit, ConnectionsPerMinute) {
  RateLimiter limiter({.connections_per_minute_per_ip = 3, .messages_per_hour_per_ip = 0});
  auto t0 = RateLimiter::Clock::time_point{} + std::chrono::hours(1000);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter.on_connect(ip("192.0.2.1"), t0).action, Action::kContinue);
  Verdict v = limiter.on_connect(ip("192.0.2.1"), t0);
  EXPECT_EQ(v.action, Action::kTempFail);
  EXPECT_EQ(v.error().to_string(), "421 4.7.0 Too many connections from your address, try again later");
  // Another address has its own bucket.
  EXPECT_EQ(limiter.on_connect(ip("192.0.2.2"), t0).action, Action::kContinue);
  // 3 per minute: one token back every 20 seconds.
  EXPECT_EQ(limiter.on_connect(ip("192.0.2.1"), t0 + seconds(19)).action, Action::kTempFail);
  EXPECT_EQ(limiter.on_connect(ip("192.0.2.1"), t0 + seconds(21)).action, Action::kContinue);
  EXPECT_EQ(limiter.on_connect(ip("192.0.2.1"), t0 + seconds(22)).action, Action::kTempFail);
  // Messages unlimited.
  for (int i = 0; i < 100; ++i) EXPECT_EQ(limiter.on_message(ip("192.0.2.1"), t0).action, Action::kContinue);
}

TEST(RateLimit, MessagesPerHourAndIpv6Slash64) {
  RateLimiter limiter({.connections_per_minute_per_ip = 0, .messages_per_hour_per_ip = 2});
  auto t0 = RateLimiter::Clock::time_point{} + std::chrono::hours(1000);
  EXPECT_EQ(limiter.on_message(ip("2001:db8:1:2::1"), t0).action, Action::kContinue);
  EXPECT_EQ(limiter.on_message(ip("2001:db8:1:2::ffff"), t0).action, Action::kContinue);  // same /64
  Verdict v = limiter.on_message(ip("2001:db8:1:2:abcd::1"), t0);
  EXPECT_EQ(v.code, 451);
  EXPECT_EQ(v.enhanced, "4.7.1");
  EXPECT_NE(v.explanation.find("2001:db8:1:2::/64"), std::string::npos) << v.explanation;
  EXPECT_EQ(limiter.on_message(ip("2001:db8:1:3::1"), t0).action, Action::kContinue);  // another /64
  EXPECT_EQ(limiter.on_message(ip("2001:db8:1:2::1"), t0 + std::chrono::minutes(31)).action, Action::kContinue);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(limiter.on_connect(ip("2001:db8:1:2::1"), t0).action, Action::kContinue);
}

TEST(RateLimit, IdleClientsArePrunedWhenFull) {
  RateLimiter limiter({.connections_per_minute_per_ip = 1, .messages_per_hour_per_ip = 0});
  auto t0 = RateLimiter::Clock::time_point{} + std::chrono::hours(1000);
  EXPECT_EQ(RateLimiter::client_key(ip("::ffff:192.0.2.1")), "192.0.2.1");
  EXPECT_EQ(limiter.on_connect(ip("192.0.2.1"), t0).action, Action::kContinue);
  EXPECT_EQ(limiter.tracked_clients(), 1u);
}

}  // namespace
}  // namespace tern::policy
