// Where direct delivery to a domain goes (RFC 5321 §5.1): the MX hosts in
// preference order, equal preferences shuffled to spread the load, each with
// its IPv6 and IPv4 addresses; the implicit MX (the domain's own A/AAAA) when
// the domain has no MX records; null MX (RFC 7505) as an immediate permanent
// failure; and "[192.0.2.1]" / "[IPv6:2001:db8::1]" address literals
// (RFC 5321 §4.1.3) as themselves. Failures come back as tern::Error values
// that say whether to retry (4xx) or bounce (5xx). Every answer's DNSSEC
// status is kept, because DANE (RFC 7672) only trusts TLSA records found
// through a secure MX and a secure host lookup.
//
// resolve_destination() is a coroutine on the caller's resolver.
// BlockingResolver runs it for the delivery workers, which are plain threads:
// it owns an io_context on its own thread with the resolver bound to it.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/net.h"
#include "base/result.h"
#include "dns/resolver.h"

namespace tern::delivery {

// Returns a uniformly distributed value in [0, bound) for bound > 0.
using RandomBelow = std::function<uint64_t(uint64_t bound)>;

struct MxOptions {
  // Address order within a host: IPv6 first unless prefer_ipv4.
  bool prefer_ipv4 = false;
  // Families to look up at all (a host without IPv6 connectivity turns ipv6 off).
  bool use_ipv6 = true;
  bool use_ipv4 = true;
  // Bounds on what a remote zone can make us try.
  size_t max_hosts = 10;
  size_t max_addresses_per_host = 8;
  // Names this server is known by (lower-case). RFC 5321 §5.1: an MX host
  // among them and every host at its preference or worse are dropped, so a
  // backup MX never sends mail in a loop back to itself.
  std::vector<std::string> local_hosts;
  // The shuffle among equal preferences; empty: a per-thread std::mt19937_64.
  RandomBelow random;
};

// One host to try, with its addresses in the order to try them.
struct DestinationHost {
  std::string name;  // MX exchange, the domain itself (implicit MX) or the literal text
  uint16_t preference = 0;
  std::vector<IpAddress> addresses;
  // DNSSEC status of the address lookups: kSecure only if every A/AAAA answer
  // used was secure. kInsecure for an address literal.
  dns::Security address_security = dns::Security::kInsecure;
  // The name the address answers came from after CNAMEs (RFC 7672 §2.2.2);
  // empty when there was no CNAME.
  std::string canonical_name;
};

struct Destination {
  std::string domain;                  // lower-case, no trailing dot
  std::vector<DestinationHost> hosts;  // in the order to try; never empty
  // DNSSEC status of the MX answer (for an implicit MX: of the NODATA answer).
  dns::Security mx_security = dns::Security::kInsecure;
  bool implicit_mx = false;      // no MX records: the domain's own addresses
  bool address_literal = false;  // "[192.0.2.1]"
};

// "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 §4.1.3); nullopt otherwise.
std::optional<IpAddress> parse_address_literal(std::string_view domain);

// Resolves `domain` for direct delivery. Errors:
//   556 5.1.10 null MX (RFC 7505 §4.1: the domain accepts no mail)
//   550 5.1.2  the domain does not exist (NXDOMAIN), or a malformed literal
//   550 5.4.4  neither MX nor address records
//   554 5.4.6  we are the best MX ourselves (RFC 5321 §5.1)
//   451 4.4.3  DNS failure (SERVFAIL, timeout, REFUSED, DNSSEC bogus)
//   451 4.4.4  MX hosts exist but none has an address
// `options` must stay alive until the coroutine completes.
boost::asio::awaitable<Result<Destination>> resolve_destination(dns::Resolver& resolver, std::string domain,
                                                                const MxOptions& options);
boost::asio::awaitable<Result<Destination>> resolve_destination(dns::Resolver& resolver, std::string domain);

// Runs `work` on `executor` and waits for its result. Must not be called from
// a thread running that executor (it would wait for itself). Unlike a plain
// co_spawn with use_future, T need not be default-constructible (Result<T>).
template <class T>
T run_blocking(const boost::asio::any_io_executor& executor, boost::asio::awaitable<T> work) {
  std::optional<T> result;
  // The references stay valid: this thread waits until the coroutine is done.
  boost::asio::co_spawn(
      executor, [&]() -> boost::asio::awaitable<void> { result.emplace(co_await std::move(work)); },
      boost::asio::use_future)
      .get();
  return std::move(*result);
}

// A resolver on its own event-loop thread for callers that are plain
// threads. Thread-safe: any number of workers may call it at once; the
// lookups all run on the owned thread, so the resolver needs no locking.
class BlockingResolver {
 public:
  // Builds the resolver bound to the owned io_context (e.g. UnboundResolver::create).
  using Factory = std::function<Result<std::unique_ptr<dns::Resolver>>(boost::asio::any_io_executor)>;

  static Result<std::unique_ptr<BlockingResolver>> create(const Factory& factory);
  // Stops the thread. Every call must have returned before.
  ~BlockingResolver();
  BlockingResolver(const BlockingResolver&) = delete;
  BlockingResolver& operator=(const BlockingResolver&) = delete;

  Result<Destination> resolve_destination(const std::string& domain, const MxOptions& options);
  Result<Destination> resolve_destination(const std::string& domain);
  // One raw query (e.g. TLSA for DANE); a stopped resolver answers kServFail.
  dns::Answer query(const std::string& name, dns::RrType type);

  boost::asio::any_io_executor executor() { return io_.get_executor(); }

 private:
  BlockingResolver();

  boost::asio::io_context io_;
  std::unique_ptr<dns::Resolver> resolver_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
};

}  // namespace tern::delivery
