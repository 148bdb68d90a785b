// Helpers for header field values of Internet messages (RFC 5322): unfolding,
// and parsing the address lists of From/To/Cc/Reply-To (RFC 5322 §3.4) with
// display names, groups, comments, quoted local parts, domain literals and the
// obsolete forms of §4.4 that real mail still carries (empty list elements,
// source routes). Enough structure for DMARC's "the From domain" and for
// logging; UTF-8 (RFC 6532) is passed through in atoms and quoted strings.
// Work is linear in the input and comment nesting is bounded.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace tern::mail {

// Removes the CRLF (or bare LF) of every folded line (RFC 5322 §2.2.3). The
// WSP that follows stays.
std::string unfold(std::string_view value);

// One mailbox from an address list.
struct Mailbox {
  std::string display_name;  // phrase with quoting removed, words joined by one space; may be empty
  std::string local;         // local part with quoting removed
  std::string domain;        // lower-cased (ASCII letters), or a domain literal "[...]" as written
  std::string group;         // name of the enclosing group, if any

  // "local@domain" (local part re-quoted when needed).
  std::string addr_spec() const;
  bool operator==(const Mailbox&) const = default;
};

// Parses an RFC 5322 §3.4 address-list (the value of From/To/Cc...), folded
// or unfolded. Groups are expanded into their members (an empty group adds
// nothing). Errors (550 5.6.0) on syntax errors, comment nesting deeper than
// 64 or more than 10000 mailboxes.
Result<std::vector<Mailbox>> parse_address_list(std::string_view value);

}  // namespace tern::mail
