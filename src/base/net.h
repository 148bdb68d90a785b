// Network address helpers: parsing "IP:port" / "[IPv6]:port" listener
// addresses and CIDR blocks ("127.0.0.0/8", "::1/128") for trusted networks.
// Pure parsing, no sockets, so it can be unit-tested and fuzzed.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tern {

// An IPv4 or IPv6 address in network byte order. IPv4 is stored as 4 bytes.
struct IpAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};

  static std::optional<IpAddress> parse(std::string_view text);
  std::string to_string() const;
  // IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes plain IPv4; others unchanged.
  IpAddress unmapped() const;
  bool operator==(const IpAddress&) const = default;
};

struct Cidr {
  IpAddress base;
  int prefix = 0;

  static std::optional<Cidr> parse(std::string_view text);  // "a.b.c.d/n", "x::/n", or a bare IP
  bool contains(const IpAddress& ip) const;
  std::string to_string() const;
};

struct HostPort {
  std::string host;  // IP literal (without brackets) or host name
  uint16_t port = 0;
  // Accepts "1.2.3.4:25", "[::1]:25", "name:25". When `default_port` is set,
  // the port may be omitted.
  static std::optional<HostPort> parse(std::string_view text, std::optional<uint16_t> default_port = {});
  std::string to_string() const;
};

}  // namespace tern
