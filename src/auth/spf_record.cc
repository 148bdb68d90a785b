// SPF record parsing and macro expansion (see spf_record.h).
#include "auth/spf_record.h"

#include <algorithm>

#include "base/strings.h"

namespace tern::auth {

namespace {

Error syntax_error(std::string text) { return Error::perm("5.7.24", "SPF syntax error: " + std::move(text)); }

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }
bool is_delimiter(char c) {  // §7.1 delimiter
  return c == '.' || c == '-' || c == '+' || c == ',' || c == '/' || c == '_' || c == '=';
}

// One parsed %{...} or %x escape, as located in a macro-string.
struct MacroToken {
  bool ok = false;
  size_t length = 0;         // bytes consumed from the '%'
  char literal = 0;          // for %% %_ (0 otherwise); '-' means "%20"
  char letter = 0;           // lower-case macro letter, 0 for escapes
  bool url_escape = false;   // upper-case letter (§7.3)
  size_t digits = 0;         // 0 = all parts
  bool reverse = false;
  std::string delimiters;    // empty = "."
};

// Parses the macro at s[0] == '%' (§7.1 macro-expand).
MacroToken parse_macro(std::string_view s, bool explanation) {
  MacroToken t;
  if (s.size() < 2) return t;
  char next = s[1];
  if (next == '%' || next == '_' || next == '-') {
    t.ok = true;
    t.length = 2;
    t.literal = next;
    return t;
  }
  if (next != '{') return t;
  size_t close = s.find('}', 2);
  if (close == std::string_view::npos) return t;
  std::string_view body = s.substr(2, close - 2);
  if (body.empty()) return t;
  char letter = ascii_lower(body[0]);
  static constexpr std::string_view kLetters = "slodipvh";
  static constexpr std::string_view kExpLetters = "crt";
  if (kLetters.find(letter) == std::string_view::npos &&
      !(explanation && kExpLetters.find(letter) != std::string_view::npos)) {
    return t;
  }
  t.letter = letter;
  t.url_escape = body[0] >= 'A' && body[0] <= 'Z';
  size_t i = 1;
  size_t digit_start = i;
  while (i < body.size() && is_digit(body[i])) ++i;
  if (i > digit_start) {
    if (i - digit_start > 4) return t;  // more parts than any name can have
    unsigned long long n = 0;
    if (!parse_u64(body.substr(digit_start, i - digit_start), n) || n == 0) return t;  // §7.3: nonzero
    t.digits = static_cast<size_t>(n);
  }
  if (i < body.size() && (body[i] == 'r' || body[i] == 'R')) {
    t.reverse = true;
    ++i;
  }
  for (; i < body.size(); ++i) {
    if (!is_delimiter(body[i])) return t;
    t.delimiters.push_back(body[i]);
  }
  t.ok = true;
  t.length = close + 1;
  return t;
}

std::string url_escape(std::string_view in) {  // §7.3: all but RFC 3986 unreserved
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : in) {
    auto c = static_cast<unsigned char>(ch);
    if (is_alnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string macro_value(const MacroToken& t, const SpfMacroContext& ctx) {
  switch (t.letter) {
    case 's': return ctx.sender;
    case 'l': return ctx.local_part;
    case 'o': return ctx.sender_domain;
    case 'd': return ctx.domain;
    case 'i': return spf_dotted_ip(ctx.ip);
    case 'p': return ctx.validated_name;
    case 'v': return ctx.ip.v6 ? "ip6" : "in-addr";
    case 'h': return ctx.helo;
    case 'c': return ctx.ip.to_string();
    case 'r': return ctx.receiver;
    case 't': return std::to_string(ctx.timestamp);
  }
  return {};
}

// §7.3: split on delimiters, optionally reverse, keep the rightmost N, join with ".".
std::string transform(std::string_view value, const MacroToken& t) {
  if (t.digits == 0 && !t.reverse && (t.delimiters.empty() || t.delimiters == ".")) return std::string(value);
  std::string_view delims = t.delimiters.empty() ? std::string_view(".") : std::string_view(t.delimiters);
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t i = 0; i <= value.size(); ++i) {
    if (i == value.size() || delims.find(value[i]) != std::string_view::npos) {
      parts.push_back(value.substr(start, i - start));
      start = i + 1;
    }
  }
  if (t.reverse) std::reverse(parts.begin(), parts.end());
  size_t first = (t.digits != 0 && t.digits < parts.size()) ? parts.size() - t.digits : 0;
  std::string out;
  for (size_t i = first; i < parts.size(); ++i) {
    if (i != first) out.push_back('.');
    out.append(parts[i]);
  }
  return out;
}

// Walks a macro-string; returns false on a syntax error. `last_was_macro`
// reports whether the string ends with a macro-expand, and `tail` the
// literal text after the last macro-expand (for the domain-end check).
bool scan_macro_string(std::string_view s, bool explanation, bool& last_was_macro, std::string_view& tail) {
  last_was_macro = false;
  size_t tail_start = 0;
  for (size_t i = 0; i < s.size();) {
    char c = s[i];
    if (c == '%') {
      MacroToken t = parse_macro(s.substr(i), explanation);
      if (!t.ok) return false;
      i += t.length;
      tail_start = i;
      last_was_macro = true;
      continue;
    }
    auto u = static_cast<unsigned char>(c);
    bool literal = u >= 0x21 && u <= 0x7e;  // macro-literal, '%' handled above
    if (!literal && !(explanation && c == ' ')) return false;
    last_was_macro = false;
    ++i;
  }
  tail = s.substr(tail_start);
  return true;
}

// Strips and parses a CIDR suffix "/N" (or "//N" when `double_slash`) from
// the end of `s`. Returns false on a malformed or too-large length.
bool take_cidr_suffix(std::string_view& s, bool double_slash, int max, int& out, bool& present) {
  present = false;
  size_t slash = s.rfind('/');
  if (slash == std::string_view::npos) return true;
  std::string_view digits = s.substr(slash + 1);
  if (digits.empty() || !is_digits(digits)) return true;  // not a CIDR: part of the domain-spec
  bool preceded_by_slash = slash > 0 && s[slash - 1] == '/';
  if (double_slash != preceded_by_slash) return true;
  // Leading zeros are not allowed (openspf suite: "/032" is a permerror).
  if (digits.size() > 3 || (digits.size() > 1 && digits[0] == '0')) return false;
  unsigned long long n = 0;
  if (!parse_u64(digits, n) || n > static_cast<unsigned long long>(max)) return false;
  out = static_cast<int>(n);
  present = true;
  s = s.substr(0, double_slash ? slash - 1 : slash);
  return true;
}

// ip4-network / ip6-network with an optional single-slash prefix length (§5.6).
Result<Cidr> parse_ip_network(std::string_view value, bool v6) {
  size_t slash = value.find('/');
  std::string_view addr = value.substr(0, slash);
  auto ip = IpAddress::parse(addr);
  if (!ip || ip->v6 != v6) return syntax_error(std::string("bad ") + (v6 ? "ip6" : "ip4") + " network");
  int max = v6 ? 128 : 32;
  int prefix = max;
  if (slash != std::string_view::npos) {
    std::string_view rest = value.substr(slash);
    bool present = false;
    if (!take_cidr_suffix(rest, false, max, prefix, present) || !present || !rest.empty()) {
      return syntax_error("bad prefix length");
    }
  }
  auto cidr = Cidr::parse(ip->to_string() + "/" + std::to_string(prefix));
  if (!cidr) return syntax_error("bad network");
  return *cidr;
}

Result<SpfMechanism> parse_mechanism(std::string_view term) {
  SpfMechanism m;
  m.text = std::string(term);
  std::string_view rest = term;
  switch (rest.empty() ? '\0' : rest.front()) {
    case '+': m.qualifier = SpfQualifier::kPass; rest.remove_prefix(1); break;
    case '-': m.qualifier = SpfQualifier::kFail; rest.remove_prefix(1); break;
    case '~': m.qualifier = SpfQualifier::kSoftFail; rest.remove_prefix(1); break;
    case '?': m.qualifier = SpfQualifier::kNeutral; rest.remove_prefix(1); break;
    default: break;
  }
  size_t name_end = rest.find_first_of(":/");
  std::string name = to_lower(rest.substr(0, name_end));
  rest = name_end == std::string_view::npos ? std::string_view() : rest.substr(name_end);
  auto bad = [&](const char* why) { return syntax_error(std::string(why) + " in '" + m.text + "'"); };

  if (name == "all") {
    m.kind = SpfMechanismKind::kAll;
    if (!rest.empty()) return bad("'all' takes no arguments");
    return m;
  }
  if (name == "include" || name == "exists") {
    m.kind = name == "include" ? SpfMechanismKind::kInclude : SpfMechanismKind::kExists;
    if (rest.empty() || rest.front() != ':') return bad("missing domain");
    m.domain_spec = std::string(rest.substr(1));
    if (!valid_domain_spec(m.domain_spec)) return bad("bad domain-spec");
    return m;
  }
  if (name == "a" || name == "mx") {
    m.kind = name == "a" ? SpfMechanismKind::kA : SpfMechanismKind::kMx;
    bool present = false;
    if (!take_cidr_suffix(rest, true, 128, m.cidr6, present)) return bad("bad ip6-cidr-length");
    if (!take_cidr_suffix(rest, false, 32, m.cidr4, present)) return bad("bad ip4-cidr-length");
    if (rest.empty()) return m;
    if (rest.front() != ':') return bad("unexpected text");
    m.domain_spec = std::string(rest.substr(1));
    if (!valid_domain_spec(m.domain_spec)) return bad("bad domain-spec");
    return m;
  }
  if (name == "ptr") {
    m.kind = SpfMechanismKind::kPtr;
    if (rest.empty()) return m;
    if (rest.front() != ':') return bad("unexpected text");
    m.domain_spec = std::string(rest.substr(1));
    if (!valid_domain_spec(m.domain_spec)) return bad("bad domain-spec");
    return m;
  }
  if (name == "ip4" || name == "ip6") {
    bool v6 = name == "ip6";
    m.kind = v6 ? SpfMechanismKind::kIp6 : SpfMechanismKind::kIp4;
    if (rest.empty() || rest.front() != ':') return bad("missing network");
    auto net = parse_ip_network(rest.substr(1), v6);
    if (!net) return bad("bad network");
    m.network = *net;
    return m;
  }
  return bad("unknown mechanism");
}

}  // namespace

bool is_spf_record(std::string_view txt) {
  return istarts_with(txt, "v=spf1") && (txt.size() == 6 || txt[6] == ' ');
}

bool valid_toplabel(std::string_view label) {
  // toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
  if (label.empty()) return false;
  bool has_alpha = false, has_dash = false;
  for (char c : label) {
    if (c == '-') {
      has_dash = true;
    } else if (is_alpha(c)) {
      has_alpha = true;
    } else if (!is_digit(c)) {
      return false;
    }
  }
  if (!has_dash) return has_alpha;
  return is_alnum(label.front()) && is_alnum(label.back());
}

bool valid_macro_string(std::string_view s, bool explanation) {
  bool last_macro = false;
  std::string_view tail;
  return scan_macro_string(s, explanation, last_macro, tail);
}

bool valid_domain_spec(std::string_view s) {
  bool last_macro = false;
  std::string_view tail;
  if (s.empty() || !scan_macro_string(s, false, last_macro, tail)) return false;
  if (last_macro) return true;  // domain-end = macro-expand
  // domain-end = "." toplabel [ "." ]
  if (!tail.empty() && tail.back() == '.') tail.remove_suffix(1);
  size_t dot = tail.rfind('.');
  if (dot == std::string_view::npos) return false;
  return valid_toplabel(tail.substr(dot + 1));
}

Result<SpfRecord> parse_spf_record(std::string_view txt) {
  if (!is_spf_record(txt)) return syntax_error("not an SPF version 1 record");
  for (char c : txt) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e) return syntax_error("control or non-ASCII character in record");  // §3.1, §4.6.1
  }
  SpfRecord record;
  std::string_view rest = txt.substr(6);
  size_t pos = 0;
  while (pos < rest.size()) {
    if (rest[pos] == ' ') {
      ++pos;
      continue;
    }
    size_t end = rest.find(' ', pos);
    if (end == std::string_view::npos) end = rest.size();
    std::string_view term = rest.substr(pos, end - pos);
    pos = end;

    // modifier = name "=" macro-string, name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) (§4.6.1)
    size_t n = 0;
    if (!term.empty() && is_alpha(term[0])) {
      n = 1;
      while (n < term.size() && (is_alnum(term[n]) || term[n] == '-' || term[n] == '_' || term[n] == '.')) ++n;
    }
    if (n > 0 && n < term.size() && term[n] == '=') {
      std::string_view name = term.substr(0, n);
      std::string_view value = term.substr(n + 1);
      if (iequals(name, "redirect") || iequals(name, "exp")) {
        auto& slot = iequals(name, "redirect") ? record.redirect : record.exp;
        if (slot) return syntax_error(std::string(name) + "= appears twice");  // §6
        if (!valid_domain_spec(value)) return syntax_error("bad domain-spec in '" + std::string(term) + "'");
        slot = std::string(value);
      } else if (!valid_macro_string(value, true)) {  // unknown modifiers are ignored but must parse (§6)
        return syntax_error("bad macro-string in '" + std::string(term) + "'");
      }
      continue;
    }
    auto m = parse_mechanism(term);
    if (!m) return m.error();
    record.mechanisms.push_back(std::move(*m));
  }
  return record;
}

Result<std::string> expand_spf_macros(std::string_view s, const SpfMacroContext& ctx, bool explanation) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    char c = s[i];
    if (c != '%') {
      auto u = static_cast<unsigned char>(c);
      if (!((u >= 0x21 && u <= 0x7e) || (explanation && c == ' '))) return syntax_error("bad character in macro-string");
      out.push_back(c);
      ++i;
    } else {
      MacroToken t = parse_macro(s.substr(i), explanation);
      if (!t.ok) return syntax_error("bad macro");
      i += t.length;
      if (t.literal == '%') {
        out.push_back('%');
      } else if (t.literal == '_') {
        out.push_back(' ');
      } else if (t.literal == '-') {
        out += "%20";
      } else {
        std::string value = transform(macro_value(t, ctx), t);
        out += t.url_escape ? url_escape(value) : value;
      }
    }
    if (out.size() > kMaxSpfExpansion) return syntax_error("macro expansion too long");
  }
  return out;
}

bool uses_p_macro(std::string_view s) {
  for (size_t i = 0; i + 2 < s.size(); ++i) {
    if (s[i] == '%' && s[i + 1] == '{' && ascii_lower(s[i + 2]) == 'p') return true;
    if (s[i] == '%' && s[i + 1] == '%') ++i;  // "%%{p}" is a literal
  }
  return false;
}

std::optional<std::string> spf_query_name(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  // §7.3: drop leftmost labels until the name fits in 253 octets.
  while (name.size() > 253) {
    size_t dot = name.find('.');
    if (dot == std::string_view::npos) return std::nullopt;
    name.remove_prefix(dot + 1);
  }
  if (name.empty()) return std::nullopt;
  size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return std::nullopt;
      label = 0;
    } else if (++label > 63) {
      return std::nullopt;
    }
  }
  if (label == 0) return std::nullopt;
  return std::string(name);
}

std::string spf_dotted_ip(const IpAddress& ip) {
  if (!ip.v6) return ip.to_string();
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(63);
  for (size_t i = 0; i < 16; ++i) {
    if (i) out.push_back('.');
    out.push_back(kHex[ip.bytes[i] >> 4]);
    out.push_back('.');
    out.push_back(kHex[ip.bytes[i] & 15]);
  }
  return out;
}

std::string reverse_name(const IpAddress& ip) {
  std::string out;
  if (!ip.v6) {
    for (int i = 3; i >= 0; --i) out += std::to_string(ip.bytes[static_cast<size_t>(i)]) + ".";
    return out + "in-addr.arpa";
  }
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i) {
    uint8_t b = ip.bytes[static_cast<size_t>(i)];
    out.push_back(kHex[b & 15]);
    out.push_back('.');
    out.push_back(kHex[b >> 4]);
    out.push_back('.');
  }
  return out + "ip6.arpa";
}

}  // namespace tern::auth
