// SPF (RFC 7208): the check_host() function as a coroutine on a
// dns::Resolver, for the MAIL FROM and HELO identities (§2.3, §2.4). It
// evaluates every mechanism (all, include, a, mx, ptr, ip4, ip6, exists) and
// modifier (redirect, exp; unknown ones are ignored), expands macros (§7),
// enforces the DNS limits of §4.6.4 (10 DNS-querying terms, 2 void lookups,
// 10 MX names, 10 PTR names) and an overall time limit, maps DNS failures to
// temperror (§5) and computes the explanation of a fail (§6.2). The result
// also records whether every DNS answer used was DNSSEC-secure, for
// Authentication-Results. Record syntax lives in spf_record.h.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "base/net.h"
#include "dns/resolver.h"

namespace tern::auth {

struct SpfResult {
  enum class Code { kNone, kNeutral, kPass, kFail, kSoftFail, kTempError, kPermError };
  Code code = Code::kNone;
  std::string explanation;  // kFail only: the exp= text (§6.2) or SpfOptions::default_explanation
  std::string mechanism;    // the directive that matched, as written ("-all", "include:x.example")
  std::string domain;       // the domain whose record gave the result (after redirect=)
  std::string problem;      // why, for kPermError / kTempError / kNone
  bool dnssec_secure = false;  // every DNS answer used was DNSSEC-secure
  int dns_terms = 0;        // DNS-querying terms evaluated (limit 10)
  int void_lookups = 0;     // NXDOMAIN / NODATA answers to those terms (limit 2)
  int dns_queries = 0;      // resolver queries made, including exp= and address lookups
};

// "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror" (§2.6).
const char* spf_code_name(SpfResult::Code code);

struct SpfOptions {
  std::string receiver = "unknown";  // %{r}: the receiving host's domain
  std::string default_explanation;   // explanation of a fail without a usable exp=
  std::optional<int64_t> timestamp;  // %{t}; now when unset
  int max_dns_terms = 10;            // §4.6.4
  int max_void_lookups = 2;          // §4.6.4
  int max_mx_names = 10;             // §4.6.4: more MX records is a permerror
  int max_ptr_names = 10;            // §4.6.4: further PTR records are ignored
  int max_depth = 12;                // include/redirect nesting
  std::chrono::milliseconds time_limit{20000};  // §4.6.4: "at least 20 seconds"; then temperror
};

// check_host(<ip>, <domain>, <sender>) (§4) with the HELO name for %{h}.
// `sender` without a local-part gets "postmaster" (§4.3). An IPv4-mapped
// IPv6 `ip` is treated as IPv4 (§5). The resolver must outlive the coroutine.
boost::asio::awaitable<SpfResult> check_host(dns::Resolver& resolver, const IpAddress& ip, std::string domain,
                                             std::string sender, std::string helo, const SpfOptions& options = {});

// MAIL FROM identity (§2.4): the domain of `mail_from`; for the null
// reverse-path (empty) the HELO identity postmaster@<helo> is checked.
boost::asio::awaitable<SpfResult> check_mail_from(dns::Resolver& resolver, const IpAddress& ip,
                                                  std::string mail_from, std::string helo,
                                                  const SpfOptions& options = {});

// HELO identity (§2.3): <domain> is the HELO name, sender postmaster@<helo>.
boost::asio::awaitable<SpfResult> check_helo(dns::Resolver& resolver, const IpAddress& ip, std::string helo,
                                             const SpfOptions& options = {});

}  // namespace tern::auth
