// Fuzz target: RFC 5322 message parsing (src/mail/message.h), From address
// extraction (src/mail/header.h) and, on the same bytes, DKIM header and body
// canonicalization. Invariants: the fields tile the header section exactly,
// limits hold, and hashing the body in one piece or in odd-sized chunks gives
// the same digest (the streaming state machine is chunk-independent).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "auth/dkim_canon.h"
#include "mail/message.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tern;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  mail::MessageLimits limits;
  limits.max_fields = 50;
  limits.max_header_bytes = 4096;
  auto m = mail::Message::parse(std::string(in), limits);
  if (m) {
    if (m->field_count() > limits.max_fields) std::abort();
    size_t pos = 0;
    for (size_t i = 0; i < m->field_count(); ++i) {
      mail::HeaderField f = m->field(i);
      if (f.raw.data() != m->text().data() + pos) std::abort();  // contiguous, in order
      if (f.name.empty() || f.raw.substr(0, f.name.size()) != f.name) std::abort();
      pos += f.raw.size();
      (void)auth::dkim::canonicalize_header(auth::dkim::Canon::kRelaxed, f.raw);
    }
    if (pos > m->body_offset() || m->body_offset() > m->text().size()) std::abort();
    (void)m->from_addresses();
    std::string copy = m->text();
    if (m->prepend_field("X-Fuzz: 1")) {
      if (m->text().size() != copy.size() + 11 || m->field(0).name != "X-Fuzz") std::abort();
    }
  }
  (void)mail::parse_address_list(in);
  for (auto canon : {auth::dkim::Canon::kSimple, auth::dkim::Canon::kRelaxed}) {
    std::string whole = auth::dkim::body_hash(canon, in);
    auth::dkim::BodyHasher chunked(canon);
    size_t step = 1 + (size % 7);
    for (size_t p = 0; p < in.size(); p += step) chunked.update(in.substr(p, step));
    if (chunked.finish() != whole) std::abort();
  }
  return 0;
}
