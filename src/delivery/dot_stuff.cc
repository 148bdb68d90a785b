// DATA-phase transparency encoding (see dot_stuff.h, RFC 5321 §4.5.2).
#include "delivery/dot_stuff.h"

namespace tern::delivery {

void DotStuffer::append(std::string_view chunk, std::string& out) {
  out.reserve(out.size() + chunk.size() + chunk.size() / 64 + 8);
  for (char c : chunk) {
    if (at_line_start_ && c == '.') out.push_back('.');  // §4.5.2: double a leading period
    if (c == '\n') {
      if (!previous_was_cr_) out.push_back('\r');  // bare LF becomes CRLF
      out.push_back('\n');
      at_line_start_ = true;
    } else {
      out.push_back(c);
      at_line_start_ = false;
    }
    previous_was_cr_ = (c == '\r');
  }
}

void DotStuffer::finish(std::string& out) {
  if (!at_line_start_) {
    if (!previous_was_cr_) out.push_back('\r');
    out.push_back('\n');
  }
  out.append(".\r\n");
  at_line_start_ = true;
  previous_was_cr_ = false;
}

std::string dot_stuff(std::string_view content) {
  std::string out;
  DotStuffer stuffer;
  stuffer.append(content, out);
  stuffer.finish(out);
  return out;
}

bool dot_unstuff(std::string_view data, std::string& content) {
  content.clear();
  size_t pos = 0;
  while (pos < data.size()) {
    size_t eol = data.find("\r\n", pos);
    if (eol == std::string_view::npos) return false;
    std::string_view line = data.substr(pos, eol - pos);
    pos = eol + 2;
    if (line == ".") return pos == data.size();
    if (!line.empty() && line[0] == '.') line.remove_prefix(1);
    content.append(line);
    content.append("\r\n");
  }
  return false;
}

}  // namespace tern::delivery
