// Unit tests for the HELO and sender checks: FQDN syntax, address literals,
// require_helo, reject_non_fqdn_helo/sender and reject_unknown_sender_domain
// against a FakeResolver (MX, A/AAAA fallback, null MX, NXDOMAIN, SERVFAIL).
#include "policy/helo.h"

#include <gtest/gtest.h>

#include "dns/fake_resolver.h"
#include "test_support.h"

namespace tern::policy {
namespace {

using testing::run_sync;
using Action = Verdict::Action;

TEST(Fqdn, Syntax) {
  EXPECT_TRUE(is_fqdn("mail.example.org"));
  EXPECT_TRUE(is_fqdn("mail.example.org."));
  EXPECT_TRUE(is_fqdn("a-b.c0"));
  EXPECT_FALSE(is_fqdn("localhost"));
  EXPECT_FALSE(is_fqdn(""));
  EXPECT_FALSE(is_fqdn("."));
  EXPECT_FALSE(is_fqdn("192.0.2.1"));  // numeric TLD
  EXPECT_FALSE(is_fqdn("-a.example"));
  EXPECT_FALSE(is_fqdn("a-.example"));
  EXPECT_FALSE(is_fqdn("a..example"));
  EXPECT_FALSE(is_fqdn("under_score.example"));
  EXPECT_FALSE(is_fqdn(std::string(64, 'a') + ".example"));
  EXPECT_TRUE(is_fqdn(std::string(63, 'a') + ".example"));
  std::string long_name;
  for (int i = 0; i < 64; ++i) long_name += "abc.";
  long_name += "org";
  EXPECT_FALSE(is_fqdn(long_name));
}

TEST(Fqdn, AddressLiterals) {
  EXPECT_TRUE(is_address_literal("[192.0.2.1]"));
  EXPECT_TRUE(is_address_literal("[IPv6:2001:db8::1]"));
  EXPECT_FALSE(is_address_literal("[2001:db8::1]"));
  EXPECT_FALSE(is_address_literal("[IPv6:192.0.2.1]"));
  EXPECT_FALSE(is_address_literal("192.0.2.1"));
  EXPECT_FALSE(is_address_literal("[]"));
}

TEST(HeloChecks, RequireHelo) {
  EXPECT_EQ(check_helo_required(true, true).action, Action::kContinue);
  EXPECT_EQ(check_helo_required(false, false).action, Action::kContinue);
  Verdict v = check_helo_required(false, true);
  EXPECT_EQ(v.action, Action::kReject);
  EXPECT_EQ(v.code, 503);
  EXPECT_EQ(v.enhanced, "5.5.1");
  EXPECT_EQ(v.error().to_string(), "503 5.5.1 Send HELO/EHLO first");
}

TEST(HeloChecks, NonFqdnHelo) {
  EXPECT_EQ(check_helo_fqdn("localhost", false).action, Action::kContinue);
  EXPECT_EQ(check_helo_fqdn("mx.example.org", true).action, Action::kContinue);
  EXPECT_EQ(check_helo_fqdn("[192.0.2.1]", true).action, Action::kContinue);
  for (const char* bad : {"localhost", "WIN-PC", "192.0.2.1", "[999.1.1.1]", "bad_name.example"}) {
    Verdict v = check_helo_fqdn(bad, true);
    EXPECT_EQ(v.action, Action::kReject) << bad;
    EXPECT_EQ(v.code, 504) << bad;
    EXPECT_EQ(v.enhanced, "5.5.2") << bad;
  }
}

TEST(SenderChecks, NonFqdnSender) {
  EXPECT_EQ(check_sender_fqdn("", true).action, Action::kContinue);  // null sender
  EXPECT_EQ(check_sender_fqdn("a@example.org", true).action, Action::kContinue);
  EXPECT_EQ(check_sender_fqdn("a@[192.0.2.1]", true).action, Action::kContinue);
  EXPECT_EQ(check_sender_fqdn("a@localhost", false).action, Action::kContinue);
  for (const char* bad : {"a@localhost", "postmaster", "a@b@c", "a@1.2.3.4"}) {
    Verdict v = check_sender_fqdn(bad, true);
    EXPECT_EQ(v.action, Action::kReject) << bad;
    EXPECT_EQ(v.code, 504) << bad;
  }
}

TEST(SenderDomain, MxOrAddressPasses) {
  dns::FakeResolver dns;
  dns.add_mx("mx.test", 10, "mail.mx.test");
  dns.add_name("a.test");
  dns.add_address("a.test", "192.0.2.1");
  dns.add_name("aaaa.test");
  dns.add_address("aaaa.test", "2001:db8::1");
  EXPECT_EQ(run_sync(check_sender_domain(dns, "u@MX.test")).action, Action::kContinue);
  EXPECT_EQ(run_sync(check_sender_domain(dns, "u@a.test")).action, Action::kContinue);
  EXPECT_EQ(run_sync(check_sender_domain(dns, "u@aaaa.test")).action, Action::kContinue);
  EXPECT_EQ(run_sync(check_sender_domain(dns, "")).action, Action::kContinue);
  EXPECT_EQ(run_sync(check_sender_domain(dns, "u@[192.0.2.1]")).action, Action::kContinue);
  // MX found: no address lookups.
  dns.clear_queries();
  (void)run_sync(check_sender_domain(dns, "u@mx.test"));
  EXPECT_EQ(dns.query_count(), 1u);
}

TEST(SenderDomain, UnknownDomainIs550) {
  dns::FakeResolver dns;
  Verdict v = run_sync(check_sender_domain(dns, "u@nowhere.test"));
  EXPECT_EQ(v.action, Action::kReject);
  EXPECT_EQ(v.error().to_string(), "550 5.1.8 Sender address rejected: domain not found");
  dns.add_name("empty.test");  // exists, no MX/A/AAAA
  v = run_sync(check_sender_domain(dns, "u@empty.test"));
  EXPECT_EQ(v.code, 550);
  EXPECT_NE(v.explanation.find("no MX, A or AAAA"), std::string::npos);
}

TEST(SenderDomain, TemporaryFailureIs450) {
  dns::FakeResolver dns;
  dns.add_name("flaky.test");
  dns.set_rcode("flaky.test", dns::Rcode::kServFail);
  Verdict v = run_sync(check_sender_domain(dns, "u@flaky.test"));
  EXPECT_EQ(v.action, Action::kTempFail);
  EXPECT_EQ(v.code, 450);
  EXPECT_EQ(v.enhanced, "4.1.8");
  // No MX, A times out, no AAAA: temporary.
  dns.add_name("half.test");
  dns.set_rcode("half.test", dns::Rcode::kTimeout, dns::RrType::kA);
  EXPECT_EQ(run_sync(check_sender_domain(dns, "u@half.test")).code, 450);
  // No MX, A times out but AAAA answers: pass.
  dns.add_address("half.test", "2001:db8::2");
  EXPECT_EQ(run_sync(check_sender_domain(dns, "u@half.test")).action, Action::kContinue);
}

TEST(SenderDomain, NullMxIs550_5_7_27) {
  dns::FakeResolver dns;
  dns.add_mx("nomail.test", 0, ".");
  Verdict v = run_sync(check_sender_domain(dns, "u@nomail.test"));
  EXPECT_EQ(v.action, Action::kReject);
  EXPECT_EQ(v.enhanced, "5.7.27");
}

}  // namespace
}  // namespace tern::policy
