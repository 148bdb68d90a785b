// Mail address helpers for account and alias lookup: splitting
// "local@domain", the canonical lookup key (whole address lower-cased, as
// Postfix treats local parts case-insensitively by default), "+detail"
// sub-addressing and a syntax check for addresses an operator writes into the
// accounts and aliases files (RFC 5321 §4.1.2 dot-string local parts, RFC
// 5321 §4.5.3.1 size limits; UTF-8 local parts are allowed per RFC 6531).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tern::users {

// RFC 5321 §4.5.3.1.1 and §4.5.3.1.2.
inline constexpr size_t kMaxLocalPartSize = 64;
inline constexpr size_t kMaxDomainSize = 255;
inline constexpr char kDetailSeparator = '+';

struct AddressParts {
  std::string local;   // as written
  std::string domain;  // as written
};

// Splits at the last '@'. nullopt when there is no '@' or either side is empty.
std::optional<AddressParts> split_address(std::string_view address);
// Lower-cased copy of the whole address: the key accounts and aliases use.
std::string canonical_address(std::string_view address);
// "alice+news" -> {"alice", "news"}; no separator, or separator first -> {local, ""}.
struct LocalPart {
  std::string base;
  std::string detail;
};
LocalPart split_detail(std::string_view local);

// A dot-string local part (atext and dots, no leading/trailing/double dot;
// bytes >= 0x80 allowed for SMTPUTF8) of at most 64 octets.
bool valid_local_part(std::string_view local);
// LDH labels separated by dots, 1..63 octets each, total <= 255; a trailing
// dot is not allowed. Address literals are not accepted here.
bool valid_domain(std::string_view domain);
// valid_local_part(local) && valid_domain(domain).
bool valid_address(std::string_view address);

}  // namespace tern::users
