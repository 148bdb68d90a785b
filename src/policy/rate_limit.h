// Per-client rate limits: connections per minute and messages per hour from
// one address (an IPv6 client counts per /64, the block one host usually
// gets, so rotating addresses within it does not reset the limit). Each limit
// is a token bucket holding `limit` tokens, refilled at `limit` per window:
// a client may burst up to the limit, then continues at the average rate.
// Over the connection limit the session answers 421 4.7.0 and closes (RFC
// 5321 §3.8); over the message limit MAIL FROM gets 451 4.7.1. A limit of 0
// means unlimited. Memory is bounded: at most kMaxClients are tracked;
// buckets that have refilled completely carry no information and are pruned
// first. Thread-safe (sessions on several event-loop threads share one).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "base/net.h"
#include "policy/verdict.h"

namespace tern::policy {

struct RateLimitOptions {
  uint32_t connections_per_minute_per_ip = 0;  // 0: unlimited
  uint32_t messages_per_hour_per_ip = 0;       // 0: unlimited
};

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kMaxClients = 200000;

  explicit RateLimiter(RateLimitOptions options) : options_(options) {}

  // At connect: counts the connection; refuses with 421 4.7.0 when over the limit.
  Verdict on_connect(const IpAddress& client, Clock::time_point now = Clock::now());
  // At MAIL FROM: counts the message; refuses with 451 4.7.1 when over the limit.
  Verdict on_message(const IpAddress& client, Clock::time_point now = Clock::now());

  size_t tracked_clients() const;

  // The key a client is counted under: the IPv4 address, or the IPv6 /64 ("2001:db8:1:2::/64").
  static std::string client_key(const IpAddress& client);

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point updated{};
  };
  struct Client {
    Bucket connections, messages;
  };
  // Refills `bucket` for the time since its last update and takes one token if there is one.
  static bool take(Bucket& bucket, uint32_t limit, Clock::duration window, Clock::time_point now);
  void prune(Clock::time_point now);

  RateLimitOptions options_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Client> clients_;
};

}  // namespace tern::policy
