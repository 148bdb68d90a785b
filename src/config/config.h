// tern's configuration: the TOML file model and its loader. Loading validates
// everything up front (unknown keys are errors, values are range-checked) and
// every error names file:line and the key, so an operator can fix it without
// guessing. Other libraries do not see this struct: the app maps it to each
// library's own options, which keeps the libraries independent of the file
// format.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/net.h"
#include "base/result.h"

namespace tern::config {

enum class ListenerRole { kMx, kSubmission, kSubmissions };
const char* role_name(ListenerRole role);

struct Listener {
  ListenerRole role = ListenerRole::kMx;
  HostPort address;
  std::string verify_sender_identity = "strict";  // strict | relaxed | disabled (used by the policy issue)
};

struct Limits {
  uint64_t max_message_size = 50ull * 1024 * 1024;  // SIZE (RFC 1870)
  uint32_t max_recipients = 1000;                    // per message
  uint32_t max_errors = 20;                          // per session, then 421
  uint32_t max_connections = 10000;                  // total concurrent sessions
  uint32_t max_connections_per_ip = 50;              // concurrent sessions per client IP
  uint32_t max_command_line = 2048;                  // octets incl. CRLF (RFC 5321 §4.5.3.1.4 minimum 512)
  // RFC 5321 §4.5.3.2 timeouts, in seconds.
  uint32_t timeout_command = 300;   // waiting for a command
  uint32_t timeout_data_block = 180;  // between DATA/BDAT blocks
  uint32_t timeout_data_end = 600;  // for our reply after the final dot (our own budget)
  uint32_t auth_failure_limit = 3;  // failed AUTH attempts per session before disconnect
};

struct Config {
  std::string path;  // file the config came from ("<embedded>" for the default)

  struct Server {
    std::string hostname;
    std::string data_dir;
    std::string control_socket;  // default <data_dir>/control.sock
    std::string user;            // drop root to this user after binding (optional)
    uint32_t threads = 0;        // event-loop threads; 0 = number of CPUs
  } server;

  std::vector<Listener> listeners;

  struct Tls {
    std::string cert;
    std::string key;
    bool generate_self_signed = false;  // embedded default: create a cert in data_dir if missing
    bool enabled() const { return !cert.empty(); }
  } tls;

  struct Domains {
    std::vector<std::string> local;  // lower-cased
  } domains;

  struct Relay {
    std::vector<Cidr> trusted_networks;
  } relay;

  struct Delivery {
    std::string maildir;  // path template, {domain} {user} {local}
    std::string lmtp;     // "unix:/path" or "host:port"
    uint32_t workers = 4; // local delivery threads
    // Maildir: deliver user+detail@ into the Maildir++ folder ".detail" when
    // that folder exists (never created on demand).
    bool detail_folder = false;
  } delivery;

  struct Aliases {
    std::string file;
  } aliases;

  struct Accounts {
    std::string file;
  } accounts;

  struct Queue {
    std::vector<uint32_t> retry_schedule = {300, 600, 1200, 2400, 4800, 9600, 19200};  // seconds
    uint32_t max_age = 5 * 86400;
    std::string sync = "syncfs";  // syncfs | fsync
  } queue;

  Limits limits;

  struct Dns {
    // "IP" or "IP@PORT" forwarders; empty = recursive resolution from the root.
    std::vector<std::string> nameservers;
    std::string trust_anchor_file;  // DNSSEC trust anchor (e.g. /usr/share/dns/root.key)
    uint32_t timeout = 10;          // seconds per query
  } dns;

  struct Auth {
    std::string authserv_id;  // Authentication-Results authserv-id; default: server.hostname
    // Evaluate SPF, DKIM, DMARC (and ARC) on the MX listener and prepend
    // Authentication-Results. Needs working DNS ([dns]).
    bool verify_inbound = true;
  } auth;
};

// Loads and validates a TOML file. Errors read "FILE:LINE: key: problem".
Result<Config> load_file(const std::string& path);
// Parses TOML text; `origin` is used in error messages.
Result<Config> load_string(std::string_view text, const std::string& origin);
// The embedded default used when `tern serve` runs without --config: MX on
// 127.0.0.1:2525, submission on 127.0.0.1:2587, local domain localhost, data in ./var/.
Config embedded_default();
extern const char* const kEmbeddedDefaultToml;

// Validates a nameserver given as "IP" or "IP@PORT".
bool valid_nameserver(std::string_view text);

// "1h20m", "5d", "30s", "90" (seconds) -> seconds.
std::optional<uint64_t> parse_duration(std::string_view text);
// "50M", "1G", "4096", "10k" -> bytes.
std::optional<uint64_t> parse_size(std::string_view text);

}  // namespace tern::config
