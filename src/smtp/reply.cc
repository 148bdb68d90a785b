// Reply rendering (see reply.h): RFC 5321 §4.2.1 multi-line format with
// RFC 2034 enhanced status codes on every line.
#include "smtp/reply.h"

namespace tern::smtp {

std::string Reply::render() const {
  int c = (code >= 200 && code <= 599) ? code : 451;
  std::string code_text = std::to_string(c);
  std::string out;
  size_t n = lines.empty() ? 1 : lines.size();
  for (size_t i = 0; i < n; ++i) {
    out += code_text;
    out += (i + 1 == n) ? ' ' : '-';
    std::string_view text = lines.empty() ? std::string_view() : std::string_view(lines[i]);
    std::string body;
    if (!enhanced.empty()) {
      body = enhanced;
      if (!text.empty()) body += ' ';
    }
    body += text;
    for (char& ch : body) {
      unsigned char u = static_cast<unsigned char>(ch);
      if (u < 32 || u == 127) ch = ' ';
    }
    out += body;
    out += "\r\n";
  }
  return out;
}

}  // namespace tern::smtp
