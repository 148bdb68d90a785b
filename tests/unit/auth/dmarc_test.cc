// Tests for the DMARC library (src/auth/dmarc.h): record parsing, policy
// discovery, alignment and policy selection, hand-written cases plus every
// case of the shared suite testsuites/dmarc/dmarc-cases.yml (mox, Stalwart
// sections here; the authheaders end-to-end section lives in
// dmarc_authheaders_test.cc because it needs message parsing and DKIM).
#include "auth/dmarc.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <filesystem>

#include "base/strings.h"
#include "dns/fake_resolver.h"
#include "test_support.h"

namespace tern::auth::dmarc {
namespace {

using tern::testing::run_sync;

// Number of assertion results recorded so far in the running test: a case
// passed when it added none.
int parts() { return ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count(); }

const std::string kSuite = std::string(TERN_SHARED_DIR) + "/testsuites/dmarc/dmarc-cases.yml";

YAML::Node load_suite() {
  if (!std::filesystem::exists(kSuite)) {
    ADD_FAILURE() << "DMARC test suite missing: " << kSuite;
    return {};
  }
  return YAML::LoadFile(kSuite);
}

// ---- Parser ------------------------------------------------------------

TEST(DmarcParse, Minimal) {
  auto r = parse_record("v=DMARC1; p=reject");
  ASSERT_EQ(r.status, ParseStatus::kOk) << r.error;
  EXPECT_EQ(r.record.p, Policy::kReject);
  EXPECT_EQ(r.record.subdomain_policy(), Policy::kReject);
  EXPECT_EQ(r.record.pct, 100u);
  EXPECT_EQ(r.record.adkim, AlignmentMode::kRelaxed);
  EXPECT_EQ(r.record.ri, 86400u);
}

TEST(DmarcParse, Classification) {
  EXPECT_EQ(parse_record("v=spf1 -all").status, ParseStatus::kNotDmarc);
  EXPECT_EQ(parse_record("v=DMARC12; p=none").status, ParseStatus::kNotDmarc);
  EXPECT_EQ(parse_record("v=DMARC1; p=none; bogus").status, ParseStatus::kSyntaxError);
  EXPECT_EQ(parse_record("v=DMARC1; sp=none").status, ParseStatus::kNoPolicy);
  EXPECT_EQ(parse_record("v=DMARC1; p=bad").status, ParseStatus::kNoPolicy);
  EXPECT_EQ(parse_record("v=DMARC1; p=none; pct=101").status, ParseStatus::kSyntaxError);
  EXPECT_EQ(parse_record("v=DMARC1; p=none; " + std::string(9000, 'x') + "=1").status, ParseStatus::kSyntaxError);
  auto fallback = parse_record("v=DMARC1; p=bogus; rua=mailto:a@example.com");
  ASSERT_EQ(fallback.status, ParseStatus::kOk);
  EXPECT_TRUE(fallback.record.p_defaulted);
  EXPECT_EQ(fallback.record.p, Policy::kNone);
}

TEST(DmarcParse, SizeUnits) {
  auto r = parse_record("v=DMARC1; p=none; rua=mailto:a@x.example!10k,mailto:b@x.example!3T,mailto:c@x.example");
  ASSERT_EQ(r.status, ParseStatus::kOk) << r.error;
  ASSERT_EQ(r.record.rua.size(), 3u);
  EXPECT_EQ(r.record.rua[0].max_bytes(), 10240u);
  EXPECT_EQ(r.record.rua[1].max_bytes(), 3ull << 40);
  EXPECT_EQ(r.record.rua[2].max_bytes(), 0u);
}

TEST(DmarcAlign, OrganizationalDomain) {
  EXPECT_EQ(organizational_domain("a.b.example.com"), "example.com");
  EXPECT_EQ(organizational_domain("x.y.co.uk"), "y.co.uk");
  EXPECT_EQ(organizational_domain("co.uk"), "");
  EXPECT_TRUE(aligned("example.com", "mail.example.com", AlignmentMode::kRelaxed));
  EXPECT_FALSE(aligned("example.com", "mail.example.com", AlignmentMode::kStrict));
  EXPECT_TRUE(aligned("Example.COM", "example.com", AlignmentMode::kStrict));
  EXPECT_FALSE(aligned("a.co.uk", "b.co.uk", AlignmentMode::kRelaxed));
  EXPECT_FALSE(aligned("example.com", "com", AlignmentMode::kRelaxed));
}

// ---- Suite: record parsing --------------------------------------------

Policy policy_of(const std::string& s) {
  if (s == "reject") return Policy::kReject;
  if (s == "quarantine") return Policy::kQuarantine;
  return Policy::kNone;
}

TEST(DmarcSuite, MoxRecordParse) {
  YAML::Node suite = load_suite();
  ASSERT_TRUE(suite["mox_record_parse"]) << "section mox_record_parse missing";
  const YAML::Node sec = suite["mox_record_parse"];
  int passed = 0, total = 0;
  for (const auto& c : sec["invalid"]) {
    ++total;
    std::string rec = c["record"].as<std::string>();
    auto r = parse_record(rec);
    EXPECT_NE(r.status, ParseStatus::kOk) << "accepted invalid record: " << rec;
    if (r.status != ParseStatus::kOk) ++passed;
  }
  for (const auto& c : sec["valid"]) {
    ++total;
    std::string rec = c["record"].as<std::string>();
    auto r = parse_record(rec);
    ASSERT_EQ(r.status, ParseStatus::kOk) << rec << ": " << r.error;
    const YAML::Node e = c["expect"];
    int failures = parts();
    const Record& d = r.record;
    if (e["p"]) EXPECT_EQ(d.p, policy_of(e["p"].as<std::string>())) << rec;
    EXPECT_EQ(d.subdomain_policy(), e["sp"] ? policy_of(e["sp"].as<std::string>()) : d.p) << rec;
    EXPECT_EQ(d.adkim == AlignmentMode::kStrict ? "s" : "r", e["adkim"] ? e["adkim"].as<std::string>() : "r") << rec;
    EXPECT_EQ(d.aspf == AlignmentMode::kStrict ? "s" : "r", e["aspf"] ? e["aspf"].as<std::string>() : "r") << rec;
    EXPECT_EQ(d.pct, e["pct"] ? e["pct"].as<unsigned>() : 100u) << rec;
    EXPECT_EQ(d.ri, e["ri"] ? e["ri"].as<uint32_t>() : 86400u) << rec;
    std::vector<std::string> fo{"0"}, rf{"afrf"};
    if (e["fo"]) fo = e["fo"].as<std::vector<std::string>>();
    if (e["rf"]) rf = e["rf"].as<std::vector<std::string>>();
    EXPECT_EQ(d.fo, fo) << rec;
    EXPECT_EQ(d.rf, rf) << rec;
    for (const char* key : {"rua", "ruf"}) {
      const auto& got = std::string(key) == "rua" ? d.rua : d.ruf;
      size_t want = e[key] ? e[key].size() : 0;
      ASSERT_EQ(got.size(), want) << rec << " " << key;
      for (size_t i = 0; i < want; ++i) {
        const YAML::Node u = e[key][i];
        EXPECT_EQ(got[i].uri, u["uri"].as<std::string>()) << rec;
        if (u["max_size"]) {
          ASSERT_TRUE(got[i].max_size.has_value()) << rec;
          EXPECT_EQ(*got[i].max_size, u["max_size"].as<uint64_t>()) << rec;
          EXPECT_EQ(std::string(1, got[i].unit), u["unit"].as<std::string>()) << rec;
        } else {
          EXPECT_FALSE(got[i].max_size.has_value()) << rec;
        }
      }
    }
    if (parts() == failures) ++passed;
  }
  std::printf("mox_record_parse: %d/%d passed\n", passed, total);
  EXPECT_EQ(total, 41);
}

// Stalwart reports mailto addresses without the scheme, percent-decoded and
// without whitespace.
std::string stalwart_address(const std::string& uri) {
  std::string s = uri;
  if (istarts_with(s, "mailto:")) s = s.substr(7);
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  out.erase(std::remove_if(out.begin(), out.end(), [](char c) { return c == ' ' || c == '\t'; }), out.end());
  return out;
}

TEST(DmarcSuite, StalwartRecordParse) {
  YAML::Node suite = load_suite();
  ASSERT_TRUE(suite["stalwart_record_parse"]) << "section stalwart_record_parse missing";
  int passed = 0, total = 0;
  for (const auto& c : suite["stalwart_record_parse"]["valid"]) {
    ++total;
    std::string rec = c["record"].as<std::string>();
    auto r = parse_record(rec);
    ASSERT_EQ(r.status, ParseStatus::kOk) << rec << ": " << r.error;
    const YAML::Node e = c["expect"];
    const Record& d = r.record;
    int before = parts();
    EXPECT_EQ(d.p, policy_of(e["p"].as<std::string>())) << rec;
    EXPECT_EQ(d.subdomain_policy(), policy_of(e["sp"].as<std::string>())) << rec;
    EXPECT_EQ(d.nonexistent_policy(), policy_of(to_lower(e["np"].as<std::string>()))) << rec;
    EXPECT_EQ(d.adkim == AlignmentMode::kStrict ? "s" : "r", e["adkim"].as<std::string>()) << rec;
    EXPECT_EQ(d.aspf == AlignmentMode::kStrict ? "s" : "r", e["aspf"].as<std::string>()) << rec;
    // fo as a set ("d:s" == "s:d").
    std::vector<std::string> want_fo;
    const std::string fo_text = e["fo"].as<std::string>();
    for (auto f : split(fo_text, ':')) want_fo.emplace_back(f);
    std::vector<std::string> got_fo = d.fo;
    std::sort(want_fo.begin(), want_fo.end());
    std::sort(got_fo.begin(), got_fo.end());
    EXPECT_EQ(got_fo, want_fo) << rec;
    for (const char* key : {"rua", "ruf"}) {
      const auto& got = std::string(key) == "rua" ? d.rua : d.ruf;
      ASSERT_EQ(got.size(), e[key].size()) << rec << " " << key;
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(stalwart_address(got[i].uri), e[key][i][0].as<std::string>()) << rec;
        EXPECT_EQ(got[i].max_bytes(), e[key][i][1].as<uint64_t>()) << rec;
      }
    }
    std::string psd = e["psd"].as<std::string>();
    EXPECT_EQ(d.psd.has_value() ? (*d.psd ? "yes" : "no") : "default", psd) << rec;
    EXPECT_EQ(d.testing, e["t"].as<bool>()) << rec;
    if (parts() == before) ++passed;
  }
  std::printf("stalwart_record_parse: %d/%d passed\n", passed, total);
  EXPECT_EQ(total, 6);
}

// ---- Suite: discovery and evaluation ----------------------------------

// Loads a section's dns_txt map (names may end with '.') and dns_fail list
// ("TXT name.") into a FakeResolver.
void load_dns(const YAML::Node& sec, dns::FakeResolver& resolver) {
  if (sec["dns_txt"]) {
    for (const auto& kv : sec["dns_txt"]) {
      std::string name = kv.first.as<std::string>();
      if (kv.second.IsSequence()) {
        for (const auto& t : kv.second) resolver.add_txt(name, t.as<std::string>());
      } else {
        resolver.add_txt(name, kv.second.as<std::string>());
      }
    }
  }
  if (sec["dns_fail"]) {
    for (const auto& f : sec["dns_fail"]) {
      std::string spec = f.as<std::string>();
      auto sp = spec.find(' ');
      ASSERT_NE(sp, std::string::npos) << spec;
      ASSERT_EQ(spec.substr(0, sp), "TXT") << spec;
      resolver.set_rcode(spec.substr(sp + 1), dns::Rcode::kServFail, dns::RrType::kTxt);
    }
  }
}

TEST(DmarcSuite, MoxLookup) {
  YAML::Node suite = load_suite();
  ASSERT_TRUE(suite["mox_lookup"]) << "section mox_lookup missing";
  const YAML::Node sec = suite["mox_lookup"];
  dns::FakeResolver resolver;
  load_dns(sec, resolver);
  int passed = 0, total = 0;
  for (const auto& c : sec["cases"]) {
    ++total;
    std::string from = c["from_domain"].as<std::string>();
    DmarcResult r = run_sync(discover(resolver, from));
    std::string want = c["status"].as<std::string>();
    // mox's lookup "none" means "no error": a record may or may not be found.
    std::string got = r.status == Status::kPass ? "none" : status_name(r.status);
    EXPECT_EQ(got, want) << from << ": " << r.error;
    EXPECT_EQ(r.record_domain, c["record_domain"].as<std::string>()) << from;
    bool want_record = static_cast<bool>(c["record"]);
    EXPECT_EQ(r.record_found, want_record) << from << ": " << r.error;
    if (got == want && r.record_domain == c["record_domain"].as<std::string>() && r.record_found == want_record)
      ++passed;
  }
  std::printf("mox_lookup: %d/%d passed\n", passed, total);
  EXPECT_EQ(total, 7);
}

MechanismResult mech(const std::string& s) {
  std::string w = s.substr(0, s.find(' '));  // "fail (signature expired)" -> fail
  if (w == "pass") return MechanismResult::kPass;
  if (w == "fail") return MechanismResult::kFail;
  if (w == "softfail") return MechanismResult::kSoftFail;
  if (w == "neutral") return MechanismResult::kNeutral;
  if (w == "temperror") return MechanismResult::kTempError;
  if (w == "permerror") return MechanismResult::kPermError;
  return MechanismResult::kNone;
}

TEST(DmarcSuite, MoxVerify) {
  YAML::Node suite = load_suite();
  ASSERT_TRUE(suite["mox_verify"]) << "section mox_verify missing";
  const YAML::Node sec = suite["mox_verify"];
  dns::FakeResolver resolver;
  load_dns(sec, resolver);
  Options opts;
  opts.random_percent = [] { return 50u; };
  int passed = 0, total = 0;
  for (const auto& c : sec["cases"]) {
    ++total;
    std::string name = c["name"].as<std::string>();
    DmarcInput in;
    in.from_domains = {c["from"].as<std::string>()};
    for (const auto& d : c["dkim"]) in.dkim.push_back({d["d"].as<std::string>(), mech(d["result"].as<std::string>())});
    in.spf = mech(c["spf"]["result"].as<std::string>());
    if (c["spf"]["domain"]) in.spf_domain = c["spf"]["domain"].as<std::string>();
    DmarcResult r = run_sync(evaluate(resolver, in, opts));
    const YAML::Node e = c["expect"];
    int before = parts();
    EXPECT_EQ(r.use_result(), e["use_result"].as<bool>()) << name;
    EXPECT_EQ(r.reject(), e["reject"].as<bool>()) << name;
    EXPECT_EQ(status_name(r.status), e["status"].as<std::string>()) << name << ": " << r.error;
    EXPECT_EQ(r.spf_aligned, e["spf_aligned"].as<bool>()) << name;
    EXPECT_EQ(r.dkim_aligned, e["dkim_aligned"].as<bool>()) << name;
    EXPECT_EQ(r.record_domain, e["record_domain"].as<std::string>()) << name;
    if (parts() == before) ++passed;
  }
  std::printf("mox_verify: %d/%d passed\n", passed, total);
  EXPECT_EQ(total, 15);
}

// Stalwart's maps: "_dmarc.example.org." -> TXT; "A name." -> address.
void load_stalwart_dns(const YAML::Node& dnsmap, dns::FakeResolver& resolver) {
  for (const auto& kv : dnsmap) {
    std::string key = kv.first.as<std::string>();
    if (istarts_with(key, "A ")) {
      ASSERT_TRUE(resolver.add_address(key.substr(2), kv.second.as<std::string>())) << key;
    } else {
      resolver.add_txt(key, kv.second.as<std::string>());
    }
  }
}

TEST(DmarcSuite, StalwartVerify) {
  YAML::Node suite = load_suite();
  ASSERT_TRUE(suite["stalwart_verify"]) << "section stalwart_verify missing";
  const YAML::Node sec = suite["stalwart_verify"];
  int passed = 0, total = 0;
  for (const auto& c : sec["alignment_cases"]) {
    ++total;
    std::string name = c["name"].as<std::string>();
    dns::FakeResolver resolver;
    load_stalwart_dns(c["dns"], resolver);
    std::string msg = c["message"].as<std::string>();
    std::string from = msg.substr(msg.find('@') + 1);
    from = from.substr(0, from.find('\r'));
    DmarcInput in;
    in.from_domains = {from};
    in.spf = mech(c["spf"].as<std::string>());
    in.spf_domain = c["mail_from_domain"].as<std::string>();
    in.dkim.push_back({c["dkim"]["d"].as<std::string>(), mech(c["dkim"]["result"].as<std::string>())});
    DmarcResult r = run_sync(evaluate(resolver, in));
    auto per_mech = [](bool passed_mech, bool al) -> std::string {
      return !passed_mech ? "none" : al ? "pass" : "fail (not aligned)";
    };
    const YAML::Node e = c["expect"];
    int before = parts();
    EXPECT_EQ(per_mech(in.dkim[0].result == MechanismResult::kPass, r.dkim_aligned), e["dkim"].as<std::string>())
        << name;
    EXPECT_EQ(per_mech(in.spf == MechanismResult::kPass, r.spf_aligned), e["spf"].as<std::string>()) << name;
    EXPECT_EQ(policy_name(r.policy), e["policy"].as<std::string>()) << name;
    if (parts() == before) ++passed;
  }
  for (const auto& c : sec["policy_discovery_cases"]) {
    ++total;
    std::string name = c["name"].as<std::string>();
    dns::FakeResolver resolver;
    load_stalwart_dns(c["dns"], resolver);
    std::string from = c["from"].as<std::string>();
    DmarcInput in;
    in.from_domains = {from.substr(from.find('@') + 1)};
    DmarcResult r = run_sync(evaluate(resolver, in));
    int before = parts();
    if (c["expect_policy"].IsNull()) {
      EXPECT_FALSE(r.record_found) << name;
      EXPECT_EQ(r.status, Status::kNone) << name;
    } else {
      EXPECT_TRUE(r.record_found) << name << ": " << r.error;
      EXPECT_EQ(policy_name(r.policy), c["expect_policy"].as<std::string>()) << name;
    }
    if (parts() == before) ++passed;
  }
  std::printf("stalwart_verify: %d/%d passed\n", passed, total);
  EXPECT_EQ(total, 9);
}

// ---- Hand-written evaluation cases ------------------------------------

TEST(DmarcEvaluate, PctSamplingDowngrades) {
  dns::FakeResolver resolver;
  resolver.add_txt("_dmarc.example.com", "v=DMARC1; p=reject; pct=30");
  DmarcInput in;
  in.from_domains = {"example.com"};
  Options low;
  low.random_percent = [] { return 10u; };
  DmarcResult in_sample = run_sync(evaluate(resolver, in, low));
  EXPECT_EQ(in_sample.status, Status::kFail);
  EXPECT_FALSE(in_sample.sampled_out);
  EXPECT_EQ(in_sample.disposition, Policy::kReject);
  Options high;
  high.random_percent = [] { return 30u; };
  DmarcResult out_sample = run_sync(evaluate(resolver, in, high));
  EXPECT_TRUE(out_sample.sampled_out);
  EXPECT_EQ(out_sample.disposition, Policy::kQuarantine);  // §6.6.4
  EXPECT_FALSE(out_sample.use_result());
}

TEST(DmarcEvaluate, MultipleFromDomainsStrictestFailingPolicy) {
  dns::FakeResolver resolver;
  resolver.add_txt("_dmarc.a.example", "v=DMARC1; p=none");
  resolver.add_txt("_dmarc.b.example", "v=DMARC1; p=quarantine");
  resolver.add_txt("_dmarc.c.example", "v=DMARC1; p=reject");
  DmarcInput in;
  in.from_domains = {"a.example", "b.example", "c.example"};
  in.dkim.push_back({"c.example", MechanismResult::kPass});
  DmarcResult r = run_sync(evaluate(resolver, in));
  EXPECT_EQ(r.status, Status::kFail);
  EXPECT_EQ(r.from_domain, "b.example");  // c passes; b is the strictest failure
  EXPECT_EQ(r.policy, Policy::kQuarantine);

  in.from_domains = {};
  EXPECT_EQ(run_sync(evaluate(resolver, in)).status, Status::kPermError);
}

TEST(DmarcEvaluate, DnssecAndBogus) {
  dns::FakeResolver resolver;
  resolver.add_txt("_dmarc.secure.example", "v=DMARC1; p=reject");
  resolver.set_security("_dmarc.secure.example", dns::Security::kSecure);
  resolver.add_txt("_dmarc.bogus.example", "v=DMARC1; p=reject");
  resolver.set_security("_dmarc.bogus.example", dns::Security::kBogus);
  DmarcInput in;
  in.from_domains = {"secure.example"};
  in.spf = MechanismResult::kPass;
  in.spf_domain = "secure.example";
  DmarcResult r = run_sync(evaluate(resolver, in));
  EXPECT_EQ(r.status, Status::kPass);
  EXPECT_TRUE(r.dnssec_secure);
  in.from_domains = {"bogus.example"};
  EXPECT_EQ(run_sync(evaluate(resolver, in)).status, Status::kTempError);
}

TEST(DmarcEvaluate, TreeWalkPsd) {
  dns::FakeResolver resolver;
  resolver.add_txt("_dmarc.gov", "v=DMARC1; p=reject; sp=none; np=reject; psd=y");
  resolver.add_name("example.gov");
  DmarcInput in;
  in.from_domains = {"example.gov"};
  Options opts;
  opts.tree_walk = true;
  DmarcResult r = run_sync(evaluate(resolver, in, opts));
  EXPECT_EQ(r.status, Status::kFail);
  EXPECT_EQ(r.record_domain, "gov");
  EXPECT_EQ(r.policy, Policy::kReject);  // np: example.gov has no A/AAAA/MX
  // Without the tree walk, example.gov is its own Organizational Domain: no record.
  EXPECT_EQ(run_sync(evaluate(resolver, in)).status, Status::kNone);
}

}  // namespace
}  // namespace tern::auth::dmarc
