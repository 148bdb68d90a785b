// Cheap syntax checks of the names a client gives in the SMTP dialogue, and the
// one DNS check on the MAIL FROM domain: HELO/EHLO required before MAIL
// (require_helo), the HELO name a fully-qualified domain name
// (reject_non_fqdn_helo), the MAIL FROM address fully qualified
// (reject_non_fqdn_sender), and the MAIL FROM domain able to receive replies
// (reject_unknown_sender_domain: MX, else A/AAAA; 550 when the domain does
// not exist or has no address, 450 when DNS fails temporarily; a null MX,
// RFC 7505, is refused with 550 5.7.27). The null reverse-path "<>" always
// passes the sender checks (RFC 5321 §4.5.5: bounces must be accepted).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <string>
#include <string_view>

#include "dns/resolver.h"
#include "policy/verdict.h"

namespace tern::policy {

// A syntactically valid fully-qualified domain name (RFC 1035 §2.3.1 with
// RFC 1123 §2.1 digits, RFC 3696 §2 non-numeric TLD): at least two labels of
// 1-63 letters, digits and hyphens (not first or last), at most 253 octets,
// one trailing dot tolerated.
bool is_fqdn(std::string_view name);

// An RFC 5321 §4.1.3 address literal: "[192.0.2.1]" or "[IPv6:2001:db8::1]".
bool is_address_literal(std::string_view name);

// require_helo (RFC 5321 §4.1.4: a client must greet before MAIL): called at
// MAIL FROM. `helo_seen` is whether HELO or EHLO succeeded in this session.
Verdict check_helo_required(bool helo_seen, bool require_helo);

// reject_non_fqdn_helo: called at HELO/EHLO. Address literals pass (they are
// a legitimate greeting for a host without a name); bare words, names with a
// single label, numeric TLDs and syntax errors are refused with 504 5.5.2.
Verdict check_helo_fqdn(std::string_view helo, bool reject_non_fqdn_helo);

// reject_non_fqdn_sender: called at MAIL FROM with the reverse-path without
// angle brackets ("" for the null sender). A sender without '@' or whose
// domain is not an FQDN (or address literal) is refused with 504 5.5.2.
Verdict check_sender_fqdn(std::string_view mail_from, bool reject_non_fqdn_sender);

// reject_unknown_sender_domain: called at MAIL FROM. Looks up MX, then A and
// AAAA (concurrently) when there is no MX. Address literals, U-label domains
// and the null sender are not checked. The resolver must outlive the coroutine.
boost::asio::awaitable<Verdict> check_sender_domain(dns::Resolver& resolver, std::string mail_from);

}  // namespace tern::policy
