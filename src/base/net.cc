// Parsing and matching of IP addresses, CIDR blocks and host:port pairs (see net.h).
#include "base/net.h"

#include <arpa/inet.h>

#include <cstring>

#include "base/strings.h"

namespace tern {

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.empty() || text.size() > 64) return std::nullopt;
  std::string s(text);
  IpAddress ip;
  if (s.find(':') != std::string::npos) {
    if (inet_pton(AF_INET6, s.c_str(), ip.bytes.data()) != 1) return std::nullopt;
    ip.v6 = true;
    return ip;
  }
  if (inet_pton(AF_INET, s.c_str(), ip.bytes.data()) != 1) return std::nullopt;
  return ip;
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {0};
  inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf);
  return buf;
}

IpAddress IpAddress::unmapped() const {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!v6 || std::memcmp(bytes.data(), kPrefix, 12) != 0) return *this;
  IpAddress out;
  std::memcpy(out.bytes.data(), bytes.data() + 12, 4);
  return out;
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
  Cidr c;
  auto slash = text.find('/');
  auto ip = IpAddress::parse(text.substr(0, slash));
  if (!ip) return std::nullopt;
  c.base = *ip;
  int max = ip->v6 ? 128 : 32;
  if (slash == std::string_view::npos) {
    c.prefix = max;
  } else {
    unsigned long long n = 0;
    if (!parse_u64(text.substr(slash + 1), n) || n > static_cast<unsigned long long>(max)) return std::nullopt;
    c.prefix = static_cast<int>(n);
  }
  // Normalise: clear host bits.
  for (int i = 0; i < 16; ++i) {
    int bit_start = i * 8;
    if (bit_start >= c.prefix) {
      c.base.bytes[i] = 0;
    } else if (bit_start + 8 > c.prefix) {
      c.base.bytes[i] &= static_cast<uint8_t>(0xff << (8 - (c.prefix - bit_start)));
    }
  }
  return c;
}

bool Cidr::contains(const IpAddress& raw) const {
  IpAddress ip = raw.unmapped();
  if (ip.v6 != base.v6) return false;
  int full = prefix / 8;
  if (std::memcmp(ip.bytes.data(), base.bytes.data(), static_cast<size_t>(full)) != 0) return false;
  int rest = prefix % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (ip.bytes[full] & mask) == base.bytes[full];
}

std::string Cidr::to_string() const { return base.to_string() + "/" + std::to_string(prefix); }

std::optional<HostPort> HostPort::parse(std::string_view text, std::optional<uint16_t> default_port) {
  HostPort hp;
  std::string_view port_part;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    hp.host = std::string(text.substr(1, close - 1));
    if (!IpAddress::parse(hp.host) || !IpAddress::parse(hp.host)->v6) return std::nullopt;
    auto rest = text.substr(close + 1);
    if (rest.empty()) {
      if (!default_port) return std::nullopt;
      hp.port = *default_port;
      return hp;
    }
    if (rest.front() != ':') return std::nullopt;
    port_part = rest.substr(1);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      if (!default_port || text.empty()) return std::nullopt;
      hp.host = std::string(text);
      hp.port = *default_port;
      return hp;
    }
    if (text.find(':') != colon) return std::nullopt;  // bare IPv6 needs brackets
    hp.host = std::string(text.substr(0, colon));
    port_part = text.substr(colon + 1);
  }
  if (hp.host.empty()) return std::nullopt;
  unsigned long long port = 0;
  if (!parse_u64(port_part, port) || port == 0 || port > 65535) return std::nullopt;
  hp.port = static_cast<uint16_t>(port);
  return hp;
}

std::string HostPort::to_string() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

}  // namespace tern
