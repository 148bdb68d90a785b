// Tests for MX resolution (delivery/mx.h) against dns::FakeResolver: RFC 5321
// §5.1 ordering and randomisation, implicit MX, RFC 7505 null MX, NXDOMAIN /
// SERVFAIL / timeout / bogus mapping, hosts without addresses, caps, address
// literals, DNSSEC status, "we are the MX", and the BlockingResolver used by
// worker threads.
#include "delivery/mx.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <set>
#include <thread>

#include "dns/fake_resolver.h"

namespace tern::delivery {
namespace {

using dns::FakeResolver;
using dns::Rcode;
using dns::RrType;
using dns::Security;

Result<Destination> resolve(FakeResolver& resolver, const std::string& domain, const MxOptions& options) {
  boost::asio::io_context io;
  std::optional<Result<Destination>> result;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        result.emplace(co_await resolve_destination(resolver, domain, options));
      },
      boost::asio::detached);
  io.run();
  return std::move(*result);
}

Result<Destination> resolve(FakeResolver& resolver, const std::string& domain) {
  MxOptions options;
  return resolve(resolver, domain, options);
}

std::vector<std::string> host_names(const Destination& d) {
  std::vector<std::string> names;
  for (const auto& h : d.hosts) names.push_back(h.name);
  return names;
}

std::vector<std::string> addresses(const DestinationHost& h) {
  std::vector<std::string> out;
  for (const auto& ip : h.addresses) out.push_back(ip.to_string());
  return out;
}

// Keeps the order the records were sorted into (swaps each element with itself).
uint64_t keep_order(uint64_t bound) {
  return bound - 1;
}

TEST(Mx, SortsByPreference) {
  FakeResolver dns;
  dns.add_mx("example.net", 20, "mx2.example.net");
  dns.add_mx("example.net", 10, "mx1.example.net");
  dns.add_mx("example.net", 30, "mx3.example.net");
  dns.add_address("mx1.example.net", "192.0.2.1");
  dns.add_address("mx2.example.net", "192.0.2.2");
  dns.add_address("mx3.example.net", "192.0.2.3");
  auto d = resolve(dns, "Example.NET.");
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(d->domain, "example.net");
  EXPECT_FALSE(d->implicit_mx);
  EXPECT_EQ(host_names(*d), (std::vector<std::string>{"mx1.example.net", "mx2.example.net", "mx3.example.net"}));
  EXPECT_EQ(d->hosts[0].preference, 10);
  EXPECT_EQ(d->hosts[2].preference, 30);
  EXPECT_EQ(addresses(d->hosts[1]), std::vector<std::string>{"192.0.2.2"});
}

TEST(Mx, ShufflesEqualPreferencesWithTheInjectedSource) {
  FakeResolver dns;
  dns.add_mx("example.net", 10, "a.example.net");
  dns.add_mx("example.net", 10, "b.example.net");
  dns.add_mx("example.net", 10, "c.example.net");
  dns.add_mx("example.net", 5, "best.example.net");
  dns.add_mx("example.net", 50, "z.example.net");
  for (const char* h : {"a", "b", "c", "best", "z"}) dns.add_address(std::string(h) + ".example.net", "192.0.2.9");

  MxOptions identity;
  identity.random = keep_order;
  auto kept = resolve(dns, "example.net", identity);
  ASSERT_TRUE(kept);
  EXPECT_EQ(host_names(*kept), (std::vector<std::string>{"best.example.net", "a.example.net", "b.example.net",
                                                         "c.example.net", "z.example.net"}));

  // Fisher-Yates with j = 0 each time: [a b c] -> swap(c,a) [c b a] -> swap(b,c) [b c a].
  std::vector<uint64_t> bounds;
  MxOptions zero;
  zero.random = [&bounds](uint64_t bound) {
    bounds.push_back(bound);
    return uint64_t{0};
  };
  auto shuffled = resolve(dns, "example.net", zero);
  ASSERT_TRUE(shuffled);
  EXPECT_EQ(host_names(*shuffled), (std::vector<std::string>{"best.example.net", "b.example.net", "c.example.net",
                                                             "a.example.net", "z.example.net"}));
  EXPECT_EQ(bounds, (std::vector<uint64_t>{3, 2}));  // only the group of three is shuffled

  // An out-of-range value from a broken source is clamped, never used as an index.
  MxOptions broken;
  broken.random = [](uint64_t) { return uint64_t{1000}; };
  auto clamped = resolve(dns, "example.net", broken);
  ASSERT_TRUE(clamped);
  EXPECT_EQ(clamped->hosts.size(), 5u);

  // The default source really randomises: every host of the group comes first sometimes.
  std::set<std::string> seen_second;
  for (int i = 0; i < 200 && seen_second.size() < 3; ++i) {
    auto d = resolve(dns, "example.net");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->hosts.front().name, "best.example.net");
    EXPECT_EQ(d->hosts.back().name, "z.example.net");
    seen_second.insert(d->hosts[1].name);
  }
  EXPECT_EQ(seen_second.size(), 3u);
}

TEST(Mx, ImplicitMxUsesTheDomainsOwnAddresses) {
  FakeResolver dns;
  dns.add_address("example.net", "192.0.2.7");
  dns.add_address("example.net", "2001:db8::7");
  auto d = resolve(dns, "example.net");
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_TRUE(d->implicit_mx);
  ASSERT_EQ(d->hosts.size(), 1u);
  EXPECT_EQ(d->hosts[0].name, "example.net");
  EXPECT_EQ(d->hosts[0].preference, 0);
  EXPECT_EQ(addresses(d->hosts[0]), (std::vector<std::string>{"2001:db8::7", "192.0.2.7"}));

  MxOptions v4_first;
  v4_first.prefer_ipv4 = true;
  auto d4 = resolve(dns, "example.net", v4_first);
  ASSERT_TRUE(d4);
  EXPECT_EQ(addresses(d4->hosts[0]), (std::vector<std::string>{"192.0.2.7", "2001:db8::7"}));

  MxOptions no_v6;
  no_v6.use_ipv6 = false;
  dns.clear_queries();
  auto d6 = resolve(dns, "example.net", no_v6);
  ASSERT_TRUE(d6);
  EXPECT_EQ(addresses(d6->hosts[0]), std::vector<std::string>{"192.0.2.7"});
  for (const auto& [name, type] : dns.queries()) EXPECT_NE(type, RrType::kAaaa);
}

TEST(Mx, ImplicitMxOnlyWhenThereAreNoMxRecords) {
  // RFC 5321 §5.1: with MX records present the domain's own A is never used.
  FakeResolver dns;
  dns.add_address("example.net", "192.0.2.7");
  dns.add_mx("example.net", 10, "mx.example.net");  // no address
  auto d = resolve(dns, "example.net");
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, 451);
  EXPECT_EQ(d.error().enhanced, "4.4.4");
}

TEST(Mx, NullMxIsAPermanentFailure) {
  FakeResolver dns;
  dns.add_mx("example.net", 0, ".");
  dns.add_address("example.net", "192.0.2.7");  // must not be used
  auto d = resolve(dns, "example.net");
  ASSERT_FALSE(d);
  EXPECT_TRUE(d.error().permanent());
  EXPECT_EQ(d.error().code, 556);  // RFC 7505 §4.1
  EXPECT_EQ(d.error().enhanced, "5.1.10");
  EXPECT_EQ(dns.query_count(), 1u);  // nothing after the MX lookup
}

TEST(Mx, NullMxNextToRealHostsIsIgnored) {
  FakeResolver dns;
  dns.add_mx("example.net", 0, ".");
  dns.add_mx("example.net", 10, "mx.example.net");
  dns.add_address("mx.example.net", "192.0.2.1");
  auto d = resolve(dns, "example.net");
  ASSERT_TRUE(d);
  EXPECT_EQ(host_names(*d), std::vector<std::string>{"mx.example.net"});
}

TEST(Mx, DnsOutcomesMapToReplies) {
  FakeResolver dns;
  auto nx = resolve(dns, "nowhere.example");
  ASSERT_FALSE(nx);
  EXPECT_EQ(nx.error().code, 550);
  EXPECT_EQ(nx.error().enhanced, "5.1.2");

  for (Rcode rcode : {Rcode::kServFail, Rcode::kTimeout, Rcode::kRefused}) {
    FakeResolver failing;
    failing.set_rcode("example.net", rcode, RrType::kMx);
    auto d = resolve(failing, "example.net");
    ASSERT_FALSE(d);
    EXPECT_EQ(d.error().code, 451) << dns::rcode_name(rcode);
    EXPECT_EQ(d.error().enhanced, "4.4.3");
  }

  FakeResolver bogus;
  bogus.add_mx("example.net", 10, "mx.example.net");
  bogus.add_address("mx.example.net", "192.0.2.1");
  bogus.set_security("example.net", Security::kBogus);
  auto b = resolve(bogus, "example.net");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().enhanced, "4.4.3");
  EXPECT_NE(b.error().text.find("DNSSEC"), std::string::npos);

  FakeResolver empty;
  empty.add_name("example.net");  // exists, no MX, no A/AAAA
  auto e = resolve(empty, "example.net");
  ASSERT_FALSE(e);
  EXPECT_TRUE(e.error().permanent());
  EXPECT_EQ(e.error().enhanced, "5.4.4");

  FakeResolver implicit_fail;
  implicit_fail.add_name("example.net");
  implicit_fail.set_rcode("example.net", Rcode::kTimeout, RrType::kA);
  auto f = resolve(implicit_fail, "example.net");
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().enhanced, "4.4.3");
}

TEST(Mx, HostsWithoutAddressesAreSkipped) {
  FakeResolver dns;
  dns.add_mx("example.net", 10, "dead.example.net");   // NXDOMAIN
  dns.add_mx("example.net", 20, "empty.example.net");  // NODATA
  dns.add_mx("example.net", 30, "live.example.net");
  dns.add_name("empty.example.net");
  dns.add_address("live.example.net", "2001:db8::1");
  auto d = resolve(dns, "example.net");
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(host_names(*d), std::vector<std::string>{"live.example.net"});
  EXPECT_EQ(d->hosts[0].preference, 30);

  FakeResolver none;
  none.add_mx("example.net", 10, "dead.example.net");
  none.add_mx("example.net", 20, "empty.example.net");
  none.add_name("empty.example.net");
  auto n = resolve(none, "example.net");
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, 451);
  EXPECT_EQ(n.error().enhanced, "4.4.4");

  // All hosts' lookups failing temporarily is a DNS problem, not a routing one.
  FakeResolver flaky;
  flaky.add_mx("example.net", 10, "mx.example.net");
  flaky.set_rcode("mx.example.net", Rcode::kServFail);
  auto f = resolve(flaky, "example.net");
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().enhanced, "4.4.3");

  // One family failing still leaves the other.
  FakeResolver half;
  half.add_mx("example.net", 10, "mx.example.net");
  half.add_address("mx.example.net", "192.0.2.1");
  half.set_rcode("mx.example.net", Rcode::kTimeout, RrType::kAaaa);
  auto h = resolve(half, "example.net");
  ASSERT_TRUE(h);
  EXPECT_EQ(addresses(h->hosts[0]), std::vector<std::string>{"192.0.2.1"});
}

TEST(Mx, CapsHostsAndAddresses) {
  FakeResolver dns;
  for (int i = 0; i < 15; ++i) {
    std::string host = "mx" + std::to_string(i) + ".example.net";
    dns.add_mx("example.net", static_cast<uint16_t>(i), host);
    dns.add_address(host, "192.0.2." + std::to_string(i + 1));
  }
  for (int i = 0; i < 12; ++i) dns.add_address("mx0.example.net", "198.51.100." + std::to_string(i + 1));
  dns.add_address("mx0.example.net", "0.0.0.0");  // never a destination
  dns.clear_queries();
  auto d = resolve(dns, "example.net");
  ASSERT_TRUE(d);
  ASSERT_EQ(d->hosts.size(), 10u);
  EXPECT_EQ(d->hosts.back().name, "mx9.example.net");
  EXPECT_EQ(d->hosts[0].addresses.size(), 8u);
  EXPECT_EQ(dns.query_count(), 1u + 10 * 2);  // hosts beyond the cap are not even looked up

  MxOptions small;
  small.max_hosts = 2;
  small.max_addresses_per_host = 3;
  auto s = resolve(dns, "example.net", small);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->hosts.size(), 2u);
  EXPECT_EQ(s->hosts[0].addresses.size(), 3u);
}

TEST(Mx, DuplicateExchangesAreTriedOnce) {
  FakeResolver dns;
  dns.add_mx("example.net", 20, "mx.example.net");
  dns.add_mx("example.net", 10, "MX.example.net.");
  dns.add_address("mx.example.net", "192.0.2.1");
  auto d = resolve(dns, "example.net");
  ASSERT_TRUE(d);
  ASSERT_EQ(d->hosts.size(), 1u);
  EXPECT_EQ(d->hosts[0].preference, 10);
}

TEST(Mx, AddressLiterals) {
  FakeResolver dns;
  auto v4 = resolve(dns, "[192.0.2.1]");
  ASSERT_TRUE(v4) << v4.error().to_string();
  EXPECT_TRUE(v4->address_literal);
  ASSERT_EQ(v4->hosts.size(), 1u);
  EXPECT_EQ(addresses(v4->hosts[0]), std::vector<std::string>{"192.0.2.1"});
  auto v6 = resolve(dns, "[IPv6:2001:db8::25]");
  ASSERT_TRUE(v6);
  EXPECT_EQ(addresses(v6->hosts[0]), std::vector<std::string>{"2001:db8::25"});
  auto v6_lower = resolve(dns, "[ipv6:::1]");
  ASSERT_TRUE(v6_lower);
  EXPECT_EQ(dns.query_count(), 0u);

  for (const char* bad : {"[192.0.2]", "[2001:db8::1]", "[IPv6:192.0.2.1]", "[]", "[192.0.2.1"}) {
    auto r = resolve(dns, bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().enhanced, "5.1.2") << bad;
  }
  EXPECT_EQ(parse_address_literal("[10.0.0.1]")->to_string(), "10.0.0.1");
  EXPECT_FALSE(parse_address_literal("10.0.0.1"));
}

TEST(Mx, RejectsImplausibleDomains) {
  FakeResolver dns;
  for (std::string bad :
       {std::string(), std::string("a b.example"), std::string(300, 'a'), std::string("x\r\n.example")}) {
    auto r = resolve(dns, bad);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().enhanced, "5.1.2");
  }
  EXPECT_EQ(dns.query_count(), 0u);
}

TEST(Mx, KeepsDnssecStatus) {
  FakeResolver dns;
  dns.add_mx("example.net", 10, "mx1.example.net");
  dns.add_mx("example.net", 20, "mx2.example.net");
  dns.add_address("mx1.example.net", "192.0.2.1");
  dns.add_address("mx1.example.net", "2001:db8::1");
  dns.add_address("mx2.example.net", "192.0.2.2");
  dns.add_address("mx2.example.net", "2001:db8::2");
  dns.set_security("example.net", Security::kSecure);
  dns.set_security("mx1.example.net", Security::kSecure);
  auto d = resolve(dns, "example.net");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->mx_security, Security::kSecure);
  EXPECT_EQ(d->hosts[0].address_security, Security::kSecure);
  EXPECT_EQ(d->hosts[1].address_security, Security::kInsecure);

  FakeResolver insecure;
  insecure.add_address("example.net", "192.0.2.1");
  auto i = resolve(insecure, "example.net");
  ASSERT_TRUE(i);
  EXPECT_EQ(i->mx_security, Security::kInsecure);
  EXPECT_EQ(i->hosts[0].address_security, Security::kInsecure);
}

TEST(Mx, RecordsCanonicalNameOfCnamedHosts) {
  FakeResolver dns;
  dns.add_mx("example.net", 10, "mail.example.net");
  dns.add_cname("mail.example.net", "server.hosting.example");
  dns.add_address("server.hosting.example", "192.0.2.44");
  auto d = resolve(dns, "example.net");
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(d->hosts[0].name, "mail.example.net");
  EXPECT_EQ(d->hosts[0].canonical_name, "server.hosting.example");
  EXPECT_EQ(addresses(d->hosts[0]), std::vector<std::string>{"192.0.2.44"});
}

TEST(Mx, DropsOurselvesAndWorseHosts) {
  FakeResolver dns;
  dns.add_mx("example.net", 5, "primary.example.net");
  dns.add_mx("example.net", 10, "us.example.org");
  dns.add_mx("example.net", 10, "peer.example.net");
  dns.add_mx("example.net", 20, "backup.example.net");
  for (const char* h : {"primary.example.net", "us.example.org", "peer.example.net", "backup.example.net"}) {
    dns.add_address(h, "192.0.2.1");
  }
  MxOptions options;
  options.local_hosts = {"US.example.org"};
  auto d = resolve(dns, "example.net", options);
  ASSERT_TRUE(d);
  EXPECT_EQ(host_names(*d), std::vector<std::string>{"primary.example.net"});

  FakeResolver best;
  best.add_mx("example.net", 10, "us.example.org");
  best.add_mx("example.net", 20, "backup.example.net");
  best.add_address("backup.example.net", "192.0.2.2");
  auto loop = resolve(best, "example.net", options);
  ASSERT_FALSE(loop);
  EXPECT_TRUE(loop.error().permanent());
  EXPECT_EQ(loop.error().enhanced, "5.4.6");
}

// Forwards to a FakeResolver owned by the test; the BlockingResolver calls it
// only from its own thread.
class Forwarding : public dns::Resolver {
 public:
  explicit Forwarding(FakeResolver& target) : target_(target) {}
  boost::asio::awaitable<dns::Answer> query(std::string name, RrType type) override {
    co_return target_.lookup(name, type);
  }

 private:
  FakeResolver& target_;
};

TEST(Mx, BlockingResolverServesWorkerThreads) {
  FakeResolver dns;
  dns.add_mx("example.net", 10, "mx.example.net");
  dns.add_address("mx.example.net", "192.0.2.1");
  dns.add_mx("example.org", 0, ".");
  auto blocking = BlockingResolver::create([&](boost::asio::any_io_executor) {
    return Result<std::unique_ptr<dns::Resolver>>(std::make_unique<Forwarding>(dns));
  });
  ASSERT_TRUE(blocking) << blocking.error().to_string();
  auto& resolver = **blocking;

  auto d = resolver.resolve_destination("example.net");
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(host_names(*d), std::vector<std::string>{"mx.example.net"});
  auto null_mx = resolver.resolve_destination("example.org");
  ASSERT_FALSE(null_mx);
  EXPECT_EQ(null_mx.error().enhanced, "5.1.10");
  EXPECT_EQ(resolver.query("mx.example.net", RrType::kA).addresses.size(), 1u);

  std::vector<std::thread> workers;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    workers.emplace_back([&] {
      MxOptions options;
      for (int j = 0; j < 50; ++j) {
        if (resolver.resolve_destination("example.net", options)) ++ok;
      }
    });
  }
  for (auto& t : workers) t.join();
  EXPECT_EQ(ok.load(), 200);

  auto failed = BlockingResolver::create(
      [](boost::asio::any_io_executor) -> Result<std::unique_ptr<dns::Resolver>> { return Error::local("no"); });
  EXPECT_FALSE(failed);
}

TEST(Mx, RunBlocking) {
  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });
  FakeResolver dns;
  dns.add_address("example.net", "192.0.2.3");
  auto d = run_blocking(io.get_executor(), resolve_destination(dns, "example.net"));
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->implicit_mx);
  guard.reset();
  runner.join();
}

}  // namespace
}  // namespace tern::delivery
