// Header value helpers: unfolding and the RFC 5322 §3.4 address-list parser
// (see header.h). The parser first turns the value into tokens (atoms,
// quoted strings, domain literals, specials; comments and folding whitespace
// dropped, RFC 5322 §3.2.2), then reads addresses from the token stream.
#include "mail/header.h"

#include <cstddef>

#include "base/strings.h"

namespace tern::mail {

std::string unfold(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (c == '\r' && i + 1 < value.size() && value[i + 1] == '\n') {
      ++i;
      continue;
    }
    if (c == '\n') continue;
    out.push_back(c);
  }
  return out;
}

namespace {

constexpr size_t kMaxCommentDepth = 64;
constexpr size_t kMaxMailboxes = 10000;

Error syntax_error(std::string text) { return Error::perm("5.6.0", "address list: " + std::move(text)); }

// RFC 5322 §3.2.3 atext, extended with UTF-8 bytes (RFC 6532 §3.2).
bool is_atext(unsigned char c) {
  if (c >= 0x80) return true;
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '/': case '=': case '?': case '^': case '_': case '`': case '{': case '|': case '}': case '~':
      return true;
    default:
      return false;
  }
}

bool is_wsp_or_eol(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

enum class TokenKind { kAtom, kQuoted, kLiteral, kSpecial };

struct Token {
  TokenKind kind;
  std::string text;  // atom text, decoded quoted string, literal incl. brackets, or the special char
  bool is(char c) const { return kind == TokenKind::kSpecial && text.size() == 1 && text[0] == c; }
  bool is_word() const { return kind == TokenKind::kAtom || kind == TokenKind::kQuoted; }
};

Result<std::vector<Token>> tokenize(std::string_view s) {
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (is_wsp_or_eol(static_cast<char>(c))) {
      ++i;
    } else if (c == '(') {
      // RFC 5322 §3.2.2 comment, nested, with quoted-pairs.
      size_t depth = 0;
      while (i < s.size()) {
        char d = s[i];
        if (d == '\\') {
          i += 2;
          continue;
        }
        ++i;
        if (d == '(') {
          if (++depth > kMaxCommentDepth) return syntax_error("comments nested too deeply");
        } else if (d == ')') {
          if (--depth == 0) break;
        }
      }
      if (depth != 0) return syntax_error("unterminated comment");
    } else if (c == '"') {
      // RFC 5322 §3.2.4 quoted-string; folding inside is removed.
      std::string text;
      ++i;
      bool closed = false;
      while (i < s.size()) {
        char d = s[i++];
        if (d == '"') {
          closed = true;
          break;
        }
        if (d == '\\' && i < s.size()) {
          text.push_back(s[i++]);
        } else if (d != '\r' && d != '\n') {
          text.push_back(d);
        }
      }
      if (!closed) return syntax_error("unterminated quoted string");
      tokens.push_back({TokenKind::kQuoted, std::move(text)});
    } else if (c == '[') {
      // RFC 5322 §3.4.1 domain-literal, kept as written minus folding.
      std::string text = "[";
      ++i;
      bool closed = false;
      while (i < s.size()) {
        char d = s[i++];
        if (d == '\\' && i < s.size()) {
          text.push_back(s[i++]);
          continue;
        }
        if (d == '[') return syntax_error("'[' inside domain literal");
        if (d == '\r' || d == '\n') continue;
        text.push_back(d);
        if (d == ']') {
          closed = true;
          break;
        }
      }
      if (!closed) return syntax_error("unterminated domain literal");
      tokens.push_back({TokenKind::kLiteral, std::move(text)});
    } else if (is_atext(c)) {
      size_t start = i;
      while (i < s.size() && is_atext(static_cast<unsigned char>(s[i]))) ++i;
      tokens.push_back({TokenKind::kAtom, std::string(s.substr(start, i - start))});
    } else if (c == '<' || c == '>' || c == '@' || c == ',' || c == ';' || c == ':' || c == '.') {
      tokens.push_back({TokenKind::kSpecial, std::string(1, static_cast<char>(c))});
      ++i;
    } else {
      return syntax_error("unexpected character");
    }
  }
  return tokens;
}

class AddressParser {
 public:
  explicit AddressParser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  Result<std::vector<Mailbox>> parse_list() {
    std::vector<Mailbox> out;
    while (pos_ < t_.size()) {
      if (peek_is(',')) {  // RFC 5322 §4.4 obs-addr-list: empty elements
        ++pos_;
        continue;
      }
      if (starts_group()) {
        auto st = parse_group(out);
        if (!st) return st.error();
      } else {
        auto m = parse_mailbox();
        if (!m) return m.error();
        out.push_back(std::move(*m));
      }
      if (out.size() > kMaxMailboxes) return syntax_error("too many addresses");
      if (pos_ < t_.size()) {
        if (!peek_is(',')) return syntax_error("expected ','");
        ++pos_;
      }
    }
    return out;
  }

 private:
  bool peek_is(char c) const { return pos_ < t_.size() && t_[pos_].is(c); }

  // A group is a phrase followed by ':' (RFC 5322 §3.4 group).
  bool starts_group() const {
    for (size_t i = pos_; i < t_.size(); ++i) {
      if (t_[i].is(':')) return i > pos_;
      if (!t_[i].is_word() && !t_[i].is('.')) return false;
    }
    return false;
  }

  std::string parse_phrase() {
    std::string phrase;
    while (pos_ < t_.size() && (t_[pos_].is_word() || t_[pos_].is('.'))) {
      // Words are joined by one space; an obs-phrase '.' sticks to the word before it.
      if (!phrase.empty() && !t_[pos_].is('.')) phrase.push_back(' ');
      phrase += t_[pos_].text;
      ++pos_;
    }
    return phrase;
  }

  Result<int> parse_group(std::vector<Mailbox>& out) {
    std::string name = parse_phrase();
    ++pos_;  // ':'
    while (pos_ < t_.size() && !peek_is(';')) {
      if (peek_is(',')) {
        ++pos_;
        continue;
      }
      auto m = parse_mailbox();
      if (!m) return m.error();
      m->group = name;
      out.push_back(std::move(*m));
      if (out.size() > kMaxMailboxes) return syntax_error("too many addresses");
      if (!peek_is(',') && !peek_is(';')) return syntax_error("expected ',' or ';' in group");
    }
    if (!peek_is(';')) return syntax_error("group without ';'");
    ++pos_;
    return 0;
  }

  Result<Mailbox> parse_mailbox() {
    Mailbox m;
    size_t phrase_start = pos_;
    std::string phrase = parse_phrase();
    if (peek_is('<')) {
      ++pos_;
      m.display_name = std::move(phrase);
      // RFC 5322 §4.4 obs-route: "@a,@b:" before the addr-spec.
      if (peek_is('@')) {
        while (pos_ < t_.size() && !peek_is(':')) {
          if (peek_is('>')) return syntax_error("bad route");
          ++pos_;
        }
        if (!peek_is(':')) return syntax_error("bad route");
        ++pos_;
      }
      auto st = parse_addr_spec(m);
      if (!st) return st.error();
      if (!peek_is('>')) return syntax_error("expected '>'");
      ++pos_;
      return m;
    }
    pos_ = phrase_start;
    auto st = parse_addr_spec(m);
    if (!st) return st.error();
    return m;
  }

  // RFC 5322 §3.4.1 addr-spec = local-part "@" domain, with §4.4 obs-local-part
  // (words separated by dots) and obs-domain (atoms separated by dots).
  Result<int> parse_addr_spec(Mailbox& m) {
    std::string local;
    bool expect_word = true;
    while (pos_ < t_.size() && !peek_is('@')) {
      const Token& tok = t_[pos_];
      if (expect_word && tok.is_word()) {
        local += tok.text;
        expect_word = false;
      } else if (!expect_word && tok.is('.')) {
        local.push_back('.');
        expect_word = true;
      } else {
        return syntax_error("bad local part");
      }
      ++pos_;
    }
    if (local.empty() || expect_word) return syntax_error("bad or missing local part");
    if (!peek_is('@')) return syntax_error("missing '@'");
    ++pos_;
    if (pos_ < t_.size() && t_[pos_].kind == TokenKind::kLiteral) {
      m.domain = t_[pos_++].text;
    } else {
      std::string domain;
      expect_word = true;
      while (pos_ < t_.size()) {
        const Token& tok = t_[pos_];
        if (expect_word && tok.kind == TokenKind::kAtom) {
          domain += tok.text;
          expect_word = false;
        } else if (!expect_word && tok.is('.')) {
          domain.push_back('.');
          expect_word = true;
        } else {
          break;
        }
        ++pos_;
      }
      if (domain.empty() || expect_word) return syntax_error("bad or missing domain");
      m.domain = to_lower(domain);
    }
    m.local = std::move(local);
    return 0;
  }

  std::vector<Token> t_;
  size_t pos_ = 0;
};

bool local_needs_quotes(std::string_view local) {
  if (local.empty() || local.front() == '.' || local.back() == '.') return true;
  char prev = 0;
  for (char c : local) {
    if (c == '.' && prev == '.') return true;
    if (c != '.' && !is_atext(static_cast<unsigned char>(c))) return true;
    prev = c;
  }
  return false;
}

}  // namespace

std::string Mailbox::addr_spec() const {
  std::string out;
  if (local_needs_quotes(local)) {
    out.push_back('"');
    for (char c : local) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  } else {
    out = local;
  }
  out.push_back('@');
  out += domain;
  return out;
}

Result<std::vector<Mailbox>> parse_address_list(std::string_view value) {
  auto tokens = tokenize(value);
  if (!tokens) return tokens.error();
  AddressParser parser(std::move(*tokens));
  return parser.parse_list();
}

}  // namespace tern::mail
