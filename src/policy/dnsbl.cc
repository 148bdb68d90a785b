// DNSBL lookups (see dnsbl.h).
#include "policy/dnsbl.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/strings.h"

namespace tern::policy {
namespace asio = boost::asio;

namespace {

constexpr size_t kMaxReasonText = 200;
constexpr size_t kMaxLists = 16;

// Printable ASCII only, bounded: the TXT goes into our SMTP reply.
std::string sanitize_reason(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (out.size() >= kMaxReasonText) break;
    out += (c >= 0x20 && c < 0x7f) ? c : ' ';
  }
  return std::string(trim(out));
}

}  // namespace

std::string reversed_address_labels(const IpAddress& address) {
  IpAddress ip = address.unmapped();
  std::string out;
  if (!ip.v6) {
    for (int i = 3; i >= 0; --i) {
      if (!out.empty()) out += '.';
      out += std::to_string(ip.bytes[i]);
    }
    return out;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  // RFC 5782 §2.4: each nibble of the 128-bit address, least significant first.
  for (int i = 15; i >= 0; --i) {
    if (!out.empty()) out += '.';
    out += kHex[ip.bytes[i] & 0x0f];
    out += '.';
    out += kHex[ip.bytes[i] >> 4];
  }
  return out;
}

std::string dnsbl_query_name(const IpAddress& ip, std::string_view zone) {
  if (!zone.empty() && zone.back() == '.') zone.remove_suffix(1);
  return reversed_address_labels(ip) + "." + to_lower(zone);
}

asio::awaitable<DnsblListing> query_dnsbl(dns::Resolver& resolver, IpAddress ip, std::string zone) {
  DnsblListing listing;
  listing.zone = zone;
  std::string name = dnsbl_query_name(ip, zone);
  dns::Answer a = co_await resolver.query(name, dns::RrType::kA);
  if (a.nxdomain() || (a.ok() && a.addresses.empty())) co_return listing;
  if (!a.ok()) {
    listing.status = DnsblListing::Status::kError;
    listing.problem = std::string("A ") + dns::rcode_name(a.rcode);
    co_return listing;
  }
  for (const IpAddress& code : a.addresses) {
    // RFC 5782 §2.1: listed entries answer with an address in 127.0.0.0/8; we count
    // 127.0.0.x only, because several lists use 127.255.255.x for "you may not query".
    if (!code.v6 && code.bytes[0] == 127 && code.bytes[1] == 0 && code.bytes[2] == 0) listing.codes.push_back(code);
  }
  if (listing.codes.empty()) co_return listing;
  listing.status = DnsblListing::Status::kListed;
  dns::Answer txt = co_await resolver.query(name, dns::RrType::kTxt);
  if (txt.ok() && !txt.txt.empty()) listing.text = sanitize_reason(txt.txt.front());
  co_return listing;
}

asio::awaitable<Verdict> check_dnsbl(dns::Resolver& resolver, IpAddress ip, std::vector<std::string> zones) {
  if (zones.empty()) co_return Verdict::pass("dnsbl: no lists configured");
  if (zones.size() > kMaxLists) zones.resize(kMaxLists);
  auto executor = co_await asio::this_coro::executor;
  using Op = decltype(asio::co_spawn(executor, query_dnsbl(resolver, ip, std::string()), asio::deferred));
  std::vector<Op> ops;
  ops.reserve(zones.size());
  for (const std::string& zone : zones)
    ops.push_back(asio::co_spawn(executor, query_dnsbl(resolver, ip, zone), asio::deferred));
  auto [order, exceptions, listings] = co_await asio::experimental::make_parallel_group(std::move(ops))
                                           .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
  (void)order;
  std::string notes;
  for (size_t i = 0; i < listings.size(); ++i) {
    if (exceptions[i]) {
      notes += " " + zones[i] + "=error";
      continue;
    }
    const DnsblListing& listing = listings[i];
    if (listing.status == DnsblListing::Status::kError) {
      notes += " " + zones[i] + "=error(" + listing.problem + ")";
    } else if (listing.status == DnsblListing::Status::kListed) {
      std::string client = ip.unmapped().to_string();
      std::string reply = "Service unavailable; client [" + client + "] blocked using " + listing.zone;
      if (!listing.text.empty()) reply += "; " + listing.text;
      co_return Verdict::reject(
          554, "5.7.1", reply,
          "dnsbl: " + client + " listed on " + listing.zone + " (" + listing.codes.front().to_string() + ")" + notes);
    }
  }
  co_return Verdict::pass("dnsbl: not listed" + notes);
}

}  // namespace tern::policy
