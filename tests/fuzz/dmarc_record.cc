// Fuzz target for the DMARC record parser: any input must classify as one of
// the four parse statuses without crashing; accepted records must respect the
// documented invariants (pct <= 100, bounded URI lists, defaults applied when
// p fell back to none), and parsing must be deterministic.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "auth/dmarc.h"

using tern::auth::dmarc::ParseStatus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto r = tern::auth::dmarc::parse_record(in);
  bool is_dmarc = tern::auth::dmarc::is_dmarc_record(in);
  if ((r.status == ParseStatus::kNotDmarc) == is_dmarc) std::abort();
  if (r.status == ParseStatus::kOk) {
    const auto& rec = r.record;
    if (rec.pct > 100) std::abort();
    if (rec.rua.size() > 32 || rec.ruf.size() > 32) std::abort();
    if (rec.p_defaulted && (rec.p != tern::auth::dmarc::Policy::kNone || rec.rua.empty())) std::abort();
    if (in.size() > tern::auth::dmarc::kMaxRecordLength) std::abort();
    for (const auto& u : rec.rua) (void)u.max_bytes();
  } else if (r.error.empty()) {
    std::abort();
  }
  auto again = tern::auth::dmarc::parse_record(in);
  if (again.status != r.status) std::abort();
  return 0;
}
