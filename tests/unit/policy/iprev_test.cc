// Unit tests for iprev (RFC 8601 §3): pass when a PTR name resolves back to
// the client, fail without PTR or confirmation, temperror on DNS failures,
// IPv6 PTR names, and the Authentication-Results resinfo.
#include "policy/iprev.h"

#include <gtest/gtest.h>

#include "dns/fake_resolver.h"
#include "test_support.h"

namespace tern::policy {
namespace {

using testing::ip;
using testing::run_sync;
using Code = IprevResult::Code;

TEST(Iprev, PassWhenForwardConfirmed) {
  dns::FakeResolver dns;
  dns.add_ptr("25.2.0.192.in-addr.arpa", "other.example.org");
  dns.add_ptr("25.2.0.192.in-addr.arpa", "mx.example.org");
  dns.add_address("other.example.org", "198.51.100.1");
  dns.add_address("mx.example.org", "192.0.2.25");
  IprevResult r = run_sync(check_iprev(dns, ip("192.0.2.25")));
  EXPECT_EQ(r.code, Code::kPass);
  EXPECT_EQ(r.name, "mx.example.org");
  auto m = iprev_method_result(r, ip("192.0.2.25"));
  EXPECT_EQ(m.method, "iprev");
  EXPECT_EQ(m.result, "pass");
  ASSERT_EQ(m.properties.size(), 1u);
  EXPECT_EQ(m.properties[0], (auth::ResultProperty{"policy", "iprev", "192.0.2.25"}));
}

TEST(Iprev, Ipv6) {
  dns::FakeResolver dns;
  dns.add_ptr("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", "v6.example.org");
  dns.add_address("v6.example.org", "2001:db8::1");
  EXPECT_EQ(run_sync(check_iprev(dns, ip("2001:db8::1"))).code, Code::kPass);
  // The A record of the name does not confirm an IPv6 client.
  dns.add_ptr("2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", "v4only.example.org");
  dns.add_address("v4only.example.org", "192.0.2.2");
  EXPECT_EQ(run_sync(check_iprev(dns, ip("2001:db8::2"))).code, Code::kFail);
}

TEST(Iprev, FailWithoutPtrOrConfirmation) {
  dns::FakeResolver dns;
  IprevResult none = run_sync(check_iprev(dns, ip("192.0.2.1")));
  EXPECT_EQ(none.code, Code::kFail);
  EXPECT_EQ(none.explanation, "no PTR record");
  dns.add_ptr("2.2.0.192.in-addr.arpa", "liar.example.org");
  dns.add_address("liar.example.org", "203.0.113.9");
  IprevResult liar = run_sync(check_iprev(dns, ip("192.0.2.2")));
  EXPECT_EQ(liar.code, Code::kFail);
  EXPECT_EQ(liar.explanation, "liar.example.org does not resolve back to 192.0.2.2");
  EXPECT_EQ(iprev_method_result(liar, ip("192.0.2.2")).result, "fail");
}

TEST(Iprev, TempErrors) {
  dns::FakeResolver dns;
  dns.add_name("3.2.0.192.in-addr.arpa");
  dns.set_rcode("3.2.0.192.in-addr.arpa", dns::Rcode::kTimeout);
  EXPECT_EQ(run_sync(check_iprev(dns, ip("192.0.2.3"))).code, Code::kTempError);
  dns.add_ptr("4.2.0.192.in-addr.arpa", "flaky.example.org");
  dns.add_name("flaky.example.org");
  dns.set_rcode("flaky.example.org", dns::Rcode::kServFail);
  EXPECT_EQ(run_sync(check_iprev(dns, ip("192.0.2.4"))).code, Code::kTempError);
  EXPECT_STREQ(iprev_code_name(Code::kTempError), "temperror");
}

TEST(Iprev, BoundedNames) {
  dns::FakeResolver dns;
  for (int i = 0; i < 20; ++i) dns.add_ptr("5.2.0.192.in-addr.arpa", "n" + std::to_string(i) + ".example.org");
  dns.add_address("n15.example.org", "192.0.2.5");  // beyond the first kMaxIprevNames
  IprevResult r = run_sync(check_iprev(dns, ip("192.0.2.5")));
  EXPECT_EQ(r.code, Code::kFail);
  EXPECT_EQ(dns.query_count(), 1 + kMaxIprevNames);
}

}  // namespace
}  // namespace tern::policy
