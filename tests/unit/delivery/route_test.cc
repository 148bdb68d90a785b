// Tests for outbound route selection (delivery/route.h): account, then
// sender-domain, then global routes, first match wins, "direct" by default;
// domain matching (case, subdomain entries) and minimum_attempts, including
// the issue 4 case of switching to a smarthost from the 4th attempt.
#include "delivery/route.h"

#include <gtest/gtest.h>

namespace tern::delivery {
namespace {

Transport smtp(const std::string& name, const std::string& host) {
  Transport t;
  t.name = name;
  t.kind = TransportKind::kSmtp;
  t.host = HostPort::parse(host, 25);
  return t;
}

Route route(std::vector<std::string> from, std::vector<std::string> to, uint32_t minimum_attempts,
            std::string transport) {
  Route r;
  r.from_domain = std::move(from);
  r.to_domain = std::move(to);
  r.minimum_attempts = minimum_attempts;
  r.transport = std::move(transport);
  return r;
}

TEST(Route, DefaultIsDirect) {
  RouteTable empty;
  Transport t = select_transport(empty, "", "example.test", "example.net", 0);
  EXPECT_EQ(t.name, "direct");
  EXPECT_EQ(t.kind, TransportKind::kDirect);
  EXPECT_FALSE(t.host);
}

TEST(Route, SwitchesToSmarthostFromTheFourthAttempt) {
  RouteTable table;
  table.transports = {smtp("relay1", "127.0.0.1:2526")};
  table.global_routes = {route({}, {}, 3, "relay1")};
  // `attempts` counts attempts already made: 0 on the first one.
  for (uint32_t made = 0; made < 3; ++made) {
    EXPECT_EQ(select_transport(table, "", "example.test", "example.net", made).name, "direct") << made;
  }
  Transport fourth = select_transport(table, "", "example.test", "example.net", 3);
  EXPECT_EQ(fourth.name, "relay1");
  EXPECT_EQ(fourth.kind, TransportKind::kSmtp);
  EXPECT_EQ(fourth.host->to_string(), "127.0.0.1:2526");
  EXPECT_EQ(select_transport(table, "", "example.test", "example.net", 9).name, "relay1");
}

TEST(Route, AllGivenFieldsMustMatch) {
  RouteTable table;
  table.transports = {smtp("relay1", "relay.test")};
  table.global_routes = {route({"example.test"}, {"example.net"}, 0, "relay1")};
  EXPECT_EQ(select_transport(table, "", "example.test", "example.net", 0).name, "relay1");
  EXPECT_EQ(select_transport(table, "", "EXAMPLE.test", "Example.NET.", 0).name, "relay1");
  EXPECT_EQ(select_transport(table, "", "other.test", "example.net", 0).name, "direct");
  EXPECT_EQ(select_transport(table, "", "example.test", "example.org", 0).name, "direct");
  EXPECT_EQ(select_transport(table, "", "", "example.net", 0).name, "direct");                  // null sender
  EXPECT_EQ(select_transport(table, "", "example.test", "sub.example.net", 0).name, "direct");  // exact
}

TEST(Route, DomainMatching) {
  EXPECT_TRUE(route_domain_matches("example.net", "EXAMPLE.net"));
  EXPECT_TRUE(route_domain_matches("example.net", "example.net."));
  EXPECT_FALSE(route_domain_matches("example.net", "mx.example.net"));
  EXPECT_TRUE(route_domain_matches(".example.net", "mx.example.net"));
  EXPECT_TRUE(route_domain_matches(".example.net", "a.b.EXAMPLE.NET"));
  EXPECT_FALSE(route_domain_matches(".example.net", "example.net"));
  EXPECT_FALSE(route_domain_matches(".example.net", "badexample.net"));
  EXPECT_FALSE(route_domain_matches("example.net", ""));
  EXPECT_FALSE(route_domain_matches("", "example.net"));
}

TEST(Route, AccountThenDomainThenGlobal) {
  RouteTable table;
  table.transports = {smtp("account-relay", "a.test"), smtp("domain-relay", "d.test"), smtp("global-relay", "g.test")};
  table.account_routes["alice@example.test"] = {route({}, {"example.net"}, 0, "account-relay")};
  table.domain_routes["example.test"] = {route({}, {"example.net", "example.org"}, 0, "domain-relay")};
  table.global_routes = {route({}, {}, 0, "global-relay")};

  EXPECT_EQ(select_transport(table, "alice@example.test", "example.test", "example.net", 0).name, "account-relay");
  EXPECT_EQ(select_transport(table, "Alice@Example.TEST", "example.test", "example.net", 0).name, "account-relay");
  // Alice's own routes do not cover example.org: her domain's do.
  EXPECT_EQ(select_transport(table, "alice@example.test", "example.test", "example.org", 0).name, "domain-relay");
  EXPECT_EQ(select_transport(table, "bob@example.test", "example.test", "example.net", 0).name, "domain-relay");
  // Neither account nor domain routes match: global.
  EXPECT_EQ(select_transport(table, "alice@example.test", "example.test", "example.com", 0).name, "global-relay");
  // Domain routes belong to the sender's domain only.
  EXPECT_EQ(select_transport(table, "", "other.test", "example.net", 0).name, "global-relay");
}

TEST(Route, FirstMatchWinsAndDirectCanBeExplicit) {
  RouteTable table;
  table.transports = {smtp("relay1", "r1.test"), smtp("relay2", "r2.test")};
  table.global_routes = {route({}, {"internal.example"}, 0, "direct"), route({}, {".example"}, 0, "relay1"),
                         route({}, {}, 0, "relay2")};
  EXPECT_EQ(select_transport(table, "", "a.test", "internal.example", 0).name, "direct");
  EXPECT_EQ(select_transport(table, "", "a.test", "x.example", 0).name, "relay1");
  EXPECT_EQ(select_transport(table, "", "a.test", "example.com", 0).name, "relay2");
}

TEST(Route, FailTransportCarriesItsMessage) {
  RouteTable table;
  Transport refuse;
  refuse.name = "refuse";
  refuse.kind = TransportKind::kFail;
  refuse.message = "5.7.1 not allowed";
  table.transports = {refuse};
  table.account_routes["mallory@example.test"] = {route({}, {}, 0, "refuse")};
  Transport t = select_transport(table, "mallory@example.test", "example.test", "example.net", 0);
  EXPECT_EQ(t.kind, TransportKind::kFail);
  EXPECT_EQ(t.message, "5.7.1 not allowed");
  auto reply = config::parse_fail_message(t.message);
  ASSERT_TRUE(reply);
  EXPECT_TRUE(reply->permanent());
}

TEST(Route, UnknownTransportDefersInsteadOfGuessing) {
  RouteTable table;
  table.global_routes = {route({}, {}, 0, "gone")};
  Transport t = select_transport(table, "", "a.test", "b.test", 0);
  EXPECT_EQ(t.kind, TransportKind::kFail);
  auto reply = config::parse_fail_message(t.message);
  ASSERT_TRUE(reply);
  EXPECT_TRUE(reply->transient());
}

TEST(Route, FromConfig) {
  auto cfg = config::load_string(R"(
[[listener]]
role = "mx"
address = "127.0.0.1:25"
[domains]
local = ["example.test"]
[[transport]]
name = "relay1"
kind = "smtp"
host = "127.0.0.1:2526"
[[transport]]
name = "provider"
kind = "submissions"
host = "smtp.provider.test"
auth_user = "u"
auth_password_file = "/etc/tern/p"
[[route]]
to_domain = ["example.net"]
minimum_attempts = 3
transport = "relay1"
[domain."example.test"]
route = [{ to_domain = [".corp.example"], transport = "relay1" }]
[account."alice@example.test"]
route = [{ transport = "provider" }]
)",
                                 "routes.toml");
  ASSERT_TRUE(cfg) << cfg.error().text;
  RouteTable table = RouteTable::from_config(*cfg);
  EXPECT_EQ(select_transport(table, "", "example.test", "example.net", 0).name, "direct");
  EXPECT_EQ(select_transport(table, "", "example.test", "example.net", 3).name, "relay1");
  EXPECT_EQ(select_transport(table, "bob@example.test", "example.test", "hq.corp.example", 0).name, "relay1");
  Transport alice = select_transport(table, "alice@example.test", "example.test", "example.net", 0);
  EXPECT_EQ(alice.name, "provider");
  EXPECT_EQ(alice.kind, TransportKind::kSubmissions);
  EXPECT_EQ(alice.host->port, 465);
  EXPECT_EQ(alice.auth_user, "u");
}

}  // namespace
}  // namespace tern::delivery
