// RFC 5322 message parsing into header field spans and a body offset (see
// message.h). One linear pass over the header section; the body is never
// scanned.
#include "mail/message.h"

#include "base/strings.h"

namespace tern::mail {

std::string to_crlf(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 32);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) out.push_back('\r');
    out.push_back(text[i]);
  }
  return out;
}

namespace {

Error parse_error(std::string text) { return Error::perm("5.6.0", "invalid header: " + std::move(text), 554); }

// RFC 5322 §2.2 field-name: printable US-ASCII except ':'.
bool is_ftext(unsigned char c) { return c >= 33 && c <= 126 && c != ':'; }

}  // namespace

Result<Message> Message::parse(std::string text, const MessageLimits& limits) {
  Message m;
  m.text_ = std::move(text);
  m.limits_ = limits;
  auto st = m.reparse();
  if (!st) return st.error();
  return m;
}

Status Message::reparse() {
  spans_.clear();
  const std::string& t = text_;
  const size_t n = t.size();
  size_t pos = 0;
  while (pos < n) {
    if (pos > limits_.max_header_bytes) return parse_error("header section too large");
    // End of the header section: an empty line (RFC 5322 §2.1).
    if (t[pos] == '\n') {
      body_offset_ = pos + 1;
      return ok();
    }
    if (t[pos] == '\r' && pos + 1 < n && t[pos + 1] == '\n') {
      body_offset_ = pos + 2;
      return ok();
    }
    if (t[pos] == ' ' || t[pos] == '\t') return parse_error("bad continuation");
    if (spans_.size() >= limits_.max_fields) return parse_error("too many header fields");

    Span s;
    s.start = static_cast<uint32_t>(pos);
    size_t i = pos;
    while (i < n && is_ftext(static_cast<unsigned char>(t[i]))) ++i;
    size_t name_end = i;
    while (i < n && (t[i] == ' ' || t[i] == '\t')) ++i;  // RFC 5322 §4.5.3 obs WSP before ':'
    if (name_end == pos || i >= n || t[i] != ':') return parse_error("malformed field (no name or no colon)");
    s.name_len = static_cast<uint32_t>(name_end - pos);
    s.value_start = static_cast<uint32_t>(i + 1);
    // The field ends at a line end not followed by WSP (RFC 5322 §2.2.3).
    size_t j = i + 1;
    for (;;) {
      size_t lf = t.find('\n', j);
      if (lf == std::string::npos) {
        // Last line without a line end: the message is all header.
        s.value_end = s.end = static_cast<uint32_t>(n);
        j = n;
        break;
      }
      if (lf - pos > limits_.max_header_bytes) return parse_error("header section too large");
      size_t next = lf + 1;
      if (next < n && (t[next] == ' ' || t[next] == '\t')) {
        j = next;
        continue;
      }
      size_t value_end = (lf > 0 && t[lf - 1] == '\r' && lf - 1 >= s.value_start) ? lf - 1 : lf;
      s.value_end = static_cast<uint32_t>(value_end);
      s.end = static_cast<uint32_t>(next);
      j = next;
      break;
    }
    if (j > limits_.max_header_bytes) return parse_error("header section too large");
    spans_.push_back(s);
    pos = j;
  }
  body_offset_ = n;
  return ok();
}

HeaderField Message::field(size_t index) const {
  const Span& s = spans_[index];
  std::string_view t(text_);
  return HeaderField{t.substr(s.start, s.name_len), t.substr(s.value_start, s.value_end - s.value_start),
                     t.substr(s.start, s.end - s.start)};
}

std::vector<HeaderField> Message::fields() const {
  std::vector<HeaderField> out;
  out.reserve(spans_.size());
  for (size_t i = 0; i < spans_.size(); ++i) out.push_back(field(i));
  return out;
}

std::vector<size_t> Message::find_indices(std::string_view name) const {
  std::vector<size_t> out;
  std::string_view t(text_);
  for (size_t i = 0; i < spans_.size(); ++i) {
    if (iequals(t.substr(spans_[i].start, spans_[i].name_len), name)) out.push_back(i);
  }
  return out;
}

std::vector<HeaderField> Message::find_all(std::string_view name) const {
  std::vector<HeaderField> out;
  for (size_t i : find_indices(name)) out.push_back(field(i));
  return out;
}

Status Message::prepend_field(std::string_view raw_field) {
  std::string field(raw_field);
  if (field.empty() || field.back() != '\n') field += "\r\n";
  // The new field must be exactly one well-formed field.
  auto probe = Message::parse(field + "\r\n");
  if (!probe) return probe.error();
  if (probe->field_count() != 1 || probe->field(0).raw.size() != field.size()) {
    return parse_error("prepended text is not exactly one header field");
  }
  std::string old = std::move(text_);
  text_ = std::move(field);
  text_ += old;
  auto st = reparse();
  if (!st) {
    // Keep the message as it was (e.g. the new field pushed it over a limit).
    text_ = std::move(old);
    (void)reparse();
    return st;
  }
  return ok();
}

Status Message::prepend_field(std::string_view name, std::string_view value) {
  std::string field(name);
  field += ": ";
  field += value;
  return prepend_field(field);
}

Result<std::vector<Mailbox>> Message::from_addresses() const {
  std::vector<Mailbox> out;
  for (const HeaderField& f : find_all("From")) {
    auto list = parse_address_list(f.value);
    if (!list) return list.error();
    for (auto& m : *list) out.push_back(std::move(m));
  }
  return out;
}

}  // namespace tern::mail
