// Fuzz target for what a milter sends back: arbitrary bytes framed by the
// milter packet reader (fed in chunks whose size comes from the first input
// byte, with a small packet limit so the bound is reached), each packet
// parsed as a reply and, when it is an option negotiation, as one. Checks
// the parser's promises: errors stick, packets respect the limit, reply
// codes are 4xx/5xx with a matching enhanced class and no control
// characters, header modifications have names, modifications are exactly
// the replies that need a negotiated action, and symbol lists are bounded.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "milter/protocol.h"
#include "milter/session.h"

using namespace tern::milter;

namespace {

void check_reply(const MilterReply& r) {
  if (r.is_verdict() == r.is_modification() && r.kind != MilterReply::Kind::kProgress) std::abort();
  switch (r.kind) {
    case MilterReply::Kind::kReplyCode:
      if (r.code < 400 || r.code > 599) std::abort();
      if (!r.enhanced.empty() && r.enhanced[0] - '0' != r.code / 100) std::abort();
      for (unsigned char c : r.text) {
        if (c < 0x20 && c != '\t' && c != '\n') std::abort();
      }
      break;
    case MilterReply::Kind::kAddHeader:
    case MilterReply::Kind::kInsertHeader:
    case MilterReply::Kind::kChangeHeader:
      if (r.name.empty() || r.name.find('\0') != std::string::npos) std::abort();
      break;
    case MilterReply::Kind::kAddRecipient:
    case MilterReply::Kind::kDeleteRecipient:
      if (r.address.empty()) std::abort();
      break;
    default:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t chunk = (data[0] & 0x0f) * 7 + 1;
  PacketLimits limits;
  limits.max_packet = (data[0] & 0x10) ? 64 : 4096;
  limits.max_symbol_lists = (data[0] & 0x20) ? 2 : 64;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

  PacketReader reader(limits);
  bool failed = false;
  for (size_t off = 0; off < input.size() && !failed; off += chunk) {
    reader.feed(input.substr(off, chunk));
    for (;;) {
      auto next = reader.next();
      if (!next) {
        if (!next.error().transient()) std::abort();
        failed = true;
        break;
      }
      if (!next.value()) break;
      const Packet& packet = *next.value();
      if (packet.data.size() + 1 > limits.max_packet) std::abort();
      auto reply = parse_reply(packet);
      if (reply) {
        check_reply(reply.value());
      } else if (!reply.error().transient()) {
        std::abort();
      }
      if (packet.command == cmd::kOptionNegotiation) {
        auto n = parse_negotiation(packet.data, limits);
        if (n) {
          if (n->symbol_lists.size() > limits.max_symbol_lists) std::abort();
          for (const auto& [stage, names] : n->symbol_lists) {
            if (static_cast<uint32_t>(stage) >= kStageCount || names.size() > 256) std::abort();
            for (const auto& name : names) {
              if (name.empty()) std::abort();
            }
          }
        }
      }
    }
  }
  if (failed && reader.next()) std::abort();  // errors must be sticky
  // Configured addresses are not network input, but the parser must not crash on anything.
  (void)MilterAddress::parse(input.substr(0, 300));
  (void)canonical_macro_name(input.substr(0, 40));
  return 0;
}
