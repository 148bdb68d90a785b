// Helpers for applying a milter's end-of-message header changes to the
// message tern spools. The header section is split into fields exactly as
// they are sent to the milter (MilterSession::header), the milter's add /
// insert / change header modifications are applied with Sendmail's index
// semantics, and the result is joined back into wire form (CRLF line ends,
// folded values kept). Header values from a milter fold with bare LF
// (libmilter's convention) and, unless SMFIP_HDR_LEADSPC was negotiated,
// lack the space after the colon; both are normalised here. Envelope
// changes (recipients, sender) come as "<addr>" and are unbracketed here.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "milter/session.h"

namespace tern::milter {

struct HeaderField {
  std::string name;   // without the colon
  std::string value;  // everything after the colon, folding CRLFs kept, without the final CRLF
};

// Splits a header section (RFC 5322 §2.2: fields, continuation lines start
// with SP or HTAB; the empty line that ends the section may be present or
// not). Text before the first colon-bearing line is kept as a field with
// an empty name so that joining gives the input back.
std::vector<HeaderField> split_header_section(std::string_view section);
// "name:value\r\n" for each field (the empty line is not added).
std::string join_header_section(const std::vector<HeaderField>& fields);

// A milter's header value in wire form: bare LF becomes CRLF, and a leading
// space is added unless the value already starts with SP/HTAB.
std::string header_value_from_milter(std::string_view value);

// Applies kAddHeader (append), kInsertHeader (before the index-th field,
// 0 = top; past the end appends) and kChangeHeader (the index-th, 1-based,
// field with that name, compared case-insensitively; an empty value deletes
// it; no such field: a non-empty value is appended, as Sendmail does), in
// the order given. Other kinds are ignored.
void apply_header_changes(std::vector<HeaderField>& fields, const std::vector<Modification>& modifications);

// "<a@b>" -> "a@b", "<>" -> "", anything else unchanged.
std::string unbracket_address(std::string_view address);

}  // namespace tern::milter
