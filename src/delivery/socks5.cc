// SOCKS5 CONNECT through a proxy (see socks5.h). Wire formats from RFC 1928
// (§3 method selection, §4 requests, §5 addressing, §6 replies) and RFC 1929
// §2 (username/password sub-negotiation). All reads are exact-length, so the
// SMTP greeting that may follow the proxy's reply is left on the socket.
#include "delivery/socks5.h"

#include <arpa/inet.h>

#include <chrono>
#include <cstring>

#include "base/net.h"

namespace tern::delivery {

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint8_t kVersion = 5;
constexpr uint8_t kMethodNoAuth = 0x00;          // RFC 1928 §3
constexpr uint8_t kMethodUserPassword = 0x02;    // RFC 1928 §3, RFC 1929
constexpr uint8_t kMethodNoneAcceptable = 0xFF;  // RFC 1928 §3
constexpr uint8_t kUserPasswordVersion = 1;      // RFC 1929 §2
constexpr uint8_t kCommandConnect = 1;           // RFC 1928 §4
constexpr uint8_t kAtypIpv4 = 1;                 // RFC 1928 §5
constexpr uint8_t kAtypDomain = 3;
constexpr uint8_t kAtypIpv6 = 4;

std::chrono::milliseconds left_until(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? left : std::chrono::milliseconds(0);
}

// Transient error naming the proxy step; the socket's own errors (timeouts,
// drops) keep their status code.
Error step_error(const Error& cause, std::string_view step) {
  Error e = cause;
  e.text = "SOCKS5 proxy " + std::string(step) + ": " + cause.text;
  return e;
}

// Maps a non-zero REP field (RFC 1928 §6) to an error value.
Error reply_error(uint8_t rep, const std::string& target) {
  std::string text = "SOCKS5 proxy could not connect to " + target + ": " + std::string(socks5_reply_text(rep));
  switch (rep) {
    case 0x02:  // not allowed by ruleset
      return Error::temp("4.7.0", text);
    case 0x06:  // TTL expired
      return Error::temp("4.4.2", text);
    case 0x07:  // command not supported
    case 0x08:  // address type not supported
      return Error::temp("4.4.0", text);
    default:  // general failure, network/host unreachable, refused, unassigned codes
      return Error::temp("4.4.1", text);
  }
}

}  // namespace

std::string_view socks5_reply_text(uint8_t code) {
  switch (code) {
    case 0x00: return "succeeded";
    case 0x01: return "general SOCKS server failure";
    case 0x02: return "connection not allowed by ruleset";
    case 0x03: return "network unreachable";
    case 0x04: return "host unreachable";
    case 0x05: return "connection refused";
    case 0x06: return "TTL expired";
    case 0x07: return "command not supported";
    case 0x08: return "address type not supported";
    default: return "unassigned reply code";
  }
}

Status socks5_handshake(ClientSocket& socket, const Socks5Options& options, const std::string& target_host,
                        uint16_t target_port) {
  const auto deadline = Clock::now() + options.handshake_timeout;
  const std::string target = HostPort{target_host, target_port}.to_string();
  if (options.username.size() > 255 || options.password.size() > 255) {
    return Error::temp("4.3.5", "SOCKS5 username and password are limited to 255 octets (RFC 1929)");
  }
  const bool offer_password = !options.username.empty();

  // §3: version identifier / method selection.
  std::string hello{static_cast<char>(kVersion)};
  if (offer_password) {
    hello += static_cast<char>(2);
    hello += static_cast<char>(kMethodNoAuth);
    hello += static_cast<char>(kMethodUserPassword);
  } else {
    hello += static_cast<char>(1);
    hello += static_cast<char>(kMethodNoAuth);
  }
  if (auto st = socket.send(hello, left_until(deadline)); !st) return step_error(st.error(), "greeting");
  auto choice = socket.read_exact(2, left_until(deadline));
  if (!choice) return step_error(choice.error(), "method selection");
  if (static_cast<uint8_t>((*choice)[0]) != kVersion) {
    return Error::temp("4.4.0", "SOCKS5 proxy: not a SOCKS version 5 server");
  }
  uint8_t method = static_cast<uint8_t>((*choice)[1]);
  if (method == kMethodNoneAcceptable) {
    return Error::temp("4.7.0", offer_password ? "SOCKS5 proxy accepts none of our authentication methods"
                                               : "SOCKS5 proxy requires authentication");
  }
  if (method == kMethodUserPassword && offer_password) {
    // RFC 1929 §2: VER ULEN UNAME PLEN PASSWD, answered by VER STATUS.
    std::string auth{static_cast<char>(kUserPasswordVersion)};
    auth += static_cast<char>(options.username.size());
    auth += options.username;
    auth += static_cast<char>(options.password.size());
    auth += options.password;
    if (auto st = socket.send(auth, left_until(deadline)); !st) return step_error(st.error(), "authentication");
    auto status = socket.read_exact(2, left_until(deadline));
    if (!status) return step_error(status.error(), "authentication");
    if (static_cast<uint8_t>((*status)[0]) != kUserPasswordVersion) {
      return Error::temp("4.4.0", "SOCKS5 proxy: malformed authentication reply");
    }
    if ((*status)[1] != 0) return Error::temp("4.7.0", "SOCKS5 proxy rejected the username/password");
  } else if (method != kMethodNoAuth) {
    return Error::temp("4.4.0", "SOCKS5 proxy chose a method we did not offer");
  }

  // §4 request: VER CMD RSV ATYP DST.ADDR DST.PORT, addresses per §5.
  std::string request{static_cast<char>(kVersion), static_cast<char>(kCommandConnect), 0};
  unsigned char addr[16];
  if (::inet_pton(AF_INET, target_host.c_str(), addr) == 1) {
    request += static_cast<char>(kAtypIpv4);
    request.append(reinterpret_cast<char*>(addr), 4);
  } else if (::inet_pton(AF_INET6, target_host.c_str(), addr) == 1) {
    request += static_cast<char>(kAtypIpv6);
    request.append(reinterpret_cast<char*>(addr), 16);
  } else {
    if (target_host.empty() || target_host.size() > 255) {
      return Error::temp("4.3.5", "SOCKS5 target host name must be 1 to 255 octets");
    }
    request += static_cast<char>(kAtypDomain);
    request += static_cast<char>(target_host.size());
    request += target_host;
  }
  request += static_cast<char>(target_port >> 8);
  request += static_cast<char>(target_port & 0xff);
  if (auto st = socket.send(request, left_until(deadline)); !st) return step_error(st.error(), "request");

  // §6 reply: VER REP RSV ATYP BND.ADDR BND.PORT. The bound address is read
  // and ignored, so exactly the reply is consumed.
  auto head = socket.read_exact(4, left_until(deadline));
  if (!head) return step_error(head.error(), "reply");
  if (static_cast<uint8_t>((*head)[0]) != kVersion) return Error::temp("4.4.0", "SOCKS5 proxy: malformed reply");
  uint8_t rep = static_cast<uint8_t>((*head)[1]);
  if (rep != 0) return reply_error(rep, target);
  size_t rest = 0;
  switch (static_cast<uint8_t>((*head)[3])) {
    case kAtypIpv4: rest = 4 + 2; break;
    case kAtypIpv6: rest = 16 + 2; break;
    case kAtypDomain: {
      auto len = socket.read_exact(1, left_until(deadline));
      if (!len) return step_error(len.error(), "reply");
      rest = static_cast<uint8_t>((*len)[0]) + 2;
      break;
    }
    default:
      return Error::temp("4.4.0", "SOCKS5 proxy: unknown address type in reply");
  }
  auto bound = socket.read_exact(rest, left_until(deadline));
  if (!bound) return step_error(bound.error(), "reply");
  return ok();
}

Result<ClientSocket> socks5_connect(const Socks5Options& options, const std::string& target_host,
                                    uint16_t target_port, ReplyLimits limits) {
  if (options.proxy.is_unix) return Error::temp("4.3.5", "SOCKS5 proxy must be a TCP endpoint");
  if (options.username.size() > 255 || options.password.size() > 255) {
    return Error::temp("4.3.5", "SOCKS5 username and password are limited to 255 octets (RFC 1929)");
  }
  auto connected = ClientSocket::connect(options.proxy, options.connect_timeout, limits);
  if (!connected) return step_error(connected.error(), "connect " + options.proxy.to_string());
  ClientSocket socket = std::move(*connected);
  if (auto st = socks5_handshake(socket, options, target_host, target_port); !st) return st.error();
  return socket;
}

}  // namespace tern::delivery
