// Formatting of Error values (see result.h).
#include "base/result.h"

namespace tern {

std::string Error::to_string() const {
  std::string out = std::to_string(code);
  if (!enhanced.empty()) {
    out += ' ';
    out += enhanced;
  }
  if (!text.empty()) {
    out += ' ';
    out += text;
  }
  return out;
}

}  // namespace tern
