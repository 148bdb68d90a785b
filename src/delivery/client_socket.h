// Blocking client connection for delivery workers: connects to a Unix socket
// ("unix:/run/dovecot/lmtp") or TCP endpoint ("127.0.0.1:24", "[::1]:24",
// "host:24") with a connect timeout, sends with a deadline and reads SMTP/LMTP
// replies with a deadline. Delivery runs on worker threads, not the event
// loop, so poll(2)-based blocking I/O keeps the protocol code linear. After
// connecting, the socket can be wrapped in a client-side OpenSSL session
// (STARTTLS, RFC 3207, or implicit TLS as on port 465, RFC 8314); from then on
// send() and read_reply() go through TLS with the same deadlines.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "delivery/reply_reader.h"

namespace tern::delivery {

struct Endpoint {
  bool is_unix = false;
  std::string path;  // Unix socket path when is_unix
  std::string host;  // IP literal or host name otherwise
  uint16_t port = 0;

  // "unix:/path", "/path" (Unix), or "host:port" / "[v6]:port" / "host"
  // (TCP, `default_port` when the port is omitted).
  static Result<Endpoint> parse(std::string_view text, uint16_t default_port);
  std::string to_string() const;
};

// A client-side TLS context: TLS 1.2 or later, the system's trust anchors
// plus, when `ca_file` is not empty, the PEM certificates in it (private CAs,
// tests). Peer verification never aborts a handshake; its outcome is reported
// in TlsSessionInfo so the caller's policy decides (opportunistic TLS).
Result<std::shared_ptr<SSL_CTX>> make_client_tls_context(const std::string& ca_file = "");
// The same, trusting only the PEM certificates in `ca_file` (not the system
// store): a smarthost's private CA, as Postfix's smtp_tls_CAfile without
// tls_append_default_CA. A file without any certificate is an error.
Result<std::shared_ptr<SSL_CTX>> make_client_tls_context_only(const std::string& ca_file);

struct TlsHandshakeParams {
  std::string sni;                        // server name indication; empty or an IP literal: none sent
  std::vector<std::string> verify_names;  // names the certificate may match (RFC 6125); empty: chain only
};

// What was negotiated, for logs and Received headers.
struct TlsSessionInfo {
  std::string version;       // "TLSv1.3"
  std::string cipher;        // "TLS_AES_256_GCM_SHA384"
  int bits = 0;
  bool verified = false;     // chain to a trust anchor, and one of verify_names matched (if any were given)
  std::string verify_error;  // OpenSSL's reason when !verified
  std::string peer_subject;  // subject of the server certificate, one line
};

class ClientSocket {
 public:
  using Duration = std::chrono::milliseconds;

  ClientSocket() = default;
  ~ClientSocket();
  ClientSocket(ClientSocket&& other) noexcept;
  ClientSocket& operator=(ClientSocket&& other) noexcept;
  ClientSocket(const ClientSocket&) = delete;
  ClientSocket& operator=(const ClientSocket&) = delete;

  // Connects within `timeout` (each resolved address gets the remaining time).
  // Failures are 451 4.4.1 (no answer), timeouts 451 4.4.2.
  static Result<ClientSocket> connect(const Endpoint& endpoint, Duration timeout,
                                      ReplyLimits limits = {});

  // Runs a TLS client handshake on the connected socket within `timeout`.
  // Bytes already received in clear and not yet read as a reply are dropped
  // (RFC 3207 §4.2 and its injection concerns). A failed handshake leaves
  // the socket closed: 451 4.7.5.
  Result<TlsSessionInfo> start_tls(SSL_CTX* context, const TlsHandshakeParams& params, Duration timeout);
  bool tls_active() const { return ssl_ != nullptr; }
  // The OpenSSL session after start_tls (for verification hooks), else nullptr.
  SSL* ssl() const { return ssl_; }

  // Reads exactly `count` raw bytes, bypassing the reply parser (proxy
  // handshakes before any reply). Same error values as read_reply.
  Result<std::string> read_exact(size_t count, Duration timeout);

  // Sends all of `data` within `timeout`. Never raises SIGPIPE.
  Status send(std::string_view data, Duration timeout);
  // Reads one complete reply within `timeout`. Timeout, EOF and garbage all
  // give transient errors (451 4.4.2 / 4.5.0); the connection is then unusable.
  Result<Reply> read_reply(Duration timeout);

  bool is_open() const { return fd_ >= 0; }
  void close();

 private:
  explicit ClientSocket(int fd, ReplyLimits limits) : fd_(fd), limits_(limits), reader_(limits) {}
  // One read into `buf`: >0 bytes, 0 on EOF, or an Error (timeout, reset).
  Result<size_t> receive_some(char* buf, size_t size, std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  SSL* ssl_ = nullptr;
  ReplyLimits limits_;
  ReplyReader reader_;
};

}  // namespace tern::delivery
