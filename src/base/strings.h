// Small ASCII string helpers used across tern. SMTP and mail headers are
// case-insensitive ASCII protocols, so these never depend on the C locale.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tern {

inline char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
inline char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }
std::string to_lower(std::string_view s);
std::string to_upper(std::string_view s);
bool iequals(std::string_view a, std::string_view b);
bool istarts_with(std::string_view s, std::string_view prefix);
bool iends_with(std::string_view s, std::string_view suffix);
std::string_view trim(std::string_view s);  // strips SP, HTAB, CR, LF at both ends
// Splits on `sep`; keeps empty fields.
std::vector<std::string_view> split(std::string_view s, char sep);
bool is_digits(std::string_view s);
// Parses a non-negative decimal integer that fits in uint64; false on junk or overflow.
bool parse_u64(std::string_view s, unsigned long long& out);

// Line ends. CRLF becomes LF, bare CR is left alone (the LF form of stored
// messages, and the form milters expect header values in).
std::string crlf_to_lf(std::string_view text);
// Every line end becomes CRLF: bare LF and bare CR too (RFC 5322 §2.1), so
// text from a file or a milter cannot bring lone line ends into SMTP data.
std::string normalize_crlf(std::string_view text);

// Base64 (RFC 4648 §4), standard alphabet with padding.
std::string base64_encode(std::string_view data);
// Decodes strictly (rejects bad characters and bad padding). Whitespace is not allowed
// unless `skip_whitespace` is set (DKIM tag values contain folding whitespace).
bool base64_decode(std::string_view in, std::string& out, bool skip_whitespace = false);

// xtext (RFC 3461 §4): decode "+HH" escapes; false when malformed.
bool xtext_decode(std::string_view in, std::string& out);
std::string xtext_encode(std::string_view in);

}  // namespace tern
