// SMTP replies (RFC 5321 §4.2) as values, rendered to wire format. A reply has
// a three-digit code, an optional RFC 3463 enhanced status code and one or
// more text lines; multi-line replies use "code-" continuation lines
// (RFC 5321 §4.2.1). With ENHANCEDSTATUSCODES (RFC 2034 §3) the enhanced code
// prefixes the text of every line; the 220 greeting, EHLO keyword lines and
// 3xx intermediate replies carry none, which callers express with an empty
// `enhanced`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace tern::smtp {

struct Reply {
  int code = 250;
  std::string enhanced;            // "2.0.0", or empty for none
  std::vector<std::string> lines;  // text of each line, without code or CRLF

  Reply() = default;
  Reply(int c, std::string enh, std::string text) : code(c), enhanced(std::move(enh)), lines{std::move(text)} {}
  Reply(int c, std::string enh, std::vector<std::string> text)
      : code(c), enhanced(std::move(enh)), lines(std::move(text)) {}
  static Reply from_error(const Error& e) { return Reply(e.code, e.enhanced, e.text); }

  // "250-a\r\n250 2.0.0 b\r\n". Control characters (including CR and LF) in
  // the text are replaced by spaces so a reply can never smuggle extra lines;
  // a code outside 200..599 is rendered as 451 (local error).
  std::string render() const;
  bool positive() const { return code >= 200 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
  bool permanent() const { return code >= 500; }
};

}  // namespace tern::smtp
