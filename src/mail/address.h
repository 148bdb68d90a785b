// Mail addresses as they appear on the SMTP envelope: the RFC 5321 §4.1.2
// "Mailbox" (local-part "@" domain-or-literal) and "Path" ("<" mailbox ">",
// with an optional obsolete source route and the "<>" null path). Parsing is
// strict, bounded by the RFC 5321 §4.5.3.1 size limits, and allows RFC 6531
// UTF-8 only when the caller says the transaction negotiated SMTPUTF8.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"

namespace tern::mail {

struct Address {
  // Local part with quoting removed (quoted-pairs decoded). Case is preserved:
  // RFC 5321 §2.4 says only the receiving host may interpret it.
  std::string local;
  // Domain lower-cased (ASCII letters only; U-labels kept as given), or an
  // address literal including its brackets, e.g. "[192.0.2.1]". Empty for the
  // special "<postmaster>" recipient and for the null path.
  std::string domain;

  // "local@domain", with the local part re-quoted when it is not a dot-string;
  // just the local part when there is no domain; "" for the null path.
  std::string str() const;
  // True for the null reverse-path "<>".
  bool empty() const { return local.empty() && domain.empty(); }
  bool operator==(const Address&) const = default;
};

// Parses an RFC 5321 §4.1.2 Mailbox. When `utf8` is true, RFC 6531 §3.3
// UTF-8 is allowed in atoms, quoted strings and domain labels (U-labels).
// Errors are 553 5.1.3 (syntax) or 553 5.6.7 (non-ASCII without SMTPUTF8).
Result<Address> parse_mailbox(std::string_view text, bool utf8);

// Parses an RFC 5321 §4.1.2 Path "<mailbox>", ignoring an obsolete source
// route "<@a,@b:mailbox>" (RFC 5321 §4.1.2, Appendix C). "<>" yields an empty
// Address when `allow_null`, an error otherwise. The whole path is limited to
// 256 octets (RFC 5321 §4.5.3.1.3).
Result<Address> parse_path(std::string_view text, bool allow_null, bool utf8);

// LDH host name (RFC 5321 §4.1.2 Domain, RFC 1035 §2.3.4): labels of letters,
// digits and inner hyphens, 1..63 octets each, at most 255 octets in total.
bool is_valid_domain(std::string_view d);

// True when every byte is < 0x80.
bool is_ascii(std::string_view s);

// True when `s` is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF).
bool is_valid_utf8(std::string_view s);

// True when `local` can be written without quotes: RFC 5321 Dot-string
// (atext atoms separated by single dots), atext extended with UTF-8 bytes.
bool is_dot_string(std::string_view local);

}  // namespace tern::mail
