// Sliding-window authentication failure tracking (see auth_limiter.h).
#include "users/auth_limiter.h"

#include <algorithm>

namespace tern::users {

AuthLimiter::AuthLimiter() : AuthLimiter(Options{}) {}

AuthLimiter::AuthLimiter(Options options, Now now) : options_(options), now_(std::move(now)) {}

std::string AuthLimiter::network_key(const IpAddress& client) const {
  IpAddress ip = client.unmapped();
  if (!ip.v6) return std::string(reinterpret_cast<const char*>(ip.bytes.data()), 4);
  return std::string(reinterpret_cast<const char*>(ip.bytes.data()), 8) + "/64";
}

void AuthLimiter::expire(std::deque<Clock::time_point>& times, Clock::time_point now) const {
  while (!times.empty() && now - times.front() >= options_.window) times.pop_front();
}

bool AuthLimiter::blocked(const IpAddress& client) const {
  return recent_failures(client) >= options_.max_failures_per_network;
}

unsigned AuthLimiter::recent_failures(const IpAddress& client) const {
  std::lock_guard lock(mu_);
  auto it = failures_.find(network_key(client));
  if (it == failures_.end()) return 0;
  expire(it->second, now_());
  return static_cast<unsigned>(it->second.size());
}

AuthLimiter::Verdict AuthLimiter::record_failure(const IpAddress& client, unsigned session_failures) {
  Clock::time_point now = now_();
  std::lock_guard lock(mu_);
  std::string key = network_key(client);
  auto it = failures_.find(key);
  if (it == failures_.end()) {
    if (failures_.size() >= options_.max_tracked_networks) {
      // Bound memory: first drop networks whose failures have all expired,
      // then, if still full, the network with the oldest latest failure.
      for (auto i = failures_.begin(); i != failures_.end();) {
        expire(i->second, now);
        i = i->second.empty() ? failures_.erase(i) : std::next(i);
      }
      if (failures_.size() >= options_.max_tracked_networks && !failures_.empty()) {
        auto oldest = std::min_element(failures_.begin(), failures_.end(), [](const auto& a, const auto& b) {
          return a.second.back() < b.second.back();
        });
        failures_.erase(oldest);
      }
    }
    it = failures_.emplace(std::move(key), std::deque<Clock::time_point>{}).first;
  }
  auto& times = it->second;
  expire(times, now);
  times.push_back(now);
  // Never keep more timestamps than can matter for the block decision.
  while (times.size() > std::max(1u, options_.max_failures_per_network)) times.pop_front();

  size_t count = times.size();
  Verdict verdict;
  auto delay = options_.base_delay;
  for (size_t i = 1; i < count && delay < options_.max_delay; ++i) delay *= 2;
  verdict.delay = std::min(delay, options_.max_delay);
  verdict.disconnect = session_failures >= options_.max_failures_per_session ||
                       count >= options_.max_failures_per_network;
  return verdict;
}

}  // namespace tern::users
