// DKIM tag-list parsing and b= removal (see dkim_tags.h).
#include "auth/dkim_tags.h"

namespace tern::auth::dkim {

namespace {

constexpr size_t kMaxTags = 64;

Error tag_error(std::string text) { return Error::perm("5.7.5", std::move(text)); }

bool is_fws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_alnumpunc(char c) { return is_alpha(c) || (c >= '0' && c <= '9') || c == '_'; }
// RFC 6376 §3.2 VALCHAR = %x21-3A / %x3C-7E; 8-bit bytes are tolerated in
// values (z= copies and i= local parts can carry UTF-8, RFC 8616).
bool is_valchar(unsigned char c) { return (c >= 0x21 && c <= 0x7e && c != ';') || c >= 0x80; }

std::string_view trim_fws(std::string_view s) {
  while (!s.empty() && is_fws(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_fws(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<TagList> TagList::parse(std::string_view text) {
  TagList list;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t semi = text.find(';', pos);
    bool last = semi == std::string_view::npos;
    std::string_view spec = text.substr(pos, last ? std::string_view::npos : semi - pos);
    pos = last ? text.size() + 1 : semi + 1;
    if (trim_fws(spec).empty()) {
      // Only the final tag-spec may be empty (the optional trailing ';').
      if (last) break;
      return tag_error("empty tag-spec in tag list");
    }
    size_t eq = spec.find('=');
    if (eq == std::string_view::npos) return tag_error("tag without '='");
    std::string_view name = trim_fws(spec.substr(0, eq));
    std::string_view value = trim_fws(spec.substr(eq + 1));
    if (name.empty() || !is_alpha(name.front())) return tag_error("bad tag name");
    for (char c : name) {
      if (!is_alnumpunc(c)) return tag_error("bad tag name");
    }
    // Inner FWS is allowed between tval runs; a line end must be followed by WSP.
    for (size_t i = 0; i < value.size(); ++i) {
      char c = value[i];
      if (c == '\r' || c == '\n') {
        if (c == '\r' && (i + 1 >= value.size() || value[i + 1] != '\n')) return tag_error("bare CR in tag value");
        size_t next = (c == '\r') ? i + 2 : i + 1;
        if (next >= value.size() || (value[next] != ' ' && value[next] != '\t')) {
          return tag_error("bad folding in tag value");
        }
        continue;
      }
      if (c == ' ' || c == '\t') continue;
      if (!is_valchar(static_cast<unsigned char>(c))) return tag_error("bad character in tag value");
    }
    for (const Tag& t : list.tags_) {
      if (t.name == name) return tag_error("duplicate tag " + std::string(name) + "=");
    }
    if (list.tags_.size() >= kMaxTags) return tag_error("too many tags");
    list.tags_.push_back(Tag{std::string(name), std::string(value)});
  }
  return list;
}

std::optional<std::string_view> TagList::get(std::string_view name) const {
  for (const Tag& t : tags_) {
    if (t.name == name) return std::string_view(t.value);
  }
  return std::nullopt;
}

std::string strip_fws(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (!is_fws(c)) out.push_back(c);
  }
  return out;
}

std::string remove_b_value(std::string_view field) {
  // Keep a trailing line end out of the tag scan.
  std::string_view line_end;
  if (field.size() >= 2 && field.substr(field.size() - 2) == "\r\n") {
    line_end = field.substr(field.size() - 2);
  } else if (!field.empty() && field.back() == '\n') {
    line_end = field.substr(field.size() - 1);
  }
  std::string_view body = field.substr(0, field.size() - line_end.size());

  size_t pos = 0;
  bool first = true;
  while (pos <= body.size()) {
    size_t semi = body.find(';', pos);
    size_t spec_end = semi == std::string_view::npos ? body.size() : semi;
    std::string_view spec = body.substr(pos, spec_end - pos);
    size_t eq = spec.find('=');
    if (eq != std::string_view::npos) {
      std::string_view name = spec.substr(0, eq);
      // In a raw field the first spec starts with "Field-Name:"; tag names never contain ':'.
      if (first) {
        size_t colon = name.find(':');
        if (colon != std::string_view::npos) name = name.substr(colon + 1);
      }
      if (trim_fws(name) == "b") {
        std::string out;
        out.reserve(field.size());
        out.append(body.substr(0, pos + eq + 1));
        out.append(body.substr(spec_end));
        out.append(line_end);
        return out;
      }
    }
    first = false;
    if (semi == std::string_view::npos) break;
    pos = semi + 1;
  }
  return std::string(field);
}

}  // namespace tern::auth::dkim
