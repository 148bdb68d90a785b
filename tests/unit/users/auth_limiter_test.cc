// Tests for AuthLimiter: delays double and cap, per-session and per-network
// disconnects, the sliding window, IPv6 /64 grouping and the memory bound.
#include "users/auth_limiter.h"

#include <gtest/gtest.h>

namespace tern::users {
namespace {

using namespace std::chrono_literals;

class FakeClock {
 public:
  AuthLimiter::Clock::time_point now() const { return now_; }
  void advance(std::chrono::seconds s) { now_ += s; }
  AuthLimiter::Now fn() {
    return [this] { return now(); };
  }

 private:
  AuthLimiter::Clock::time_point now_{};
};

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

AuthLimiter::Options options() {
  AuthLimiter::Options o;
  o.window = 600s;
  o.base_delay = 1000ms;
  o.max_delay = 8000ms;
  o.max_failures_per_session = 3;
  o.max_failures_per_network = 6;
  return o;
}

TEST(AuthLimiter, DelayDoublesUpToCap) {
  FakeClock clock;
  AuthLimiter limiter(options(), clock.fn());
  std::vector<long> delays;
  for (unsigned i = 1; i <= 5; ++i) delays.push_back(limiter.record_failure(ip("192.0.2.1"), 1).delay.count());
  EXPECT_EQ(delays, (std::vector<long>{1000, 2000, 4000, 8000, 8000}));
}

TEST(AuthLimiter, DisconnectAfterSessionLimit) {
  FakeClock clock;
  AuthLimiter limiter(options(), clock.fn());
  EXPECT_FALSE(limiter.record_failure(ip("192.0.2.1"), 1).disconnect);
  EXPECT_FALSE(limiter.record_failure(ip("192.0.2.1"), 2).disconnect);
  EXPECT_TRUE(limiter.record_failure(ip("192.0.2.1"), 3).disconnect);
}

TEST(AuthLimiter, BlocksNetworkAndForgetsAfterWindow) {
  FakeClock clock;
  AuthLimiter limiter(options(), clock.fn());
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(limiter.record_failure(ip("192.0.2.1"), 1).disconnect);
    clock.advance(10s);
  }
  EXPECT_FALSE(limiter.blocked(ip("192.0.2.1")));
  EXPECT_TRUE(limiter.record_failure(ip("192.0.2.1"), 1).disconnect);
  EXPECT_TRUE(limiter.blocked(ip("192.0.2.1")));
  EXPECT_FALSE(limiter.blocked(ip("192.0.2.2")));
  EXPECT_TRUE(limiter.blocked(ip("::ffff:192.0.2.1")));  // mapped form is the same client

  clock.advance(555s);  // t=605: the failure at t=0 has left the window, t=10 has not
  EXPECT_EQ(limiter.recent_failures(ip("192.0.2.1")), 5u);
  EXPECT_FALSE(limiter.blocked(ip("192.0.2.1")));
  clock.advance(1000s);
  EXPECT_EQ(limiter.recent_failures(ip("192.0.2.1")), 0u);
  EXPECT_EQ(limiter.record_failure(ip("192.0.2.1"), 1).delay, 1000ms);
}

TEST(AuthLimiter, Ipv6GroupedBySlash64) {
  FakeClock clock;
  AuthLimiter limiter(options(), clock.fn());
  limiter.record_failure(ip("2001:db8:1:2::1"), 1);
  limiter.record_failure(ip("2001:db8:1:2::ffff"), 1);
  EXPECT_EQ(limiter.recent_failures(ip("2001:db8:1:2:aaaa::")), 2u);
  EXPECT_EQ(limiter.recent_failures(ip("2001:db8:1:3::1")), 0u);
}

TEST(AuthLimiter, TrackedNetworksAreBounded) {
  FakeClock clock;
  auto o = options();
  o.max_tracked_networks = 3;
  AuthLimiter limiter(o, clock.fn());
  limiter.record_failure(ip("192.0.2.1"), 1);
  clock.advance(1s);
  limiter.record_failure(ip("192.0.2.2"), 1);
  clock.advance(1s);
  limiter.record_failure(ip("192.0.2.3"), 1);
  clock.advance(1s);
  limiter.record_failure(ip("192.0.2.4"), 1);  // evicts .1, the stalest
  EXPECT_EQ(limiter.recent_failures(ip("192.0.2.1")), 0u);
  EXPECT_EQ(limiter.recent_failures(ip("192.0.2.2")), 1u);
  EXPECT_EQ(limiter.recent_failures(ip("192.0.2.4")), 1u);
}

}  // namespace
}  // namespace tern::users
