// Token-bucket rate limits per client address (see rate_limit.h).
#include "policy/rate_limit.h"

#include <algorithm>

namespace tern::policy {

namespace {
constexpr std::chrono::minutes kConnectionWindow{1};
constexpr std::chrono::hours kMessageWindow{1};
}  // namespace

std::string RateLimiter::client_key(const IpAddress& client) {
  IpAddress ip = client.unmapped();
  if (!ip.v6) return ip.to_string();
  std::fill(ip.bytes.begin() + 8, ip.bytes.end(), 0);
  return ip.to_string() + "/64";
}

bool RateLimiter::take(Bucket& bucket, uint32_t limit, Clock::duration window, Clock::time_point now) {
  if (bucket.updated == Clock::time_point{}) {
    bucket.tokens = limit;  // a new client starts with a full bucket
  } else if (now > bucket.updated) {
    double elapsed = std::chrono::duration<double>(now - bucket.updated).count();
    double per_second = limit / std::chrono::duration<double>(window).count();
    bucket.tokens = std::min<double>(limit, bucket.tokens + elapsed * per_second);
  }
  bucket.updated = std::max(bucket.updated, now);
  if (bucket.tokens < 1.0) return false;
  bucket.tokens -= 1.0;
  return true;
}

void RateLimiter::prune(Clock::time_point now) {
  // A bucket that has been idle for a whole window is full again: forgetting it loses nothing.
  std::erase_if(clients_, [&](const auto& entry) {
    const Client& c = entry.second;
    return now - c.connections.updated >= kConnectionWindow && now - c.messages.updated >= kMessageWindow;
  });
  // Still too many (a flood of distinct addresses): drop everything rather than grow without bound.
  if (clients_.size() >= kMaxClients) clients_.clear();
}

Verdict RateLimiter::on_connect(const IpAddress& client, Clock::time_point now) {
  if (options_.connections_per_minute_per_ip == 0) return Verdict::pass("rate_limit: connections unlimited");
  std::string key = client_key(client);
  std::lock_guard lock(mu_);
  if (clients_.size() >= kMaxClients && !clients_.contains(key)) prune(now);
  Client& c = clients_[key];
  if (take(c.connections, options_.connections_per_minute_per_ip, kConnectionWindow, now)) {
    return Verdict::pass("rate_limit: connection within " + std::to_string(options_.connections_per_minute_per_ip) +
                         "/minute");
  }
  return Verdict::temp_fail(421, "4.7.0", "Too many connections from your address, try again later",
                            "rate_limit: " + key + " over " + std::to_string(options_.connections_per_minute_per_ip) +
                                " connections per minute (connections_per_minute_per_ip)");
}

Verdict RateLimiter::on_message(const IpAddress& client, Clock::time_point now) {
  if (options_.messages_per_hour_per_ip == 0) return Verdict::pass("rate_limit: messages unlimited");
  std::string key = client_key(client);
  std::lock_guard lock(mu_);
  if (clients_.size() >= kMaxClients && !clients_.contains(key)) prune(now);
  Client& c = clients_[key];
  if (take(c.messages, options_.messages_per_hour_per_ip, kMessageWindow, now)) {
    return Verdict::pass("rate_limit: message within " + std::to_string(options_.messages_per_hour_per_ip) + "/hour");
  }
  return Verdict::temp_fail(451, "4.7.1", "Too many messages from your address, try again later",
                            "rate_limit: " + key + " over " + std::to_string(options_.messages_per_hour_per_ip) +
                                " messages per hour (messages_per_hour_per_ip)");
}

size_t RateLimiter::tracked_clients() const {
  std::lock_guard lock(mu_);
  return clients_.size();
}

}  // namespace tern::policy
