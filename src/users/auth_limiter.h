// Slows down password guessing against SMTP AUTH. Failures are counted per
// client network (an IPv4 address, or the /64 of an IPv6 address, since one
// IPv6 host usually owns a whole /64) over a sliding window. For each failure
// the limiter says how long to wait before sending the 535 reply (doubling
// from `base_delay` up to `max_delay`) and whether to drop the connection
// (too many failures in this session, or from this network in the window).
// Thread-safe; the clock is injectable for tests; memory is bounded by
// `max_tracked_networks` (the oldest entries are forgotten first).
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "base/net.h"

namespace tern::users {

class AuthLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  using Now = std::function<Clock::time_point()>;

  struct Options {
    std::chrono::seconds window{15 * 60};
    std::chrono::milliseconds base_delay{1000};
    std::chrono::milliseconds max_delay{8000};
    unsigned max_failures_per_session = 3;
    unsigned max_failures_per_network = 30;  // within `window`
    size_t max_tracked_networks = 10000;
  };

  struct Verdict {
    std::chrono::milliseconds delay{0};  // wait this long before replying 535
    bool disconnect = false;             // then reply 421 and close
  };

  AuthLimiter();  // default Options, steady clock
  explicit AuthLimiter(Options options, Now now = &Clock::now);

  // True when the client's network has used up its failures for the window:
  // the caller should refuse AUTH (454 4.7.0) without trying the credentials.
  bool blocked(const IpAddress& client) const;
  // Records one failed authentication. `session_failures` counts failures in
  // the current SMTP session including this one.
  Verdict record_failure(const IpAddress& client, unsigned session_failures);
  // Failures recorded for the client's network within the window.
  unsigned recent_failures(const IpAddress& client) const;

 private:
  std::string network_key(const IpAddress& client) const;
  // Drops timestamps older than the window; requires mu_ held.
  void expire(std::deque<Clock::time_point>& times, Clock::time_point now) const;

  Options options_;
  Now now_;
  mutable std::mutex mu_;
  mutable std::map<std::string, std::deque<Clock::time_point>> failures_;
};

}  // namespace tern::users
