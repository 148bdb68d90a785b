// Unit tests for SPF: record parsing (RFC 7208 §4.6, §5), macro expansion
// (the §7.4 examples), and check_host() behaviour the openspf suite does not
// pin down: query counts under the DNS limits, DNSSEC status of the result,
// bogus answers, the HELO and null-sender identities, the time limit.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "auth/spf.h"
#include "auth/spf_record.h"
#include "dns/fake_resolver.h"
#include "test_support.h"

namespace tern::auth {
namespace {

using tern::testing::run_sync;

namespace asio = boost::asio;
using Code = SpfResult::Code;

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

// §7.4 examples: sender strong-bad@email.example.com, client 192.0.2.3 / 2001:db8::cb01.
SpfMacroContext rfc_context(const char* addr = "192.0.2.3") {
  SpfMacroContext c;
  c.sender = "strong-bad@email.example.com";
  c.local_part = "strong-bad";
  c.sender_domain = "email.example.com";
  c.domain = "email.example.com";
  c.ip = ip(addr);
  c.helo = "mx.example.org";
  return c;
}

std::string expand(const char* s, const SpfMacroContext& c, bool exp = false) {
  auto r = expand_spf_macros(s, c, exp);
  return r ? *r : "<error: " + r.error().text + ">";
}

TEST(SpfMacros, Rfc7208Examples) {
  auto c = rfc_context();
  EXPECT_EQ(expand("%{s}", c), "strong-bad@email.example.com");
  EXPECT_EQ(expand("%{o}", c), "email.example.com");
  EXPECT_EQ(expand("%{d}", c), "email.example.com");
  EXPECT_EQ(expand("%{d4}", c), "email.example.com");
  EXPECT_EQ(expand("%{d3}", c), "email.example.com");
  EXPECT_EQ(expand("%{d2}", c), "example.com");
  EXPECT_EQ(expand("%{d1}", c), "com");
  EXPECT_EQ(expand("%{dr}", c), "com.example.email");
  EXPECT_EQ(expand("%{d2r}", c), "example.email");
  EXPECT_EQ(expand("%{l}", c), "strong-bad");
  EXPECT_EQ(expand("%{l-}", c), "strong.bad");
  EXPECT_EQ(expand("%{lr}", c), "strong-bad");
  EXPECT_EQ(expand("%{lr-}", c), "bad.strong");
  EXPECT_EQ(expand("%{l1r-}", c), "strong");
  EXPECT_EQ(expand("%{ir}.%{v}._spf.%{d2}", c), "3.2.0.192.in-addr._spf.example.com");
  EXPECT_EQ(expand("%{lr-}.lp._spf.%{d2}", c), "bad.strong.lp._spf.example.com");
  EXPECT_EQ(expand("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", c), "bad.strong.lp.3.2.0.192.in-addr._spf.example.com");
  EXPECT_EQ(expand("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", c), "3.2.0.192.in-addr.strong.lp._spf.example.com");
  EXPECT_EQ(expand("%{d2}.trusted-domains.example.net", c), "example.com.trusted-domains.example.net");
  auto c6 = rfc_context("2001:db8::cb01");
  EXPECT_EQ(expand("%{ir}.%{v}._spf.%{d2}", c6),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
}

TEST(SpfMacros, EscapesAndUrlEncoding) {
  auto c = rfc_context();
  c.local_part = "~jack&jill=up-a_b3.c";
  EXPECT_EQ(expand("%%%_%-", c), "% %20");
  EXPECT_EQ(expand("%{L}", c), "~jack%26jill%3Dup-a_b3.c");
  EXPECT_EQ(expand("%{c} at", c, true), "192.0.2.3 at");
  EXPECT_FALSE(expand_spf_macros("%{i} at", c, false));  // SP only in explanation text
  c.timestamp = 1234;
  c.receiver = "mx.example.net";
  EXPECT_EQ(expand("%{c}_%{r}_%{t}", c, true), "192.0.2.3_mx.example.net_1234");
}

TEST(SpfMacros, SyntaxErrors) {
  auto c = rfc_context();
  for (const char* bad : {"%", "%x", "%{", "%{d", "%{x}", "%{d0}", "%{dr!}", "%{c}", "%(ir)", "a b"}) {
    EXPECT_FALSE(expand_spf_macros(bad, c, false)) << bad;
  }
  EXPECT_TRUE(expand_spf_macros("%{c} %{r} %{t}", c, true));
  EXPECT_TRUE(uses_p_macro("%{p}.example.com"));
  EXPECT_TRUE(uses_p_macro("%{P2}"));
  EXPECT_FALSE(uses_p_macro("%%{p}"));
}

TEST(SpfMacros, QueryNameTruncatesAndRejectsBadLabels) {
  std::string label(60, 'x');
  std::string long_name;
  for (int i = 0; i < 5; ++i) long_name += label + ".";
  long_name += "example.com.";
  auto q = spf_query_name(long_name);
  ASSERT_TRUE(q);
  EXPECT_LE(q->size(), 253u);
  EXPECT_TRUE(q->ends_with("example.com"));
  EXPECT_EQ(*spf_query_name("example.com."), "example.com");
  EXPECT_FALSE(spf_query_name("a..example.com"));
  EXPECT_FALSE(spf_query_name(std::string(64, 'a') + ".com"));
  EXPECT_FALSE(spf_query_name(""));
}

TEST(SpfRecordParse, MechanismsAndModifiers) {
  auto r = parse_spf_record("v=spf1 +a mx:mail.example.com/24//64 ~ptr ?exists:%{i}.bl.example ip4:192.0.2.0/24 "
                            "-ip6:2001:db8::/32 include:_spf.example.net exp=why.example.com "
                            "redirect=other.example.com future=%{d}  ");
  ASSERT_TRUE(r) << r.error().text;
  ASSERT_EQ(r->mechanisms.size(), 7u);
  EXPECT_EQ(r->mechanisms[0].kind, SpfMechanismKind::kA);
  EXPECT_EQ(r->mechanisms[0].qualifier, SpfQualifier::kPass);
  EXPECT_EQ(r->mechanisms[1].kind, SpfMechanismKind::kMx);
  EXPECT_EQ(r->mechanisms[1].domain_spec, "mail.example.com");
  EXPECT_EQ(r->mechanisms[1].cidr4, 24);
  EXPECT_EQ(r->mechanisms[1].cidr6, 64);
  EXPECT_EQ(r->mechanisms[2].qualifier, SpfQualifier::kSoftFail);
  EXPECT_EQ(r->mechanisms[3].qualifier, SpfQualifier::kNeutral);
  EXPECT_EQ(r->mechanisms[4].network.to_string(), "192.0.2.0/24");
  EXPECT_EQ(r->mechanisms[5].qualifier, SpfQualifier::kFail);
  EXPECT_EQ(r->mechanisms[5].network.to_string(), "2001:db8::/32");
  EXPECT_EQ(r->mechanisms[6].kind, SpfMechanismKind::kInclude);
  EXPECT_EQ(r->exp, "why.example.com");
  EXPECT_EQ(r->redirect, "other.example.com");
}

TEST(SpfRecordParse, SyntaxErrorsAnywhere) {
  for (const char* bad : {"v=spf1 -all moo", "v=spf1 all.", "v=spf1 -all:x", "v=spf1 a/33", "v=spf1 a//129",
                          "v=spf1 ip4:1.2.3.4/032", "v=spf1 ip4:1.2.3", "v=spf1 ip4:1.2.3.4//32",
                          "v=spf1 ip6::CAFE::BABE", "v=spf1 ip4:::1", "v=spf1 ip6:1.2.3.4", "v=spf1 include",
                          "v=spf1 include:", "v=spf1 ptr/0", "v=spf1 a:museum", "v=spf1 a:foo.123",
                          "v=spf1 a:example.-com", "v=spf1 exp=", "v=spf1 exp=a.com exp=b.com",
                          "v=spf1 redirect=a.com redirect=a.com", "v=spf1 1up=foo", "v=spf1 =all",
                          "v=spf1 foo=%x", "v=spf1 a:x.example.com\tmx", "v=spf1 a:\xC3\xA9.example.com",
                          "v=spf1 redirect:x.example.com", "v=spf1 exists:%{c}.example.com"}) {
    EXPECT_FALSE(parse_spf_record(bad)) << bad;
  }
  EXPECT_TRUE(parse_spf_record("v=spf1"));
  EXPECT_TRUE(parse_spf_record("V=SPF1 A:xn--zckzah.example.xn--zckzah -ALL"));
  EXPECT_TRUE(is_spf_record("v=spf1 -all"));
  EXPECT_FALSE(is_spf_record("v=spf10"));
  EXPECT_FALSE(is_spf_record("v=spf1mx"));
}

TEST(SpfRecordParse, DomainSpec) {
  EXPECT_TRUE(valid_domain_spec("example.com"));
  EXPECT_TRUE(valid_domain_spec("example.com."));
  EXPECT_TRUE(valid_domain_spec("%{d}"));
  EXPECT_TRUE(valid_domain_spec("foo:bar/baz.example.com"));
  EXPECT_TRUE(valid_domain_spec("%{ir}.%{v}._spf.%{d2}"));
  EXPECT_FALSE(valid_domain_spec(""));
  EXPECT_FALSE(valid_domain_spec("museum."));
  EXPECT_FALSE(valid_domain_spec("%{d}com"));
  EXPECT_FALSE(valid_domain_spec("111.222.33.44"));
}

SpfResult check(dns::Resolver& r, const char* addr, const char* domain, SpfOptions o = {}) {
  return run_sync(check_host(r, ip(addr), domain, std::string("user@") + domain, "helo.example.org", o));
}

TEST(SpfCheckHost, BasicResultsAndMatchedMechanism) {
  dns::FakeResolver dns;
  dns.add_txt("example.com", "v=spf1 ip4:192.0.2.0/24 a:mail.example.com ~all");
  dns.add_txt("example.com", "some other TXT record");
  dns.add_address("mail.example.com", "198.51.100.7");
  auto r = check(dns, "192.0.2.77", "example.com");
  EXPECT_EQ(r.code, Code::kPass);
  EXPECT_EQ(r.mechanism, "ip4:192.0.2.0/24");
  EXPECT_EQ(r.domain, "example.com");
  r = check(dns, "198.51.100.7", "example.com");
  EXPECT_EQ(r.code, Code::kPass);
  EXPECT_EQ(r.mechanism, "a:mail.example.com");
  r = check(dns, "203.0.113.1", "example.com");
  EXPECT_EQ(r.code, Code::kSoftFail);
  EXPECT_EQ(r.mechanism, "~all");
  EXPECT_EQ(check(dns, "203.0.113.1", "nonexistent.example").code, Code::kNone);
}

TEST(SpfCheckHost, LookupLimitStopsQueries) {
  dns::FakeResolver dns;
  std::string rec = "v=spf1";
  for (int i = 0; i < 30; ++i) rec += " a:h" + std::to_string(i) + ".example.com";
  dns.add_txt("example.com", rec + " -all");
  for (int i = 0; i < 30; ++i) dns.add_address("h" + std::to_string(i) + ".example.com", "198.51.100.1");
  auto r = check(dns, "192.0.2.1", "example.com");
  EXPECT_EQ(r.code, Code::kPermError);
  EXPECT_EQ(r.dns_terms, 11);
  // One TXT lookup plus exactly ten A lookups: the 11th term is refused before querying.
  EXPECT_EQ(dns.query_count(), 11u);
}

TEST(SpfCheckHost, IncludeLoopEndsAtLimit) {
  dns::FakeResolver dns;
  dns.add_txt("a.example", "v=spf1 include:b.example -all");
  dns.add_txt("b.example", "v=spf1 include:a.example -all");
  auto r = check(dns, "192.0.2.1", "a.example");
  EXPECT_EQ(r.code, Code::kPermError);
  EXPECT_LE(dns.query_count(), 12u);
}

TEST(SpfCheckHost, VoidLookupLimit) {
  dns::FakeResolver dns;
  dns.add_txt("example.com", "v=spf1 a:n1.example.com mx:n2.example.com exists:n3.example.com ip4:192.0.2.1 -all");
  auto r = check(dns, "192.0.2.1", "example.com");
  EXPECT_EQ(r.code, Code::kPermError);
  EXPECT_EQ(r.void_lookups, 3);
  SpfOptions lenient;
  lenient.max_void_lookups = 3;
  EXPECT_EQ(check(dns, "192.0.2.1", "example.com", lenient).code, Code::kPass);
}

TEST(SpfCheckHost, DnsErrorsAreTempErrors) {
  dns::FakeResolver dns;
  dns.add_txt("example.com", "v=spf1 mx -all");
  dns.set_rcode("example.com", dns::Rcode::kServFail, dns::RrType::kMx);
  EXPECT_EQ(check(dns, "192.0.2.1", "example.com").code, Code::kTempError);
  dns.set_rcode("timeout.example", dns::Rcode::kTimeout);
  EXPECT_EQ(check(dns, "192.0.2.1", "timeout.example").code, Code::kTempError);
}

TEST(SpfCheckHost, DnssecStatus) {
  dns::FakeResolver dns;
  dns.set_default_security(dns::Security::kSecure);
  dns.add_txt("example.com", "v=spf1 a:mail.example.com -all");
  dns.add_address("mail.example.com", "192.0.2.1");
  auto r = check(dns, "192.0.2.1", "example.com");
  EXPECT_EQ(r.code, Code::kPass);
  EXPECT_TRUE(r.dnssec_secure);
  dns.set_security("mail.example.com", dns::Security::kInsecure);
  r = check(dns, "192.0.2.1", "example.com");
  EXPECT_EQ(r.code, Code::kPass);
  EXPECT_FALSE(r.dnssec_secure);
  // A bogus answer is never used as data: temperror.
  dns.set_security("mail.example.com", dns::Security::kBogus);
  EXPECT_EQ(check(dns, "192.0.2.1", "example.com").code, Code::kTempError);
}

TEST(SpfCheckHost, HeloAndNullSenderIdentities) {
  dns::FakeResolver dns;
  dns.add_txt("mx.example.org", "v=spf1 a -all");
  dns.add_address("mx.example.org", "192.0.2.9");
  dns.add_txt("mx.example.org.check.example", "unused");
  auto r = run_sync(check_helo(dns, ip("192.0.2.9"), "mx.example.org"));
  EXPECT_EQ(r.code, Code::kPass);
  EXPECT_EQ(r.domain, "mx.example.org");
  r = run_sync(check_mail_from(dns, ip("192.0.2.10"), "", "mx.example.org"));
  EXPECT_EQ(r.code, Code::kFail);
  EXPECT_EQ(r.domain, "mx.example.org");
  // Not a multi-label domain, or a domain literal: none, without DNS (§4.3).
  dns.clear_queries();
  EXPECT_EQ(run_sync(check_helo(dns, ip("192.0.2.9"), "localhost")).code, Code::kNone);
  EXPECT_EQ(run_sync(check_helo(dns, ip("192.0.2.9"), "[192.0.2.9]")).code, Code::kNone);
  EXPECT_EQ(dns.query_count(), 0u);
}

TEST(SpfCheckHost, Ipv4MappedClientIsIpv4) {
  dns::FakeResolver dns;
  dns.add_txt("example.com", "v=spf1 ip4:192.0.2.0/24 -all");
  EXPECT_EQ(check(dns, "::ffff:192.0.2.5", "example.com").code, Code::kPass);
  EXPECT_EQ(check(dns, "2001:db8::5", "example.com").code, Code::kFail);
}

TEST(SpfCheckHost, ExplanationWithMacros) {
  dns::FakeResolver dns;
  dns.add_txt("example.com", "v=spf1 -all exp=why.%{d}");
  dns.add_txt("why.example.com", "%{i} is not allowed to send for %{d} (%{r})");
  SpfOptions o;
  o.receiver = "mx.receiver.example";
  auto r = check(dns, "192.0.2.1", "example.com", o);
  EXPECT_EQ(r.code, Code::kFail);
  EXPECT_EQ(r.explanation, "192.0.2.1 is not allowed to send for example.com (mx.receiver.example)");
}

TEST(SpfCheckHost, PtrAndPMacroUseValidatedNames) {
  dns::FakeResolver dns;
  dns.add_txt("example.com", "v=spf1 ptr -all exp=e.example.com");
  dns.add_txt("e.example.com", "from %{p}");
  dns.add_ptr("1.2.0.192.in-addr.arpa", "mail.example.com");
  dns.add_address("mail.example.com", "192.0.2.1");
  dns.add_ptr("2.2.0.192.in-addr.arpa", "fake.example.com");  // does not resolve back
  EXPECT_EQ(check(dns, "192.0.2.1", "example.com").code, Code::kPass);
  auto r = check(dns, "192.0.2.2", "example.com");
  EXPECT_EQ(r.code, Code::kFail);
  EXPECT_EQ(r.explanation, "from unknown");
}

TEST(SpfCheckHost, TimeLimitGivesTempError) {
  dns::FakeResolver dns;
  dns.add_txt("example.com", "v=spf1 -all");
  SpfOptions o;
  o.time_limit = std::chrono::milliseconds(-1);
  EXPECT_EQ(check(dns, "192.0.2.1", "example.com", o).code, Code::kTempError);
}

}  // namespace
}  // namespace tern::auth
