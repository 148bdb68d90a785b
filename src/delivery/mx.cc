// MX resolution for direct delivery (see mx.h): RFC 5321 §5.1 host
// selection, RFC 7505 null MX, address literals, DNSSEC status kept for DANE,
// and the blocking wrapper the delivery worker threads use.
#include "delivery/mx.h"

#include <pthread.h>

#include <algorithm>
#include <exception>
#include <random>
#include <utility>

#include "base/strings.h"

namespace tern::delivery {
namespace {

namespace asio = boost::asio;

// RFC 1035 §2.3.4: 255 octets on the wire, 253 in text without the root dot.
constexpr size_t kMaxDomainLength = 253;

uint64_t default_random_below(uint64_t bound) {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  return std::uniform_int_distribution<uint64_t>(0, bound - 1)(generator);
}

// Secure only if both are; bogus taints everything.
dns::Security combine(dns::Security a, dns::Security b) {
  if (a == dns::Security::kBogus || b == dns::Security::kBogus) return dns::Security::kBogus;
  if (a == dns::Security::kSecure && b == dns::Security::kSecure) return dns::Security::kSecure;
  return dns::Security::kInsecure;
}

bool unspecified(const IpAddress& ip) {
  size_t size = ip.v6 ? 16 : 4;
  return std::all_of(ip.bytes.begin(), ip.bytes.begin() + static_cast<std::ptrdiff_t>(size),
                     [](uint8_t b) { return b == 0; });
}

// A name we can put in a query and in an error text: printable, no spaces.
bool plausible_domain(std::string_view name) {
  if (name.empty() || name.size() > kMaxDomainLength) return false;
  return std::none_of(name.begin(), name.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

struct HostAddresses {
  std::vector<IpAddress> addresses;
  dns::Security security = dns::Security::kInsecure;
  std::string canonical_name;
  bool transient_failure = false;  // some lookup failed in a way worth retrying
  bool nxdomain = false;
};

// AAAA and A for one host, in the family order the options ask for; RFC 5321
// §5.1: addresses of one host are tried in the order the resolver gave them.
asio::awaitable<HostAddresses> lookup_addresses(dns::Resolver& resolver, const std::string& host,
                                                const MxOptions& options) {
  std::vector<dns::RrType> types;
  if (options.prefer_ipv4) {
    if (options.use_ipv4) types.push_back(dns::RrType::kA);
    if (options.use_ipv6) types.push_back(dns::RrType::kAaaa);
  } else {
    if (options.use_ipv6) types.push_back(dns::RrType::kAaaa);
    if (options.use_ipv4) types.push_back(dns::RrType::kA);
  }
  HostAddresses out;
  bool any_answer = false;
  dns::Security security = dns::Security::kSecure;
  for (dns::RrType type : types) {
    std::string name = host;  // a named argument: GCC 12 mishandles temporaries in co_await expressions
    dns::Answer answer = co_await resolver.query(name, type);
    if (answer.security == dns::Security::kBogus || answer.temporary_failure()) {
      out.transient_failure = true;
      continue;
    }
    if (answer.nxdomain()) {
      out.nxdomain = true;
      continue;
    }
    if (answer.rcode != dns::Rcode::kNoError) continue;
    any_answer = true;
    security = combine(security, answer.security);
    if (out.canonical_name.empty() && !answer.canonical_name.empty()) out.canonical_name = answer.canonical_name;
    bool want_v6 = type == dns::RrType::kAaaa;
    for (const IpAddress& ip : answer.addresses) {
      if (out.addresses.size() >= options.max_addresses_per_host) break;
      if (ip.v6 != want_v6 || unspecified(ip)) continue;
      if (std::find(out.addresses.begin(), out.addresses.end(), ip) != out.addresses.end()) continue;
      out.addresses.push_back(ip);
    }
  }
  out.security = any_answer ? security : dns::Security::kInsecure;
  co_return out;
}

// Fisher-Yates over records [begin, end).
void shuffle_range(std::vector<dns::MxRecord>& records, size_t begin, size_t end, const RandomBelow& random) {
  for (size_t i = end - begin; i > 1; --i) {
    uint64_t j = random ? random(i) : default_random_below(i);
    if (j >= i) j = i - 1;  // a misbehaving injected source must not index out of range
    std::swap(records[begin + i - 1], records[begin + j]);
  }
}

// RFC 5321 §5.1: lowest preference first, random order among equal ones.
void order_by_preference(std::vector<dns::MxRecord>& records, const RandomBelow& random) {
  std::stable_sort(records.begin(), records.end(),
                   [](const dns::MxRecord& a, const dns::MxRecord& b) { return a.preference < b.preference; });
  size_t begin = 0;
  while (begin < records.size()) {
    size_t end = begin + 1;
    while (end < records.size() && records[end].preference == records[begin].preference) ++end;
    shuffle_range(records, begin, end, random);
    begin = end;
  }
}

std::string dns_problem(const dns::Answer& answer) {
  if (answer.security == dns::Security::kBogus) return "DNSSEC validation failed";
  return rcode_name(answer.rcode);
}

}  // namespace

std::optional<IpAddress> parse_address_literal(std::string_view domain) {
  if (domain.size() < 3 || domain.front() != '[' || domain.back() != ']') return std::nullopt;
  std::string_view inner = domain.substr(1, domain.size() - 2);
  if (istarts_with(inner, "IPv6:")) {
    auto ip = IpAddress::parse(inner.substr(5));
    if (!ip || !ip->v6) return std::nullopt;
    return ip;
  }
  auto ip = IpAddress::parse(inner);
  if (!ip || ip->v6) return std::nullopt;  // RFC 5321 §4.1.3: IPv6 needs the "IPv6:" tag
  return ip;
}

asio::awaitable<Result<Destination>> resolve_destination(dns::Resolver& resolver, std::string domain,
                                                         const MxOptions& options) {
  if (!domain.empty() && domain.back() == '.') domain.pop_back();
  if (!plausible_domain(domain)) co_return Error::perm("5.1.2", "invalid destination domain");

  Destination dest;
  // RFC 5321 §4.1.3 address literal: deliver to that address, no DNS.
  if (domain.front() == '[') {
    auto ip = parse_address_literal(domain);
    if (!ip) co_return Error::perm("5.1.2", "invalid address literal " + domain);
    dest.domain = domain;
    dest.address_literal = true;
    dest.hosts.push_back(DestinationHost{domain, 0, {*ip}, dns::Security::kInsecure, ""});
    co_return dest;
  }
  domain = to_lower(domain);
  dest.domain = domain;

  dns::Answer mx = co_await resolver.query(domain, dns::RrType::kMx);
  if (mx.security == dns::Security::kBogus || mx.temporary_failure()) {
    co_return Error::temp("4.4.3", "MX lookup for " + domain + " failed: " + dns_problem(mx));
  }
  if (mx.nxdomain()) co_return Error::perm("5.1.2", "domain " + domain + " does not exist");
  if (mx.rcode != dns::Rcode::kNoError) {
    co_return Error::temp("4.4.3", "MX lookup for " + domain + " failed: " + dns_problem(mx));
  }
  dest.mx_security = mx.security;

  if (mx.mx.empty()) {
    // RFC 5321 §5.1: no MX records, so the domain itself is the implicit MX
    // with preference 0.
    HostAddresses self = co_await lookup_addresses(resolver, domain, options);
    if (self.addresses.empty()) {
      if (self.transient_failure) co_return Error::temp("4.4.3", "address lookup for " + domain + " failed");
      if (self.nxdomain) co_return Error::perm("5.1.2", "domain " + domain + " does not exist");
      co_return Error::perm("5.4.4", "domain " + domain + " has no MX and no address records");
    }
    dest.implicit_mx = true;
    dest.hosts.push_back(
        DestinationHost{domain, 0, std::move(self.addresses), self.security, std::move(self.canonical_name)});
    co_return dest;
  }

  // RFC 7505 §3: a single MX with the root as exchange says "no mail here";
  // §4.1 asks for 556 5.1.10. A "." mixed with real hosts (which §3 forbids)
  // is ignored rather than allowed to hide them.
  std::vector<dns::MxRecord> records;
  for (const auto& r : mx.mx) {
    if (!r.host.empty()) records.push_back(r);
  }
  if (records.empty()) co_return Error::perm("5.1.10", "domain " + domain + " accepts no mail (null MX)", 556);

  order_by_preference(records, options.random);
  // The same exchange listed twice is tried once, at its best preference.
  std::vector<dns::MxRecord> unique;
  for (auto& r : records) {
    bool seen = std::any_of(unique.begin(), unique.end(), [&](const dns::MxRecord& u) { return u.host == r.host; });
    if (!seen) unique.push_back(std::move(r));
  }
  records = std::move(unique);

  // RFC 5321 §5.1: if we are one of the MX hosts, only better ones remain.
  for (size_t i = 0; i < records.size(); ++i) {
    bool is_us = std::any_of(options.local_hosts.begin(), options.local_hosts.end(),
                             [&](const std::string& name) { return iequals(name, records[i].host); });
    if (!is_us) continue;
    uint16_t ours = records[i].preference;
    std::erase_if(records, [&](const dns::MxRecord& r) { return r.preference >= ours; });
    if (records.empty()) {
      co_return Error::perm("5.4.6", "mail for " + domain + " loops back to myself (we are its best MX)", 554);
    }
    break;
  }
  if (records.size() > options.max_hosts) records.resize(options.max_hosts);

  bool transient = false;
  for (const auto& r : records) {
    HostAddresses found = co_await lookup_addresses(resolver, r.host, options);
    if (found.addresses.empty()) {
      transient = transient || found.transient_failure;
      continue;  // RFC 5321 §5.1: an unusable MX is skipped
    }
    dest.hosts.push_back(
        DestinationHost{r.host, r.preference, std::move(found.addresses), found.security, found.canonical_name});
  }
  if (dest.hosts.empty()) {
    if (transient) co_return Error::temp("4.4.3", "address lookup for the MX hosts of " + domain + " failed");
    co_return Error::temp("4.4.4", "no MX host of " + domain + " has an address");
  }
  co_return dest;
}

asio::awaitable<Result<Destination>> resolve_destination(dns::Resolver& resolver, std::string domain) {
  MxOptions defaults;  // named objects, not temporaries: GCC 12 coroutine argument bug
  co_return co_await resolve_destination(resolver, domain, defaults);
}

BlockingResolver::BlockingResolver() = default;

Result<std::unique_ptr<BlockingResolver>> BlockingResolver::create(const Factory& factory) {
  std::unique_ptr<BlockingResolver> self(new BlockingResolver());
  auto resolver = factory(self->io_.get_executor());
  if (!resolver) return resolver.error();
  self->resolver_ = std::move(*resolver);
  self->work_.emplace(self->io_.get_executor());
  BlockingResolver* raw = self.get();
  self->thread_ = std::thread([raw] {
    pthread_setname_np(pthread_self(), "tern-dns");
    raw->io_.run();
  });
  return self;
}

BlockingResolver::~BlockingResolver() {
  work_.reset();
  io_.stop();
  if (thread_.joinable()) thread_.join();
  resolver_.reset();  // before io_, which its pending operations belong to
}

Result<Destination> BlockingResolver::resolve_destination(const std::string& domain, const MxOptions& options) {
  try {
    return run_blocking(io_.get_executor(), delivery::resolve_destination(*resolver_, domain, options));
  } catch (const std::exception& e) {
    return Error::temp("4.4.3", std::string("DNS resolution failed: ") + e.what());
  }
}

Result<Destination> BlockingResolver::resolve_destination(const std::string& domain) {
  MxOptions defaults;
  return resolve_destination(domain, defaults);
}

dns::Answer BlockingResolver::query(const std::string& name, dns::RrType type) {
  try {
    return run_blocking(io_.get_executor(), resolver_->query(name, type));
  } catch (const std::exception&) {
    dns::Answer failed;
    failed.rcode = dns::Rcode::kServFail;
    return failed;
  }
}

}  // namespace tern::delivery
