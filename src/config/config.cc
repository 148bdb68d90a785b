// TOML configuration loader (see config.h). Walks the parsed document with an
// explicit schema: every table's keys are checked against the keys we know, so
// a misspelt key is an error naming file:line, never silently ignored.
#include "config/config.h"

#include <unistd.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "base/fs.h"
#include "base/strings.h"

namespace tern::config {
namespace {

// Error raised while walking the document; converted to a Result at the top.
struct ConfigError {
  std::string message;
};

class Walker {
 public:
  explicit Walker(std::string origin) : origin_(std::move(origin)) {}

  [[noreturn]] void fail(const toml::node* node, std::string_view key, std::string_view problem) const {
    std::ostringstream out;
    out << origin_;
    if (node != nullptr && node->source().begin.line > 0) out << ":" << node->source().begin.line;
    out << ": " << key << ": " << problem;
    throw ConfigError{out.str()};
  }

  void check_keys(const toml::table& table, std::string_view prefix, const std::set<std::string>& known) const {
    for (const auto& [k, v] : table) {
      if (!known.count(std::string(k.str()))) {
        fail(&v, join(prefix, k.str()), "unknown key");
      }
    }
  }

  static std::string join(std::string_view prefix, std::string_view key) {
    if (prefix.empty()) return std::string(key);
    return std::string(prefix) + "." + std::string(key);
  }

  const toml::table* table(const toml::table& parent, std::string_view key, std::string_view prefix) const {
    const toml::node* n = parent.get(key);
    if (n == nullptr) return nullptr;
    if (!n->is_table()) fail(n, join(prefix, key), "must be a table");
    return n->as_table();
  }

  std::optional<std::string> string(const toml::table& t, std::string_view key, std::string_view prefix) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    if (!n->is_string()) fail(n, join(prefix, key), "must be a string");
    return n->as_string()->get();
  }

  std::optional<bool> boolean(const toml::table& t, std::string_view key, std::string_view prefix) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    if (!n->is_boolean()) fail(n, join(prefix, key), "must be true or false");
    return n->as_boolean()->get();
  }

  std::optional<uint64_t> integer(const toml::table& t, std::string_view key, std::string_view prefix,
                                  uint64_t min, uint64_t max) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    if (!n->is_integer()) fail(n, join(prefix, key), "must be an integer");
    int64_t v = n->as_integer()->get();
    if (v < 0 || static_cast<uint64_t>(v) < min || static_cast<uint64_t>(v) > max) {
      fail(n, join(prefix, key), "must be between " + std::to_string(min) + " and " + std::to_string(max));
    }
    return static_cast<uint64_t>(v);
  }

  // A duration: a string like "5m" / "1h20m" or an integer number of seconds.
  std::optional<uint64_t> duration(const toml::table& t, std::string_view key, std::string_view prefix) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    return duration_node(*n, join(prefix, key));
  }

  uint64_t duration_node(const toml::node& n, const std::string& key) const {
    if (n.is_integer() && n.as_integer()->get() >= 0) return static_cast<uint64_t>(n.as_integer()->get());
    if (n.is_string()) {
      if (auto d = parse_duration(n.as_string()->get())) return *d;
    }
    fail(&n, key, "must be a duration such as \"30s\", \"5m\", \"1h20m\" or \"5d\"");
  }

  std::optional<uint64_t> size(const toml::table& t, std::string_view key, std::string_view prefix) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    if (n->is_integer() && n->as_integer()->get() > 0) return static_cast<uint64_t>(n->as_integer()->get());
    if (n->is_string()) {
      if (auto s = parse_size(n->as_string()->get()); s && *s > 0) return *s;
    }
    fail(n, join(prefix, key), "must be a size such as 52428800, \"50M\" or \"1G\"");
  }

  std::vector<std::pair<std::string, const toml::node*>> strings(const toml::table& t, std::string_view key,
                                                                 std::string_view prefix) const {
    std::vector<std::pair<std::string, const toml::node*>> out;
    const toml::node* n = t.get(key);
    if (n == nullptr) return out;
    if (!n->is_array()) fail(n, join(prefix, key), "must be an array of strings");
    for (const auto& e : *n->as_array()) {
      if (!e.is_string()) fail(&e, join(prefix, key), "must be an array of strings");
      out.emplace_back(e.as_string()->get(), &e);
    }
    return out;
  }

 private:
  std::string origin_;
};

std::string default_hostname() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == 0) return "localhost";
  return buf;
}

bool valid_hostname(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  for (auto label : split(h, '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok) return false;
    }
  }
  return true;
}

bool valid_transport_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.';
    if (!ok) return false;
  }
  return true;
}

// A DKIM selector is one or more sub-domain labels (RFC 6376 §3.1).
bool valid_selector(std::string_view selector) { return valid_hostname(selector); }

// "alice@example.test": a non-empty local part (at most 64 octets, RFC 5321
// §4.5.3.1.1) and a valid domain. Only the shape is checked here; the account
// itself lives in the accounts file.
bool valid_account_address(std::string_view address) {
  auto at = address.rfind('@');
  if (at == std::string_view::npos || at == 0 || at > 64) return false;
  for (char c : address.substr(0, at)) {
    if (static_cast<unsigned char>(c) <= ' ' || c == '@') return false;
  }
  return valid_hostname(address.substr(at + 1));
}

bool is_local_domain(const Config& cfg, const std::string& domain) {
  for (const auto& d : cfg.domains.local) {
    if (d == domain) return true;
  }
  return false;
}

// [[transport]] tables; kind-specific keys are required or refused so that a
// transport never carries a setting it would silently ignore.
void walk_transports(const Walker& w, const toml::table& root, Config& cfg) {
  const toml::node* n = root.get("transport");
  if (n == nullptr) return;
  if (!n->is_array_of_tables()) w.fail(n, "transport", "must be an array of tables ([[transport]])");
  for (const auto& e : *n->as_array()) {
    const auto& t = *e.as_table();
    w.check_keys(t, "transport",
                 {"name", "kind", "host", "auth_user", "auth_password_file", "message", "tls_verify", "tls_ca_file"});
    Transport tr;
    auto name = w.string(t, "name", "transport");
    if (!name) w.fail(&e, "transport.name", "missing");
    if (!valid_transport_name(*name)) {
      w.fail(t.get("name"), "transport.name", "must be 1-64 letters, digits, '-', '_' or '.'");
    }
    if (*name == kDirectTransport) w.fail(t.get("name"), "transport.name", "\"direct\" is reserved (it always exists)");
    if (cfg.find_transport(*name) != nullptr) {
      w.fail(t.get("name"), "transport.name", "duplicate transport \"" + *name + "\"");
    }
    tr.name = *name;
    auto kind = w.string(t, "kind", "transport");
    if (!kind) w.fail(&e, "transport.kind", "missing (direct | smtp | submission | submissions | socks5 | fail)");
    static const std::pair<const char*, TransportKind> kKinds[] = {
        {"direct", TransportKind::kDirect},           {"smtp", TransportKind::kSmtp},
        {"submission", TransportKind::kSubmission},   {"submissions", TransportKind::kSubmissions},
        {"socks5", TransportKind::kSocks5},           {"fail", TransportKind::kFail}};
    bool known_kind = false;
    for (const auto& [kind_name, value] : kKinds) {
      if (*kind == kind_name) {
        tr.kind = value;
        known_kind = true;
      }
    }
    if (!known_kind) {
      w.fail(t.get("kind"), "transport.kind", "must be direct, smtp, submission, submissions, socks5 or fail");
    }
    const std::string kind_text = "a " + *kind + " transport";

    // host: the next hop; the port defaults to the kind's well-known one.
    bool needs_host = tr.kind == TransportKind::kSmtp || tr.kind == TransportKind::kSubmission ||
                      tr.kind == TransportKind::kSubmissions || tr.kind == TransportKind::kSocks5;
    if (auto host = w.string(t, "host", "transport")) {
      if (!needs_host) w.fail(t.get("host"), "transport.host", "not used by " + kind_text);
      uint16_t default_port = tr.kind == TransportKind::kSmtp          ? 25
                              : tr.kind == TransportKind::kSubmission  ? 587
                              : tr.kind == TransportKind::kSubmissions ? 465
                                                                       : 1080;
      auto hp = HostPort::parse(*host, default_port);
      if (!hp || hp->port == 0 || (!IpAddress::parse(hp->host) && !valid_hostname(hp->host))) {
        w.fail(t.get("host"), "transport.host", "must be \"host[:port]\", \"IPv4[:port]\" or \"[IPv6][:port]\"");
      }
      tr.host = *hp;
    } else if (needs_host) {
      w.fail(&e, "transport.host", "missing (" + kind_text + " needs host)");
    }

    // SASL credentials (submission, submissions; optional for smtp and socks5).
    bool needs_auth = tr.kind == TransportKind::kSubmission || tr.kind == TransportKind::kSubmissions;
    bool allows_auth = needs_auth || tr.kind == TransportKind::kSmtp || tr.kind == TransportKind::kSocks5;
    for (const char* key : {"auth_user", "auth_password_file"}) {
      auto v = w.string(t, key, "transport");
      std::string full = std::string("transport.") + key;
      if (v && !allows_auth) w.fail(t.get(key), full, "not used by " + kind_text);
      if (v && v->empty()) w.fail(t.get(key), full, "must not be empty");
      if (!v && needs_auth) w.fail(&e, full, "missing (" + kind_text + " needs auth_user and auth_password_file)");
      (std::string_view(key) == "auth_user" ? tr.auth_user : tr.auth_password_file) = v.value_or("");
    }
    if (tr.auth_user.empty() != tr.auth_password_file.empty()) {
      w.fail(&e, tr.auth_user.empty() ? "transport.auth_user" : "transport.auth_password_file",
             "auth_user and auth_password_file must be set together");
    }

    if (auto message = w.string(t, "message", "transport")) {
      if (tr.kind != TransportKind::kFail) w.fail(t.get("message"), "transport.message", "not used by " + kind_text);
      if (!parse_fail_message(*message)) {
        w.fail(t.get("message"), "transport.message",
               "must start with a 4.x.x or 5.x.x enhanced status code, e.g. \"5.7.1 not allowed\"");
      }
      tr.message = *message;
    } else if (tr.kind == TransportKind::kFail) {
      w.fail(&e, "transport.message", "missing (a fail transport needs the reply, e.g. \"5.7.1 not allowed\")");
    }

    // Certificate verification of a smarthost / submission server. Never
    // send AUTH to an unverified server unless the operator says so.
    bool smarthost = tr.kind == TransportKind::kSmtp || tr.kind == TransportKind::kSubmission ||
                     tr.kind == TransportKind::kSubmissions;
    tr.tls_verify = tr.kind == TransportKind::kSubmission || tr.kind == TransportKind::kSubmissions;
    if (auto v = w.boolean(t, "tls_verify", "transport")) {
      if (!smarthost) w.fail(t.get("tls_verify"), "transport.tls_verify", "not used by " + kind_text);
      tr.tls_verify = *v;
    }
    if (auto v = w.string(t, "tls_ca_file", "transport")) {
      if (!smarthost) w.fail(t.get("tls_ca_file"), "transport.tls_ca_file", "not used by " + kind_text);
      if (v->empty()) w.fail(t.get("tls_ca_file"), "transport.tls_ca_file", "must not be empty");
      if (!tr.tls_verify) {
        w.fail(t.get("tls_ca_file"), "transport.tls_ca_file", "only used with tls_verify = true");
      }
      tr.tls_ca_file = *v;
    }
    cfg.transports.push_back(std::move(tr));
  }
}

// A route's domain list: lower-cased, each a domain or ".domain" (subdomains).
std::vector<std::string> route_domains(const Walker& w, const toml::table& t, std::string_view key,
                                       const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& [d, node] : w.strings(t, key, prefix)) {
    std::string_view name = d;
    if (!name.empty() && name.front() == '.') name.remove_prefix(1);
    if (!valid_hostname(name)) {
      w.fail(node, Walker::join(prefix, key), "\"" + d + "\" is not a domain or \".domain\" (subdomains)");
    }
    out.push_back(to_lower(d));
  }
  return out;
}

// One route table ([[route]] entry, or an element of a domain's or account's
// `route` array). `prefix` names it in errors.
Route walk_route(const Walker& w, const toml::node& e, const std::string& prefix, const Config& cfg) {
  if (!e.is_table()) w.fail(&e, prefix, "must be a table such as { to_domain = [...], transport = \"...\" }");
  const auto& t = *e.as_table();
  w.check_keys(t, prefix, {"from_domain", "to_domain", "minimum_attempts", "transport"});
  Route r;
  r.from_domain = route_domains(w, t, "from_domain", prefix);
  r.to_domain = route_domains(w, t, "to_domain", prefix);
  if (auto v = w.integer(t, "minimum_attempts", prefix, 0, 10000)) r.minimum_attempts = static_cast<uint32_t>(*v);
  auto transport = w.string(t, "transport", prefix);
  if (!transport) w.fail(&e, Walker::join(prefix, "transport"), "missing");
  if (cfg.find_transport(*transport) == nullptr) {
    w.fail(t.get("transport"), Walker::join(prefix, "transport"),
           "unknown transport \"" + *transport + "\" (define it with [[transport]])");
  }
  r.transport = *transport;
  return r;
}

std::vector<Route> walk_route_array(const Walker& w, const toml::node& n, const std::string& prefix,
                                    const Config& cfg) {
  if (!n.is_array()) w.fail(&n, prefix, "must be an array of route tables");
  std::vector<Route> routes;
  for (const auto& e : *n.as_array()) routes.push_back(walk_route(w, e, prefix, cfg));
  return routes;
}

// [[route]] (global), [domain."x"] route and [account."a@x"] route.
void walk_routes(const Walker& w, const toml::table& root, Config& cfg) {
  if (const toml::node* n = root.get("route")) {
    if (!n->is_array_of_tables()) w.fail(n, "route", "must be an array of tables ([[route]])");
    cfg.routes = walk_route_array(w, *n, "route", cfg);
  }
  if (const auto* domains = w.table(root, "domain", "")) {
    for (const auto& [key, node] : *domains) {
      std::string domain = to_lower(key.str());
      std::string prefix = "domain.\"" + std::string(key.str()) + "\"";
      if (!node.is_table()) w.fail(&node, prefix, "must be a table");
      if (!is_local_domain(cfg, domain)) w.fail(&node, prefix, "not a local domain (see domains.local)");
      if (cfg.domain.count(domain)) w.fail(&node, prefix, "given twice (domains compare case-insensitively)");
      const auto& t = *node.as_table();
      w.check_keys(t, prefix, {"route"});
      Config::DomainSettings settings;
      if (const toml::node* r = t.get("route")) settings.routes = walk_route_array(w, *r, prefix + ".route", cfg);
      cfg.domain.emplace(domain, std::move(settings));
    }
  }
  if (const auto* accounts = w.table(root, "account", "")) {
    for (const auto& [key, node] : *accounts) {
      std::string address = to_lower(key.str());
      std::string prefix = "account.\"" + std::string(key.str()) + "\"";
      if (!node.is_table()) w.fail(&node, prefix, "must be a table");
      if (!valid_account_address(address)) w.fail(&node, prefix, "not an address such as \"alice@example.test\"");
      if (cfg.account.count(address)) w.fail(&node, prefix, "given twice (addresses compare case-insensitively)");
      const auto& t = *node.as_table();
      w.check_keys(t, prefix, {"route"});
      Config::AccountSettings settings;
      if (const toml::node* r = t.get("route")) settings.routes = walk_route_array(w, *r, prefix + ".route", cfg);
      cfg.account.emplace(address, std::move(settings));
    }
  }
}

// [dkim.sign] "example.test" = [{ selector, key, algorithm }]
void walk_dkim(const Walker& w, const toml::table& root, Config& cfg) {
  const auto* dkim = w.table(root, "dkim", "");
  if (dkim == nullptr) return;
  w.check_keys(*dkim, "dkim", {"sign"});
  const auto* sign = w.table(*dkim, "sign", "dkim");
  if (sign == nullptr) return;
  for (const auto& [key, node] : *sign) {
    std::string domain = to_lower(key.str());
    std::string prefix = "dkim.sign.\"" + std::string(key.str()) + "\"";
    if (!is_local_domain(cfg, domain)) w.fail(&node, prefix, "not a local domain (see domains.local)");
    if (cfg.dkim.sign.count(domain)) w.fail(&node, prefix, "given twice (domains compare case-insensitively)");
    if (!node.is_array() || node.as_array()->empty()) {
      w.fail(&node, prefix, "must be a non-empty array of { selector = \"...\", key = \"/path/key.pem\" }");
    }
    std::vector<DkimSigningKey> keys;
    for (const auto& e : *node.as_array()) {
      if (!e.is_table()) w.fail(&e, prefix, "must be an array of { selector = \"...\", key = \"/path/key.pem\" }");
      const auto& t = *e.as_table();
      w.check_keys(t, prefix, {"selector", "key", "algorithm"});
      DkimSigningKey k;
      auto selector = w.string(t, "selector", prefix);
      if (!selector) w.fail(&e, prefix + ".selector", "missing");
      if (!valid_selector(*selector)) w.fail(t.get("selector"), prefix + ".selector", "not a valid selector");
      k.selector = to_lower(*selector);
      auto key_file = w.string(t, "key", prefix);
      if (!key_file) w.fail(&e, prefix + ".key", "missing (path of the PEM private key)");
      if (key_file->empty()) w.fail(t.get("key"), prefix + ".key", "must not be empty");
      k.key = *key_file;
      if (auto algorithm = w.string(t, "algorithm", prefix)) {
        if (*algorithm != "rsa-sha256" && *algorithm != "ed25519-sha256") {
          w.fail(t.get("algorithm"), prefix + ".algorithm", "must be rsa-sha256 or ed25519-sha256");
        }
        k.algorithm = *algorithm;
      }
      for (const auto& other : keys) {
        if (other.selector == k.selector) w.fail(t.get("selector"), prefix + ".selector", "duplicate selector");
      }
      keys.push_back(std::move(k));
    }
    cfg.dkim.sign.emplace(domain, std::move(keys));
  }
}

// [policy] anti-abuse keys (issue 5 item 4): HELO/sender checks, access maps,
// DNSBL zones, greylist = { enabled, delay, expire, pass_after } and
// rate_limit = { connections_per_minute_per_ip, messages_per_hour_per_ip }.
void walk_policy_anti_abuse(const Walker& w, const toml::table& t, PolicyConfig& p) {
  for (auto [key, out] : {std::pair<const char*, bool*>{"require_helo", &p.require_helo},
                          {"reject_non_fqdn_helo", &p.reject_non_fqdn_helo},
                          {"reject_non_fqdn_sender", &p.reject_non_fqdn_sender},
                          {"reject_unknown_sender_domain", &p.reject_unknown_sender_domain}}) {
    if (auto v = w.boolean(t, key, "policy")) *out = *v;
  }
  for (auto [key, out] : {std::pair<const char*, std::string*>{"sender_access", &p.sender_access},
                          {"recipient_access", &p.recipient_access}}) {
    if (auto v = w.string(t, key, "policy")) {
      if (v->empty()) w.fail(t.get(key), Walker::join("policy", key), "must not be empty (omit it for no map)");
      *out = *v;
    }
  }
  for (const auto& [zone, node] : w.strings(t, "dnsbl", "policy")) {
    std::string_view name = zone;
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    if (!valid_hostname(name)) w.fail(node, "policy.dnsbl", "\"" + zone + "\" is not a DNS zone");
    p.dnsbl.push_back(to_lower(name));
  }
  if (p.dnsbl.size() > 16) w.fail(t.get("dnsbl"), "policy.dnsbl", "at most 16 lists");
  if (const auto* g = w.table(t, "greylist", "policy")) {
    w.check_keys(*g, "policy.greylist", {"enabled", "delay", "expire", "pass_after"});
    if (auto v = w.boolean(*g, "enabled", "policy.greylist")) p.greylist.enabled = *v;
    if (auto v = w.duration(*g, "delay", "policy.greylist")) {
      if (*v > 24 * 3600) w.fail(g->get("delay"), "policy.greylist.delay", "must be at most 1 day");
      p.greylist.delay = static_cast<uint32_t>(*v);
    }
    if (auto v = w.duration(*g, "expire", "policy.greylist")) {
      if (*v < 3600 || *v > 366ull * 24 * 3600) {
        w.fail(g->get("expire"), "policy.greylist.expire", "must be between 1 hour and 366 days");
      }
      p.greylist.expire = static_cast<uint32_t>(*v);
    }
    if (auto v = w.integer(*g, "pass_after", "policy.greylist", 0, 1000000)) {
      p.greylist.pass_after = static_cast<uint32_t>(*v);
    }
  }
  if (const auto* r = w.table(t, "rate_limit", "policy")) {
    w.check_keys(*r, "policy.rate_limit", {"connections_per_minute_per_ip", "messages_per_hour_per_ip"});
    if (auto v = w.integer(*r, "connections_per_minute_per_ip", "policy.rate_limit", 0, 1000000)) {
      p.rate_limit.connections_per_minute_per_ip = static_cast<uint32_t>(*v);
    }
    if (auto v = w.integer(*r, "messages_per_hour_per_ip", "policy.rate_limit", 0, 100000000)) {
      p.rate_limit.messages_per_hour_per_ip = static_cast<uint32_t>(*v);
    }
  }
}

// [policy]: one walker for the whole table; each group of keys parses its own.
void walk_policy(const Walker& w, const toml::table& root, Config& cfg) {
  const auto* t = w.table(root, "policy", "");
  if (t == nullptr) return;
  w.check_keys(*t, "policy",
               {"spf_fail", "dmarc_reject", "dmarc_quarantine", "arc_trusted_sealers", "require_helo",
                "reject_non_fqdn_helo", "reject_non_fqdn_sender", "reject_unknown_sender_domain", "sender_access",
                "recipient_access", "dnsbl", "greylist", "rate_limit"});
  auto one_of = [&](std::string_view key, std::initializer_list<std::string_view> allowed, std::string& out) {
    auto v = w.string(*t, key, "policy");
    if (!v) return;
    std::string value = to_lower(*v);
    std::string list;
    for (auto a : allowed) {
      if (value == a) {
        out = value;
        return;
      }
      list += (list.empty() ? "" : ", ") + std::string(a);
    }
    w.fail(t->get(key), Walker::join("policy", key), "must be one of " + list);
  };
  one_of("spf_fail", {"reject", "tag"}, cfg.policy.spf_fail);
  one_of("dmarc_reject", {"reject", "quarantine", "tag"}, cfg.policy.dmarc_reject);
  one_of("dmarc_quarantine", {"reject", "quarantine", "tag"}, cfg.policy.dmarc_quarantine);
  for (const auto& [name, node] : w.strings(*t, "arc_trusted_sealers", "policy")) {
    if (!valid_hostname(name)) w.fail(node, "policy.arc_trusted_sealers", "\"" + name + "\" is not a domain name");
    cfg.policy.arc_trusted_sealers.push_back(to_lower(name));
  }
  walk_policy_anti_abuse(w, *t, cfg.policy);
}

// [forwarders] "alice@example.test" = ["external.org"], "@example.test" = [...]
void walk_forwarders(const Walker& w, const toml::table& root, Config& cfg) {
  const auto* t = w.table(root, "forwarders", "");
  if (t == nullptr) return;
  for (const auto& [key, node] : *t) {
    std::string who = to_lower(key.str());
    std::string prefix = "forwarders.\"" + std::string(key.str()) + "\"";
    auto at = who.find('@');
    if (at == std::string::npos || at + 1 >= who.size() || !valid_hostname(who.substr(at + 1))) {
      w.fail(&node, prefix, "key must be an address (\"alice@example.test\") or a domain (\"@example.test\")");
    }
    if (!is_local_domain(cfg, who.substr(at + 1))) w.fail(&node, prefix, "not a local domain (see domains.local)");
    if (cfg.forwarders.count(who)) w.fail(&node, prefix, "given twice (keys compare case-insensitively)");
    if (!node.is_array() || node.as_array()->empty()) w.fail(&node, prefix, "must be a non-empty array of domains");
    std::vector<std::string> domains;
    for (const auto& e : *node.as_array()) {
      if (!e.is_string() || !valid_hostname(e.as_string()->get())) w.fail(&e, prefix, "must be an array of domains");
      domains.push_back(to_lower(e.as_string()->get()));
    }
    cfg.forwarders.emplace(std::move(who), std::move(domains));
  }
}

// [[milter]] tables. The address is checked for shape only here; the milter
// library parses it again when it connects.
void walk_milters(const Walker& w, const toml::table& root, Config& cfg) {
  const toml::node* n = root.get("milter");
  if (n == nullptr) return;
  if (!n->is_array_of_tables()) w.fail(n, "milter", "must be an array of tables ([[milter]])");
  for (const auto& e : *n->as_array()) {
    const auto& t = *e.as_table();
    w.check_keys(t, "milter", {"address", "on_failure", "connect_timeout", "reply_timeout"});
    MilterConfig m;
    auto address = w.string(t, "address", "milter");
    if (!address) w.fail(&e, "milter.address", "missing (e.g. \"unix:/run/milter.sock\" or \"127.0.0.1:8891\")");
    std::string_view a = *address;
    bool valid = false;
    for (std::string_view unix_prefix : {"unix:", "local:", "/"}) {
      if (a.starts_with(unix_prefix)) {
        size_t path_size = a.size() - (unix_prefix == "/" ? 0 : unix_prefix.size());
        valid = path_size > 0 && path_size <= 107;  // sockaddr_un.sun_path
      }
    }
    if (a.starts_with("inet:") || a.starts_with("inet6:")) {
      // Sendmail's "inet:PORT@HOST" (HOST defaults to localhost).
      std::string_view rest = a.substr(a.find(':') + 1);
      std::string_view port = rest.substr(0, rest.find('@'));
      valid = !port.empty() && port.size() <= 5 && is_digits(port) && std::stoul(std::string(port)) - 1 < 65535;
    } else if (!valid) {
      auto hp = HostPort::parse(a);
      valid = hp && hp->port != 0 && !hp->host.empty();
    }
    if (!valid) {
      w.fail(t.get("address"), "milter.address", "must be \"unix:/path\" or \"host:port\"");
    }
    m.address = *address;
    if (auto v = w.string(t, "on_failure", "milter")) {
      if (*v == "tempfail") {
        m.on_failure = MilterOnFailure::kTempfail;
      } else if (*v == "accept") {
        m.on_failure = MilterOnFailure::kAccept;
      } else if (*v == "reject") {
        m.on_failure = MilterOnFailure::kReject;
      } else {
        w.fail(t.get("on_failure"), "milter.on_failure", "must be tempfail, accept or reject");
      }
    }
    for (auto [key, out] :
         {std::pair{"connect_timeout", &m.connect_timeout}, std::pair{"reply_timeout", &m.reply_timeout}}) {
      if (auto d = w.duration(t, key, "milter")) {
        if (*d == 0 || *d > 3600) w.fail(t.get(key), Walker::join("milter", key), "must be between 1s and 1h");
        *out = static_cast<uint32_t>(*d);
      }
    }
    cfg.milters.push_back(std::move(m));
  }
}

Config walk(const toml::table& root, const std::string& origin) {
  Walker w(origin);
  Config cfg;
  cfg.path = origin;
  w.check_keys(root, "",
               {"server", "listener", "tls", "domains", "relay", "delivery", "aliases", "accounts", "queue", "limits", "dns",
                "auth", "transport", "route", "domain", "account", "dkim", "policy", "forwarders",
                "milter"});

  if (const auto* t = w.table(root, "server", "")) {
    w.check_keys(*t, "server", {"hostname", "data_dir", "control_socket", "user", "threads"});
    if (auto v = w.string(*t, "hostname", "server")) {
      if (!valid_hostname(*v)) w.fail(t->get("hostname"), "server.hostname", "not a valid host name");
      cfg.server.hostname = to_lower(*v);
    }
    if (auto v = w.string(*t, "data_dir", "server")) {
      if (v->empty()) w.fail(t->get("data_dir"), "server.data_dir", "must not be empty");
      cfg.server.data_dir = *v;
    }
    if (auto v = w.string(*t, "control_socket", "server")) cfg.server.control_socket = *v;
    if (auto v = w.string(*t, "user", "server")) cfg.server.user = *v;
    if (auto v = w.integer(*t, "threads", "server", 0, 64)) cfg.server.threads = static_cast<uint32_t>(*v);
  }
  if (cfg.server.hostname.empty()) cfg.server.hostname = to_lower(default_hostname());
  if (cfg.server.data_dir.empty()) cfg.server.data_dir = "/var/lib/tern";
  if (cfg.server.control_socket.empty()) cfg.server.control_socket = cfg.server.data_dir + "/control.sock";

  if (const toml::node* n = root.get("listener")) {
    if (!n->is_array_of_tables()) w.fail(n, "listener", "must be an array of tables ([[listener]])");
    for (const auto& e : *n->as_array()) {
      const auto& t = *e.as_table();
      w.check_keys(t, "listener", {"role", "address", "verify_sender_identity"});
      Listener l;
      auto role = w.string(t, "role", "listener");
      if (!role) w.fail(&e, "listener.role", "missing (mx | submission | submissions)");
      if (*role == "mx") {
        l.role = ListenerRole::kMx;
      } else if (*role == "submission") {
        l.role = ListenerRole::kSubmission;
      } else if (*role == "submissions") {
        l.role = ListenerRole::kSubmissions;
      } else {
        w.fail(t.get("role"), "listener.role", "must be mx, submission or submissions");
      }
      auto addr = w.string(t, "address", "listener");
      if (!addr) w.fail(&e, "listener.address", "missing (e.g. \"0.0.0.0:25\" or \"[::]:25\")");
      auto hp = HostPort::parse(*addr);
      if (!hp || !IpAddress::parse(hp->host)) {
        w.fail(t.get("address"), "listener.address", "must be IPv4:port or [IPv6]:port");
      }
      l.address = *hp;
      if (const toml::node* v = t.get("verify_sender_identity")) {
        if (v->is_boolean()) {
          l.verify_sender_identity = v->as_boolean()->get() ? "strict" : "disabled";
        } else if (v->is_string() && (v->as_string()->get() == "strict" || v->as_string()->get() == "relaxed" ||
                                      v->as_string()->get() == "disabled")) {
          l.verify_sender_identity = v->as_string()->get();
        } else {
          w.fail(v, "listener.verify_sender_identity", "must be strict, relaxed, disabled, true or false");
        }
      }
      cfg.listeners.push_back(l);
    }
  }
  if (cfg.listeners.empty()) {
    throw ConfigError{origin + ": listener: at least one [[listener]] is required"};
  }

  if (const auto* t = w.table(root, "tls", "")) {
    w.check_keys(*t, "tls", {"cert", "key", "generate_self_signed"});
    if (auto v = w.string(*t, "cert", "tls")) cfg.tls.cert = *v;
    if (auto v = w.string(*t, "key", "tls")) cfg.tls.key = *v;
    if (auto v = w.boolean(*t, "generate_self_signed", "tls")) cfg.tls.generate_self_signed = *v;
    if (cfg.tls.cert.empty() != cfg.tls.key.empty()) {
      w.fail(t, cfg.tls.cert.empty() ? "tls.cert" : "tls.key", "tls.cert and tls.key must be set together");
    }
  }
  for (const auto& l : cfg.listeners) {
    if (l.role == ListenerRole::kSubmissions && !cfg.tls.enabled()) {
      throw ConfigError{origin + ": tls: a submissions listener (implicit TLS) needs tls.cert and tls.key"};
    }
  }

  if (const auto* t = w.table(root, "domains", "")) {
    w.check_keys(*t, "domains", {"local"});
    for (const auto& [d, node] : w.strings(*t, "local", "domains")) {
      if (!valid_hostname(d)) w.fail(node, "domains.local", "\"" + d + "\" is not a valid domain");
      cfg.domains.local.push_back(to_lower(d));
    }
  }

  if (const auto* t = w.table(root, "relay", "")) {
    w.check_keys(*t, "relay", {"trusted_networks"});
    for (const auto& [s, node] : w.strings(*t, "trusted_networks", "relay")) {
      auto c = Cidr::parse(s);
      if (!c) w.fail(node, "relay.trusted_networks", "\"" + s + "\" is not an IP address or CIDR block");
      cfg.relay.trusted_networks.push_back(*c);
    }
  }

  if (const auto* t = w.table(root, "delivery", "")) {
    w.check_keys(
        *t, "delivery",
        {"maildir", "lmtp", "workers", "detail_folder", "max_connections", "max_connections_per_destination",
         "remote_workers", "connect_timeout", "helo_timeout", "command_timeout", "data_timeout", "data_done_timeout"});
    if (auto v = w.integer(*t, "max_connections", "delivery", 1, 100000)) {
      cfg.delivery.max_connections = static_cast<uint32_t>(*v);
    }
    if (auto v = w.integer(*t, "max_connections_per_destination", "delivery", 1, 100000)) {
      cfg.delivery.max_connections_per_destination = static_cast<uint32_t>(*v);
    }
    if (cfg.delivery.max_connections_per_destination > cfg.delivery.max_connections) {
      w.fail(t->get("max_connections_per_destination"), "delivery.max_connections_per_destination",
             "must not exceed delivery.max_connections (" + std::to_string(cfg.delivery.max_connections) + ")");
    }
    // A remote worker holds at most one connection, so more workers than
    // connections would only wait for slots.
    if (auto v = w.integer(*t, "remote_workers", "delivery", 1, 1024)) {
      if (*v > cfg.delivery.max_connections) {
        w.fail(t->get("remote_workers"), "delivery.remote_workers",
               "must not exceed delivery.max_connections (" + std::to_string(cfg.delivery.max_connections) + ")");
      }
      cfg.delivery.remote_workers = static_cast<uint32_t>(*v);
    } else {
      cfg.delivery.remote_workers = std::min(cfg.delivery.remote_workers, cfg.delivery.max_connections);
    }
    // SMTP client timeouts (RFC 5321 §4.5.3.2): durations between 1s and 1h.
    const std::pair<const char*, uint32_t*> timeouts[] = {{"connect_timeout", &cfg.delivery.connect_timeout},
                                                          {"helo_timeout", &cfg.delivery.helo_timeout},
                                                          {"command_timeout", &cfg.delivery.command_timeout},
                                                          {"data_timeout", &cfg.delivery.data_timeout},
                                                          {"data_done_timeout", &cfg.delivery.data_done_timeout}};
    for (const auto& [key, field] : timeouts) {
      if (auto v = w.duration(*t, key, "delivery")) {
        if (*v < 1 || *v > 3600) {
          w.fail(t->get(key), std::string("delivery.") + key, "must be between 1s and 1h");
        }
        *field = static_cast<uint32_t>(*v);
      }
    }
    if (auto v = w.boolean(*t, "detail_folder", "delivery")) cfg.delivery.detail_folder = *v;
    if (auto v = w.string(*t, "maildir", "delivery")) cfg.delivery.maildir = *v;
    if (auto v = w.string(*t, "lmtp", "delivery")) {
      bool ok = istarts_with(*v, "unix:") ? v->size() > 5 : HostPort::parse(*v, 24).has_value();
      if (!ok) w.fail(t->get("lmtp"), "delivery.lmtp", "must be \"unix:/path\" or \"host:port\"");
      cfg.delivery.lmtp = *v;
    }
    if (auto v = w.integer(*t, "workers", "delivery", 1, 256)) cfg.delivery.workers = static_cast<uint32_t>(*v);
    if (!cfg.delivery.maildir.empty() && !cfg.delivery.lmtp.empty()) {
      w.fail(t->get("lmtp"), "delivery.lmtp", "set either delivery.maildir or delivery.lmtp, not both");
    }
  }
  if (cfg.delivery.maildir.empty() && cfg.delivery.lmtp.empty()) {
    cfg.delivery.maildir = cfg.server.data_dir + "/mail/{domain}/{user}";
  }

  if (const auto* t = w.table(root, "aliases", "")) {
    w.check_keys(*t, "aliases", {"file"});
    if (auto v = w.string(*t, "file", "aliases")) cfg.aliases.file = *v;
  }
  if (const auto* t = w.table(root, "accounts", "")) {
    w.check_keys(*t, "accounts", {"file"});
    if (auto v = w.string(*t, "file", "accounts")) cfg.accounts.file = *v;
  }
  if (cfg.accounts.file.empty()) cfg.accounts.file = cfg.server.data_dir + "/accounts";

  if (const auto* t = w.table(root, "queue", "")) {
    w.check_keys(*t, "queue", {"retry_schedule", "max_age", "delay_warning_after", "sync"});
    if (const toml::node* n = t->get("retry_schedule")) {
      if (!n->is_array() || n->as_array()->empty()) w.fail(n, "queue.retry_schedule", "must be a non-empty array of durations");
      cfg.queue.retry_schedule.clear();
      for (const auto& e : *n->as_array()) {
        uint64_t d = w.duration_node(e, "queue.retry_schedule");
        if (d == 0) w.fail(&e, "queue.retry_schedule", "durations must be positive");
        cfg.queue.retry_schedule.push_back(static_cast<uint32_t>(d));
      }
    }
    if (auto v = w.duration(*t, "max_age", "queue")) {
      if (*v > 365ull * 86400) w.fail(t->get("max_age"), "queue.max_age", "must be at most 365d");
      cfg.queue.max_age = static_cast<uint32_t>(*v);
    }
    if (auto v = w.duration(*t, "delay_warning_after", "queue")) {
      if (*v > 365ull * 86400) {
        w.fail(t->get("delay_warning_after"), "queue.delay_warning_after", "must be at most 365d");
      }
      cfg.queue.delay_warning_after = static_cast<uint32_t>(*v);
    }
    if (auto v = w.string(*t, "sync", "queue")) {
      if (*v != "syncfs" && *v != "fsync") w.fail(t->get("sync"), "queue.sync", "must be syncfs or fsync");
      cfg.queue.sync = *v;
    }
  }

  if (const auto* t = w.table(root, "limits", "")) {
    w.check_keys(*t, "limits",
                 {"max_message_size", "max_recipients", "max_errors", "max_connections", "max_connections_per_ip",
                  "max_command_line", "timeout_command", "timeout_data_block", "timeout_data_end",
                  "auth_failure_limit"});
    auto& L = cfg.limits;
    if (auto v = w.size(*t, "max_message_size", "limits")) L.max_message_size = *v;
    if (auto v = w.integer(*t, "max_recipients", "limits", 1, 100000)) L.max_recipients = static_cast<uint32_t>(*v);
    if (auto v = w.integer(*t, "max_errors", "limits", 1, 1000)) L.max_errors = static_cast<uint32_t>(*v);
    if (auto v = w.integer(*t, "max_connections", "limits", 1, 1000000)) L.max_connections = static_cast<uint32_t>(*v);
    if (auto v = w.integer(*t, "max_connections_per_ip", "limits", 1, 1000000)) {
      L.max_connections_per_ip = static_cast<uint32_t>(*v);
    }
    if (auto v = w.integer(*t, "max_command_line", "limits", 512, 65536)) L.max_command_line = static_cast<uint32_t>(*v);
    if (auto v = w.duration(*t, "timeout_command", "limits")) L.timeout_command = static_cast<uint32_t>(*v);
    if (auto v = w.duration(*t, "timeout_data_block", "limits")) L.timeout_data_block = static_cast<uint32_t>(*v);
    if (auto v = w.duration(*t, "timeout_data_end", "limits")) L.timeout_data_end = static_cast<uint32_t>(*v);
    if (auto v = w.integer(*t, "auth_failure_limit", "limits", 1, 100)) L.auth_failure_limit = static_cast<uint32_t>(*v);
  }
  if (const auto* t = w.table(root, "dns", "")) {
    w.check_keys(*t, "dns", {"nameservers", "trust_anchor_file", "timeout"});
    for (const auto& [ns, node] : w.strings(*t, "nameservers", "dns")) {
      if (!valid_nameserver(ns)) w.fail(node, "dns.nameservers", "\"" + ns + "\" is not IP or IP@PORT");
      cfg.dns.nameservers.push_back(ns);
    }
    if (auto v = w.string(*t, "trust_anchor_file", "dns")) cfg.dns.trust_anchor_file = *v;
    if (auto v = w.duration(*t, "timeout", "dns")) {
      if (*v == 0 || *v > 300) w.fail(t->get("timeout"), "dns.timeout", "must be between 1s and 5m");
      cfg.dns.timeout = static_cast<uint32_t>(*v);
    }
  }
  if (const auto* t = w.table(root, "auth", "")) {
    w.check_keys(*t, "auth", {"authserv_id", "verify_inbound"});
    if (auto v = w.boolean(*t, "verify_inbound", "auth")) cfg.auth.verify_inbound = *v;
    if (auto v = w.string(*t, "authserv_id", "auth")) {
      if (!valid_hostname(*v)) w.fail(t->get("authserv_id"), "auth.authserv_id", "must be a host name");
      cfg.auth.authserv_id = to_lower(*v);
    }
  }
  if (cfg.auth.authserv_id.empty()) cfg.auth.authserv_id = cfg.server.hostname;

  walk_transports(w, root, cfg);
  walk_routes(w, root, cfg);
  walk_dkim(w, root, cfg);
  walk_policy(w, root, cfg);
  walk_forwarders(w, root, cfg);
  walk_milters(w, root, cfg);
  return cfg;
}

}  // namespace

bool valid_nameserver(std::string_view text) {
  auto at = text.find('@');
  auto ip = IpAddress::parse(text.substr(0, at));
  if (!ip) return false;
  if (at == std::string_view::npos) return true;
  unsigned long long port = 0;
  return parse_u64(text.substr(at + 1), port) && port > 0 && port < 65536;
}

const char* transport_kind_name(TransportKind kind) {
  switch (kind) {
    case TransportKind::kDirect: return "direct";
    case TransportKind::kSmtp: return "smtp";
    case TransportKind::kSubmission: return "submission";
    case TransportKind::kSubmissions: return "submissions";
    case TransportKind::kSocks5: return "socks5";
    case TransportKind::kFail: return "fail";
  }
  return "direct";
}

const Transport* Config::find_transport(std::string_view name) const {
  static const Transport kDirect{
      std::string(kDirectTransport), TransportKind::kDirect, std::nullopt, "", "", "", false, ""};
  if (name == kDirectTransport) return &kDirect;
  for (const auto& t : transports) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

// RFC 3463 §2: class "." subject "." detail, subject and detail 1-3 digits.
std::optional<Error> parse_fail_message(std::string_view message) {
  size_t end = message.find(' ');
  std::string_view code = message.substr(0, end);
  auto parts = split(code, '.');
  if (parts.size() != 3 || (parts[0] != "4" && parts[0] != "5")) return std::nullopt;
  for (size_t i = 1; i < 3; ++i) {
    if (parts[i].empty() || parts[i].size() > 3 || !is_digits(parts[i])) return std::nullopt;
  }
  std::string text = end == std::string_view::npos ? std::string() : std::string(trim(message.substr(end + 1)));
  if (text.find_first_of("\r\n") != std::string::npos) return std::nullopt;
  if (text.empty()) text = "delivery refused by configuration";
  if (parts[0] == "4") return Error::temp(std::string(code), std::move(text));
  return Error::perm(std::string(code), std::move(text));
}

const char* milter_on_failure_name(MilterOnFailure value) {
  switch (value) {
    case MilterOnFailure::kTempfail: return "tempfail";
    case MilterOnFailure::kAccept: return "accept";
    case MilterOnFailure::kReject: return "reject";
  }
  return "tempfail";
}

const char* role_name(ListenerRole role) {
  switch (role) {
    case ListenerRole::kMx: return "mx";
    case ListenerRole::kSubmission: return "submission";
    case ListenerRole::kSubmissions: return "submissions";
  }
  return "mx";
}

std::optional<uint64_t> parse_duration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  if (is_digits(text)) {
    unsigned long long v = 0;
    if (!parse_u64(text, v)) return std::nullopt;
    return v;
  }
  uint64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    if (start == i || i >= text.size()) return std::nullopt;
    unsigned long long n = 0;
    if (!parse_u64(text.substr(start, i - start), n) || n > 1000000000ull) return std::nullopt;
    uint64_t unit = 0;
    switch (text[i]) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      case 'w': unit = 7 * 86400; break;
      default: return std::nullopt;
    }
    ++i;
    total += n * unit;
  }
  return total;
}

std::optional<uint64_t> parse_size(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint64_t mult = 1;
  char last = ascii_upper(text.back());
  if (last == 'K' || last == 'M' || last == 'G') {
    mult = last == 'K' ? 1024ull : last == 'M' ? 1024ull * 1024 : 1024ull * 1024 * 1024;
    text.remove_suffix(1);
  }
  unsigned long long n = 0;
  if (!parse_u64(text, n) || n > (1ull << 40)) return std::nullopt;
  return n * mult;
}

Result<Config> load_string(std::string_view text, const std::string& origin) {
  try {
    toml::table root = toml::parse(text, origin);
    return walk(root, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream out;
    out << origin << ":" << e.source().begin.line << ": syntax error: " << e.description();
    return Error::perm("5.3.5", out.str());
  } catch (const ConfigError& e) {
    return Error::perm("5.3.5", e.message);
  }
}

Result<Config> load_file(const std::string& path) {
  auto text = fs::read_file(path, 16 * 1024 * 1024);
  if (!text) return Error::perm("5.3.5", text.error().text);
  return load_string(*text, path);
}

const char* const kEmbeddedDefaultToml = R"toml(# tern embedded default configuration (used when no --config is given)
[server]
hostname = "localhost"
data_dir = "./var"

[[listener]]
role = "mx"
address = "127.0.0.1:2525"

[[listener]]
role = "submission"
address = "127.0.0.1:2587"

[tls]
cert = "./var/tls/cert.pem"
key = "./var/tls/key.pem"
generate_self_signed = true

[domains]
local = ["localhost"]

[relay]
trusted_networks = []

[delivery]
maildir = "./var/mail/{domain}/{user}"

[accounts]
file = "./var/accounts"

[auth]
# The loopback default runs without network access: no SPF/DKIM/DMARC
# lookups. Production configs keep the default (true) with working DNS.
verify_inbound = false
)toml";

Config embedded_default() {
  auto cfg = load_string(kEmbeddedDefaultToml, "<embedded>");
  return std::move(cfg).value();
}

}  // namespace tern::config
