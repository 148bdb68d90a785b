// Fuzz target for the client-side SMTP/LMTP reply reader: arbitrary server
// bytes, fed in chunks whose size comes from the first input byte, with
// small limits so the bounds are reached. Checks the reader's promises: every
// reply has a valid code, respects the line and line-count limits, and after
// an error the reader stays failed. LHLO and EHLO keyword parsing and reply
// sanitizing (no control characters, bounded length) run on each reply.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "delivery/lmtp_client.h"
#include "delivery/reply_reader.h"
#include "delivery/smtp_client.h"

using tern::delivery::ReplyLimits;
using tern::delivery::ReplyReader;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t chunk = (data[0] & 0x0f) + 1;
  ReplyLimits limits;
  limits.max_line_length = (data[0] & 0x10) ? 64 : 512;
  limits.max_lines = (data[0] & 0x20) ? 4 : 32;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

  ReplyReader reader(limits);
  bool failed = false;
  for (size_t off = 0; off < input.size(); off += chunk) {
    reader.feed(input.substr(off, chunk));
    for (;;) {
      auto next = reader.next();
      if (!next) {
        if (!next.error().transient()) std::abort();
        failed = true;
        break;
      }
      if (failed) std::abort();  // errors must be sticky
      if (!next.value()) break;
      const auto& reply = *next.value();
      if (reply.code < 200 || reply.code > 559) std::abort();
      if (reply.lines.empty() || reply.lines.size() > limits.max_lines) std::abort();
      for (const auto& line : reply.lines) {
        if (line.size() > limits.max_line_length) std::abort();
      }
      if (!reply.enhanced.empty() && reply.enhanced[0] - '0' != reply.code / 100) std::abort();
      (void)tern::delivery::parse_lhlo_reply(reply);
      // EHLO keywords as the outbound SMTP client reads them, and the
      // bounded, printable copy of a reply kept as a recipient's last reply.
      (void)tern::delivery::parse_ehlo_reply(reply);
      std::string clean = tern::delivery::sanitize_reply_text(reply.to_string(), 100);
      if (clean.size() > 100) std::abort();
      for (unsigned char c : clean) {
        if (c < 0x20 || c == 0x7f) std::abort();
      }
      (void)reply.to_string();
    }
    if (failed) break;
    // Unconsumed bytes never exceed one reply's worth plus the last chunk.
    if (reader.buffered() > limits.max_line_length * limits.max_lines + chunk) std::abort();
  }
  (void)tern::delivery::parse_reply(input, limits);
  return 0;
}
