// Anti-abuse checks during the SMTP dialogue (issue 5 item 4): the one object
// the server builds at start-up from [policy] (AntiAbuse::create) and every
// session consults, plus the integration guide below. The individual checks
// live in helo.h, access_map.h, dnsbl.h, iprev.h, greylist.h, rate_limit.h and
// can be called on their own (tern policy explain does).
//
// Who is checked: the anti-abuse checks apply to unauthenticated clients
// outside the trusted networks on mx listeners. require_helo applies to
// every session. Authenticated and trusted clients skip the rest.
//
// Verdicts (policy/verdict.h): kContinue = go on; kAccept = explicitly allowed
// (access map OK, greylist-whitelisted network): skip the remaining anti-abuse
// checks of this command (and, for a sender OK, of the transaction); kTempFail
// / kReject = send verdict.error() as the reply to this command (421 from
// on_connect: send it and close); kDiscard = reply 250 as usual, remember it,
// and at end of data answer 250 without queueing the message.
// Log verdict.explanation with every non-continue verdict.
//
// Order, per SMTP stage (cheap checks first, DNS in parallel):
//
//   connect (before the 220 greeting):
//     1. on_connect(ip)                        rate limit    -> 421 4.7.0, close
//     2. start_dns(executor, resolver, ip)     DNSBL lists and iprev, all
//        concurrently (co_spawn'ed on the session's executor), without
//        waiting: the ConnectDns handle is co_awaited later, when the answer
//        is needed. Nothing is sent yet.
//   HELO/EHLO:
//     3. on_helo(name)                         reject_non_fqdn_helo -> 504 5.5.2
//   MAIL FROM:
//     4. on_mail_syntax(helo_seen, from, ip)   require_helo -> 503 5.5.1;
//        reject_non_fqdn_sender -> 504 5.5.2; sender_access (address, @domain,
//        client IP/CIDR) -> 550 5.7.1 | OK (accept: skip 5 and 6, and the
//        greylist at 7) | DISCARD; messages_per_hour_per_ip -> 451 4.7.1
//     5. co_await dns.wait()                   the connect-time lookups: the
//        DNSBL verdict -> 554 5.7.1 "... blocked using <zone>; <TXT>"; keep
//        dns.iprev for Authentication-Results (iprev_method_result) and for
//        the relaxed identity heuristic
//     6. co_await on_mail_dns(resolver, from)  reject_unknown_sender_domain ->
//        550 5.1.8 / 450 4.1.8 / 550 5.7.27 (null MX). Run it concurrently with
//        SPF when both are needed:
//          auto [order, e1, sender, e2, spf] = co_await make_parallel_group(
//              co_spawn(ex, anti_abuse.on_mail_dns(resolver, from), deferred),
//              co_spawn(ex, auth::evaluate_spf(...), deferred))
//              .async_wait(wait_for_all(), use_awaitable);
//   RCPT TO (after the session's own relay / unknown-user checks):
//     7. on_rcpt(ip, from, rcpt, sender_ok)    recipient_access (address,
//        @domain, /regex/) -> 550 5.7.1 | OK; then greylisting (skipped when
//        sender_ok, i.e. sender_access said OK) -> 451 4.7.1
//   DATA / end of data:
//     8. nothing new; a DISCARD from step 4 drops the message here (250);
//        the iprev result from step 2 goes into Authentication-Results.
//
// src/server/session.cc calls 1-8 in this order; step 6 runs after the
// sender identity decision, concurrently with SPF, and is skipped after a
// sender_access OK. require_helo itself is enforced by the SMTP engine
// (smtp::SessionOptions::require_helo, set from [policy] on mx listeners), so
// step 4 sees a greeting whenever one is required. The DNS steps (2, 5, 6)
// need the session's resolver, which exists when [auth] verify_inbound is on;
// without it they are skipped.
//
// Thread-safety: one AntiAbuse is shared by all event-loop threads; its state
// (rate limiter, greylist, reloading maps) is internally locked. DNS lookups
// use the calling thread's resolver.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/net.h"
#include "base/result.h"
#include "config/config.h"
#include "dns/resolver.h"
#include "policy/access_map.h"
#include "policy/dnsbl.h"
#include "policy/greylist.h"
#include "policy/helo.h"
#include "policy/iprev.h"
#include "policy/rate_limit.h"
#include "policy/verdict.h"

namespace tern::policy {

// What the connect-time DNS lookups found.
struct ConnectDnsResult {
  Verdict dnsbl = Verdict::pass("dnsbl: not checked");
  IprevResult iprev;
};

// Handle on the connect-time lookups started by AntiAbuse::start_dns. wait()
// returns the result once they are done (at once when they already are);
// it may be awaited any number of times, from the session's executor only.
class ConnectDns {
 public:
  ConnectDns() = default;
  boost::asio::awaitable<ConnectDnsResult> wait();
  bool started() const { return state_ != nullptr; }

  struct State;  // shared with the lookup coroutine (defined in checks.cc)

 private:
  friend class AntiAbuse;
  std::shared_ptr<State> state_;
};

// The [policy] sender_access and recipient_access maps as read now, for
// `tern config check` and `tern policy explain` (the server keeps
// ReloadingAccessMaps instead). An empty key gives no map; errors name the
// key, then the file and line ("policy.sender_access: FILE:LINE: ...").
struct ConfiguredAccessMaps {
  std::optional<AccessMap> sender;
  std::optional<AccessMap> recipient;
};
Result<ConfiguredAccessMaps> load_access_maps(const config::PolicyConfig& config);

class AntiAbuse {
 public:
  // Builds the checks from [policy]: loads the access maps (errors are
  // configuration errors: start-up fails) and opens <data_dir>/greylist when
  // greylisting is enabled ("" data_dir: in memory).
  static Result<std::shared_ptr<AntiAbuse>> create(const config::PolicyConfig& config, const std::string& data_dir);

  // 1. Connection rate per client address.
  Verdict on_connect(const IpAddress& client);
  // 2. DNSBL and iprev, concurrently, on `executor`; the resolver must outlive the session.
  ConnectDns start_dns(const boost::asio::any_io_executor& executor, dns::Resolver& resolver,
                       const IpAddress& client) const;
  // 3. HELO/EHLO argument.
  Verdict on_helo(std::string_view helo) const;
  // 4. MAIL FROM, no DNS. `mail_from` without brackets, "" for <>.
  Verdict on_mail_syntax(bool helo_seen, std::string_view mail_from, const IpAddress& client);
  // 6. MAIL FROM, DNS: reject_unknown_sender_domain.
  boost::asio::awaitable<Verdict> on_mail_dns(dns::Resolver& resolver, std::string mail_from) const;
  // 7. RCPT TO: recipient_access, then greylisting unless `sender_ok`.
  Verdict on_rcpt(const IpAddress& client, std::string_view mail_from, std::string_view rcpt, bool sender_ok);

  bool greylisting() const { return greylist_ != nullptr; }
  const config::PolicyConfig& config() const { return config_; }

 private:
  explicit AntiAbuse(config::PolicyConfig config);

  config::PolicyConfig config_;
  RateLimiter rate_limiter_;
  std::shared_ptr<ReloadingAccessMap> sender_access_;     // null: none configured
  std::shared_ptr<ReloadingAccessMap> recipient_access_;  // null: none configured
  std::unique_ptr<Greylist> greylist_;                    // null: greylisting off
};

}  // namespace tern::policy
