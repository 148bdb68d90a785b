// Tests for the sender identity / SPF / DMARC decision table (src/policy/decision.h):
// every identity mode and path at MAIL, RCPT and end of data, SPF fail with its
// excuses, DNS temporary errors, DMARC reject/quarantine/tag with pct sampling,
// trusted ARC sealers and trusted forwarder domains per recipient.
#include "policy/decision.h"

#include <gtest/gtest.h>

namespace tern::policy {
namespace {

using SpfCode = auth::SpfResult::Code;

SessionFacts mx_facts(IdentityMode mode, std::string mail_from, std::string helo = "mx.outside.test") {
  SessionFacts f;
  f.mx_listener = true;
  f.mode = mode;
  f.helo = std::move(helo);
  f.helo_resolves = true;
  f.mail_from = std::move(mail_from);
  f.our_hostname = "mx.example.test";
  f.local_domains = {"example.test", "other.test"};
  return f;
}

auth::dkim::DkimResult dkim(std::string domain, auth::dkim::Outcome status = auth::dkim::Outcome::kPass) {
  auth::dkim::DkimResult r;
  r.domain = std::move(domain);
  r.status = status;
  return r;
}

MessageFacts message(SpfCode spf, std::string spf_domain, std::vector<std::string> from_domains) {
  MessageFacts m;
  m.spf.code = spf;
  m.spf.domain = std::move(spf_domain);
  m.header_from_domains = std::move(from_domains);
  m.recipients = {"alice@example.test"};
  return m;
}

void dmarc_fail(MessageFacts& m, auth::dmarc::Policy p, unsigned pct = 100) {
  m.dmarc.status = auth::dmarc::Status::kFail;
  m.dmarc.from_domain = m.header_from_domains.empty() ? "" : m.header_from_domains[0];
  m.dmarc.policy = p;
  m.dmarc.record_found = true;
  auth::dmarc::Record record;
  record.p = p;
  record.pct = pct;
  m.dmarc.record = record;
}

const std::function<unsigned()> kNoRandom;

TEST(Names, ModesAndPaths) {
  EXPECT_EQ(parse_identity_mode("relaxed"), IdentityMode::kRelaxed);
  EXPECT_EQ(parse_identity_mode("strict"), IdentityMode::kStrict);
  EXPECT_EQ(parse_identity_mode("disabled"), IdentityMode::kDisabled);
  EXPECT_FALSE(parse_identity_mode("maybe"));
  EXPECT_STREQ(identity_mode_name(IdentityMode::kRelaxed), "relaxed");
  EXPECT_STREQ(identity_path_name(IdentityPath::kRelaxedMx), "relaxed-mx");
  EXPECT_STREQ(stage_name(Stage::kData), "data");
}

TEST(Helo, Classes) {
  auto f = mx_facts(IdentityMode::kRelaxed, "bob@example.test");
  EXPECT_EQ(classify_helo(f), HeloClass::kMx);
  f.helo = "";
  EXPECT_EQ(classify_helo(f), HeloClass::kMissing);
  f.helo = "[192.0.2.1]";
  EXPECT_EQ(classify_helo(f), HeloClass::kAddressLiteral);
  f.helo = "192.0.2.1";
  EXPECT_EQ(classify_helo(f), HeloClass::kAddressLiteral);
  f.helo = "laptop";
  EXPECT_EQ(classify_helo(f), HeloClass::kBareWord);
  f.helo = "bad_name.test";
  EXPECT_EQ(classify_helo(f), HeloClass::kInvalid);
  f.helo = "a..b.test";
  EXPECT_EQ(classify_helo(f), HeloClass::kInvalid);
  f.helo = "MX.example.test";
  EXPECT_EQ(classify_helo(f), HeloClass::kOurs);
  f.helo = "host.other.test";
  EXPECT_EQ(classify_helo(f), HeloClass::kOurs);
  f.helo = "mx.outside.test.";
  EXPECT_EQ(classify_helo(f), HeloClass::kMx);
  f.helo_resolves = false;
  EXPECT_EQ(classify_helo(f), HeloClass::kNotInDns);
  f.helo_resolves = std::nullopt;
  EXPECT_EQ(classify_helo(f), HeloClass::kDnsError);
}

TEST(DkimCovers, ParentsOnlyWithinOurDomains) {
  std::vector<std::string> local = {"example.test", "mail.corp.test"};
  EXPECT_TRUE(dkim_domain_covers("example.test", "example.test", local));
  EXPECT_TRUE(dkim_domain_covers("EXAMPLE.test", "sub.example.test", local));
  EXPECT_FALSE(dkim_domain_covers("corp.test", "mail.corp.test", local));       // parent outside ours
  EXPECT_FALSE(dkim_domain_covers("sub.example.test", "example.test", local));  // child, not parent
  EXPECT_FALSE(dkim_domain_covers("ample.test", "example.test", local));
  EXPECT_FALSE(dkim_domain_covers("", "example.test", local));
  EXPECT_TRUE(is_our_domain("Sub.Example.test", local));
  EXPECT_TRUE(is_our_domain("example.test.", local));
  EXPECT_FALSE(is_our_domain("notexample.test", local));
  EXPECT_FALSE(is_our_domain("", local));
  EXPECT_EQ(domain_of("Bob@Example.TEST"), "example.test");
  EXPECT_EQ(domain_of("postmaster"), "");
}

TEST(Mail, StrictRefusesOurDomainFromUnauthenticatedClient) {
  auto d = decide_mail(mx_facts(IdentityMode::kStrict, "bob@Example.TEST"));
  EXPECT_FALSE(d.accepted);
  EXPECT_EQ(d.reply_line(), "530 5.7.0 Authentication required");
  EXPECT_EQ(d.stage, Stage::kMail);
  ASSERT_FALSE(d.checks.empty());
  EXPECT_EQ(d.checks.back().result, "strict");
}

TEST(Mail, NotApplicableCases) {
  auto outside = decide_mail(mx_facts(IdentityMode::kStrict, "someone@outside.test"));
  EXPECT_TRUE(outside.accepted);
  EXPECT_EQ(outside.checks.back().result, "n/a");
  auto null_sender = decide_mail(mx_facts(IdentityMode::kStrict, ""));
  EXPECT_TRUE(null_sender.accepted);
  auto f = mx_facts(IdentityMode::kStrict, "bob@example.test");
  f.authenticated = true;
  EXPECT_TRUE(decide_mail(f).accepted);
  f.authenticated = false;
  f.trusted_network = true;
  EXPECT_TRUE(decide_mail(f).accepted);
  EXPECT_EQ(decide_mail(f).checks.back().detail, "trusted network");
  f.trusted_network = false;
  f.mx_listener = false;
  EXPECT_TRUE(decide_mail(f).accepted);
  auto disabled = decide_mail(mx_facts(IdentityMode::kDisabled, "bob@example.test"));
  EXPECT_TRUE(disabled.accepted);
  EXPECT_EQ(disabled.checks.back().result, "disabled");
}

TEST(Mail, RelaxedDecidesByEhlo) {
  auto mx = mx_facts(IdentityMode::kRelaxed, "bob@example.test");
  auto d = decide_mail(mx);
  EXPECT_TRUE(d.accepted);
  EXPECT_EQ(mail_identity_path(mx), IdentityPath::kRelaxedMx);
  EXPECT_EQ(d.checks.back().result, "relaxed-mx");
  for (std::string helo : {"laptop", "[127.0.0.1]", "mx.example.test", ""}) {
    auto f = mx_facts(IdentityMode::kRelaxed, "bob@example.test", helo);
    auto r = decide_mail(f);
    EXPECT_EQ(r.reply_line(), "530 5.7.0 Authentication required") << helo;
    EXPECT_EQ(mail_identity_path(f), IdentityPath::kRelaxedClient);
  }
  auto unresolved = mx_facts(IdentityMode::kRelaxed, "bob@example.test");
  unresolved.helo_resolves = false;
  EXPECT_EQ(decide_mail(unresolved).code, 530);
  unresolved.helo_resolves = std::nullopt;
  auto temp = decide_mail(unresolved);
  EXPECT_EQ(temp.code, 451);
  EXPECT_TRUE(temp.temporary());
}

TEST(Rcpt, RelaxedMxRefusesRelaying) {
  auto f = mx_facts(IdentityMode::kRelaxed, "bob@example.test");
  EXPECT_TRUE(decide_rcpt(f, "alice@example.test", true).accepted);
  auto d = decide_rcpt(f, "x@outside.test", false);
  EXPECT_EQ(d.reply_line(), "550 5.7.1 <x@outside.test>: Relay access denied");
  EXPECT_EQ(d.stage, Stage::kRcpt);
  // Other paths leave relaying to the session's usual rule.
  EXPECT_TRUE(decide_rcpt(mx_facts(IdentityMode::kDisabled, "bob@example.test"), "x@outside.test", false).accepted);
}

TEST(Data, RelaxedMxNeedsOurSignature) {
  auto f = mx_facts(IdentityMode::kRelaxed, "bob@sub.example.test");
  config::PolicyConfig policy;
  auto unsigned_msg = message(SpfCode::kFail, "sub.example.test", {"sub.example.test"});
  auto d = decide_data(f, unsigned_msg, policy, kNoRandom);
  EXPECT_FALSE(d.accepted);
  EXPECT_EQ(d.code, 550);
  EXPECT_EQ(d.enhanced, "5.7.20");
  EXPECT_NE(d.text.find("sub.example.test"), std::string::npos);

  auto broken = unsigned_msg;
  broken.dkim.push_back(dkim("example.test", auth::dkim::Outcome::kFail));
  EXPECT_EQ(decide_data(f, broken, policy, kNoRandom).enhanced, "5.7.20");

  auto foreign = unsigned_msg;
  foreign.dkim.push_back(dkim("outside.test"));
  EXPECT_EQ(decide_data(f, foreign, policy, kNoRandom).enhanced, "5.7.20");

  auto temp = unsigned_msg;
  temp.dkim.push_back(dkim("example.test", auth::dkim::Outcome::kTempError));
  auto t = decide_data(f, temp, policy, kNoRandom);
  EXPECT_EQ(t.code, 451);
  EXPECT_EQ(t.enhanced, "4.7.20");

  auto signed_msg = unsigned_msg;
  signed_msg.dkim.push_back(dkim("example.test"));  // parent within our domain
  // Forwarded copies fail SPF; the aligned signature excuses it.
  auto ok = decide_data(f, signed_msg, policy, kNoRandom);
  EXPECT_TRUE(ok.accepted) << ok.reply_line();
  EXPECT_EQ(data_identity_path(f, signed_msg), IdentityPath::kRelaxedMx);
  EXPECT_EQ(ok.checks.front().result, "relaxed-mx");
}

TEST(Data, HeaderFromOfOursNeedsSignature) {
  config::PolicyConfig policy;
  for (auto mode : {IdentityMode::kStrict, IdentityMode::kRelaxed}) {
    auto f = mx_facts(mode, "spoofer@outside.test");
    auto m = message(SpfCode::kPass, "outside.test", {"example.test"});
    EXPECT_EQ(data_identity_path(f, m), IdentityPath::kHeaderFrom);
    auto d = decide_data(f, m, policy, kNoRandom);
    EXPECT_EQ(d.enhanced, "5.7.20") << d.reply_line();
    m.dkim.push_back(dkim("example.test"));
    EXPECT_TRUE(decide_data(f, m, policy, kNoRandom).accepted);
  }
  auto disabled = mx_facts(IdentityMode::kDisabled, "spoofer@outside.test");
  auto m = message(SpfCode::kPass, "outside.test", {"example.test"});
  EXPECT_TRUE(decide_data(disabled, m, policy, kNoRandom).accepted);
  auto trusted = mx_facts(IdentityMode::kStrict, "spoofer@outside.test");
  trusted.trusted_network = true;
  EXPECT_TRUE(decide_data(trusted, m, policy, kNoRandom).accepted);
}

TEST(Data, SpfFail) {
  auto f = mx_facts(IdentityMode::kStrict, "x@outside.test");
  config::PolicyConfig policy;
  auto m = message(SpfCode::kFail, "outside.test", {"outside.test"});
  auto d = decide_data(f, m, policy, kNoRandom);
  EXPECT_EQ(d.code, 550);
  EXPECT_EQ(d.enhanced, "5.7.23");

  policy.spf_fail = "tag";
  EXPECT_TRUE(decide_data(f, m, policy, kNoRandom).accepted);
  policy.spf_fail = "reject";

  auto aligned = m;
  aligned.dkim.push_back(dkim("mail.outside.test"));
  EXPECT_TRUE(decide_data(f, aligned, policy, kNoRandom).accepted);

  auto dmarc_pass = m;
  dmarc_pass.dmarc.status = auth::dmarc::Status::kPass;
  EXPECT_TRUE(decide_data(f, dmarc_pass, policy, kNoRandom).accepted);

  auto arc = m;
  arc.arc.status = auth::arc::ChainStatus::kPass;
  arc.arc.domain = "lists.example.org";
  EXPECT_EQ(decide_data(f, arc, policy, kNoRandom).enhanced, "5.7.23");  // sealer not trusted
  policy.arc_trusted_sealers = {"lists.example.org"};
  EXPECT_TRUE(decide_data(f, arc, policy, kNoRandom).accepted);
  arc.arc.status = auth::arc::ChainStatus::kFail;
  EXPECT_EQ(decide_data(f, arc, policy, kNoRandom).enhanced, "5.7.23");  // broken chain
}

TEST(Data, SpfTempError) {
  auto f = mx_facts(IdentityMode::kStrict, "x@outside.test");
  config::PolicyConfig policy;
  auto m = message(SpfCode::kTempError, "outside.test", {"outside.test"});
  auto d = decide_data(f, m, policy, kNoRandom);
  EXPECT_EQ(d.reply_line().substr(0, 10), "451 4.7.24");
  m.dkim.push_back(dkim("outside.test"));
  EXPECT_TRUE(decide_data(f, m, policy, kNoRandom).accepted);
}

TEST(Data, TrustedAndAuthenticatedClientsAreNotJudgedBySpfOrDmarc) {
  config::PolicyConfig policy;
  auto m = message(SpfCode::kTempError, "outside.test", {"outside.test"});
  dmarc_fail(m, auth::dmarc::Policy::kReject);
  auto untrusted = mx_facts(IdentityMode::kStrict, "x@outside.test");
  EXPECT_EQ(decide_data(untrusted, m, policy, kNoRandom).code, 451);
  auto trusted = untrusted;
  trusted.trusted_network = true;
  EXPECT_TRUE(decide_data(trusted, m, policy, kNoRandom).accepted);
  auto authenticated = untrusted;
  authenticated.authenticated = true;
  EXPECT_TRUE(decide_data(authenticated, m, policy, kNoRandom).accepted);
  auto submission = untrusted;
  submission.mx_listener = false;
  EXPECT_TRUE(decide_data(submission, m, policy, kNoRandom).accepted);
  m.spf.code = SpfCode::kFail;
  EXPECT_TRUE(decide_data(trusted, m, policy, kNoRandom).accepted);
  EXPECT_EQ(decide_data(untrusted, m, policy, kNoRandom).code, 550);
}

TEST(Data, ForwarderOnlyForItsRecipient) {
  auto f = mx_facts(IdentityMode::kStrict, "x@outside.test");
  config::PolicyConfig policy;
  auto m = message(SpfCode::kFail, "outside.test", {"outside.test"});
  m.forwarders.push_back({"alice@example.test", "external.org", SpfCode::kPass});
  auto d = decide_data(f, m, policy, kNoRandom);
  EXPECT_TRUE(d.accepted) << d.reply_line();
  std::string via;
  EXPECT_TRUE(forwarded_for(m, "Alice@example.test", &via));
  EXPECT_EQ(via, "external.org");
  // Another recipient without that forwarder: not a general bypass.
  auto mixed = m;
  mixed.recipients.push_back("carol@example.test");
  EXPECT_EQ(decide_data(f, mixed, policy, kNoRandom).enhanced, "5.7.23");
  auto failing = m;
  failing.forwarders[0].code = SpfCode::kFail;
  EXPECT_EQ(decide_data(f, failing, policy, kNoRandom).enhanced, "5.7.23");
  // When the MAIL FROM SPF passes, nothing is "forwarded".
  auto pass = m;
  pass.spf.code = SpfCode::kPass;
  EXPECT_FALSE(forwarded_for(pass, "alice@example.test"));
}

TEST(Data, ForwarderDomainsFromConfig) {
  config::Config cfg;
  cfg.forwarders["alice@example.test"] = {"external.org"};
  cfg.forwarders["@example.test"] = {"all.test"};
  EXPECT_EQ(forwarder_domains(cfg, "ALICE@example.test"), std::vector<std::string>{"external.org"});
  EXPECT_EQ(forwarder_domains(cfg, "bob@example.test"), std::vector<std::string>{"all.test"});
  EXPECT_TRUE(forwarder_domains(cfg, "bob@other.test").empty());
  EXPECT_TRUE(forwarder_domains(cfg, "postmaster").empty());
}

TEST(Data, DmarcActions) {
  auto f = mx_facts(IdentityMode::kStrict, "x@outside.test");
  config::PolicyConfig policy;
  auto m = message(SpfCode::kSoftFail, "outside.test", {"outside.test"});
  dmarc_fail(m, auth::dmarc::Policy::kReject);
  auto d = decide_data(f, m, policy, kNoRandom);
  EXPECT_EQ(d.code, 550);
  EXPECT_EQ(d.enhanced, "5.7.1");
  EXPECT_NE(d.text.find("DMARC"), std::string::npos);

  policy.dmarc_reject = "quarantine";
  d = decide_data(f, m, policy, kNoRandom);
  EXPECT_TRUE(d.accepted);
  EXPECT_TRUE(d.junk);
  policy.dmarc_reject = "tag";
  d = decide_data(f, m, policy, kNoRandom);
  EXPECT_TRUE(d.accepted);
  EXPECT_FALSE(d.junk);
  policy.dmarc_reject = "reject";

  auto q = m;
  dmarc_fail(q, auth::dmarc::Policy::kQuarantine);
  EXPECT_TRUE(decide_data(f, q, policy, kNoRandom).junk);
  policy.dmarc_quarantine = "reject";
  EXPECT_EQ(decide_data(f, q, policy, kNoRandom).code, 550);
  policy.dmarc_quarantine = "quarantine";

  auto none = m;
  dmarc_fail(none, auth::dmarc::Policy::kNone);
  EXPECT_TRUE(decide_data(f, none, policy, kNoRandom).accepted);
  EXPECT_FALSE(decide_data(f, none, policy, kNoRandom).junk);

  policy.arc_trusted_sealers = {"lists.example.org"};
  auto arc = m;
  arc.arc.status = auth::arc::ChainStatus::kPass;
  arc.arc.domain = "Lists.Example.org";
  EXPECT_TRUE(decide_data(f, arc, policy, kNoRandom).accepted);
  EXPECT_FALSE(decide_data(f, arc, policy, kNoRandom).junk);
}

TEST(Data, DmarcPctSampling) {
  auto f = mx_facts(IdentityMode::kStrict, "x@outside.test");
  config::PolicyConfig policy;
  auto m = message(SpfCode::kNone, "outside.test", {"outside.test"});
  dmarc_fail(m, auth::dmarc::Policy::kReject, 30);
  std::function<unsigned()> low = [] { return 10u; };
  std::function<unsigned()> high = [] { return 90u; };
  EXPECT_EQ(decide_data(f, m, policy, low).code, 550);  // sampled in
  auto out = decide_data(f, m, policy, high);           // sampled out: reject -> quarantine
  EXPECT_TRUE(out.accepted);
  EXPECT_TRUE(out.junk);
  dmarc_fail(m, auth::dmarc::Policy::kQuarantine, 30);
  auto none = decide_data(f, m, policy, high);  // quarantine -> none
  EXPECT_TRUE(none.accepted);
  EXPECT_FALSE(none.junk);
  EXPECT_TRUE(decide_data(f, m, policy, low).junk);
}

TEST(Data, DmarcTempError) {
  auto f = mx_facts(IdentityMode::kStrict, "x@outside.test");
  config::PolicyConfig policy;
  auto m = message(SpfCode::kPass, "outside.test", {"outside.test"});
  m.dmarc.status = auth::dmarc::Status::kTempError;
  m.dmarc.from_domain = "outside.test";
  auto d = decide_data(f, m, policy, kNoRandom);
  EXPECT_EQ(d.code, 451);
  EXPECT_EQ(d.enhanced, "4.7.1");
  m.dmarc.status = auth::dmarc::Status::kPass;
  EXPECT_TRUE(decide_data(f, m, policy, kNoRandom).accepted);
}

}  // namespace
}  // namespace tern::policy
