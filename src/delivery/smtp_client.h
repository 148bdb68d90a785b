// Outbound SMTP client (RFC 5321) for relaying queued mail to remote servers
// from a delivery worker thread. One SmtpConnection is one TCP connection
// (direct or through a SOCKS5 proxy): greeting, EHLO (HELO fallback),
// STARTTLS (RFC 3207, opportunistic or required, or implicit TLS), AUTH
// (SCRAM-SHA-256 per RFC 5802/7677 preferred, else PLAIN per RFC 4616; only
// over TLS), then any number of mail transactions with per-recipient results
// (PIPELINING RFC 2920, SIZE RFC 1870, 8BITMIME RFC 6152, SMTPUTF8 RFC 6531,
// DSN RFC 3461), then QUIT. Connection trouble never turns into a permanent
// failure; only the server's own 5xx replies and the checks the RFCs demand
// before sending (SIZE, SMTPUTF8) do. Timeouts default to RFC 5321 §4.5.3.2.
//
// Not here yet: CHUNKING/BDAT (advertised and parsed, but DATA is always
// used), REQUIRETLS (parsed only), DANE and MTA-STS lookups (the TLS policy
// hook below is where they plug in), conversion of 8-bit content for servers
// without 8BITMIME (such content is sent as is, like most MTAs do).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "delivery/client_socket.h"
#include "delivery/local_delivery.h"
#include "delivery/reply_reader.h"
#include "delivery/socks5.h"

namespace tern::delivery {

// EHLO keywords the client acts on (RFC 5321 §4.1.1.1 and the extensions' RFCs).
struct SmtpExtensions {
  bool esmtp = false;                  // EHLO was accepted (false after the HELO fallback)
  bool pipelining = false;             // RFC 2920
  bool size = false;                   // RFC 1870
  uint64_t max_size = 0;               // SIZE parameter; 0 = no fixed limit announced
  bool eight_bit_mime = false;         // RFC 6152
  bool smtputf8 = false;               // RFC 6531
  bool dsn = false;                    // RFC 3461
  bool starttls = false;               // RFC 3207
  bool chunking = false;               // RFC 3030 (not used for sending yet)
  bool enhanced_status_codes = false;  // RFC 2034
  bool requiretls = false;             // RFC 8689 (not used yet)
  std::vector<std::string> auth_mechanisms;  // RFC 4954, upper-cased

  bool offers_auth(std::string_view mechanism) const;
};

// Reads the keywords from a 250 reply to EHLO (the first line is the
// server's greeting text). Unknown keywords are ignored.
SmtpExtensions parse_ehlo_reply(const Reply& reply);

enum class TlsMode {
  kNone,           // never STARTTLS
  kOpportunistic,  // STARTTLS when offered; clear text otherwise or if the handshake fails
  kRequired,       // no STARTTLS or a failed handshake is a 4.7.x transient error
};

// TLS policy for one connection. A per-destination policy (MTA-STS, DANE)
// fills in `verify_names`/`require_verified` or supplies `verify_callback`.
struct TlsPolicy {
  TlsMode mode = TlsMode::kOpportunistic;
  bool implicit_tls = false;  // TLS from the first byte (port 465 style, RFC 8314); implies required
  // SNI and, when `verify_names` is empty, the name the certificate must match.
  std::string server_name;
  std::vector<std::string> verify_names;  // acceptable certificate names (MX host, MTA-STS patterns)
  // Verification failure is fatal (4.7.5) instead of only recorded. Also
  // makes TLS required.
  bool require_verified = false;
  // Extra PEM trust anchors (private CA, tests); the system store is always used.
  std::string ca_file;
  // Shared client context (saves loading trust anchors per connection); made
  // from `ca_file` when null.
  std::shared_ptr<SSL_CTX> context;
  // Called after a completed handshake with the session and OpenSSL's own
  // verdict (chain + names); its answer replaces `info.verified`. For DANE
  // and other checks that OpenSSL's chain verification cannot express.
  std::function<bool(SSL* ssl, const TlsSessionInfo& info)> verify_callback;
};

struct SmtpCredentials {
  std::string username;  // authentication identity; ASCII, SASLprep is not applied
  std::string password;
};

// RFC 5321 §4.5.3.2 defaults. Tests use short ones.
struct SmtpTimeouts {
  std::chrono::milliseconds connect{30'000};
  std::chrono::milliseconds greeting{300'000};       // §4.5.3.2.1
  std::chrono::milliseconds command{300'000};        // EHLO, STARTTLS, AUTH, RSET (as MAIL)
  std::chrono::milliseconds tls_handshake{60'000};
  std::chrono::milliseconds mail{300'000};           // §4.5.3.2.2
  std::chrono::milliseconds rcpt{300'000};           // §4.5.3.2.3
  std::chrono::milliseconds data_init{120'000};      // §4.5.3.2.4
  std::chrono::milliseconds data_block{180'000};     // §4.5.3.2.5, per block of content sent
  std::chrono::milliseconds data_final{600'000};     // §4.5.3.2.6
  std::chrono::milliseconds quit{10'000};
};

struct SmtpClientOptions {
  std::string helo_name = "localhost";  // our FQDN for EHLO/HELO
  TlsPolicy tls;
  std::optional<SmtpCredentials> credentials;  // AUTH when set
  std::optional<Socks5Options> socks5;         // connect through this proxy when set
  SmtpTimeouts timeouts;
  ReplyLimits reply_limits;
  size_t max_pipelined_commands = 100;  // commands sent before reading their replies (RFC 2920 §3.1 deadlock bound)
};

// Streaming message content. next_chunk() returns the next piece (valid until
// the following call), an empty view at the end, or an error (e.g. a spool
// read failure), which aborts the transaction as a transient failure.
class ContentSource {
 public:
  virtual ~ContentSource() = default;
  virtual Result<std::string_view> next_chunk() = 0;
};

struct OutboundRecipient {
  std::string address;  // forward-path for RCPT TO, without angle brackets
  // RFC 3461 §4.1: "" (no parameter), "NEVER" or a comma list of SUCCESS, FAILURE, DELAY.
  std::string notify;
  // RFC 3461 §4.2: the original recipient (sent as ORCPT=<type>;<xtext>), "" for none.
  std::string orcpt;
  std::string orcpt_type = "rfc822";
};

struct OutboundMessage {
  std::string sender;  // reverse-path, "" for the null sender
  std::vector<OutboundRecipient> recipients;
  std::string_view content;                // the message (header + body), used when `source` is null
  ContentSource* source = nullptr;         // streamed content instead of `content`
  uint64_t size = 0;                       // content size for SIZE=; 0: content.size()
  bool eight_bit = false;                  // body is 8-bit MIME (BODY=8BITMIME when offered)
  bool smtputf8 = false;                   // needs SMTPUTF8 (RFC 6531): fails permanently if not offered
  std::string dsn_ret;                     // RFC 3461 §4.3: "", "FULL" or "HDRS"
  std::string dsn_envid;                   // RFC 3461 §4.4: "" or the envelope id (xtext-encoded on the wire)
};

struct SmtpRecipientResult {
  RecipientResult result;  // code/enhanced/text/transient; text is the server's first line, sanitized
  // The recipient had DSN parameters but the server lacks DSN, so they were
  // not passed on (RFC 3461 §5.2.2): when delivered and NOTIFY includes
  // SUCCESS, the caller must issue a "relayed" DSN itself.
  bool dsn_not_relayed = false;
};

struct SendResult {
  std::vector<SmtpRecipientResult> recipients;  // same order as OutboundMessage::recipients
  bool connection_usable = false;               // another send() may follow on this connection
};

// What was negotiated on the connection, for logs and Received headers.
struct SmtpSessionInfo {
  std::string greeting;  // first line of the 220 greeting, sanitized
  bool tls = false;
  TlsSessionInfo tls_info;  // when `tls`
  bool authenticated = false;
  std::string auth_mechanism;  // "SCRAM-SHA-256" / "PLAIN"
};

class SmtpConnection {
 public:
  explicit SmtpConnection(SmtpClientOptions options);
  ~SmtpConnection();
  SmtpConnection(const SmtpConnection&) = delete;
  SmtpConnection& operator=(const SmtpConnection&) = delete;

  // Connects (directly or through options.socks5) and runs the session set-up:
  // greeting, EHLO/HELO, STARTTLS, AUTH. An error carries the code class the
  // situation deserves (a 554 greeting stays 5xx, 421 stays 4xx; network
  // trouble 4.4.1/4.4.2; TLS 4.7.4/4.7.5); the caller tries the next MX on
  // any error. In opportunistic mode a failed handshake is retried once on a
  // fresh connection without STARTTLS.
  Status connect(const Endpoint& endpoint);
  // The same on an already connected socket (no reconnect on TLS failure).
  Status start(ClientSocket socket);

  // One mail transaction. Always returns one result per recipient.
  SendResult send(const OutboundMessage& message);

  // QUIT (RFC 5321 §4.1.1.10) and close; harmless when already closed.
  void quit();

  bool usable() const { return usable_; }
  const SmtpExtensions& extensions() const { return extensions_; }
  const SmtpSessionInfo& session() const { return session_; }
  // The last reply the server sent ("250 2.0.0 text", sanitized and bounded).
  const std::string& last_reply() const { return last_reply_; }

 private:
  Status start_session(ClientSocket socket, bool allow_starttls);
  Result<Reply> command(std::string_view line, std::chrono::milliseconds timeout);
  Result<Reply> read(std::chrono::milliseconds timeout);
  Status hello();
  Status starttls();
  Status authenticate();
  Status auth_plain();
  Status auth_scram();
  Error fail_session(Error error);

  SmtpClientOptions options_;
  ClientSocket socket_;
  bool usable_ = false;
  bool tls_handshake_failed_ = false;
  SmtpExtensions extensions_;
  SmtpSessionInfo session_;
  std::string last_reply_;
};

// Printable-ASCII, single-line, bounded copy of server text for logs and
// queue records.
std::string sanitize_reply_text(std::string_view text, size_t max_length = 300);

}  // namespace tern::delivery
