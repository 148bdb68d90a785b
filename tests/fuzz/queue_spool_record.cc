// Fuzz target for the spool format parser (src/queue/record.h): the input is
// scanned as a whole spool file and also fed to the envelope and state
// decoders directly. Checks that nothing crashes or over-allocates, that the
// scan's bookkeeping is consistent, and that decoded envelopes survive an
// encode/decode round trip unchanged.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "queue/record.h"

using namespace tern::queue;

namespace {
void check(bool condition) {
  if (!condition) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);

  ScanResult scan = scan_spool_bytes(input);
  check(scan.valid_end <= input.size());
  uint64_t content = 0;
  for (const auto& chunk : scan.content) {
    check(chunk.offset + chunk.length <= scan.valid_end);
    content += chunk.length;
  }
  check(content == scan.content_size);
  if (scan.committed) {
    check(scan.magic_ok);
    auto again = decode_envelope(encode_envelope(scan.envelope));
    check(again.has_value() && *again == scan.envelope);
  }

  auto env = decode_envelope(input);
  if (env) {
    auto again = decode_envelope(encode_envelope(*env));
    check(again.has_value() && *again == *env);
    Envelope before = *env;
    if (!apply_state(input, *env)) check(*env == before);  // failed updates change nothing
  }
  return 0;
}
