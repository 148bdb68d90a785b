// The DNS facts the identity decisions need (see decision.h), gathered
// through dns::Resolver so the session and `tern policy explain` share them:
// whether the EHLO name exists in DNS (A, AAAA or MX), and the SPF result of a recipient's trusted
// forwarder domains for the client IP (RFC 7208 check_host with the
// forwarder domain as <domain>). Bounded: at most kMaxForwarderDomains
// domains per recipient are evaluated.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/net.h"
#include "config/config.h"
#include "dns/resolver.h"
#include "policy/decision.h"

namespace tern::policy {

inline constexpr size_t kMaxForwarderDomains = 10;

// True when `name` has an A, AAAA or MX record; false when it does not
// exist or has none; nullopt on a temporary DNS failure.
boost::asio::awaitable<std::optional<bool>> helo_resolves(dns::Resolver& resolver, std::string name);

// SPF of each forwarder domain configured for `recipient` (cfg.forwarders)
// for the client, stopping at the first pass. Empty when none is configured.
boost::asio::awaitable<std::vector<ForwarderSpf>> forwarder_spf(dns::Resolver& resolver, const config::Config& cfg,
                                                                IpAddress ip, std::string helo, std::string recipient);

}  // namespace tern::policy
