// End-to-end DMARC test over the "authheaders" section of
// testsuites/dmarc/dmarc-cases.yml: real message files, From extraction
// (mail::Message), DKIM verification (auth/dkim.h) or earlier results, DMARC
// evaluation, and the Authentication-Results field we build, compared with
// the expected field. The parenthesised comments are authheaders' own
// wording (the suite says they are not normative), so comments are removed
// from both sides before comparing; everything else must match exactly.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <filesystem>

#include "auth/auth_results.h"
#include "auth/dkim.h"
#include "auth/dmarc.h"
#include "base/fs.h"
#include "base/strings.h"
#include "dns/fake_resolver.h"
#include "mail/message.h"
#include "test_support.h"

namespace tern::auth::dmarc {
namespace {

using tern::testing::run_sync;
using tern::testing::to_crlf;

const std::string kDir = std::string(TERN_SHARED_DIR) + "/testsuites/dmarc/";

std::string read(const std::string& path) {
  auto r = fs::read_file(path);
  EXPECT_TRUE(r) << path;
  return r ? *r : std::string();
}

// Removes (possibly nested, escaped) comments outside quoted strings and collapses whitespace.
std::string strip_comments(std::string_view s) {
  std::string out;
  int depth = 0;
  bool quoted = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (depth == 0 && c == '"') quoted = !quoted;
    if (!quoted && c == '(') {
      ++depth;
      continue;
    }
    if (!quoted && depth > 0) {
      if (c == '\\') ++i;
      else if (c == ')') --depth;
      continue;
    }
    out += c;
  }
  std::string collapsed;
  bool ws = false;
  for (char c : out) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      ws = true;
      continue;
    }
    if (ws && !collapsed.empty() && c != ';') collapsed += ' ';
    ws = false;
    collapsed += c;
  }
  return collapsed;
}

TEST(DmarcAuthheaders, EndToEnd) {
  std::string suite = kDir + "dmarc-cases.yml";
  ASSERT_TRUE(std::filesystem::exists(suite)) << "DMARC test suite missing: " << suite;
  YAML::Node sec = YAML::LoadFile(suite)["authheaders"];
  ASSERT_TRUE(sec) << "section authheaders missing";

  dns::FakeResolver resolver;
  for (const auto& kv : sec["dns_txt"]) {
    std::string name = kv.first.as<std::string>();
    if (kv.second.IsNull()) continue;  // NXDOMAIN
    std::string v = kv.second.as<std::string>();
    if (v.rfind("(contents of authheaders/test.txt)", 0) == 0) {
      resolver.add_txt(name, std::string(trim(read(kDir + "authheaders/test.txt"))));
    } else if (v.empty()) {
      resolver.add_name(name);  // exists, no TXT
    } else if (istarts_with(name, "_dmarc.") || name.find("_domainkey") != std::string::npos) {
      resolver.add_txt(name, v);
    } else {
      resolver.add_mx(name, 10, v);  // "sub2.example.biz: host.example.biz": the name exists
    }
  }

  int total = 0, passed = 0;
  for (const auto& c : sec["cases"]) {
    ++total;
    std::string name = c["name"].as<std::string>();
    std::string checks = c["checks"].as<std::string>();
    auto msg = mail::Message::parse(to_crlf(read(kDir + "authheaders/" + c["message"].as<std::string>())));
    ASSERT_TRUE(msg) << name;

    AuthResults ar;
    ar.authserv_id = "example.com";
    DmarcInput in;
    if (c["prev"]) {
      std::string prev = c["prev"].as<std::string>();
      auto parsed = parse_auth_results(prev.substr(prev.find(':') + 1));
      ASSERT_TRUE(parsed) << name;
      for (const ParsedResult& pr : parsed->results) {
        ar.results.push_back(pr.result);
        if (pr.result.method != "dkim") continue;
        DkimVerdict v;
        v.result = pr.result.result == "pass" ? MechanismResult::kPass : MechanismResult::kFail;
        for (const auto& p : pr.result.properties) {
          if (p.ptype == "header" && p.property == "d") v.domain = p.value;
        }
        in.dkim.push_back(v);
      }
    }
    if (checks.find("dkim") != std::string::npos) {
      auto results = run_sync(dkim::verify(resolver, *msg));
      for (const dkim::DkimResult& d : results) {
        MethodResult m{"dkim", dkim::outcome_name(d.status)};
        m.prop("header", "d", d.domain).prop("header", "i", d.identity);
        ar.results.push_back(m);
        in.dkim.push_back({d.domain, d.status == dkim::Outcome::kPass ? MechanismResult::kPass : MechanismResult::kFail});
      }
    }
    if (checks.find("dmarc") != std::string::npos) {
      auto from = msg->from_addresses();
      if (from) {
        for (const auto& mb : *from) {
          if (!mb.domain.empty()) in.from_domains.push_back(mb.domain);
        }
      }
      Options opts;
      opts.tree_walk = checks.find("dmarcbis") != std::string::npos;
      opts.random_percent = [] { return 0u; };
      DmarcResult r = run_sync(evaluate(resolver, in, opts));
      ar.results.push_back(to_method_result(r));
    }
    std::string got = "Authentication-Results: " + format_value(ar);
    std::string want = c["expect"].as<std::string>();
    EXPECT_EQ(strip_comments(got), strip_comments(want)) << name << "\n full: " << got;
    if (strip_comments(got) == strip_comments(want)) ++passed;
  }
  std::printf("dmarc authheaders: %d/%d passed\n", passed, total);
  EXPECT_EQ(total, 12);
}

}  // namespace
}  // namespace tern::auth::dmarc
