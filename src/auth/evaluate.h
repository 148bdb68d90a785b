// One place that runs every inbound authentication check for a message and
// renders the verdicts: SPF at MAIL FROM time (RFC 7208, MAIL FROM identity,
// HELO identity for the null sender), then at end of data DKIM (RFC 6376),
// DMARC (RFC 7489) and ARC (RFC 8617), and the Authentication-Results header
// field (RFC 8601) that the MX listener prepends and `tern auth check`
// prints. The results are also flattened into key/value attributes kept with
// the queued message, for the policy layer to act on later. No I/O besides
// the resolver.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "auth/arc.h"
#include "auth/auth_results.h"
#include "auth/dkim.h"
#include "auth/dmarc.h"
#include "auth/spf.h"
#include "base/net.h"
#include "dns/resolver.h"
#include "mail/message.h"

namespace tern::auth {

struct SessionFacts {
  IpAddress ip;
  std::string helo;
  std::string mail_from;  // "" = null reverse-path
};

struct Evaluation {
  SpfResult spf;                       // for MAIL FROM (or HELO when MAIL FROM is null)
  bool spf_is_helo = false;            // the SPF identity was HELO
  std::vector<dkim::DkimResult> dkim;  // one per signature examined
  dmarc::DmarcResult dmarc;
  arc::ArcResult arc;
  std::string from_problem;            // why DMARC could not use the From field (§6.6.1), if so
  AuthResults results;                 // rendered by header()
  std::string header() const { return format_header(results); }
  // Flat attributes for the queue ("auth.spf" = "pass", ...).
  std::map<std::string, std::string> attributes() const;
};

// SPF for the session: MAIL FROM identity, or HELO identity for "<>"
// (RFC 7208 §2.4). `receiver` is our host name (%{r}).
boost::asio::awaitable<SpfResult> evaluate_spf(dns::Resolver& resolver, const SessionFacts& facts,
                                               std::string receiver, bool* used_helo = nullptr);

// End-of-data checks on `message` (as received, CRLF). `spf` is the result
// from MAIL FROM time.
boost::asio::awaitable<Evaluation> evaluate_message(dns::Resolver& resolver, const SessionFacts& facts,
                                                    const SpfResult& spf, bool spf_is_helo,
                                                    const mail::Message& message, const std::string& authserv_id,
                                                    const dkim::VerifyOptions& dkim_options);

// Note for callers: GCC 12 mis-handles non-trivial temporaries (such as a
// defaulted options struct) in a co_await full-expression (double
// destruction), so every coroutine here takes its options explicitly, and
// callers pass named objects.

}  // namespace tern::auth
