// The DKIM tag=value list syntax (RFC 6376 §3.2), used by DKIM-Signature
// fields, DKIM key records, and ARC's ARC-Seal and ARC-Message-Signature
// (RFC 8617 §4.1): parsing with duplicate detection, and locating the b= tag
// value inside a raw header field so that it can be emptied before hashing
// (RFC 6376 §3.7, §3.5 "b=").
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace tern::auth::dkim {

struct Tag {
  std::string name;   // case-sensitive (RFC 6376 §3.2)
  std::string value;  // with surrounding FWS removed; inner FWS kept as written
};

class TagList {
 public:
  // Parses a tag-list. Errors (550 5.7.5 permanent): a malformed tag-spec, an
  // empty tag name, a duplicate tag name ("tags with duplicate names MUST NOT
  // occur"), a bad character in a value, more than 64 tags.
  static Result<TagList> parse(std::string_view text);

  const std::vector<Tag>& tags() const { return tags_; }
  // The value of tag `name`, if present.
  std::optional<std::string_view> get(std::string_view name) const;
  bool has(std::string_view name) const { return get(name).has_value(); }

 private:
  std::vector<Tag> tags_;
};

// Removes all FWS (SP, HTAB, CR, LF) from a tag value, e.g. b=, bh= and p=
// whose base64 may be folded.
std::string strip_fws(std::string_view value);

// `field` is a raw header field (or just its value) containing a tag-list
// with a b= tag. Returns it with the b= value (everything between "b=" and
// the next ';' or the end, surrounding whitespace included) removed, as RFC
// 6376 §3.7 requires for the signature's own header field. Only a tag whose
// name is exactly "b" is touched (not "bh"). The trailing line end of a raw
// field is kept.
std::string remove_b_value(std::string_view field);

}  // namespace tern::auth::dkim
