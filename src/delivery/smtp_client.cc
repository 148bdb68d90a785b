// Outbound SMTP session (see smtp_client.h). Linear, blocking code on a
// delivery worker thread; replies are matched to commands by order, which is
// all pipelining needs (RFC 2920 §3.1). Every reply the server sends passes
// through read(), which records it for last_reply() and turns 421 (service
// closing, RFC 5321 §3.8) into a session error.
#include "delivery/smtp_client.h"

#include <utility>

#include "base/log.h"
#include "base/strings.h"
#include "delivery/dot_stuff.h"
#include "users/credential.h"

namespace tern::delivery {

namespace {

constexpr size_t kContentChunk = 64 * 1024;
constexpr size_t kMaxPathLength = 512;   // generous for RFC 5321 §4.5.3.1.3's 256-octet paths
constexpr size_t kMaxEnvidLength = 100;  // RFC 3461 §4.4
constexpr size_t kMaxOrcptLength = 500;  // RFC 3461 §4.2
constexpr size_t kMaxSaslField = 255;    // RFC 4616 §2
// Iteration counts a server may demand of us (RFC 7677 §4 asks for at least
// 4096; far larger values would let a server burn our CPU).
constexpr uint64_t kMaxScramIterations = 1'000'000;

std::string first_line(const Reply& reply) { return reply.lines.empty() ? std::string() : reply.lines[0]; }

std::string enhanced_or_default(const Reply& reply) {
  if (!reply.enhanced.empty()) return reply.enhanced;
  return std::to_string(reply.code / 100) + ".0.0";
}

// Error value quoting a reply, keeping its class unless `force_transient`.
Error error_from_reply(std::string_view what, const Reply& reply, bool force_transient = false) {
  std::string text =
      std::string(what) + ": " + sanitize_reply_text(std::to_string(reply.code) + " " + first_line(reply));
  if (force_transient || !reply.permanent()) {
    int code = reply.transient() ? reply.code : 451;
    std::string enhanced = reply.transient() && !reply.enhanced.empty() ? reply.enhanced : "4.4.0";
    return Error::temp(enhanced, text, code);
  }
  return Error::perm(enhanced_or_default(reply), text, reply.code);
}

RecipientResult from_reply(const std::string& recipient, const Reply& reply) {
  RecipientResult r;
  r.recipient = recipient;
  r.code = reply.code;
  r.enhanced = enhanced_or_default(reply);
  r.text = sanitize_reply_text(first_line(reply));
  r.transient = !reply.positive() && !reply.permanent();
  return r;
}

// Paths go between angle brackets on one command line; CR/LF or brackets
// would let an address inject commands.
bool safe_path(std::string_view address) {
  if (address.size() > kMaxPathLength) return false;
  for (unsigned char c : address) {
    if (c == '\r' || c == '\n' || c == '<' || c == '>' || c == 0) return false;
  }
  return true;
}

// RFC 3461 §4.1: "NEVER" alone, or a comma list of SUCCESS, FAILURE, DELAY.
bool valid_notify(std::string_view notify) {
  if (iequals(notify, "NEVER")) return true;
  if (notify.empty()) return false;
  for (std::string_view item : split(notify, ',')) {
    if (!iequals(item, "SUCCESS") && !iequals(item, "FAILURE") && !iequals(item, "DELAY")) return false;
  }
  return true;
}

// An addr-type is an atom (RFC 3461 §4.2); keep it to letters, digits and '-'.
bool valid_address_type(std::string_view type) {
  if (type.empty() || type.size() > 32) return false;
  for (char c : type) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return false;
  }
  return true;
}

// RFC 5802 §5.1: "=" and "," in a user name are escaped as "=3D" and "=2C".
std::string scram_escape_name(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c == '=') out += "=3D";
    else if (c == ',') out += "=2C";
    else out += c;
  }
  return out;
}

class StringSource : public ContentSource {
 public:
  explicit StringSource(std::string_view content) : rest_(content) {}
  Result<std::string_view> next_chunk() override {
    std::string_view chunk = rest_.substr(0, kContentChunk);
    rest_.remove_prefix(chunk.size());
    return chunk;
  }

 private:
  std::string_view rest_;
};

}  // namespace

std::string sanitize_reply_text(std::string_view text, size_t max_length) {
  std::string out;
  out.reserve(std::min(text.size(), max_length));
  for (unsigned char c : text) {
    if (out.size() >= max_length) break;
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  }
  return out;
}

bool SmtpExtensions::offers_auth(std::string_view mechanism) const {
  for (const auto& m : auth_mechanisms) {
    if (iequals(m, mechanism)) return true;
  }
  return false;
}

SmtpExtensions parse_ehlo_reply(const Reply& reply) {
  // RFC 5321 §4.1.1.1: ehlo-line = ehlo-keyword *( SP ehlo-param ).
  SmtpExtensions ext;
  ext.esmtp = true;
  for (size_t i = 1; i < reply.lines.size(); ++i) {
    std::string_view line = trim(reply.lines[i]);
    size_t space = line.find(' ');
    std::string keyword = to_upper(line.substr(0, space));
    std::string_view params = space == std::string_view::npos ? std::string_view() : trim(line.substr(space + 1));
    if (keyword == "PIPELINING") {
      ext.pipelining = true;
    } else if (keyword == "SIZE") {
      // RFC 1870 §4: optional limit in octets, 0 meaning none.
      ext.size = true;
      unsigned long long limit = 0;
      if (!params.empty() && parse_u64(params, limit)) ext.max_size = limit;
    } else if (keyword == "8BITMIME") {
      ext.eight_bit_mime = true;
    } else if (keyword == "SMTPUTF8") {
      ext.smtputf8 = true;
    } else if (keyword == "DSN") {
      ext.dsn = true;
    } else if (keyword == "STARTTLS") {
      ext.starttls = true;
    } else if (keyword == "CHUNKING") {
      ext.chunking = true;
    } else if (keyword == "ENHANCEDSTATUSCODES") {
      ext.enhanced_status_codes = true;
    } else if (keyword == "REQUIRETLS") {
      ext.requiretls = true;
    } else if (keyword == "AUTH" || keyword.starts_with("AUTH=")) {
      // RFC 4954 §3; "AUTH=" is the pre-standard form some servers still send.
      std::string_view mechs = keyword == "AUTH" ? params : line.substr(5);
      for (std::string_view m : split(mechs, ' ')) {
        if (!m.empty() && ext.auth_mechanisms.size() < 32) ext.auth_mechanisms.push_back(to_upper(m));
      }
    }
  }
  return ext;
}

SmtpConnection::SmtpConnection(SmtpClientOptions options) : options_(std::move(options)) {}

SmtpConnection::~SmtpConnection() { socket_.close(); }

Error SmtpConnection::fail_session(Error error) {
  usable_ = false;
  socket_.close();
  return error;
}

Result<Reply> SmtpConnection::read(std::chrono::milliseconds timeout) {
  auto reply = socket_.read_reply(timeout);
  if (!reply) return fail_session(reply.error());
  std::string code = std::to_string(reply->code);
  if (!reply->enhanced.empty()) code += " " + reply->enhanced;
  last_reply_ = sanitize_reply_text(code + " " + first_line(*reply));
  if (reply->code == 421) {
    // RFC 5321 §3.8: the server is closing the channel.
    return fail_session(Error::temp(reply->transient() && !reply->enhanced.empty() ? reply->enhanced : "4.4.2",
                                    "server closing connection: " + sanitize_reply_text(first_line(*reply)), 421));
  }
  return reply;
}

Result<Reply> SmtpConnection::command(std::string_view line, std::chrono::milliseconds timeout) {
  std::string wire(line);
  wire += "\r\n";
  if (auto st = socket_.send(wire, timeout); !st) return fail_session(st.error());
  return read(timeout);
}

Status SmtpConnection::connect(const Endpoint& endpoint) {
  if (endpoint.is_unix) return Error::temp("4.3.5", "SMTP relay must be a TCP endpoint");
  bool allow_starttls = true;
  for (int attempt = 0; attempt < 2; ++attempt) {
    Result<ClientSocket> connected = Error::local("not connected");
    if (options_.socks5) {
      connected = socks5_connect(*options_.socks5, endpoint.host, endpoint.port, options_.reply_limits);
    } else {
      connected = ClientSocket::connect(endpoint, options_.timeouts.connect, options_.reply_limits);
    }
    if (!connected) return connected.error();
    Status st = start_session(std::move(*connected), allow_starttls);
    // Opportunistic TLS: a handshake that fails leaves the connection
    // unusable, so try once more in clear text, as other MTAs do.
    if (!st && tls_handshake_failed_ && options_.tls.mode == TlsMode::kOpportunistic &&
        !options_.tls.require_verified && !options_.tls.implicit_tls && allow_starttls) {
      log::info("smtp_tls_fallback").kv("relay", endpoint.to_string()).kv("error", st.error().text);
      allow_starttls = false;
      continue;
    }
    return st;
  }
  return Error::local("unreachable");
}

Status SmtpConnection::start(ClientSocket socket) { return start_session(std::move(socket), true); }

Status SmtpConnection::start_session(ClientSocket socket, bool allow_starttls) {
  socket_ = std::move(socket);
  usable_ = true;
  tls_handshake_failed_ = false;
  extensions_ = {};
  session_ = {};
  last_reply_.clear();

  if (options_.tls.implicit_tls) {
    if (auto st = starttls(); !st) return st;  // handshake only: no STARTTLS command when socket is fresh
  }
  // RFC 5321 §4.3.2 / §3.1: 220 greeting, or 554 (or 421) refusing service.
  auto greeting = read(options_.timeouts.greeting);
  if (!greeting) return greeting.error();
  if (greeting->code != 220) {
    return fail_session(error_from_reply("server refused the connection", *greeting));
  }
  session_.greeting = sanitize_reply_text(first_line(*greeting));
  if (auto st = hello(); !st) return st;

  bool want_tls = options_.tls.mode != TlsMode::kNone || options_.tls.require_verified;
  bool tls_required = options_.tls.mode == TlsMode::kRequired || options_.tls.require_verified;
  if (want_tls && !socket_.tls_active()) {
    if (extensions_.starttls && allow_starttls) {
      if (auto st = starttls(); !st) return st;
    } else if (tls_required) {
      quit();
      return Error::temp("4.7.4", "TLS is required but the server does not offer STARTTLS");
    }
  }
  if (options_.credentials) {
    if (auto st = authenticate(); !st) return st;
  }
  return ok();
}

Status SmtpConnection::hello() {
  // RFC 5321 §4.1.1.1: EHLO; a server that rejects it with 5xx gets HELO (§3.2).
  auto ehlo = command("EHLO " + options_.helo_name, options_.timeouts.command);
  if (!ehlo) return ehlo.error();
  if (ehlo->code == 250) {
    extensions_ = parse_ehlo_reply(*ehlo);
    return ok();
  }
  if (!ehlo->permanent()) return fail_session(error_from_reply("EHLO rejected", *ehlo));
  auto helo = command("HELO " + options_.helo_name, options_.timeouts.command);
  if (!helo) return helo.error();
  if (helo->code != 250) return fail_session(error_from_reply("HELO rejected", *helo));
  extensions_ = {};
  return ok();
}

Status SmtpConnection::starttls() {
  const TlsPolicy& policy = options_.tls;
  bool tls_required = policy.mode == TlsMode::kRequired || policy.require_verified || policy.implicit_tls;
  if (!policy.implicit_tls) {
    // RFC 3207 §4: "STARTTLS", then 220 before the handshake.
    auto reply = command("STARTTLS", options_.timeouts.command);
    if (!reply) return reply.error();
    if (reply->code != 220) {
      if (tls_required) {
        quit();
        return Error::temp("4.7.4", "TLS is required but STARTTLS was refused: " +
                                        sanitize_reply_text(reply->to_string()));
      }
      return ok();  // opportunistic: the session continues in clear text, state unchanged
    }
  }
  if (!options_.tls.context) {
    auto context = make_client_tls_context(policy.ca_file);
    if (!context) return fail_session(context.error());
    options_.tls.context = *context;
  }
  TlsHandshakeParams params;
  params.sni = policy.server_name;
  params.verify_names = policy.verify_names;
  if (params.verify_names.empty() && !policy.server_name.empty()) params.verify_names.push_back(policy.server_name);
  auto info = socket_.start_tls(options_.tls.context.get(), params, options_.timeouts.tls_handshake);
  if (!info) {
    tls_handshake_failed_ = true;
    return fail_session(info.error());
  }
  if (policy.verify_callback) info->verified = policy.verify_callback(socket_.ssl(), *info);
  session_.tls = true;
  session_.tls_info = *info;
  log::debug("smtp_tls")
      .kv("version", info->version)
      .kv("cipher", info->cipher)
      .kv("verified", info->verified)
      .kv("verify_error", info->verify_error);
  if (policy.require_verified && !info->verified) {
    // RFC 3207 §4.1 / RFC 8314 §4.1: an unverified server gets nothing more
    // (no AUTH, no mail); the attempt is deferred.
    std::string reason = info->verify_error.empty() ? "rejected by policy" : info->verify_error;
    std::string name = params.verify_names.empty() ? policy.server_name : params.verify_names.front();
    log::warn("smtp_tls_verify_failed").kv("server", name).kv("reason", reason).kv("peer_subject", info->peer_subject);
    quit();
    return Error::temp("4.7.5", "TLS certificate verification failed for " + name + ": " + reason);
  }
  if (policy.implicit_tls) return ok();  // the greeting and EHLO follow
  // RFC 3207 §4.2: forget what was learnt in clear text and say EHLO again.
  extensions_ = {};
  return hello();
}

Status SmtpConnection::authenticate() {
  // Credentials never travel in clear text (RFC 4954 §4 and §14).
  if (!socket_.tls_active()) {
    quit();
    return Error::temp("4.7.11", "refusing to send SMTP AUTH credentials without TLS");
  }
  if (extensions_.auth_mechanisms.empty()) {
    quit();
    return Error::temp("4.7.0", "server does not offer SMTP AUTH");
  }
  Status st = ok();
  if (extensions_.offers_auth("SCRAM-SHA-256")) {
    session_.auth_mechanism = "SCRAM-SHA-256";
    st = auth_scram();
  } else if (extensions_.offers_auth("PLAIN")) {
    session_.auth_mechanism = "PLAIN";
    st = auth_plain();
  } else {
    quit();
    return Error::temp("4.7.0", "server offers no SASL mechanism we support (SCRAM-SHA-256, PLAIN)");
  }
  if (!st) {
    if (usable_) quit();
    return st;
  }
  session_.authenticated = true;
  return ok();
}

Status SmtpConnection::auth_plain() {
  const SmtpCredentials& cred = *options_.credentials;
  if (cred.username.size() > kMaxSaslField || cred.password.size() > kMaxSaslField) {
    return Error::temp("4.3.5", "SMTP AUTH user name or password longer than 255 octets");
  }
  // RFC 4616 §2: message = [authzid] NUL authcid NUL passwd, sent as the
  // RFC 4954 §4 initial response.
  std::string message;
  message += '\0';
  message += cred.username;
  message += '\0';
  message += cred.password;
  auto reply = command("AUTH PLAIN " + base64_encode(message), options_.timeouts.command);
  if (!reply) return reply.error();
  if (reply->code == 235) return ok();
  if (reply->code == 334) {
    // The initial response was all we had; cancel (RFC 4954 §4).
    auto cancelled = command("*", options_.timeouts.command);
    if (!cancelled) return cancelled.error();
    return Error::temp("4.7.0", "SMTP AUTH PLAIN: unexpected challenge");
  }
  // A rejected relay password is an operator problem: keep the mail queued.
  return Error::temp("4.7.8", "SMTP AUTH PLAIN failed: " + sanitize_reply_text(reply->to_string()));
}

Status SmtpConnection::auth_scram() {
  namespace crypto = users::crypto;
  const SmtpCredentials& cred = *options_.credentials;
  auto failed = [&](std::string why) -> Error {
    return Error::temp("4.7.8", "SMTP AUTH SCRAM-SHA-256 failed: " + why);
  };
  // Cancels the exchange after a bad challenge (RFC 4954 §4) and reports `why`.
  auto abort_exchange = [&](std::string why) -> Status {
    auto cancelled = command("*", options_.timeouts.command);
    if (!cancelled) return cancelled.error();
    return Error::temp("4.7.0", "SMTP AUTH SCRAM-SHA-256: " + why);
  };
  auto decode_challenge = [](const Reply& reply, std::string& out) {
    return reply.code == 334 && reply.lines.size() == 1 && base64_decode(trim(reply.lines[0]), out);
  };

  std::string nonce_bytes = crypto::random_bytes(24);
  if (nonce_bytes.empty()) return Error::local("no random bytes for the SCRAM nonce");
  // RFC 5802 §7: client-first-message = gs2-header client-first-message-bare;
  // "n,," = no channel binding, no authzid.
  const std::string client_nonce = base64_encode(nonce_bytes);
  const std::string client_first_bare = "n=" + scram_escape_name(cred.username) + ",r=" + client_nonce;
  auto reply = command("AUTH SCRAM-SHA-256 " + base64_encode("n,," + client_first_bare), options_.timeouts.command);
  if (!reply) return reply.error();
  if (reply->code != 334) return failed(sanitize_reply_text(reply->to_string()));
  std::string server_first;
  if (!decode_challenge(*reply, server_first)) return abort_exchange("malformed challenge");

  // server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count [ "," extensions ]
  std::string server_nonce, salt;
  unsigned long long iterations = 0;
  auto fields = split(server_first, ',');
  if (fields.size() < 3) return abort_exchange("malformed server-first-message");
  for (size_t i = 0; i < fields.size(); ++i) {
    std::string_view f = fields[i];
    if (i == 0 && f.starts_with("r=")) server_nonce = std::string(f.substr(2));
    else if (i == 1 && f.starts_with("s=")) {
      if (!base64_decode(f.substr(2), salt)) return abort_exchange("bad salt");
    } else if (i == 2 && f.starts_with("i=")) {
      if (!parse_u64(f.substr(2), iterations)) return abort_exchange("bad iteration count");
    } else if (i < 3) {
      return abort_exchange("malformed server-first-message");  // includes the mandatory "m=" extension
    }
  }
  // The server's nonce must extend ours (RFC 5802 §5.1 "r").
  if (server_nonce.size() <= client_nonce.size() || !server_nonce.starts_with(client_nonce)) {
    return abort_exchange("server nonce does not extend ours");
  }
  if (salt.empty() || iterations == 0 || iterations > kMaxScramIterations) {
    return abort_exchange("unacceptable salt or iteration count");
  }

  // RFC 5802 §3: the proofs.
  const std::string without_proof = "c=" + base64_encode("n,,") + ",r=" + server_nonce;
  const std::string auth_message = client_first_bare + "," + server_first + "," + without_proof;
  const std::string salted = crypto::pbkdf2_sha256(cred.password, salt, static_cast<uint32_t>(iterations));
  const std::string client_key = crypto::hmac_sha256(salted, "Client Key");
  const std::string stored_key = crypto::sha256(client_key);
  const std::string client_signature = crypto::hmac_sha256(stored_key, auth_message);
  std::string proof = client_key;
  for (size_t i = 0; i < proof.size() && i < client_signature.size(); ++i) proof[i] ^= client_signature[i];
  const std::string server_key = crypto::hmac_sha256(salted, "Server Key");
  const std::string expected_server_signature = crypto::hmac_sha256(server_key, auth_message);

  reply = command(base64_encode(without_proof + ",p=" + base64_encode(proof)), options_.timeouts.command);
  if (!reply) return reply.error();
  if (reply->code == 235) {
    // Accepted without server-final-message: the server never proved it
    // knows the password, so do not trust this session (RFC 5802 §9).
    return fail_session(Error::temp("4.7.0", "SMTP AUTH SCRAM-SHA-256: server did not prove its identity"));
  }
  if (reply->code != 334) return failed(sanitize_reply_text(reply->to_string()));
  std::string server_final;
  if (!decode_challenge(*reply, server_final)) return abort_exchange("malformed server-final-message");
  if (server_final.starts_with("e=")) {
    return abort_exchange("server error " + sanitize_reply_text(server_final.substr(2), 64));
  }
  std::string signature;
  if (!server_final.starts_with("v=") || !base64_decode(server_final.substr(2), signature) ||
      !crypto::equal_constant_time(signature, expected_server_signature)) {
    return abort_exchange("server signature does not verify");
  }
  // RFC 4954 §4: the last challenge carried the server's data; an empty
  // response completes the exchange.
  reply = command("", options_.timeouts.command);
  if (!reply) return reply.error();
  if (reply->code != 235) return failed(sanitize_reply_text(reply->to_string()));
  return ok();
}

SendResult SmtpConnection::send(const OutboundMessage& message) {
  const size_t count = message.recipients.size();
  std::vector<std::optional<RecipientResult>> results(count);
  std::vector<bool> dsn_not_relayed(count, false);

  auto finish = [&](const std::optional<Error>& error) {
    SendResult out;
    out.recipients.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      SmtpRecipientResult r;
      const std::string& address = message.recipients[i].address;
      r.result = results[i] ? std::move(*results[i])
                            : RecipientResult::from_error(address, error.value_or(Error::local("not attempted")));
      r.dsn_not_relayed = dsn_not_relayed[i];
      out.recipients.push_back(std::move(r));
    }
    out.connection_usable = usable_;
    return out;
  };
  // Connection-level failure: recipients without a final answer get `error`.
  auto abort = [&](const Error& error) {
    log::warn("smtp_send_failed").kv("error", error.to_string());
    return finish(error);
  };

  if (count == 0) return finish(std::nullopt);
  if (!usable_) return finish(Error::temp("4.4.2", "SMTP connection is not usable"));
  if (!safe_path(message.sender)) return finish(Error::perm("5.1.7", "invalid sender address", 553));
  for (size_t i = 0; i < count; ++i) {
    if (!safe_path(message.recipients[i].address)) {
      results[i] = RecipientResult::from_error(message.recipients[i].address,
                                               Error::perm("5.1.3", "invalid recipient address", 553));
    }
  }

  // RFC 6531 §3.2: mail that needs SMTPUTF8 must not be given to a server
  // that does not offer it.
  if (message.smtputf8 && !extensions_.smtputf8) {
    return finish(Error::perm("5.6.7", "remote server does not support SMTPUTF8 (RFC 6531)", 553));
  }
  // RFC 1870 §6: do not send what the server already said it will refuse.
  const uint64_t size = message.size != 0 ? message.size : (message.source ? 0 : message.content.size());
  if (extensions_.size && extensions_.max_size != 0 && size > extensions_.max_size) {
    return finish(Error::perm("5.3.4",
                              "message size " + std::to_string(size) + " exceeds the remote server's limit of " +
                                  std::to_string(extensions_.max_size) + " (RFC 1870)",
                              552));
  }

  // MAIL FROM with the ESMTP parameters the server announced.
  std::string mail = "MAIL FROM:<" + message.sender + ">";
  if (extensions_.size && size != 0) mail += " SIZE=" + std::to_string(size);                    // RFC 1870 §6
  if (message.eight_bit && extensions_.eight_bit_mime) mail += " BODY=8BITMIME";               // RFC 6152 §2
  if (message.smtputf8) mail += " SMTPUTF8";                                                   // RFC 6531 §3.4
  if (extensions_.dsn) {
    if (iequals(message.dsn_ret, "FULL") || iequals(message.dsn_ret, "HDRS")) {
      mail += " RET=" + to_upper(message.dsn_ret);  // RFC 3461 §4.3
    }
    if (!message.dsn_envid.empty() && message.dsn_envid.size() <= kMaxEnvidLength) {
      mail += " ENVID=" + xtext_encode(message.dsn_envid);  // RFC 3461 §4.4
    }
  }

  std::vector<size_t> to_send;  // recipients that get a RCPT, in order
  std::vector<std::string> rcpt_lines;
  for (size_t i = 0; i < count; ++i) {
    if (results[i]) continue;
    const OutboundRecipient& r = message.recipients[i];
    std::string line = "RCPT TO:<" + r.address + ">";
    bool wants_dsn = !r.notify.empty() || !r.orcpt.empty();
    if (extensions_.dsn) {
      if (valid_notify(r.notify)) line += " NOTIFY=" + to_upper(r.notify);  // RFC 3461 §4.1
      // RFC 3461 §4.2: ORCPT=addr-type ";" xtext
      if (!r.orcpt.empty() && r.orcpt.size() <= kMaxOrcptLength && valid_address_type(r.orcpt_type)) {
        line += " ORCPT=" + r.orcpt_type + ";" + xtext_encode(r.orcpt);
      }
    } else if (wants_dsn) {
      dsn_not_relayed[i] = true;  // RFC 3461 §5.2.2 (a): parameters dropped
    }
    to_send.push_back(i);
    rcpt_lines.push_back(std::move(line));
  }
  if (to_send.empty()) return finish(std::nullopt);

  const auto& t = options_.timeouts;
  std::vector<size_t> accepted;
  bool mail_accepted = false;
  std::optional<Reply> data_reply;

  if (extensions_.pipelining) {
    // RFC 2920 §3.1: MAIL, the RCPTs and DATA as one group (DATA last), the
    // replies read in order. Very long groups are cut into windows so that
    // neither side can block writing while the other is not reading.
    std::vector<std::string> commands;
    std::vector<std::chrono::milliseconds> timeouts;
    commands.push_back(mail);
    timeouts.push_back(t.mail);
    for (const auto& line : rcpt_lines) {
      commands.push_back(line);
      timeouts.push_back(t.rcpt);
    }
    commands.push_back("DATA");
    timeouts.push_back(t.data_init);
    std::vector<Reply> replies;
    const size_t window = std::max<size_t>(1, options_.max_pipelined_commands);
    for (size_t start = 0; start < commands.size(); start += window) {
      size_t end = std::min(commands.size(), start + window);
      std::string group;
      for (size_t k = start; k < end; ++k) group += commands[k] + "\r\n";
      if (auto st = socket_.send(group, t.mail); !st) return abort(fail_session(st.error()));
      for (size_t k = start; k < end; ++k) {
        auto r = read(timeouts[k]);
        if (!r) {
          // Refusals already received stand; everyone else gets the error.
          bool mail_ok = !replies.empty() && replies[0].positive();
          for (size_t n = 1; mail_ok && n < replies.size() && n <= to_send.size(); ++n) {
            size_t i = to_send[n - 1];
            if (!replies[n].positive()) results[i] = from_reply(message.recipients[i].address, replies[n]);
          }
          return abort(r.error());
        }
        replies.push_back(std::move(*r));
      }
    }
    mail_accepted = replies[0].positive();
    for (size_t n = 0; n < to_send.size(); ++n) {
      size_t i = to_send[n];
      const Reply& reply = mail_accepted ? replies[n + 1] : replies[0];
      if (mail_accepted && reply.positive()) accepted.push_back(i);  // 250/251 (RFC 5321 §4.2.5)
      else results[i] = from_reply(message.recipients[i].address, reply);
    }
    data_reply = std::move(replies.back());
    if (accepted.empty() && data_reply->code == 354) {
      // The server accepted DATA with nobody to deliver to; end it with an
      // empty message at once (RFC 2920 §3.1).
      if (auto st = socket_.send(".\r\n", t.data_block); !st) return abort(fail_session(st.error()));
      auto r = read(t.data_final);
      if (!r) return abort(r.error());
    }
  } else {
    auto mail_reply = command(mail, t.mail);
    if (!mail_reply) return abort(mail_reply.error());
    mail_accepted = mail_reply->positive();
    if (!mail_accepted) {
      for (size_t i : to_send) results[i] = from_reply(message.recipients[i].address, *mail_reply);
      return finish(std::nullopt);
    }
    for (size_t n = 0; n < to_send.size(); ++n) {
      size_t i = to_send[n];
      auto r = command(rcpt_lines[n], t.rcpt);
      if (!r) return abort(r.error());
      if (r->positive()) accepted.push_back(i);
      else results[i] = from_reply(message.recipients[i].address, *r);
    }
    if (!accepted.empty()) {
      auto r = command("DATA", t.data_init);
      if (!r) return abort(r.error());
      data_reply = std::move(*r);
    }
  }

  bool data_accepted = !accepted.empty() && data_reply && data_reply->code == 354;
  if (!accepted.empty() && !data_accepted) {
    for (size_t i : accepted) results[i] = from_reply(message.recipients[i].address, *data_reply);
  }
  if (!data_accepted) {
    // No message was sent: clear the open transaction so the next MAIL
    // starts cleanly (RFC 5321 §4.1.1.5).
    if (mail_accepted) {
      auto r = command("RSET", t.mail);
      if (!r) return finish(std::nullopt);  // every recipient is settled; the connection is gone
      if (!r->positive()) return finish(fail_session(error_from_reply("RSET", *r)));
    }
    return finish(std::nullopt);
  }

  // RFC 5321 §4.5.2 transparency, streamed in blocks (§4.5.3.2.5 timeout each).
  StringSource string_source(message.content);
  ContentSource& source = message.source ? *message.source : static_cast<ContentSource&>(string_source);
  DotStuffer stuffer;
  std::string block;
  for (;;) {
    auto chunk = source.next_chunk();
    if (!chunk) {
      // There is no way to abort DATA; closing without the final "." makes
      // the server discard the partial message (RFC 5321 §4.1.1.4).
      return abort(fail_session(chunk.error()));
    }
    if (chunk->empty()) break;
    block.clear();
    stuffer.append(*chunk, block);
    if (auto st = socket_.send(block, t.data_block); !st) return abort(fail_session(st.error()));
  }
  block.clear();
  stuffer.finish(block);
  if (auto st = socket_.send(block, t.data_block); !st) return abort(fail_session(st.error()));
  // RFC 5321 §4.5.3.2.6: the reply to the final "." may take a while; losing
  // it leaves the outcome unknown, so the recipients are retried and the
  // message may arrive twice (§6.1). Say so in the recorded reply.
  auto final_reply = read(t.data_final);
  if (!final_reply) {
    Error e = final_reply.error();
    e.text = "no reply to end of data (the message may arrive twice): " + e.text;
    return abort(e);
  }
  for (size_t i : accepted) results[i] = from_reply(message.recipients[i].address, *final_reply);
  return finish(std::nullopt);
}

void SmtpConnection::quit() {
  if (socket_.is_open() && usable_) {
    // Best effort (RFC 5321 §4.1.1.10): the answer changes nothing.
    if (socket_.send("QUIT\r\n", options_.timeouts.quit)) (void)socket_.read_reply(options_.timeouts.quit);
  }
  usable_ = false;
  socket_.close();
}

}  // namespace tern::delivery
