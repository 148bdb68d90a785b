// Tests for the TOML config loader: defaults, the documented keys, and precise
// file:line:key errors for unknown keys and bad values.
#include "config/config.h"

#include <gtest/gtest.h>

namespace tern::config {
namespace {

TEST(Config, EmbeddedDefault) {
  Config c = embedded_default();
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].role, ListenerRole::kMx);
  EXPECT_EQ(c.listeners[0].address.to_string(), "127.0.0.1:2525");
  EXPECT_EQ(c.listeners[1].role, ListenerRole::kSubmission);
  EXPECT_EQ(c.listeners[1].address.port, 2587);
  EXPECT_EQ(c.domains.local, std::vector<std::string>{"localhost"});
  EXPECT_EQ(c.server.data_dir, "./var");
  EXPECT_EQ(c.server.control_socket, "./var/control.sock");
}

TEST(Config, FullExample) {
  auto c = load_string(R"(
[server]
hostname = "mx.example.test"
data_dir = "/var/lib/tern"
user = "tern"
[[listener]]
role = "mx"
address = "0.0.0.0:25"
verify_sender_identity = false
[[listener]]
role = "submissions"
address = "[::1]:465"
[tls]
cert = "/etc/tern/cert.pem"
key = "/etc/tern/key.pem"
[domains]
local = ["Example.TEST"]
[relay]
trusted_networks = ["127.0.0.0/8", "::1"]
[delivery]
lmtp = "unix:/run/dovecot/lmtp"
[aliases]
file = "/etc/tern/aliases"
[accounts]
file = "/etc/tern/accounts"
[queue]
retry_schedule = ["5m", "1h20m"]
max_age = "5d"
[limits]
max_message_size = "10M"
)",
                       "t.toml");
  ASSERT_TRUE(c) << c.error().text;
  EXPECT_EQ(c->server.control_socket, "/var/lib/tern/control.sock");
  EXPECT_EQ(c->listeners[0].verify_sender_identity, "disabled");
  EXPECT_EQ(c->listeners[1].address.host, "::1");
  EXPECT_EQ(c->domains.local[0], "example.test");
  EXPECT_EQ(c->relay.trusted_networks.size(), 2u);
  EXPECT_EQ(c->delivery.lmtp, "unix:/run/dovecot/lmtp");
  EXPECT_TRUE(c->delivery.maildir.empty());
  EXPECT_EQ(c->queue.retry_schedule, (std::vector<uint32_t>{300, 4800}));
  EXPECT_EQ(c->queue.max_age, 5u * 86400);
  EXPECT_EQ(c->limits.max_message_size, 10u * 1024 * 1024);
}

TEST(Config, UnknownKeyNamesFileLineAndKey) {
  auto c = load_string("[server]\nhostname = \"a.test\"\nhostnme = \"x\"\n[[listener]]\nrole=\"mx\"\naddress=\"127.0.0.1:25\"\n",
                       "bad.toml");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().text, "bad.toml:3: server.hostnme: unknown key");
}

TEST(Config, BadValues) {
  auto role = load_string("[[listener]]\nrole = \"mux\"\naddress = \"127.0.0.1:25\"\n", "r.toml");
  ASSERT_FALSE(role);
  EXPECT_EQ(role.error().text, "r.toml:2: listener.role: must be mx, submission or submissions");
  auto addr = load_string("[[listener]]\nrole = \"mx\"\naddress = \"localhost\"\n", "a.toml");
  ASSERT_FALSE(addr);
  EXPECT_NE(addr.error().text.find("a.toml:3: listener.address"), std::string::npos);
  auto cidr = load_string("[[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:25\"\n[relay]\ntrusted_networks = [\"10.0.0.0/40\"]\n",
                          "c.toml");
  ASSERT_FALSE(cidr);
  EXPECT_NE(cidr.error().text.find("c.toml:5: relay.trusted_networks"), std::string::npos);
  auto syntax = load_string("[server\n", "s.toml");
  ASSERT_FALSE(syntax);
  EXPECT_NE(syntax.error().text.find("s.toml:1: syntax error"), std::string::npos);
  auto none = load_string("[server]\nhostname = \"x.test\"\n", "n.toml");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().text.find("listener"), std::string::npos);
  auto smtps = load_string("[[listener]]\nrole = \"submissions\"\naddress = \"127.0.0.1:465\"\n", "t.toml");
  ASSERT_FALSE(smtps);
}

TEST(Config, DnsAndAuth) {
  auto c = load_string(
      "[server]\nhostname = \"mx.a.test\"\n[[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:25\"\n"
      "[dns]\nnameservers = [\"127.0.0.1@5353\", \"::1\"]\ntimeout = \"5s\"\n",
      "d.toml");
  ASSERT_TRUE(c) << c.error().text;
  EXPECT_EQ(c->dns.nameservers, (std::vector<std::string>{"127.0.0.1@5353", "::1"}));
  EXPECT_EQ(c->dns.timeout, 5u);
  EXPECT_EQ(c->auth.authserv_id, "mx.a.test");
  auto bad = load_string("[[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:25\"\n[dns]\nnameservers = [\"x@53\"]\n",
                         "b.toml");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().text, "b.toml:5: dns.nameservers: \"x@53\" is not IP or IP@PORT");
}

TEST(Config, DetailFolder) {
  auto c = load_string("[[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:25\"\n[delivery]\ndetail_folder = true\n",
                       "f.toml");
  ASSERT_TRUE(c) << c.error().text;
  EXPECT_TRUE(c->delivery.detail_folder);
  auto bad = load_string("[[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:25\"\n[delivery]\ndetail_folder = 1\n",
                         "g.toml");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().text, "g.toml:5: delivery.detail_folder: must be true or false");
}

TEST(Config, Durations) {
  EXPECT_EQ(parse_duration("5m"), 300u);
  EXPECT_EQ(parse_duration("1h20m"), 4800u);
  EXPECT_EQ(parse_duration("90"), 90u);
  EXPECT_FALSE(parse_duration("5x"));
  EXPECT_FALSE(parse_duration("m"));
  EXPECT_EQ(parse_size("50M"), 50u * 1024 * 1024);
  EXPECT_FALSE(parse_size("M"));
}

}  // namespace
}  // namespace tern::config
