// tern's configuration: the TOML file model and its loader. Loading validates
// everything up front (unknown keys are errors, values are range-checked) and
// every error names file:line and the key, so an operator can fix it without
// guessing. Other libraries do not see this struct: the app maps it to each
// library's own options, which keeps the libraries independent of the file
// format.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
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

// [[transport]]: how a message leaves for a remote domain. "direct" (MX
// lookup, RFC 5321 §5) exists implicitly and its name is reserved.
inline constexpr std::string_view kDirectTransport = "direct";
enum class TransportKind { kDirect, kSmtp, kSubmission, kSubmissions, kSocks5, kFail };
const char* transport_kind_name(TransportKind kind);  // "direct", "smtp", ...

struct Transport {
  std::string name;
  TransportKind kind = TransportKind::kDirect;
  // smtp: smarthost (port default 25); submission: 587 (STARTTLS, RFC 6409);
  // submissions: 465 (implicit TLS, RFC 8314); socks5: the proxy (1080,
  // RFC 1928) through which direct delivery connects. Unset for direct/fail.
  std::optional<HostPort> host;
  // SASL credentials (PLAIN or SCRAM-SHA-256): required for submission and
  // submissions, optional for smtp (AUTH at a smarthost) and socks5 (RFC 1929
  // username/password); the password is read from the file when used.
  std::string auth_user;
  std::string auth_password_file;
  // fail: the reply recorded for every recipient, "5.7.1 not allowed". The
  // enhanced code (RFC 3463) decides: 4.x.x is retried, 5.x.x bounces.
  std::string message;
  // smtp, submission, submissions: verify the server certificate (chain to a
  // trust anchor, RFC 6125 name check against `host`) and treat a failure as
  // a transient 4.7.5 error of the attempt. Default: true for submission and
  // submissions (credentials are sent), false for smtp (opportunistic
  // STARTTLS). Resolved at load time, so it always holds the effective value.
  bool tls_verify = false;
  // PEM trust anchors used instead of the system store when verifying
  // (private CA); only with tls_verify. Read when `tern serve` starts.
  std::string tls_ca_file;
};

// One route: when every given match field matches, use `transport`.
// Domains are lower-cased; an entry with a leading "." (".example.net")
// matches subdomains only (not example.net itself). Empty lists match any.
struct Route {
  std::vector<std::string> from_domain;  // domain of the envelope sender
  std::vector<std::string> to_domain;    // domain of the recipient
  uint32_t minimum_attempts = 0;         // delivery attempts already made (0 = from the first attempt)
  std::string transport;                 // a [[transport]] name or "direct"
};

// [dkim.sign] "example.test" = [{ selector = "s1", key = "/etc/tern/s1.pem" }]
struct DkimSigningKey {
  std::string selector;
  std::string key;  // PEM private key file
  // "rsa-sha256" (RFC 6376) or "ed25519-sha256" (RFC 8463); empty: inferred
  // from the key when it is loaded.
  std::string algorithm;
};

// [policy]: inbound policy taken during the SMTP dialogue (issue 5). The
// identity/SPF/DMARC keys are read by policy::decide; anti-abuse keys are
// added next to them.
struct PolicyConfig {
  // SPF "fail" (RFC 7208 §8.4): "reject" refuses at end of data unless an
  // aligned DKIM signature or DMARC pass proves the message; "tag" only records.
  std::string spf_fail = "reject";
  // What a DMARC p=reject / p=quarantine (RFC 7489 §6.3) gets: reject |
  // quarantine (Junk folder + header) | tag (record only).
  std::string dmarc_reject = "reject";
  std::string dmarc_quarantine = "quarantine";
  // ARC sealers (d= of the newest ARC-Seal, lower-cased) whose valid chain
  // overrides SPF/DMARC failure (RFC 8617 §7.2).
  std::vector<std::string> arc_trusted_sealers;

  // Anti-abuse (issue 5 item 4; src/policy/checks.h says when each runs).
  bool require_helo = true;                   // MAIL before HELO/EHLO: 503 5.5.1
  bool reject_non_fqdn_helo = false;          // HELO name not an FQDN or address literal: 504 5.5.2
  bool reject_non_fqdn_sender = false;        // MAIL FROM domain missing or not an FQDN: 504 5.5.2
  bool reject_unknown_sender_domain = true;   // no MX/A/AAAA: 550 5.1.8 (450 4.1.8 on DNS failure)
  std::string sender_access;                  // access map file (address | @domain | IP/CIDR); empty: none
  std::string recipient_access;               // access map file (address | @domain | /regex/); empty: none
  std::vector<std::string> dnsbl;             // DNSBL zones, lower-case; a listed client gets 554 5.7.1
  struct Greylist {
    bool enabled = false;
    uint32_t delay = 300;              // seconds before a retry passes
    uint32_t expire = 35 * 24 * 3600;  // seconds passed triplets / whitelisted clients are remembered
    uint32_t pass_after = 5;           // passed triplets that whitelist a client network; 0: never
  } greylist;
  struct RateLimit {
    uint32_t connections_per_minute_per_ip = 0;  // 0: unlimited
    uint32_t messages_per_hour_per_ip = 0;       // 0: unlimited
  } rate_limit;
};

// [[milter]] (issue 5 item 5): a Sendmail-protocol (version 6) milter
// consulted at every SMTP stage, in the order listed.
enum class MilterOnFailure { kTempfail, kAccept, kReject };
const char* milter_on_failure_name(MilterOnFailure value);  // "tempfail", "accept", "reject"

struct MilterConfig {
  // "unix:/run/rspamd/milter.sock" (also "local:/path" or "/path"), or TCP
  // "127.0.0.1:11332", "[::1]:8891", "host:port", Sendmail's "inet:8891@host".
  std::string address;
  // When the milter cannot be reached, times out or breaks the protocol:
  // tempfail (451 4.7.1, default), accept (go on without it), reject (550 5.7.1).
  MilterOnFailure on_failure = MilterOnFailure::kTempfail;
  uint32_t connect_timeout = 10;  // seconds, connect + option negotiation
  uint32_t reply_timeout = 30;    // seconds per reply (a progress packet restarts it)
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
    // Remote delivery: concurrent outbound SMTP connections in total and per
    // destination (MX host set or smarthost).
    uint32_t max_connections = 100;
    uint32_t max_connections_per_destination = 10;
    // Remote delivery threads, each leasing one message at a time on top of
    // `workers`; at most max_connections (default min(16, max_connections)).
    uint32_t remote_workers = 16;
    // SMTP client timeouts in seconds (RFC 5321 §4.5.3.2 minimums as defaults).
    uint32_t connect_timeout = 30;     // TCP connect (and the SOCKS5 proxy exchange)
    uint32_t helo_timeout = 300;       // §4.5.3.2.1 greeting; EHLO/HELO, STARTTLS, AUTH replies
    uint32_t command_timeout = 300;    // §4.5.3.2.2 MAIL, §4.5.3.2.3 RCPT (and RSET)
    uint32_t data_timeout = 180;       // §4.5.3.2.5: each block of content written
    uint32_t data_done_timeout = 600;  // §4.5.3.2.6: the reply to the final "."
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
    // Delayed DSN (RFC 3464 action=delayed), sent once; 0 = never.
    uint32_t delay_warning_after = 4 * 3600;
    std::string sync = "fsync";  // fsync (fdatasync of the spool segments) | syncfs
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

  // [[transport]] in file order, without the implicit "direct".
  std::vector<Transport> transports;
  // [[route]]: global routes, evaluated after account and domain routes.
  std::vector<Route> routes;

  // [domain."example.test"]: settings of one local domain (lower-cased key).
  struct DomainSettings {
    std::vector<Route> routes;  // `route = [{ to_domain = [...], transport = "..." }]`
  };
  std::map<std::string, DomainSettings> domain;

  // [account."alice@example.test"]: per-account settings (lower-cased
  // address key). They live in this file rather than in the accounts file,
  // whose format holds only credentials and belongs to tern_users.
  struct AccountSettings {
    std::vector<Route> routes;
  };
  std::map<std::string, AccountSettings> account;

  PolicyConfig policy;
  std::vector<MilterConfig> milters;  // [[milter]], in order; empty: no milter

  // [forwarders] "alice@example.test" = ["external.org"] or "@example.test" =
  // [...]: domains whose SPF-authorized hosts forward mail to that recipient
  // (or every recipient of the domain). Keys and domains lower-cased.
  std::map<std::string, std::vector<std::string>> forwarders;

  struct Dkim {
    // Signing keys per local domain (lower-cased), each signature in order.
    std::map<std::string, std::vector<DkimSigningKey>> sign;
  } dkim;

  // The transport named `name` ("direct" gives the implicit one); nullptr if none.
  const Transport* find_transport(std::string_view name) const;
};

// Loads and validates a TOML file. Errors read "FILE:LINE: key: problem".
Result<Config> load_file(const std::string& path);
// Parses TOML text; `origin` is used in error messages.
Result<Config> load_string(std::string_view text, const std::string& origin);
// The embedded default used when `tern serve` runs without --config: MX on
// 127.0.0.1:2525, submission on 127.0.0.1:2587, local domain localhost, data in ./var/.
Config embedded_default();
extern const char* const kEmbeddedDefaultToml;

// "5.7.1 text" / "4.4.1": a reply starting with an RFC 3463 enhanced status
// code of class 4 or 5. Returns the Error it stands for (451 or 550).
std::optional<Error> parse_fail_message(std::string_view message);

// Validates a nameserver given as "IP" or "IP@PORT".
bool valid_nameserver(std::string_view text);

// "1h20m", "5d", "30s", "90" (seconds) -> seconds.
std::optional<uint64_t> parse_duration(std::string_view text);
// "50M", "1G", "4096", "10k" -> bytes.
std::optional<uint64_t> parse_size(std::string_view text);

}  // namespace tern::config
