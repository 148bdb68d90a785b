// Fuzz target for envelope address parsing: parse_path in all modes. When a
// path parses, its canonical form must parse again to the same Address, and
// limits (64-octet local part, 255-octet domain) must hold.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mail/address.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  for (bool utf8 : {false, true}) {
    auto a = tern::mail::parse_path(in, /*allow_null=*/true, utf8);
    if (!a) {
      if (a.error().code != 553) std::abort();
      continue;
    }
    if (!utf8 && !tern::mail::is_ascii(in)) std::abort();
    if (a->empty()) continue;
    if (a->domain.size() > 255) std::abort();
    auto again = tern::mail::parse_mailbox(a->str(), utf8);
    if (!again || !(*again == *a)) std::abort();
  }
  (void)tern::mail::parse_mailbox(in, true);
  return 0;
}
