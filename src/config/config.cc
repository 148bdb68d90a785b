// TOML configuration loader (see config.h). Walks the parsed document with an
// explicit schema: every table's keys are checked against the keys we know, so
// a misspelt key is an error naming file:line, never silently ignored.
#include "config/config.h"

#include <unistd.h>

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

Config walk(const toml::table& root, const std::string& origin) {
  Walker w(origin);
  Config cfg;
  cfg.path = origin;
  w.check_keys(root, "",
               {"server", "listener", "tls", "domains", "relay", "delivery", "aliases", "accounts", "queue", "limits", "dns",
                "auth"});

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
    w.check_keys(*t, "delivery", {"maildir", "lmtp", "workers", "detail_folder"});
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
    w.check_keys(*t, "queue", {"retry_schedule", "max_age", "sync"});
    if (const toml::node* n = t->get("retry_schedule")) {
      if (!n->is_array() || n->as_array()->empty()) w.fail(n, "queue.retry_schedule", "must be a non-empty array of durations");
      cfg.queue.retry_schedule.clear();
      for (const auto& e : *n->as_array()) {
        uint64_t d = w.duration_node(e, "queue.retry_schedule");
        if (d == 0) w.fail(&e, "queue.retry_schedule", "durations must be positive");
        cfg.queue.retry_schedule.push_back(static_cast<uint32_t>(d));
      }
    }
    if (auto v = w.duration(*t, "max_age", "queue")) cfg.queue.max_age = static_cast<uint32_t>(*v);
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
