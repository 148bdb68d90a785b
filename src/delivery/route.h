// Route selection for outbound mail (issue 4): which transport carries a
// message to a remote domain on this delivery attempt. Routes come from the
// config in three layers, evaluated in order, first match wins: the sending
// account's routes ([account."a@x"] route), the routes of the sender's local
// domain ([domain."x"] route), then the global [[route]] list; when nothing
// matches, the implicit "direct" transport (MX lookup). Selection is a pure
// function of the table and the attempt, and runs again for every attempt,
// so a route with minimum_attempts can hand a message that keeps failing
// direct delivery to a smarthost.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace tern::delivery {

using Transport = config::Transport;
using TransportKind = config::TransportKind;
using Route = config::Route;

// The routing part of the config, copied so that it can outlive a reload.
struct RouteTable {
  std::vector<Transport> transports;                         // [[transport]]; "direct" is implicit
  std::map<std::string, std::vector<Route>> account_routes;  // lower-cased address
  std::map<std::string, std::vector<Route>> domain_routes;   // lower-cased local domain
  std::vector<Route> global_routes;

  static RouteTable from_config(const config::Config& config);
};

// True when `domain` matches a route entry: equal ignoring case, or, for an
// entry with a leading "." (".example.net"), a subdomain of it (not
// example.net itself). A trailing dot on `domain` is ignored.
bool route_domain_matches(std::string_view entry, std::string_view domain);

// True when every field the route gives matches, and at least
// minimum_attempts delivery attempts have already been made.
bool route_matches(const Route& route, std::string_view from_domain, std::string_view to_domain, uint32_t attempts);

// The transport for one delivery attempt.
//   account:     authenticated submitter ("" for mail that came in over MX)
//   from_domain: domain of the envelope sender ("" for the null sender)
//   to_domain:   domain of the recipient(s)
//   attempts:    delivery attempts already made for this recipient (0 on the
//                first attempt; minimum_attempts = 3 switches from the 4th on)
// A route naming a transport the table lacks (only possible for a table not
// built from a validated config) yields a fail transport with 451 4.3.5, so
// the message waits instead of taking an unintended path.
Transport select_transport(const RouteTable& table, std::string_view account, std::string_view from_domain,
                           std::string_view to_domain, uint32_t attempts);

}  // namespace tern::delivery
