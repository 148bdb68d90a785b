// SOCKS5 client (RFC 1928) for sending outbound SMTP through a proxy, such
// as a Tor daemon or a corporate egress gateway: connect to the proxy, agree
// on "no authentication" or username/password (RFC 1929), and ask it to
// CONNECT to the target given as an IPv4/IPv6 literal or a domain name
// (ATYP 3, resolved by the proxy). The connected ClientSocket is handed back
// so the SMTP client continues on it as if it had connected directly. Every
// failure, including each SOCKS reply code, is a transient error value with
// a text naming what went wrong; nothing here is ever a reason to bounce.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "delivery/client_socket.h"

namespace tern::delivery {

struct Socks5Options {
  Endpoint proxy;  // the proxy's TCP endpoint ("127.0.0.1:9050")
  // RFC 1929 username/password; offered only when `username` is not empty.
  // Each is at most 255 octets (the protocol's one-byte length).
  std::string username;
  std::string password;
  std::chrono::milliseconds connect_timeout{30'000};  // TCP connect to the proxy
  std::chrono::milliseconds handshake_timeout{60'000};  // whole SOCKS exchange, including the proxy's own connect
};

// Connects to `target_host`:`target_port` through the proxy. `target_host` is
// an IP literal or a domain name (at most 255 octets). Errors: 4.4.1 (proxy
// unreachable, target refused/unreachable), 4.4.2 (timeouts, dropped proxy
// connection), 4.4.0 (not a SOCKS5 proxy, malformed reply), 4.7.0 (proxy
// refuses our authentication or the connection by rule), 4.3.5 (bad options).
Result<ClientSocket> socks5_connect(const Socks5Options& options, const std::string& target_host,
                                    uint16_t target_port, ReplyLimits limits = {});

// The same exchange on an already connected proxy socket (for tests and for
// chaining); `socket` is left as the tunnel on success.
Status socks5_handshake(ClientSocket& socket, const Socks5Options& options, const std::string& target_host,
                        uint16_t target_port);

// Text of a SOCKS5 reply code (RFC 1928 §6), e.g. "connection refused".
std::string_view socks5_reply_text(uint8_t code);

}  // namespace tern::delivery
