// Unit tests for DNSBL queries: the reversed query names for IPv4, IPv6 and
// IPv4-mapped addresses (RFC 5782 §2.1, §2.4), listing codes (127.0.0.x hits,
// others ignored), the TXT reason in the reply, several lists, and lists that
// fail (skipped, noted in the explanation).
#include "policy/dnsbl.h"

#include <gtest/gtest.h>

#include "dns/fake_resolver.h"
#include "test_support.h"

namespace tern::policy {
namespace {

using testing::ip;
using testing::run_sync;
using Action = Verdict::Action;

TEST(Dnsbl, QueryNames) {
  EXPECT_EQ(dnsbl_query_name(ip("192.0.2.99"), "zen.dnsbl.test"), "99.2.0.192.zen.dnsbl.test");
  EXPECT_EQ(dnsbl_query_name(ip("::ffff:192.0.2.99"), "Zen.DNSBL.test."), "99.2.0.192.zen.dnsbl.test");
  // RFC 5782 §2.4 example: 2001:db8:1:2:3:4:567:89ab.
  EXPECT_EQ(dnsbl_query_name(ip("2001:db8:1:2:3:4:567:89ab"), "ugly.example.com"),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com");
  EXPECT_EQ(reversed_address_labels(ip("::1")), "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0");
}

TEST(Dnsbl, ListedWithTxt) {
  dns::FakeResolver dns;
  dns.add_address("2.0.0.127.zen.dnsbl.test", "127.0.0.2");
  dns.add_txt("2.0.0.127.zen.dnsbl.test", "Listed: see https://dnsbl.test/\r\nq=127.0.0.2");
  Verdict v = run_sync(check_dnsbl(dns, ip("127.0.0.2"), {"zen.dnsbl.test"}));
  EXPECT_EQ(v.action, Action::kReject);
  EXPECT_EQ(v.code, 554);
  EXPECT_EQ(v.enhanced, "5.7.1");
  EXPECT_EQ(v.text,
            "Service unavailable; client [127.0.0.2] blocked using zen.dnsbl.test; Listed: see https://dnsbl.test/  "
            "q=127.0.0.2");
  EXPECT_NE(v.explanation.find("listed on zen.dnsbl.test (127.0.0.2)"), std::string::npos);
}

TEST(Dnsbl, Ipv6Listing) {
  dns::FakeResolver dns;
  IpAddress client = ip("2001:db8::25");
  dns.add_address(dnsbl_query_name(client, "v6.dnsbl.test"), "127.0.0.10");
  Verdict v = run_sync(check_dnsbl(dns, client, {"v6.dnsbl.test"}));
  EXPECT_EQ(v.action, Action::kReject);
  EXPECT_EQ(v.text, "Service unavailable; client [2001:db8::25] blocked using v6.dnsbl.test");  // no TXT
  ASSERT_EQ(dns.queries().size(), 2u);
  EXPECT_EQ(dns.queries()[0].first, dnsbl_query_name(client, "v6.dnsbl.test"));
}

TEST(Dnsbl, NotListedAndNonLoopbackCodes) {
  dns::FakeResolver dns;
  // 127.255.255.254: "public resolver refused" style code, not a listing; a public address neither.
  dns.add_address("1.2.0.192.a.test", "127.255.255.254");
  dns.add_address("1.2.0.192.b.test", "192.0.2.1");
  Verdict v = run_sync(check_dnsbl(dns, ip("192.0.2.1"), {"a.test", "b.test", "c.test"}));
  EXPECT_EQ(v.action, Action::kContinue);
  EXPECT_EQ(v.explanation, "dnsbl: not listed");
  EXPECT_EQ(run_sync(check_dnsbl(dns, ip("192.0.2.1"), {})).action, Action::kContinue);
}

TEST(Dnsbl, FirstListedInConfigurationOrderAndFailuresSkipped) {
  dns::FakeResolver dns;
  dns.add_name("down.test");
  dns.set_rcode("1.2.0.192.down.test", dns::Rcode::kServFail);
  dns.add_address("1.2.0.192.second.test", "127.0.0.4");
  dns.add_address("1.2.0.192.third.test", "127.0.0.3");
  Verdict v = run_sync(check_dnsbl(dns, ip("192.0.2.1"), {"down.test", "clean.test", "second.test", "third.test"}));
  EXPECT_EQ(v.action, Action::kReject);
  EXPECT_NE(v.text.find("blocked using second.test"), std::string::npos);
  EXPECT_NE(v.explanation.find("down.test=error(A SERVFAIL)"), std::string::npos) << v.explanation;
  Verdict only_down = run_sync(check_dnsbl(dns, ip("192.0.2.1"), {"down.test"}));
  EXPECT_EQ(only_down.action, Action::kContinue);
}

}  // namespace
}  // namespace tern::policy
