// Authentication-Results (RFC 8601) builder and parser. The parser is a
// small hand-written scanner over the §2.2 ABNF with RFC 5322 CFWS (folding
// whitespace and nested comments) between elements; it never recurses, caps
// comment nesting, and refuses values, result counts and property counts
// above the limits in the header.
#include "auth/auth_results.h"

#include <algorithm>

#include "base/strings.h"

namespace tern::auth {
namespace {

constexpr int kMaxCommentDepth = 32;

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_ctl(unsigned char c) { return c < 0x20 || c == 0x7f; }

// RFC 2045 §5.1 tspecials.
bool is_tspecial(char c) { return std::string_view("()<>@,;:\\\"/[]?=").find(c) != std::string_view::npos; }
bool is_token_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7f && !is_tspecial(c);
}
// RFC 5322 §3.2.3 atext.
bool is_atext(char c) {
  return is_alpha(c) || is_digit(c) || std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool is_dot_atom(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  char prev = 0;
  for (char c : s) {
    if (c == '.' ? prev == '.' : !is_atext(c)) return false;
    prev = c;
  }
  return true;
}
bool is_domain_text(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || static_cast<unsigned char>(c) >= 0x80;
  });
}

std::string sanitize_comment(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (is_ctl(static_cast<unsigned char>(c)) && c != '\t') continue;
    if (c == '(' || c == ')' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// Lexer over one field value.
class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}

  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }
  size_t pos() const { return pos_; }
  std::string_view slice(size_t from, size_t to) const { return s_.substr(from, to - from); }

  // Skips CFWS; records the text of the first comment seen into *comment if
  // given and empty. False on an unterminated or too deeply nested comment.
  bool skip_cfws(std::string* comment = nullptr) {
    while (!at_end()) {
      char c = s_[pos_];
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        ++pos_;
      } else if (c == '(') {
        size_t start = pos_ + 1;
        int depth = 0;
        while (true) {
          if (at_end()) return false;
          char d = s_[pos_++];
          if (d == '\\') {
            if (at_end()) return false;
            ++pos_;
          } else if (d == '(') {
            if (++depth > kMaxCommentDepth) return false;
          } else if (d == ')') {
            if (--depth == 0) break;
          }
        }
        if (comment && comment->empty()) *comment = std::string(trim(s_.substr(start, pos_ - 1 - start)));
      } else {
        break;
      }
    }
    return true;
  }

  bool consume(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }

  // Keyword-ish: letters, digits, '-', '_'.
  std::string keyword() {
    size_t start = pos_;
    while (!at_end() && (is_alpha(s_[pos_]) || is_digit(s_[pos_]) || s_[pos_] == '-' || s_[pos_] == '_')) ++pos_;
    return std::string(s_.substr(start, pos_ - start));
  }

  std::string digits() {
    size_t start = pos_;
    while (!at_end() && is_digit(s_[pos_]) && pos_ - start < 9) ++pos_;
    return std::string(s_.substr(start, pos_ - start));
  }

  // RFC 5322 quoted-string with quoted-pairs decoded; false if unterminated.
  bool quoted(std::string& out) {
    if (!consume('"')) return false;
    while (!at_end()) {
      char c = s_[pos_++];
      if (c == '"') return true;
      if (c == '\\') {
        if (at_end()) return false;
        c = s_[pos_++];
      }
      if (c == '\r' || c == '\n') continue;  // folding inside the quoted string
      out += c;
    }
    return false;
  }

  // A value as written in the wild: a quoted string, or a run of characters
  // up to whitespace, ';' or '(' (covers token and [local-part] "@" domain).
  // False on an unterminated quoted string; `any` says whether anything was read.
  bool loose_value(std::string& out, bool& any) {
    any = false;
    while (!at_end()) {
      char c = s_[pos_];
      if (c == '"') {
        if (!quoted(out)) return false;
        any = true;
      } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ';' || c == '(' ||
                 is_ctl(static_cast<unsigned char>(c))) {
        break;
      } else {
        out += c;
        ++pos_;
        any = true;
      }
    }
    return true;
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

Error malformed(std::string what) {
  return Error::perm("5.7.0", "malformed Authentication-Results: " + std::move(what));
}

std::string unfold_collapse(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\r' || c == '\n') continue;
    out += c;
  }
  return std::string(trim(out));
}

}  // namespace

std::string quote_value(std::string_view v) {
  if (!v.empty() && std::all_of(v.begin(), v.end(), is_token_char)) return std::string(v);
  std::string out = "\"";
  for (char c : v) {
    if (is_ctl(static_cast<unsigned char>(c)) && c != '\t') continue;
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

std::string quote_pvalue(std::string_view v) {
  size_t at = v.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view local = v.substr(0, at), domain = v.substr(at + 1);
    if ((local.empty() || is_dot_atom(local)) && is_domain_text(domain)) return std::string(v);
  }
  return quote_value(v);
}

namespace {

// The pieces of one resinfo, each an unbreakable unit for folding.
std::vector<std::string> resinfo_atoms(const MethodResult& r) {
  std::vector<std::string> atoms;
  atoms.push_back(r.method + "=" + r.result);
  if (!r.comment.empty()) atoms.push_back("(" + sanitize_comment(r.comment) + ")");
  if (r.dnssec) atoms.push_back(*r.dnssec ? "(dnssec=secure)" : "(dnssec=insecure)");
  if (!r.reason.empty()) atoms.push_back("reason=" + quote_value(r.reason));
  for (const ResultProperty& p : r.properties) atoms.push_back(p.ptype + "." + p.property + "=" + quote_pvalue(p.value));
  return atoms;
}

// Atoms of the whole value, with the ";" separators attached.
std::vector<std::string> value_atoms(const AuthResults& ar) {
  std::vector<std::string> atoms{quote_value(ar.authserv_id)};
  if (ar.results.empty()) {
    atoms.back() += ";";
    atoms.push_back("none");
    return atoms;
  }
  for (const MethodResult& r : ar.results) {
    atoms.back() += ";";
    for (std::string& a : resinfo_atoms(r)) atoms.push_back(std::move(a));
  }
  return atoms;
}

}  // namespace

std::string format_value(const AuthResults& ar) {
  std::string out;
  for (const std::string& a : value_atoms(ar)) {
    if (!out.empty()) out += ' ';
    out += a;
  }
  return out;
}

std::string format_header(const AuthResults& ar, std::string_view field_name, size_t width) {
  std::string out(field_name);
  out += ":";
  size_t line_len = out.size();
  for (const std::string& a : value_atoms(ar)) {
    if (line_len + 1 + a.size() > width && line_len > field_name.size() + 1) {
      out += "\r\n ";
      line_len = 1;
    } else {
      out += ' ';
      ++line_len;
    }
    out += a;
    line_len += a.size();
  }
  out += "\r\n";
  return out;
}

Result<ParsedAuthResults> parse_auth_results(std::string_view value, bool arc) {
  if (value.size() > kMaxAuthResultsLength) return malformed("too long");
  ParsedAuthResults out;
  Scanner sc(value);
  if (!sc.skip_cfws()) return malformed("bad comment");
  if (arc) {
    // RFC 8617 §4.1.1: "i=" instance ";" before the A-R payload.
    if (ascii_lower(sc.peek()) != 'i') return malformed("missing i= tag");
    sc.consume(sc.peek());
    if (!sc.skip_cfws() || !sc.consume('=') || !sc.skip_cfws()) return malformed("bad i= tag");
    std::string n = sc.digits();
    unsigned long long inst = 0;
    if (n.empty() || !parse_u64(n, inst)) return malformed("bad i= value");
    out.instance = static_cast<unsigned>(inst);
    if (!sc.skip_cfws() || !sc.consume(';') || !sc.skip_cfws()) return malformed("missing ';' after i=");
  }
  if (sc.peek() == '"') {
    if (!sc.quoted(out.authserv_id)) return malformed("bad authserv-id");
  } else {
    // authserv-id = value = token / quoted-string (RFC 8601 §2.2, RFC 2045
    // §5.1: a token has no SPACE, CTLs or tspecials such as '=' or ';').
    static constexpr std::string_view kTspecials = "()<>@,;:\\\"/[]?=";
    while (!sc.at_end() && sc.peek() != ' ' && sc.peek() != '\t' && !is_ctl(static_cast<unsigned char>(sc.peek())) &&
           kTspecials.find(sc.peek()) == std::string_view::npos) {
      out.authserv_id += sc.peek();
      sc.consume(sc.peek());
    }
    if (!sc.at_end() && sc.peek() == '=') return malformed("bad authserv-id");
  }
  if (out.authserv_id.empty()) return malformed("missing authserv-id");
  if (!sc.skip_cfws()) return malformed("bad comment");
  if (is_digit(sc.peek())) {  // authres-version
    unsigned long long v = 0;
    if (!parse_u64(sc.digits(), v)) return malformed("bad version");
    out.version = static_cast<unsigned>(v);
    if (!sc.skip_cfws()) return malformed("bad comment");
  }
  while (!sc.at_end()) {
    if (!sc.consume(';')) return malformed("expected ';'");
    if (!sc.skip_cfws()) return malformed("bad comment");
    if (sc.at_end()) break;  // trailing ';' tolerated
    if (sc.peek() == ';') continue;
    size_t start = sc.pos();
    ParsedResult pr;
    pr.result.method = to_lower(sc.keyword());
    if (pr.result.method.empty()) return malformed("expected a method");
    if (!sc.skip_cfws()) return malformed("bad comment");
    if (sc.consume('/')) {  // method-version
      if (!sc.skip_cfws() || sc.digits().empty() || !sc.skip_cfws()) return malformed("bad method version");
    }
    if (!sc.consume('=')) {
      if (pr.result.method == "none" && out.results.empty()) {  // §2.2 no-result
        out.none = true;
        if (!sc.skip_cfws()) return malformed("bad comment");
        continue;
      }
      return malformed("expected '=' after method");
    }
    if (!sc.skip_cfws()) return malformed("bad comment");
    pr.result.result = to_lower(sc.keyword());
    if (pr.result.result.empty()) return malformed("expected a result");
    size_t end = sc.pos();
    if (!sc.skip_cfws(&pr.result.comment)) return malformed("bad comment");
    while (!sc.at_end() && sc.peek() != ';') {
      std::string ptype = to_lower(sc.keyword());
      if (ptype.empty()) return malformed("expected a property");
      if (!sc.skip_cfws()) return malformed("bad comment");
      if (ptype == "reason") {
        if (!sc.consume('=') || !sc.skip_cfws()) return malformed("bad reason");
        bool any = false;
        if (!sc.loose_value(pr.result.reason, any) || !any) return malformed("bad reason value");
      } else {
        if (!sc.consume('.') || !sc.skip_cfws()) return malformed("expected '.' in property");
        ResultProperty p;
        p.ptype = ptype;
        p.property = to_lower(sc.keyword());
        if (p.property.empty() || !sc.skip_cfws() || !sc.consume('=') || !sc.skip_cfws())
          return malformed("bad property");
        bool any = false;  // an empty pvalue is tolerated
        if (!sc.loose_value(p.value, any)) return malformed("bad property value");
        if (pr.result.properties.size() >= kMaxProperties) return malformed("too many properties");
        pr.result.properties.push_back(std::move(p));
      }
      end = sc.pos();
      if (!sc.skip_cfws()) return malformed("bad comment");
    }
    // Keep comments that sit between the result and the end of the resinfo.
    size_t text_end = sc.pos();
    (void)end;
    pr.text = unfold_collapse(sc.slice(start, text_end));
    if (out.results.size() >= kMaxResults) return malformed("too many results");
    out.results.push_back(std::move(pr));
  }
  return out;
}

std::optional<std::string> extract_authserv_id(std::string_view value) {
  if (value.size() > kMaxAuthResultsLength) value = value.substr(0, kMaxAuthResultsLength);
  Scanner sc(value);
  if (!sc.skip_cfws()) return std::nullopt;
  // An ARC-Authentication-Results "i=N;" prefix.
  if (ascii_lower(sc.peek()) == 'i') {
    Scanner probe = sc;
    probe.consume(probe.peek());
    if (probe.skip_cfws() && probe.consume('=')) {
      if (!probe.skip_cfws() || probe.digits().empty() || !probe.skip_cfws() || !probe.consume(';') ||
          !probe.skip_cfws())
        return std::nullopt;
      sc = probe;
    }
  }
  std::string id;
  if (sc.peek() == '"') {
    if (!sc.quoted(id)) return std::nullopt;
  } else {
    while (!sc.at_end() && sc.peek() != ';' && sc.peek() != '(' && sc.peek() != ' ' && sc.peek() != '\t' &&
           sc.peek() != '\r' && sc.peek() != '\n' && !is_ctl(static_cast<unsigned char>(sc.peek()))) {
      id += sc.peek();
      sc.consume(sc.peek());
    }
  }
  if (id.empty()) return std::nullopt;
  return id;
}

bool claims_authserv_id(std::string_view value, std::string_view authserv_id) {
  auto id = extract_authserv_id(value);
  return id && iequals(*id, authserv_id);
}

}  // namespace tern::auth
