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

// The listener every test config needs, then the tables under test.
std::string with_listener(const std::string& rest) {
  return "[[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:25\"\n[domains]\nlocal = [\"example.test\"]\n" + rest;
}

std::string load_error(const std::string& rest) {
  auto c = load_string(with_listener(rest), "r.toml");
  if (c) return "(loaded)";
  return c.error().text;
}

TEST(Config, RoutingDefaults) {
  Config c = embedded_default();
  EXPECT_EQ(c.delivery.max_connections, 100u);
  EXPECT_EQ(c.delivery.max_connections_per_destination, 10u);
  EXPECT_EQ(c.queue.delay_warning_after, 4u * 3600);
  EXPECT_TRUE(c.transports.empty());
  EXPECT_TRUE(c.routes.empty());
  ASSERT_NE(c.find_transport("direct"), nullptr);
  EXPECT_EQ(c.find_transport("direct")->kind, TransportKind::kDirect);
  EXPECT_EQ(c.find_transport("relay1"), nullptr);
}

TEST(Config, IssueFourExample) {
  auto c = load_string(with_listener(R"(
[queue]
retry_schedule = ["5m", "10m", "20m", "40m", "1h20m", "2h40m", "5h20m"]
max_age = "5d"
delay_warning_after = "4h"
[delivery]
max_connections = 50
max_connections_per_destination = 10
[[transport]]
name = "relay1"
kind = "smtp"
host = "127.0.0.1:2526"
[[transport]]
name = "sub"
kind = "submission"
host = "smtp.provider.test"
auth_user = "u"
auth_password_file = "/etc/tern/relay1.pass"
[[transport]]
name = "secure"
kind = "submissions"
host = "[2001:db8::1]"
auth_user = "u"
auth_password_file = "/etc/tern/p"
[[transport]]
name = "tor"
kind = "socks5"
host = "127.0.0.1:9050"
[[transport]]
name = "nope"
kind = "fail"
message = "5.7.1 not allowed"
[[transport]]
name = "mx-only"
kind = "direct"
[[route]]
from_domain = ["Example.TEST"]
to_domain = ["example.net", ".Example.ORG"]
minimum_attempts = 3
transport = "relay1"
[[route]]
transport = "direct"
[domain."Example.test"]
route = [{ to_domain = ["example.com"], transport = "sub" },
         { transport = "secure", minimum_attempts = 1 }]
[account."Alice@Example.test"]
route = [{ transport = "nope" }]
[dkim.sign]
"example.test" = [{ selector = "s1", key = "/etc/tern/s1.pem" },
                  { selector = "s2", key = "/etc/tern/s2.pem", algorithm = "ed25519-sha256" }]
)"),
                       "t.toml");
  ASSERT_TRUE(c) << c.error().text;
  EXPECT_EQ(c->queue.delay_warning_after, 4u * 3600);
  EXPECT_EQ(c->delivery.max_connections, 50u);
  EXPECT_EQ(c->delivery.max_connections_per_destination, 10u);
  ASSERT_EQ(c->transports.size(), 6u);
  const Transport* relay = c->find_transport("relay1");
  ASSERT_NE(relay, nullptr);
  EXPECT_EQ(relay->kind, TransportKind::kSmtp);
  EXPECT_EQ(relay->host->to_string(), "127.0.0.1:2526");
  EXPECT_EQ(c->find_transport("sub")->host->port, 587);  // default port per kind
  EXPECT_EQ(c->find_transport("sub")->auth_user, "u");
  EXPECT_EQ(c->find_transport("sub")->auth_password_file, "/etc/tern/relay1.pass");
  EXPECT_EQ(c->find_transport("secure")->host->host, "2001:db8::1");
  EXPECT_EQ(c->find_transport("secure")->host->port, 465);
  EXPECT_EQ(c->find_transport("tor")->kind, TransportKind::kSocks5);
  EXPECT_EQ(c->find_transport("nope")->message, "5.7.1 not allowed");
  EXPECT_EQ(c->find_transport("mx-only")->kind, TransportKind::kDirect);
  EXPECT_FALSE(c->find_transport("mx-only")->host);

  ASSERT_EQ(c->routes.size(), 2u);
  EXPECT_EQ(c->routes[0].from_domain, std::vector<std::string>{"example.test"});
  EXPECT_EQ(c->routes[0].to_domain, (std::vector<std::string>{"example.net", ".example.org"}));
  EXPECT_EQ(c->routes[0].minimum_attempts, 3u);
  EXPECT_EQ(c->routes[0].transport, "relay1");
  EXPECT_EQ(c->routes[1].transport, "direct");
  EXPECT_TRUE(c->routes[1].to_domain.empty());

  ASSERT_EQ(c->domain.count("example.test"), 1u);
  const auto& domain_routes = c->domain.at("example.test").routes;
  ASSERT_EQ(domain_routes.size(), 2u);
  EXPECT_EQ(domain_routes[0].transport, "sub");
  EXPECT_EQ(domain_routes[1].minimum_attempts, 1u);
  ASSERT_EQ(c->account.count("alice@example.test"), 1u);
  EXPECT_EQ(c->account.at("alice@example.test").routes[0].transport, "nope");

  ASSERT_EQ(c->dkim.sign.count("example.test"), 1u);
  const auto& keys = c->dkim.sign.at("example.test");
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].selector, "s1");
  EXPECT_EQ(keys[0].key, "/etc/tern/s1.pem");
  EXPECT_EQ(keys[0].algorithm, "");  // inferred from the key when it is loaded
  EXPECT_EQ(keys[1].algorithm, "ed25519-sha256");
}

TEST(Config, RouteToUnknownTransportNamesFileLineAndKey) {
  EXPECT_EQ(load_error("[[route]]\nto_domain = [\"example.net\"]\ntransport = \"relay2\"\n"),
            "r.toml:8: route.transport: unknown transport \"relay2\" (define it with [[transport]])");
  EXPECT_EQ(load_error("[domain.\"example.test\"]\nroute = [{ transport = \"x\" }]\n"),
            "r.toml:7: domain.\"example.test\".route.transport: unknown transport \"x\" (define it with "
            "[[transport]])");
  EXPECT_EQ(load_error("[account.\"bob@example.test\"]\nroute = [{ transport = \"x\" }]\n"),
            "r.toml:7: account.\"bob@example.test\".route.transport: unknown transport \"x\" (define it with "
            "[[transport]])");
  EXPECT_EQ(load_error("[[route]]\nto_domain = [\"example.net\"]\n"), "r.toml:6: route.transport: missing");
  EXPECT_EQ(load_error("[[route]]\ntransport = \"direct\"\nto_domians = [\"a.test\"]\n"),
            "r.toml:8: route.to_domians: unknown key");
  EXPECT_EQ(load_error("[[route]]\ntransport = \"direct\"\nto_domain = [\"a..test\"]\n"),
            "r.toml:8: route.to_domain: \"a..test\" is not a domain or \".domain\" (subdomains)");
  EXPECT_EQ(load_error("[[route]]\ntransport = \"direct\"\nminimum_attempts = -1\n"),
            "r.toml:8: route.minimum_attempts: must be between 0 and 10000");
}

TEST(Config, TransportValidation) {
  EXPECT_EQ(load_error("[[transport]]\nname = \"r\"\nkind = \"smtp\"\n"),
            "r.toml:6: transport.host: missing (a smtp transport needs host)");
  EXPECT_EQ(load_error("[[transport]]\nname = \"r\"\nkind = \"socks5\"\n"),
            "r.toml:6: transport.host: missing (a socks5 transport needs host)");
  EXPECT_EQ(load_error("[[transport]]\nname = \"r\"\nkind = \"submission\"\nhost = \"a.test\"\n"),
            "r.toml:6: transport.auth_user: missing (a submission transport needs auth_user and auth_password_file)");
  EXPECT_EQ(
      load_error("[[transport]]\nname = \"r\"\nkind = \"submissions\"\nhost = \"a.test\"\nauth_user = \"u\"\n"),
      "r.toml:6: transport.auth_password_file: missing (a submissions transport needs auth_user and "
      "auth_password_file)");
  EXPECT_EQ(load_error("[[transport]]\nname = \"r\"\nkind = \"fail\"\n"),
            "r.toml:6: transport.message: missing (a fail transport needs the reply, e.g. \"5.7.1 not allowed\")");
  EXPECT_EQ(load_error("[[transport]]\nname = \"r\"\nkind = \"fail\"\nmessage = \"not allowed\"\n"),
            "r.toml:9: transport.message: must start with a 4.x.x or 5.x.x enhanced status code, e.g. \"5.7.1 not "
            "allowed\"");
  EXPECT_EQ(load_error("[[transport]]\nname = \"r\"\nkind = \"fail\"\nmessage = \"2.0.0 ok\"\n").substr(0, 27),
            "r.toml:9: transport.message");
  EXPECT_EQ(load_error("[[transport]]\nname = \"r\"\nkind = \"direct\"\nhost = \"a.test\"\n"),
            "r.toml:9: transport.host: not used by a direct transport");
  EXPECT_EQ(load_error("[[transport]]\nname = \"r\"\nkind = \"smtp\"\nhost = \"a.test\"\nmessage = \"5.7.1 x\"\n"),
            "r.toml:10: transport.message: not used by a smtp transport");
  EXPECT_EQ(load_error("[[transport]]\nname = \"r\"\nkind = \"smtp\"\nhost = \"a.test:99999\"\n").substr(0, 24),
            "r.toml:9: transport.host");
  EXPECT_EQ(load_error("[[transport]]\nname = \"r\"\nkind = \"carrier-pigeon\"\n"),
            "r.toml:8: transport.kind: must be direct, smtp, submission, submissions, socks5 or fail");
  EXPECT_EQ(load_error("[[transport]]\nname = \"direct\"\nkind = \"smtp\"\nhost = \"a.test\"\n"),
            "r.toml:7: transport.name: \"direct\" is reserved (it always exists)");
  EXPECT_EQ(load_error("[[transport]]\nname = \"r\"\nkind = \"direct\"\n[[transport]]\nname = \"r\"\nkind = \"fail\"\n"
                       "message = \"5.7.1 no\"\n"),
            "r.toml:10: transport.name: duplicate transport \"r\"");
  EXPECT_EQ(load_error("[[transport]]\nname = \"r\"\nkind = \"smtp\"\nhost = \"a.test\"\nport = 25\n"),
            "r.toml:10: transport.port: unknown key");
  // Optional SASL on a smarthost, but both keys or neither.
  EXPECT_EQ(load_error("[[transport]]\nname = \"r\"\nkind = \"smtp\"\nhost = \"a.test\"\nauth_user = \"u\"\n"),
            "r.toml:6: transport.auth_password_file: auth_user and auth_password_file must be set together");
  EXPECT_EQ(load_error("[[transport]]\nname = \"r\"\nkind = \"smtp\"\nhost = \"a.test\"\nauth_user = \"u\"\n"
                       "auth_password_file = \"/p\"\n"),
            "(loaded)");
}

TEST(Config, DomainAccountAndDkimValidation) {
  EXPECT_EQ(load_error("[domain.\"other.test\"]\nroute = []\n"),
            "r.toml:6: domain.\"other.test\": not a local domain (see domains.local)");
  EXPECT_EQ(load_error("[domain.\"example.test\"]\nroutes = []\n"),
            "r.toml:7: domain.\"example.test\".routes: unknown key");
  EXPECT_EQ(load_error("[domain.\"example.test\"]\nroute = [\"direct\"]\n"),
            "r.toml:7: domain.\"example.test\".route: must be a table such as { to_domain = [...], transport = "
            "\"...\" }");
  EXPECT_EQ(load_error("[account.\"alice\"]\nroute = []\n"),
            "r.toml:6: account.\"alice\": not an address such as \"alice@example.test\"");
  EXPECT_EQ(load_error("[dkim.sign]\n\"other.test\" = [{ selector = \"s\", key = \"/k\" }]\n"),
            "r.toml:7: dkim.sign.\"other.test\": not a local domain (see domains.local)");
  EXPECT_EQ(load_error("[dkim.sign]\n\"example.test\" = [{ key = \"/k\" }]\n"),
            "r.toml:7: dkim.sign.\"example.test\".selector: missing");
  EXPECT_EQ(load_error("[dkim.sign]\n\"example.test\" = [{ selector = \"s\", key = \"/k\", "
                       "algorithm = \"rsa-sha1\" }]\n"),
            "r.toml:7: dkim.sign.\"example.test\".algorithm: must be rsa-sha256 or ed25519-sha256");
  EXPECT_EQ(load_error("[dkim.sign]\n\"example.test\" = [{ selector = \"s\", key = \"/k\", bits = 2048 }]\n"),
            "r.toml:7: dkim.sign.\"example.test\".bits: unknown key");
  EXPECT_EQ(load_error("[dkim.sign]\n\"example.test\" = [{ selector = \"s\", key = \"/k\" }, "
                       "{ selector = \"S\", key = \"/k2\" }]\n"),
            "r.toml:7: dkim.sign.\"example.test\".selector: duplicate selector");
  EXPECT_EQ(load_error("[dkim]\nverify = true\n"), "r.toml:7: dkim.verify: unknown key");
}

TEST(Config, DeliveryAndQueueLimits) {
  EXPECT_EQ(load_error("[delivery]\nmax_connections = 5\nmax_connections_per_destination = 6\n"),
            "r.toml:8: delivery.max_connections_per_destination: must not exceed delivery.max_connections (5)");
  EXPECT_EQ(load_error("[delivery]\nmax_connections = 0\n"), "r.toml:7: delivery.max_connections: must be between 1 "
                                                               "and 100000");
  EXPECT_EQ(load_error("[queue]\ndelay_warning_after = \"soon\"\n").substr(0, 35),
            "r.toml:7: queue.delay_warning_after");
  auto never = load_string(with_listener("[queue]\ndelay_warning_after = 0\n"), "q.toml");
  ASSERT_TRUE(never) << never.error().text;
  EXPECT_EQ(never->queue.delay_warning_after, 0u);
}

TEST(Config, RemoteWorkers) {
  EXPECT_EQ(embedded_default().delivery.remote_workers, 16u);
  auto set = load_string(with_listener("[delivery]\nremote_workers = 40\n"), "w.toml");
  ASSERT_TRUE(set) << set.error().text;
  EXPECT_EQ(set->delivery.remote_workers, 40u);
  // The default never exceeds max_connections; an explicit value must not.
  auto small =
      load_string(with_listener("[delivery]\nmax_connections = 5\nmax_connections_per_destination = 2\n"), "w.toml");
  ASSERT_TRUE(small) << small.error().text;
  EXPECT_EQ(small->delivery.remote_workers, 5u);
  EXPECT_EQ(load_error("[delivery]\nmax_connections = 8\nmax_connections_per_destination = 2\nremote_workers = 9\n"),
            "r.toml:9: delivery.remote_workers: must not exceed delivery.max_connections (8)");
  EXPECT_EQ(load_error("[delivery]\nremote_workers = 0\n"),
            "r.toml:7: delivery.remote_workers: must be between 1 and 1024");
  EXPECT_EQ(load_error("[delivery]\nremote_workers = 2000\n"),
            "r.toml:7: delivery.remote_workers: must be between 1 and 1024");
  EXPECT_EQ(load_error("[delivery]\nremote_workers = \"4\"\n"),
            "r.toml:7: delivery.remote_workers: must be an integer");
}

TEST(Config, SmtpClientTimeouts) {
  Config d = embedded_default();
  EXPECT_EQ(d.delivery.connect_timeout, 30u);
  EXPECT_EQ(d.delivery.helo_timeout, 300u);
  EXPECT_EQ(d.delivery.command_timeout, 300u);
  EXPECT_EQ(d.delivery.data_timeout, 180u);
  EXPECT_EQ(d.delivery.data_done_timeout, 600u);
  // Plain integers are seconds; strings use the duration syntax of [queue].
  auto c = load_string(with_listener("[delivery]\nconnect_timeout = 10\nhelo_timeout = \"2m\"\n"
                                     "command_timeout = \"1m30s\"\ndata_timeout = \"90\"\n"
                                     "data_done_timeout = \"1h\"\n"),
                       "t.toml");
  ASSERT_TRUE(c) << c.error().text;
  EXPECT_EQ(c->delivery.connect_timeout, 10u);
  EXPECT_EQ(c->delivery.helo_timeout, 120u);
  EXPECT_EQ(c->delivery.command_timeout, 90u);
  EXPECT_EQ(c->delivery.data_timeout, 90u);
  EXPECT_EQ(c->delivery.data_done_timeout, 3600u);
  EXPECT_EQ(load_error("[delivery]\ndata_done_timeout = 0\n"),
            "r.toml:7: delivery.data_done_timeout: must be between 1s and 1h");
  EXPECT_EQ(load_error("[delivery]\nconnect_timeout = \"2h\"\n"),
            "r.toml:7: delivery.connect_timeout: must be between 1s and 1h");
  EXPECT_EQ(load_error("[delivery]\ncommand_timeout = \"soon\"\n"),
            "r.toml:7: delivery.command_timeout: must be a duration such as \"30s\", \"5m\", \"1h20m\" or \"5d\"");
  EXPECT_EQ(load_error("[delivery]\nhelo_timeout = -5\n").substr(0, 32), "r.toml:7: delivery.helo_timeout:");
  EXPECT_EQ(load_error("[delivery]\ndata_timeot = 5\n"), "r.toml:7: delivery.data_timeot: unknown key");
}

TEST(Config, TransportTlsVerification) {
  auto c = load_string(with_listener(R"(
[[transport]]
name = "hub"
kind = "smtp"
host = "relay.example.test"
[[transport]]
name = "hub-verified"
kind = "smtp"
host = "relay.example.test"
tls_verify = true
tls_ca_file = "/etc/tern/private-ca.pem"
[[transport]]
name = "isp"
kind = "submission"
host = "smtp.isp.test"
auth_user = "u"
auth_password_file = "/p"
[[transport]]
name = "isp-tls"
kind = "submissions"
host = "smtp.isp.test"
auth_user = "u"
auth_password_file = "/p"
tls_ca_file = "/ca.pem"
[[transport]]
name = "lab"
kind = "submission"
host = "lab.test"
auth_user = "u"
auth_password_file = "/p"
tls_verify = false
)"),
                       "t.toml");
  ASSERT_TRUE(c) << c.error().text;
  // Opportunistic for a plain smarthost, verified where credentials are sent.
  EXPECT_FALSE(c->find_transport("hub")->tls_verify);
  EXPECT_TRUE(c->find_transport("hub-verified")->tls_verify);
  EXPECT_EQ(c->find_transport("hub-verified")->tls_ca_file, "/etc/tern/private-ca.pem");
  EXPECT_TRUE(c->find_transport("isp")->tls_verify);
  EXPECT_TRUE(c->find_transport("isp")->tls_ca_file.empty());
  EXPECT_TRUE(c->find_transport("isp-tls")->tls_verify);
  EXPECT_EQ(c->find_transport("isp-tls")->tls_ca_file, "/ca.pem");
  EXPECT_FALSE(c->find_transport("lab")->tls_verify);
  EXPECT_FALSE(c->find_transport("direct")->tls_verify);

  EXPECT_EQ(load_error("[[transport]]\nname = \"r\"\nkind = \"smtp\"\nhost = \"a.test\"\ntls_ca_file = \"/ca.pem\"\n"),
            "r.toml:10: transport.tls_ca_file: only used with tls_verify = true");
  EXPECT_EQ(load_error("[[transport]]\nname = \"r\"\nkind = \"socks5\"\nhost = \"a.test\"\ntls_verify = true\n"),
            "r.toml:10: transport.tls_verify: not used by a socks5 transport");
  EXPECT_EQ(load_error("[[transport]]\nname = \"r\"\nkind = \"direct\"\ntls_ca_file = \"/ca.pem\"\n"),
            "r.toml:9: transport.tls_ca_file: not used by a direct transport");
  EXPECT_EQ(load_error("[[transport]]\nname = \"r\"\nkind = \"smtp\"\nhost = \"a.test\"\ntls_verify = \"yes\"\n"),
            "r.toml:10: transport.tls_verify: must be true or false");
  EXPECT_EQ(load_error("[[transport]]\nname = \"r\"\nkind = \"smtp\"\nhost = \"a.test\"\ntls_verify = true\n"
                       "tls_ca_file = \"\"\n"),
            "r.toml:11: transport.tls_ca_file: must not be empty");
}

TEST(Config, FailMessage) {
  auto perm = parse_fail_message("5.7.1 not allowed");
  ASSERT_TRUE(perm);
  EXPECT_EQ(perm->code, 550);
  EXPECT_EQ(perm->enhanced, "5.7.1");
  EXPECT_EQ(perm->text, "not allowed");
  auto temp = parse_fail_message("4.4.1");
  ASSERT_TRUE(temp);
  EXPECT_TRUE(temp->transient());
  EXPECT_EQ(temp->enhanced, "4.4.1");
  EXPECT_FALSE(parse_fail_message("550 5.7.1 no"));
  EXPECT_FALSE(parse_fail_message("5.7.1234 no"));
  EXPECT_FALSE(parse_fail_message("5.7 no"));
  EXPECT_FALSE(parse_fail_message(""));
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

TEST(Config, PolicyIdentityKeysAndForwarders) {
  const std::string base =
      "[[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:25\"\n[domains]\nlocal = [\"example.test\"]\n";
  auto defaults = load_string(base, "d.toml");
  ASSERT_TRUE(defaults) << defaults.error().text;
  EXPECT_EQ(defaults->policy.spf_fail, "reject");
  EXPECT_EQ(defaults->policy.dmarc_reject, "reject");
  EXPECT_EQ(defaults->policy.dmarc_quarantine, "quarantine");
  EXPECT_TRUE(defaults->policy.arc_trusted_sealers.empty());
  EXPECT_TRUE(defaults->forwarders.empty());
  EXPECT_EQ(defaults->listeners[0].verify_sender_identity, "strict");

  auto c = load_string(base + R"([policy]
spf_fail = "tag"
dmarc_reject = "quarantine"
dmarc_quarantine = "tag"
arc_trusted_sealers = ["Lists.Example.org"]
[forwarders]
"Alice@example.test" = ["External.org"]
"@example.test" = ["a.test", "b.test"]
)",
                       "p.toml");
  ASSERT_TRUE(c) << c.error().text;
  EXPECT_EQ(c->policy.spf_fail, "tag");
  EXPECT_EQ(c->policy.dmarc_reject, "quarantine");
  EXPECT_EQ(c->policy.dmarc_quarantine, "tag");
  EXPECT_EQ(c->policy.arc_trusted_sealers, std::vector<std::string>{"lists.example.org"});
  ASSERT_EQ(c->forwarders.size(), 2u);
  EXPECT_EQ(c->forwarders.at("alice@example.test"), std::vector<std::string>{"external.org"});
  EXPECT_EQ(c->forwarders.at("@example.test").size(), 2u);

  auto bad_value = load_string(base + "[policy]\nspf_fail = \"drop\"\n", "b.toml");
  ASSERT_FALSE(bad_value);
  EXPECT_NE(bad_value.error().text.find("b.toml:7: policy.spf_fail: must be one of reject, tag"), std::string::npos)
      << bad_value.error().text;
  auto bad_key = load_string(base + "[forwarders]\n\"alice\" = [\"x.test\"]\n", "k.toml");
  ASSERT_FALSE(bad_key);
  EXPECT_NE(bad_key.error().text.find("forwarders.\"alice\""), std::string::npos);
  auto not_local = load_string(base + "[forwarders]\n\"@other.test\" = [\"x.test\"]\n", "n.toml");
  ASSERT_FALSE(not_local);
  EXPECT_NE(not_local.error().text.find("not a local domain"), std::string::npos);
  auto unknown = load_string(base + "[policy]\nspf_fial = \"tag\"\n", "u.toml");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().text.find("policy.spf_fial: unknown key"), std::string::npos);
}

TEST(Config, PolicyAntiAbuseKeys) {
  const std::string base =
      "[[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:25\"\n[domains]\nlocal = [\"example.test\"]\n";
  auto defaults = load_string(base, "d.toml");
  ASSERT_TRUE(defaults) << defaults.error().text;
  const auto& d = defaults->policy;
  EXPECT_TRUE(d.require_helo);
  EXPECT_FALSE(d.reject_non_fqdn_helo);
  EXPECT_FALSE(d.reject_non_fqdn_sender);
  EXPECT_TRUE(d.reject_unknown_sender_domain);
  EXPECT_TRUE(d.sender_access.empty());
  EXPECT_TRUE(d.dnsbl.empty());
  EXPECT_FALSE(d.greylist.enabled);
  EXPECT_EQ(d.greylist.delay, 300u);
  EXPECT_EQ(d.rate_limit.connections_per_minute_per_ip, 0u);

  auto c = load_string(base + R"([policy]
require_helo = false
reject_non_fqdn_helo = true
reject_non_fqdn_sender = true
reject_unknown_sender_domain = false
sender_access = "/etc/tern/sender_access"
recipient_access = "/etc/tern/recipient_access"
dnsbl = ["Zen.DNSBL.test.", "v6.dnsbl.test"]
greylist = { enabled = true, delay = "5m", expire = "35d", pass_after = 3 }
rate_limit = { connections_per_minute_per_ip = 60, messages_per_hour_per_ip = 600 }
)",
                       "p.toml");
  ASSERT_TRUE(c) << c.error().text;
  const auto& p = c->policy;
  EXPECT_FALSE(p.require_helo);
  EXPECT_TRUE(p.reject_non_fqdn_helo);
  EXPECT_TRUE(p.reject_non_fqdn_sender);
  EXPECT_FALSE(p.reject_unknown_sender_domain);
  EXPECT_EQ(p.sender_access, "/etc/tern/sender_access");
  EXPECT_EQ(p.recipient_access, "/etc/tern/recipient_access");
  EXPECT_EQ(p.dnsbl, (std::vector<std::string>{"zen.dnsbl.test", "v6.dnsbl.test"}));
  EXPECT_TRUE(p.greylist.enabled);
  EXPECT_EQ(p.greylist.delay, 300u);
  EXPECT_EQ(p.greylist.expire, 35u * 24 * 3600);
  EXPECT_EQ(p.greylist.pass_after, 3u);
  EXPECT_EQ(p.rate_limit.connections_per_minute_per_ip, 60u);
  EXPECT_EQ(p.rate_limit.messages_per_hour_per_ip, 600u);

  auto bad_zone = load_string(base + "[policy]\ndnsbl = [\"not a zone\"]\n", "z.toml");
  ASSERT_FALSE(bad_zone);
  EXPECT_NE(bad_zone.error().text.find("z.toml:7: policy.dnsbl"), std::string::npos) << bad_zone.error().text;
  auto bad_greylist = load_string(base + "[policy]\ngreylist = { enabled = true, delai = \"5m\" }\n", "g.toml");
  ASSERT_FALSE(bad_greylist);
  EXPECT_NE(bad_greylist.error().text.find("policy.greylist.delai: unknown key"), std::string::npos)
      << bad_greylist.error().text;
  auto bad_rate = load_string(base + "[policy]\nrate_limit = { connections_per_minute_per_ip = -1 }\n", "r.toml");
  ASSERT_FALSE(bad_rate);
  EXPECT_NE(bad_rate.error().text.find("policy.rate_limit.connections_per_minute_per_ip"), std::string::npos);
  auto bad_bool = load_string(base + "[policy]\nrequire_helo = \"yes\"\n", "b.toml");
  ASSERT_FALSE(bad_bool);
}

}  // namespace
}  // namespace tern::config
