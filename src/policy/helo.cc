// HELO, sender syntax and sender-domain checks (see helo.h).
#include "policy/helo.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/net.h"
#include "base/strings.h"

namespace tern::policy {
namespace asio = boost::asio;

namespace {

bool is_let_dig(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

std::string_view domain_of(std::string_view address) {
  size_t at = address.rfind('@');
  return at == std::string_view::npos ? std::string_view{} : address.substr(at + 1);
}

bool is_ascii(std::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80) return false;
  }
  return true;
}

}  // namespace

bool is_fqdn(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return false;
  auto labels = split(name, '.');
  if (labels.size() < 2) return false;
  for (std::string_view label : labels) {
    if (label.empty() || label.size() > 63) return false;
    if (!is_let_dig(label.front()) || !is_let_dig(label.back())) return false;
    for (char c : label) {
      if (!is_let_dig(c) && c != '-') return false;
    }
  }
  // RFC 3696 §2: a top-level domain is never all-numeric (that would be an IPv4 address).
  return !is_digits(labels.back());
}

bool is_address_literal(std::string_view name) {
  if (name.size() < 3 || name.front() != '[' || name.back() != ']') return false;
  std::string_view inner = name.substr(1, name.size() - 2);
  if (istarts_with(inner, "IPv6:")) {
    auto ip = IpAddress::parse(inner.substr(5));
    return ip && ip->v6;
  }
  auto ip = IpAddress::parse(inner);
  return ip && !ip->v6;
}

Verdict check_helo_required(bool helo_seen, bool require_helo) {
  if (helo_seen) return Verdict::pass("helo: client greeted");
  if (!require_helo) return Verdict::pass("helo: none given, not required");
  return Verdict::reject(503, "5.5.1", "Send HELO/EHLO first", "helo: MAIL before HELO/EHLO (require_helo)");
}

Verdict check_helo_fqdn(std::string_view helo, bool reject_non_fqdn_helo) {
  if (!reject_non_fqdn_helo) return Verdict::pass("helo: fqdn check off");
  if (is_address_literal(helo)) return Verdict::pass("helo: address literal");
  if (is_fqdn(helo)) return Verdict::pass("helo: fully-qualified");
  return Verdict::reject(504, "5.5.2", "Helo command rejected: need fully-qualified hostname",
                         "helo: not a fully-qualified domain name (reject_non_fqdn_helo)");
}

Verdict check_sender_fqdn(std::string_view mail_from, bool reject_non_fqdn_sender) {
  if (!reject_non_fqdn_sender) return Verdict::pass("sender: fqdn check off");
  if (mail_from.empty()) return Verdict::pass("sender: null reverse-path");
  std::string_view domain = domain_of(mail_from);
  // U-labels (SMTPUTF8) are not checked here: their A-label form is what DNS sees.
  if (is_address_literal(domain) || (!domain.empty() && !is_ascii(domain)) || is_fqdn(domain)) {
    return Verdict::pass("sender: fully-qualified");
  }
  return Verdict::reject(504, "5.5.2", "Sender address rejected: need fully-qualified address",
                         "sender: domain missing or not fully-qualified (reject_non_fqdn_sender)");
}

asio::awaitable<Verdict> check_sender_domain(dns::Resolver& resolver, std::string mail_from) {
  if (mail_from.empty()) co_return Verdict::pass("sender domain: null reverse-path");
  std::string domain = to_lower(domain_of(mail_from));
  if (!domain.empty() && domain.back() == '.') domain.pop_back();
  if (domain.empty()) co_return Verdict::pass("sender domain: none (left to reject_non_fqdn_sender)");
  if (is_address_literal(domain) || !is_ascii(domain)) co_return Verdict::pass("sender domain: not looked up");

  const auto temp = [&](std::string why) {
    return Verdict::temp_fail(450, "4.1.8", "Sender address rejected: domain lookup failed temporarily, try later",
                              "sender domain " + domain + ": " + why);
  };
  const auto unknown = [&](std::string why) {
    return Verdict::reject(550, "5.1.8", "Sender address rejected: domain not found",
                           "sender domain " + domain + ": " + why);
  };

  dns::Answer mx = co_await resolver.query(domain, dns::RrType::kMx);
  if (mx.nxdomain()) co_return unknown("NXDOMAIN");
  if (mx.temporary_failure() || mx.security == dns::Security::kBogus) co_return temp("MX lookup failed");
  if (!mx.mx.empty()) {
    // RFC 7505 §3: a single MX with an empty (root) exchange says "this domain accepts no mail";
    // §4.2: mail from such a domain may be refused with 550 5.7.27.
    if (mx.mx.size() == 1 && (mx.mx[0].host.empty() || mx.mx[0].host == ".")) {
      co_return Verdict::reject(550, "5.7.27", "Sender address rejected: domain does not accept mail (null MX)",
                                "sender domain " + domain + ": null MX (RFC 7505)");
    }
    co_return Verdict::pass("sender domain " + domain + ": has MX");
  }

  // No MX (NODATA): the domain can still receive mail at its address records (RFC 5321 §5.1).
  auto executor = co_await asio::this_coro::executor;
  auto [order, ex_a, a, ex_aaaa, aaaa] =
      co_await asio::experimental::make_parallel_group(
          asio::co_spawn(executor, resolver.query(domain, dns::RrType::kA), asio::deferred),
          asio::co_spawn(executor, resolver.query(domain, dns::RrType::kAaaa), asio::deferred))
          .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
  (void)order;
  if (ex_a || ex_aaaa) co_return temp("address lookup failed");
  if ((a.ok() && !a.addresses.empty()) || (aaaa.ok() && !aaaa.addresses.empty())) {
    co_return Verdict::pass("sender domain " + domain + ": no MX, has address");
  }
  if (a.temporary_failure() || aaaa.temporary_failure() || a.security == dns::Security::kBogus ||
      aaaa.security == dns::Security::kBogus) {
    co_return temp("address lookup failed");
  }
  co_return unknown("no MX, A or AAAA record");
}

}  // namespace tern::policy
