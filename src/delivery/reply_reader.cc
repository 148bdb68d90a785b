// Incremental SMTP/LMTP reply parsing (see reply_reader.h). Grammar from
// RFC 5321 §4.2:
//   Reply-line = *( Reply-code "-" [ textstring ] CRLF )
//                Reply-code [ SP textstring ] CRLF
//   Reply-code = %x32-35 %x30-35 %x30-39
// Every line of a multiline reply must carry the same code (§4.2.1). A bare
// LF line ending is tolerated; NUL bytes and other codes are not.
#include "delivery/reply_reader.h"

#include <utility>

namespace tern::delivery {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Parses the 3-digit Reply-code of RFC 5321 §4.2; -1 when malformed.
int parse_reply_code(std::string_view line) {
  if (line.size() < 3) return -1;
  char a = line[0], b = line[1], c = line[2];
  if (a < '2' || a > '5' || b < '0' || b > '5' || !is_digit(c)) return -1;
  return (a - '0') * 100 + (b - '0') * 10 + (c - '0');
}

// Reads 1 to 3 digits (RFC 3463 §2: subject and detail are 1*3digit).
bool take_number(std::string_view& s, size_t max_digits) {
  size_t n = 0;
  while (n < s.size() && is_digit(s[n])) ++n;
  if (n == 0 || n > max_digits) return false;
  s.remove_prefix(n);
  return true;
}

}  // namespace

std::string split_enhanced_code(std::string_view text, int code, std::string_view& rest) {
  rest = text;
  // status-code = class "." subject "." detail; class is 2, 4 or 5 and must
  // agree with the basic reply code (RFC 2034 §4).
  std::string_view s = text;
  if (s.empty() || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[0] - '0' != code / 100) return "";
  s.remove_prefix(1);
  if (s.empty() || s[0] != '.') return "";
  s.remove_prefix(1);
  if (!take_number(s, 3)) return "";
  if (s.empty() || s[0] != '.') return "";
  s.remove_prefix(1);
  if (!take_number(s, 3)) return "";
  if (!s.empty() && s[0] != ' ' && s[0] != '\t') return "";
  std::string enhanced(text.substr(0, text.size() - s.size()));
  while (!s.empty() && (s[0] == ' ' || s[0] == '\t')) s.remove_prefix(1);
  rest = s;
  return enhanced;
}

std::string Reply::text() const {
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += " / ";
    out += lines[i];
  }
  return out;
}

std::string Reply::to_string() const {
  std::string out = std::to_string(code);
  if (!enhanced.empty()) out += " " + enhanced;
  std::string t = text();
  if (!t.empty()) out += " " + t;
  return out;
}

void ReplyReader::feed(std::string_view bytes) {
  if (error_) return;
  // Drop consumed bytes before growing, so the buffer holds at most one
  // partial reply plus what was just received.
  if (consumed_ > 0) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  buffer_.append(bytes);
}

Result<std::optional<Reply>> ReplyReader::fail(std::string text) {
  error_ = Error::temp("4.5.0", "invalid reply from server: " + text);
  buffer_.clear();
  consumed_ = 0;
  return *error_;
}

Result<std::optional<Reply>> ReplyReader::next() {
  if (error_) return *error_;
  Reply reply;
  size_t pos = consumed_;
  for (;;) {
    std::string_view rest(buffer_.data() + pos, buffer_.size() - pos);
    size_t lf = rest.find('\n');
    if (lf == std::string_view::npos) {
      // Incomplete line: fine unless it is already too long to be valid.
      if (rest.size() >= limits_.max_line_length) return fail("line too long");
      return std::optional<Reply>();
    }
    if (lf + 1 > limits_.max_line_length) return fail("line too long");
    std::string_view line = rest.substr(0, lf);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos += lf + 1;

    if (line.find('\0') != std::string_view::npos) return fail("NUL byte in reply");
    int code = parse_reply_code(line);
    if (code < 0) return fail("bad reply code");
    bool last;
    if (line.size() == 3 || line[3] == ' ') {
      last = true;
    } else if (line[3] == '-') {
      last = false;
    } else {
      return fail("bad separator after reply code");
    }
    if (reply.lines.empty()) {
      reply.code = code;
    } else if (code != reply.code) {
      return fail("reply code changed within multiline reply");  // RFC 5321 §4.2.1
    }
    if (reply.lines.size() >= limits_.max_lines) return fail("too many lines in reply");
    std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view();
    std::string_view without_code;
    std::string enhanced = split_enhanced_code(text, code, without_code);
    // The first line's status code is the reply's; continuation lines lose
    // theirs only when it is the same one, so other text stays intact.
    if (reply.lines.empty()) {
      reply.enhanced = enhanced;
      text = without_code;
    } else if (!enhanced.empty() && enhanced == reply.enhanced) {
      text = without_code;
    }
    reply.lines.emplace_back(text);
    if (last) {
      consumed_ = pos;
      return std::optional<Reply>(std::move(reply));
    }
  }
}

Result<Reply> parse_reply(std::string_view text, ReplyLimits limits) {
  ReplyReader reader(limits);
  reader.feed(text);
  auto r = reader.next();
  if (!r) return r.error();
  if (!r.value()) return Error::temp("4.5.0", "invalid reply from server: incomplete reply");
  if (reader.buffered() != 0) return Error::temp("4.5.0", "invalid reply from server: trailing data");
  return std::move(*r.value());
}

}  // namespace tern::delivery
