// Address splitting, canonicalisation and syntax checks (see address.h).
#include "users/address.h"

#include <cstring>

#include "base/strings.h"

namespace tern::users {

std::optional<AddressParts> split_address(std::string_view address) {
  size_t at = address.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == address.size()) return std::nullopt;
  return AddressParts{std::string(address.substr(0, at)), std::string(address.substr(at + 1))};
}

std::string canonical_address(std::string_view address) { return to_lower(address); }

LocalPart split_detail(std::string_view local) {
  size_t sep = local.find(kDetailSeparator);
  if (sep == std::string_view::npos || sep == 0) return {std::string(local), {}};
  return {std::string(local.substr(0, sep)), std::string(local.substr(sep + 1))};
}

namespace {
// RFC 5322 §3.2.3 atext.
bool is_atext(unsigned char c) {
  if (c >= 0x80) return true;  // RFC 6531 §3.3 UTF8-non-ascii
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c != 0 && std::strchr("!#$%&'*+-/=?^_`{|}~", c) != nullptr;
}
}  // namespace

bool valid_local_part(std::string_view local) {
  if (local.empty() || local.size() > kMaxLocalPartSize) return false;
  if (local.front() == '.' || local.back() == '.') return false;
  char prev = 0;
  for (char ch : local) {
    if (ch == '.') {
      if (prev == '.') return false;
    } else if (!is_atext(static_cast<unsigned char>(ch))) {
      return false;
    }
    prev = ch;
  }
  return true;
}

bool valid_domain(std::string_view domain) {
  if (domain.empty() || domain.size() > kMaxDomainSize) return false;
  for (std::string_view label : split(domain, '.')) {
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok) return false;
    }
  }
  return true;
}

bool valid_address(std::string_view address) {
  auto parts = split_address(address);
  return parts && valid_local_part(parts->local) && valid_domain(parts->domain);
}

}  // namespace tern::users
