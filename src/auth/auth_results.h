// Authentication-Results header fields (RFC 8601): a builder that renders the
// verdicts of SPF, DKIM, DMARC, ARC (and anything else) into one correctly
// quoted and folded header field, and a bounded parser for received
// Authentication-Results / ARC-Authentication-Results fields — used to find
// (and remove) fields that claim our authserv-id (RFC 8601 §5) and to copy
// results into ARC-Authentication-Results when sealing (RFC 8617 §4.1.1).
//
// DNSSEC: RFC 8601 has no registered property for "the DNS answers behind
// this result were DNSSEC-validated", and unregistered ptype.property pairs
// are not allowed (§2.2: Keyword "constrained by ... being registered").
// Comments are allowed anywhere (CFWS) and ignored by consumers, so the
// builder renders MethodResult::dnssec as a comment right after the result,
// "(dnssec=secure)" or "(dnssec=insecure)", e.g.
//   dmarc=pass (dnssec=secure) header.from=example.com
// which loses nothing for machine consumers and stays visible to humans.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace tern::auth {

// One "ptype.property=value", e.g. {"smtp", "mailfrom", "a@example.com"}.
struct ResultProperty {
  std::string ptype;
  std::string property;
  std::string value;
  bool operator==(const ResultProperty&) const = default;
};

// One resinfo: "method=result [reason=...] props...".
struct MethodResult {
  std::string method;          // "spf", "dkim", "dmarc", "arc", ...
  std::string result;          // "pass", "fail", ...
  std::string reason;          // reason="..." when non-empty
  std::string comment;         // free text rendered as "(...)" after the result, when non-empty
  std::optional<bool> dnssec;  // see the file comment: rendered as "(dnssec=secure|insecure)"
  std::vector<ResultProperty> properties;

  MethodResult& prop(std::string ptype, std::string property, std::string value) {
    properties.push_back({std::move(ptype), std::move(property), std::move(value)});
    return *this;
  }
};

struct AuthResults {
  std::string authserv_id;
  std::vector<MethodResult> results;  // empty: "; none" (§2.2 no-result)
};

// Renders a value as RFC 2045 token when possible, else as a quoted string
// (with '"' and '\' escaped; CR/LF and other controls dropped).
std::string quote_value(std::string_view v);
// Renders a pvalue: an email identity "[local-part] @ domain" is written as
// is when it is safe (§2.2 pvalue), otherwise like quote_value.
std::string quote_pvalue(std::string_view v);

// The field value (without "Authentication-Results:"), unfolded, e.g.
// "mx.example.org; spf=pass smtp.mailfrom=a@b.example; dkim=pass header.d=b.example".
std::string format_value(const AuthResults& ar);
// The whole header field with its CRLF, folded between results and
// properties so that lines stay within `width` columns where possible.
std::string format_header(const AuthResults& ar, std::string_view field_name = "Authentication-Results",
                          size_t width = 78);

// A parsed received field. `results` keeps each resinfo's text as written
// (comments included, trimmed, unfolded) for ARC-Authentication-Results.
struct ParsedResult {
  MethodResult result;
  std::string text;  // e.g. "dkim=pass (1024-bit key) header.i=@d1.example"
};
struct ParsedAuthResults {
  std::optional<unsigned> instance;  // i= of an ARC-Authentication-Results field
  std::string authserv_id;
  std::optional<unsigned> version;
  bool none = false;  // "; none"
  std::vector<ParsedResult> results;
};

// Limits on hostile input: longer values or more results are errors.
inline constexpr size_t kMaxAuthResultsLength = 64 * 1024;
inline constexpr size_t kMaxResults = 256;
inline constexpr size_t kMaxProperties = 64;

// Parses an Authentication-Results value (RFC 8601 §2.2). With `arc` set,
// the value must start with the "i=N;" instance tag of RFC 8617 §4.1.1.
// Folding and comments are allowed wherever CFWS is. Errors: 550 5.7.0-ish
// (permanent, "malformed Authentication-Results").
Result<ParsedAuthResults> parse_auth_results(std::string_view value, bool arc = false);

// Just the authserv-id (lower-cased for comparison is the caller's choice),
// tolerant of a malformed remainder: RFC 8601 §5 removal must not be defeated
// by junk after the id. nullopt when not even an id can be found.
std::optional<std::string> extract_authserv_id(std::string_view value);

// True when a field with this value claims `authserv_id` (case-insensitive).
bool claims_authserv_id(std::string_view value, std::string_view authserv_id);

}  // namespace tern::auth
