// Tests for FakeResolver: records per type, NXDOMAIN vs NODATA, forced
// failures, DNSSEC status, CNAME following and query counting.
#include "dns/fake_resolver.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

namespace tern::dns {
namespace {

Answer run_query(FakeResolver& r, std::string name, RrType type) {
  boost::asio::io_context ctx;
  auto fut = boost::asio::co_spawn(ctx, r.query(std::move(name), type), boost::asio::use_future);
  ctx.run();
  return fut.get();
}

TEST(FakeResolver, ServesRecordsCaseInsensitively) {
  FakeResolver r;
  r.add_txt("Example.COM.", "v=spf1 -all");
  r.add_address("example.com", "192.0.2.1");
  r.add_address("example.com", "2001:db8::1");
  r.add_mx("example.com", 10, "MX1.example.com.");
  r.add_ptr("1.2.0.192.in-addr.arpa", "Example.com");
  Answer a = run_query(r, "EXAMPLE.com", RrType::kTxt);
  EXPECT_TRUE(a.ok());
  EXPECT_EQ(a.txt, std::vector<std::string>{"v=spf1 -all"});
  a = run_query(r, "example.com.", RrType::kA);
  ASSERT_EQ(a.addresses.size(), 1u);
  EXPECT_EQ(a.addresses[0].to_string(), "192.0.2.1");
  a = run_query(r, "example.com", RrType::kAaaa);
  ASSERT_EQ(a.addresses.size(), 1u);
  EXPECT_TRUE(a.addresses[0].v6);
  a = run_query(r, "example.com", RrType::kMx);
  EXPECT_EQ(a.mx, (std::vector<MxRecord>{{10, "mx1.example.com"}}));
  a = run_query(r, "1.2.0.192.IN-ADDR.ARPA", RrType::kPtr);
  EXPECT_EQ(a.names, std::vector<std::string>{"example.com"});
  EXPECT_EQ(r.query_count(), 5u);
  EXPECT_EQ(r.queries()[0], (std::pair<std::string, RrType>{"example.com", RrType::kTxt}));
}

TEST(FakeResolver, NxdomainNodataAndFailures) {
  FakeResolver r;
  r.add_address("host.example", "192.0.2.1");
  r.add_name("empty.example");
  EXPECT_TRUE(run_query(r, "nosuch.example", RrType::kA).nxdomain());
  Answer nodata = run_query(r, "host.example", RrType::kTxt);
  EXPECT_TRUE(nodata.nodata());
  EXPECT_FALSE(nodata.nxdomain());
  EXPECT_TRUE(run_query(r, "empty.example", RrType::kA).nodata());

  r.set_rcode("host.example", Rcode::kTimeout, RrType::kMx);
  EXPECT_EQ(run_query(r, "host.example", RrType::kMx).rcode, Rcode::kTimeout);
  EXPECT_TRUE(run_query(r, "host.example", RrType::kA).ok());  // other types unaffected
  r.set_rcode("host.example", Rcode::kServFail);
  EXPECT_TRUE(run_query(r, "host.example", RrType::kA).temporary_failure());
}

TEST(FakeResolver, Security) {
  FakeResolver r;
  r.add_address("signed.example", "192.0.2.1");
  r.add_address("bogus.example", "192.0.2.2");
  r.set_security("signed.example", Security::kSecure);
  r.set_security("bogus.example", Security::kBogus);
  EXPECT_EQ(run_query(r, "signed.example", RrType::kA).security, Security::kSecure);
  Answer bogus = run_query(r, "bogus.example", RrType::kA);
  EXPECT_EQ(bogus.security, Security::kBogus);
  EXPECT_FALSE(bogus.ok());
  EXPECT_TRUE(bogus.addresses.empty());  // bogus data is withheld
}

TEST(FakeResolver, FollowsCnames) {
  FakeResolver r;
  r.add_cname("alias.example", "middle.example.");
  r.add_cname("middle.example", "target.example");
  r.add_txt("target.example", "hello");
  r.set_security("target.example", Security::kSecure);
  r.set_security("alias.example", Security::kSecure);
  Answer a = run_query(r, "alias.example", RrType::kTxt);
  EXPECT_EQ(a.txt, std::vector<std::string>{"hello"});
  EXPECT_EQ(a.canonical_name, "target.example");
  EXPECT_EQ(a.security, Security::kInsecure);  // middle.example is not signed
  a = run_query(r, "alias.example", RrType::kCname);
  EXPECT_EQ(a.names, std::vector<std::string>{"middle.example"});

  r.add_cname("loop1.example", "loop2.example");
  r.add_cname("loop2.example", "loop1.example");
  EXPECT_EQ(run_query(r, "loop1.example", RrType::kA).rcode, Rcode::kServFail);
  r.add_cname("dangling.example", "nowhere.example");
  EXPECT_TRUE(run_query(r, "dangling.example", RrType::kA).nxdomain());
  r.add_cname("null.example", "");
  EXPECT_TRUE(run_query(r, "null.example", RrType::kA).nodata());
}

}  // namespace
}  // namespace tern::dns
