// Wire-format rdata decoding (see wire.h).
#include "dns/wire.h"

#include <cstdint>
#include <cstring>

#include "base/strings.h"

namespace tern::dns {

namespace {

bool plain_name_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '*';
}

void append_escaped(std::string& out, unsigned char c) {
  char buf[5];
  buf[0] = '\\';
  buf[1] = static_cast<char>('0' + c / 100);
  buf[2] = static_cast<char>('0' + (c / 10) % 10);
  buf[3] = static_cast<char>('0' + c % 10);
  out.append(buf, 4);
}

}  // namespace

std::optional<std::string> read_wire_name(std::string_view rdata, size_t& pos) {
  std::string out;
  size_t total = 0;  // wire length, at most 255 octets (RFC 1035 §3.1)
  while (true) {
    if (pos >= rdata.size()) return std::nullopt;
    auto len = static_cast<unsigned char>(rdata[pos]);
    ++pos;
    ++total;
    if (len == 0) break;
    if (len > 63) return std::nullopt;  // compression pointer or extended label type
    if (rdata.size() - pos < len) return std::nullopt;
    total += len;
    if (total > 255) return std::nullopt;
    if (!out.empty()) out.push_back('.');
    for (size_t i = 0; i < len; ++i) {
      auto c = static_cast<unsigned char>(rdata[pos + i]);
      if (plain_name_char(c)) {
        out.push_back(ascii_lower(static_cast<char>(c)));
      } else if (c == '.') {
        out += "\\.";
      } else {
        append_escaped(out, c);
      }
    }
    pos += len;
  }
  return out;
}

bool append_rdata(RrType type, std::string_view rdata, Answer& answer) {
  switch (type) {
    case RrType::kA:
    case RrType::kAaaa: {
      size_t want = type == RrType::kA ? 4 : 16;
      if (rdata.size() != want) return false;
      IpAddress ip;
      ip.v6 = type == RrType::kAaaa;
      std::memcpy(ip.bytes.data(), rdata.data(), want);
      answer.addresses.push_back(ip);
      return true;
    }
    case RrType::kTxt:
    case RrType::kSpf: {
      // RFC 1035 §3.3.14: one or more <character-string>s, each length-prefixed.
      std::string text;
      size_t pos = 0;
      while (pos < rdata.size()) {
        auto len = static_cast<unsigned char>(rdata[pos++]);
        if (rdata.size() - pos < len) return false;
        text.append(rdata.substr(pos, len));
        pos += len;
      }
      answer.txt.push_back(std::move(text));
      return true;
    }
    case RrType::kMx: {
      if (rdata.size() < 3) return false;
      MxRecord mx;
      mx.preference = static_cast<uint16_t>((static_cast<unsigned char>(rdata[0]) << 8) |
                                            static_cast<unsigned char>(rdata[1]));
      size_t pos = 2;
      auto host = read_wire_name(rdata, pos);
      if (!host || pos != rdata.size()) return false;
      mx.host = std::move(*host);
      answer.mx.push_back(std::move(mx));
      return true;
    }
    case RrType::kPtr:
    case RrType::kCname:
    case RrType::kNs: {
      size_t pos = 0;
      auto name = read_wire_name(rdata, pos);
      if (!name || pos != rdata.size()) return false;
      answer.names.push_back(std::move(*name));
      return true;
    }
    case RrType::kTlsa: {
      if (rdata.size() < 3) return false;
      TlsaRecord t;
      t.usage = static_cast<uint8_t>(rdata[0]);
      t.selector = static_cast<uint8_t>(rdata[1]);
      t.matching_type = static_cast<uint8_t>(rdata[2]);
      t.data = std::string(rdata.substr(3));
      answer.tlsa.push_back(std::move(t));
      return true;
    }
    case RrType::kSoa:
      return true;  // not decoded: callers only need to know it exists
  }
  return false;
}

std::optional<std::string> presentation_name(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return std::nullopt;
  std::string out;
  out.reserve(name.size());
  size_t label = 0;
  for (char ch : name) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '.') {
      if (label == 0) return std::nullopt;
      label = 0;
      out.push_back('.');
      continue;
    }
    if (++label > 63) return std::nullopt;
    if (plain_name_char(c)) {
      out.push_back(ch);
    } else {
      append_escaped(out, c);
    }
  }
  if (label == 0) return std::nullopt;
  return out;
}

}  // namespace tern::dns
