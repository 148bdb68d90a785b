// A parsed view of an RFC 5322 Internet message held as CRLF text, for the
// components that read or sign header fields (DKIM, ARC, DMARC, Received
// stamping): the header fields in order, each with its name, its raw bytes
// (folding and line end included, which DKIM "simple" needs) and its value,
// plus the offset where the body starts. Parsing is tolerant of what real
// mail contains (obsolete WSP before the colon, 8-bit bytes, bare LF line
// ends) but bounded: too many fields or too large a header section is an
// error rather than unbounded work.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "mail/header.h"

namespace tern::mail {

// One header field, viewing into the Message's text (valid while the Message
// lives and is not modified).
struct HeaderField {
  std::string_view name;   // field name as written, without trailing WSP or colon
  std::string_view value;  // everything after the colon up to (not incl.) the final line end, folding kept
  std::string_view raw;    // the whole field: name, colon, value and final line end

  // The value with line ends of folded lines removed (RFC 5322 §2.2.3), not trimmed.
  std::string unfolded() const { return unfold(value); }
};

struct MessageLimits {
  size_t max_fields = 1000;                  // header fields
  size_t max_header_bytes = 1024 * 1024;     // the header section
};

// Message files and pipes often use LF line ends; DKIM and ARC work on the
// SMTP form (CRLF). Bare LFs become CRLF; existing CRLF and bare CRs stay.
std::string to_crlf(std::string_view text);

class Message {
 public:
  Message() = default;

  // Parses `text` (RFC 5322 §2.1: header fields, an empty line, the body).
  // Without an empty line the whole text is header section and the body is
  // empty. Errors (554 5.6.0): a first line that is a continuation, a line
  // that is not "name:" (RFC 5322 §2.2, §4.5.3 obsolete WSP before ':'
  // allowed), limits exceeded.
  static Result<Message> parse(std::string text, const MessageLimits& limits = {});

  const std::string& text() const { return text_; }
  size_t field_count() const { return spans_.size(); }
  HeaderField field(size_t index) const;
  std::vector<HeaderField> fields() const;
  // All fields named `name` (ASCII case-insensitive), top to bottom.
  std::vector<HeaderField> find_all(std::string_view name) const;
  // Indices of those fields, top to bottom.
  std::vector<size_t> find_indices(std::string_view name) const;
  size_t body_offset() const { return body_offset_; }
  std::string_view body() const { return std::string_view(text_).substr(body_offset_); }
  // The header section including the separating empty line, if any.
  std::string_view header_section() const { return std::string_view(text_).substr(0, body_offset_); }

  // Prepends a complete field (e.g. "DKIM-Signature: ...\r\n"; a missing line
  // end is added). The field must itself parse as exactly one header field.
  Status prepend_field(std::string_view raw_field);
  // Convenience: prepends "name: value\r\n" (value already folded if needed).
  Status prepend_field(std::string_view name, std::string_view value);

  // Every mailbox in every From field (RFC 5322 §3.6.2 address lists, groups
  // expanded). Errors when a From field does not parse. DMARC (RFC 7489
  // §6.6.1) needs to know whether there is exactly one.
  Result<std::vector<Mailbox>> from_addresses() const;

 private:
  struct Span {
    uint32_t start = 0;        // first byte of the name
    uint32_t name_len = 0;     // name without trailing WSP
    uint32_t value_start = 0;  // first byte after ':'
    uint32_t value_end = 0;    // first byte of the final line end
    uint32_t end = 0;          // one past the final line end
  };
  Status reparse();

  std::string text_;
  std::vector<Span> spans_;
  size_t body_offset_ = 0;
  MessageLimits limits_;
};

}  // namespace tern::mail
