// DNS blocklists (RFC 5782): the client IP is looked up under each configured
// list zone — IPv4 as its octets reversed (192.0.2.99 -> 99.2.0.192.zone,
// §2.1), IPv6 as its 32 nibbles reversed (§2.4) — and an A record in
// 127.0.0.0/24 (any 127.0.0.x: RFC 5782 §2.1 puts codes in the last octet)
// means "listed"; other answers (127.255.255.x "query refused" codes of some
// lists, public addresses) are ignored. A listed client is refused with
// 554 5.7.1 and the list's TXT record as the reason. Lists are queried
// concurrently; a list that does not answer (timeout, SERVFAIL) is skipped
// and noted in the explanation: a blocklist outage must not stop mail.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/net.h"
#include "dns/resolver.h"
#include "policy/verdict.h"

namespace tern::policy {

// The address's labels reversed, without a zone: "99.2.0.192" or
// "1.0.0.0....8.b.d.0.1.0.0.2" (32 nibbles, lower-case hex). IPv4-mapped IPv6
// addresses are treated as IPv4.
std::string reversed_address_labels(const IpAddress& ip);

// The name to query for `ip` on the list `zone` (trailing dot dropped).
std::string dnsbl_query_name(const IpAddress& ip, std::string_view zone);

struct DnsblListing {
  enum class Status { kNotListed, kListed, kError };
  std::string zone;
  Status status = Status::kNotListed;
  std::vector<IpAddress> codes;  // the 127.0.0.x answers when listed
  std::string text;              // the TXT reason (sanitised, bounded) when listed
  std::string problem;           // kError: what went wrong
};

// One list: A lookup, then TXT when listed.
boost::asio::awaitable<DnsblListing> query_dnsbl(dns::Resolver& resolver, IpAddress ip, std::string zone);

// Every list, concurrently. The first listing in configuration order decides.
// Called at connect (or at RCPT, to log the envelope first).
boost::asio::awaitable<Verdict> check_dnsbl(dns::Resolver& resolver, IpAddress ip, std::vector<std::string> zones);

}  // namespace tern::policy
