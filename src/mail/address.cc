// Envelope address parsing (see address.h). The grammar is RFC 5321 §4.1.2
// with the RFC 6531 §3.3 UTF-8 extensions; limits are RFC 5321 §4.5.3.1.
#include "mail/address.h"

#include <optional>

#include "base/net.h"
#include "base/strings.h"

namespace tern::mail {
namespace {

constexpr size_t kMaxLocalOctets = 64;    // RFC 5321 §4.5.3.1.1
constexpr size_t kMaxDomainOctets = 255;  // RFC 5321 §4.5.3.1.2
constexpr size_t kMaxPathOctets = 256;    // RFC 5321 §4.5.3.1.3
constexpr size_t kMaxLabelOctets = 63;    // RFC 1035 §2.3.4

Error syntax_error(std::string text) { return Error{553, "5.1.3", std::move(text)}; }

bool is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

// RFC 5322 §3.2.3 atext, plus UTF-8 bytes (RFC 6531 §3.3 atext =/ UTF8-non-ascii).
bool is_atext(unsigned char c, bool utf8) {
  if (is_alpha(c) || is_digit(c)) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '/': case '=': case '?': case '^': case '_': case '`': case '{':
    case '|': case '}': case '~':
      return true;
    default:
      return utf8 && c >= 0x80;
  }
}

// RFC 5321 §4.1.2 qtextSMTP: %d32-33 / %d35-91 / %d93-126, plus UTF-8 (RFC 6531).
bool is_qtext(unsigned char c, bool utf8) {
  if (c == 32 || c == 33) return true;
  if (c >= 35 && c <= 91) return true;
  if (c >= 93 && c <= 126) return true;
  return utf8 && c >= 0x80;
}

// Parses the Local-part at the start of `text`; on success `consumed` is the
// number of input octets it spanned (quotes included).
Result<std::string> parse_local_part(std::string_view text, bool utf8, size_t& consumed) {
  std::string local;
  size_t i = 0;
  if (!text.empty() && text[0] == '"') {
    // Quoted-string = DQUOTE *QcontentSMTP DQUOTE
    for (i = 1;; ++i) {
      if (i >= text.size()) return syntax_error("Unterminated quoted local part");
      unsigned char c = static_cast<unsigned char>(text[i]);
      if (c == '"') break;
      if (c == '\\') {
        // quoted-pairSMTP = %d92 %d32-126
        if (i + 1 >= text.size()) return syntax_error("Bad quoted pair in local part");
        unsigned char q = static_cast<unsigned char>(text[i + 1]);
        if (q < 32 || q > 126) return syntax_error("Bad quoted pair in local part");
        local.push_back(static_cast<char>(q));
        ++i;
        continue;
      }
      if (!is_qtext(c, utf8)) return syntax_error("Bad character in quoted local part");
      local.push_back(static_cast<char>(c));
    }
    consumed = i + 1;
  } else {
    // Dot-string = Atom *("." Atom)
    bool need_atext = true;  // at the start and after each dot
    for (; i < text.size() && text[i] != '@'; ++i) {
      unsigned char c = static_cast<unsigned char>(text[i]);
      if (c == '.') {
        if (need_atext) return syntax_error("Bad dot in local part");
        need_atext = true;
      } else if (is_atext(c, utf8)) {
        need_atext = false;
      } else {
        return syntax_error("Bad character in local part");
      }
      local.push_back(static_cast<char>(c));
    }
    if (need_atext) return syntax_error(local.empty() ? "Empty local part" : "Bad dot in local part");
    consumed = i;
  }
  if (local.empty()) return syntax_error("Empty local part");
  if (consumed > kMaxLocalOctets) return syntax_error("Local part longer than 64 octets");
  return local;
}

// Domain name with optional U-labels (RFC 6531 §3.3 sub-domain =/ U-label).
bool is_valid_domain_utf8(std::string_view d, bool utf8) {
  if (d.empty() || d.size() > kMaxDomainOctets) return false;
  for (std::string_view label : split(d, '.')) {
    if (label.empty() || label.size() > kMaxLabelOctets) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (unsigned char c : label) {
      bool ok = is_alpha(c) || is_digit(c) || c == '-' || (utf8 && c >= 0x80);
      if (!ok) return false;
    }
  }
  return true;
}

bool is_ipv4_literal(std::string_view s) {
  // IPv4-address-literal = Snum 3("." Snum), Snum = 1*3DIGIT in 0..255
  auto parts = split(s, '.');
  if (parts.size() != 4) return false;
  for (auto p : parts) {
    unsigned long long v = 0;
    if (p.empty() || p.size() > 3 || !parse_u64(p, v) || v > 255) return false;
  }
  return true;
}

// address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
//                         General-address-literal ) "]"      (RFC 5321 §4.1.3)
bool is_valid_address_literal(std::string_view lit) {
  if (lit.size() < 3 || lit.front() != '[' || lit.back() != ']') return false;
  std::string_view inner = lit.substr(1, lit.size() - 2);
  if (is_ipv4_literal(inner)) return true;
  if (istarts_with(inner, "IPv6:")) {
    auto ip = IpAddress::parse(inner.substr(5));
    return ip.has_value() && ip->v6;
  }
  // General-address-literal = Standardized-tag ":" 1*dcontent
  size_t colon = inner.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 >= inner.size()) return false;
  std::string_view tag = inner.substr(0, colon);
  if (!is_valid_domain_utf8(tag, false) || tag.find('.') != std::string_view::npos) return false;
  for (unsigned char c : inner.substr(colon + 1)) {
    // dcontent = %d33-90 / %d94-126
    if (!((c >= 33 && c <= 90) || (c >= 94 && c <= 126))) return false;
  }
  return true;
}

}  // namespace

bool is_ascii(std::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80) return false;
  }
  return true;
}

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;  // continuation byte, overlong 2-byte lead, or > U+10FFFF lead
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return false;
    if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return false;
    i += len;
  }
  return true;
}

bool is_valid_domain(std::string_view d) { return is_valid_domain_utf8(d, false); }

bool is_dot_string(std::string_view local) {
  if (local.empty() || local.front() == '.' || local.back() == '.') return false;
  char prev = 0;
  for (unsigned char c : local) {
    if (c == '.') {
      if (prev == '.') return false;
    } else if (!is_atext(c, true)) {
      return false;
    }
    prev = static_cast<char>(c);
  }
  return true;
}

std::string Address::str() const {
  std::string out;
  if (is_dot_string(local)) {
    out = local;
  } else if (!local.empty()) {
    out.push_back('"');
    for (char c : local) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  if (!domain.empty()) {
    out.push_back('@');
    out += domain;
  }
  return out;
}

Result<Address> parse_mailbox(std::string_view text, bool utf8) {
  if (!is_ascii(text)) {
    // RFC 6531 §3.7.4.1: non-ASCII address without SMTPUTF8.
    if (!utf8) return Error{553, "5.6.7", "Non-ASCII address requires SMTPUTF8"};
    if (!is_valid_utf8(text)) return syntax_error("Address is not valid UTF-8");
  }
  size_t consumed = 0;
  auto local = parse_local_part(text, utf8, consumed);
  if (!local) return local.error();
  if (consumed >= text.size() || text[consumed] != '@') return syntax_error("Missing @domain in address");
  std::string_view domain = text.substr(consumed + 1);
  if (domain.empty()) return syntax_error("Empty domain in address");
  if (domain.size() > kMaxDomainOctets) return syntax_error("Domain longer than 255 octets");
  if (domain.front() == '[') {
    if (!is_valid_address_literal(domain)) return syntax_error("Bad address literal");
  } else if (!is_valid_domain_utf8(domain, utf8)) {
    return syntax_error("Bad domain in address");
  }
  return Address{std::move(*local), to_lower(domain)};
}

Result<Address> parse_path(std::string_view text, bool allow_null, bool utf8) {
  if (text.size() < 2 || text.front() != '<' || text.back() != '>') {
    return syntax_error("Address must be enclosed in <>");
  }
  if (text.size() > kMaxPathOctets) return syntax_error("Path longer than 256 octets");
  std::string_view inner = text.substr(1, text.size() - 2);
  if (inner.empty()) {
    if (allow_null) return Address{};
    return syntax_error("Null address not allowed here");
  }
  if (inner.front() == '@') {
    // A-d-l = At-domain *( "," At-domain ) ":" ; At-domain = "@" Domain.
    // The route is obsolete and ignored (RFC 5321 §3.3 and Appendix C).
    size_t colon = inner.find(':');
    if (colon == std::string_view::npos) return syntax_error("Bad source route");
    for (std::string_view hop : split(inner.substr(0, colon), ',')) {
      if (hop.size() < 2 || hop.front() != '@' || !is_valid_domain_utf8(hop.substr(1), utf8)) {
        if (!utf8 && !is_ascii(hop)) return Error{553, "5.6.7", "Non-ASCII address requires SMTPUTF8"};
        return syntax_error("Bad source route");
      }
    }
    inner = inner.substr(colon + 1);
  }
  return parse_mailbox(inner, utf8);
}

}  // namespace tern::mail
