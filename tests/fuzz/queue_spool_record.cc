// Fuzz target for the spool format parser (src/queue/record.h): the input is
// scanned as a spool segment and replayed and also fed to the envelope and state
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

  SegmentScan scan = scan_segment_bytes(input, 1);
  check(scan.valid_end <= input.size());
  for (const auto& rec : scan.records) {
    check(rec.loc.offset + rec.loc.length <= scan.valid_end);
    check(!rec.id.empty());
  }
  SpoolReplay replay;
  replay.apply(scan);
  replay.apply(scan);  // a second copy of every record must not confuse the replay
  replay.finish();
  for (const auto& [id, m] : replay.committed) {
    check(m.envelope.id == id);
    uint64_t content = 0;
    for (const auto& c : m.content) content += c.length - 1 - id.size();
    check(content == m.size);
    auto again = decode_envelope(encode_envelope(m.envelope));
    check(again.has_value() && *again == m.envelope);
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
