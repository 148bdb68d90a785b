// Fuzz target for the Authentication-Results parser (plain and ARC forms) and
// authserv-id extraction: no crashes, limits respected, and whenever the
// strict parser accepts a field the tolerant extractor finds the same
// authserv-id. A re-rendered parse must parse again with the same results.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "auth/auth_results.h"

using namespace tern::auth;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  for (bool arc : {false, true}) {
    auto r = parse_auth_results(in, arc);
    if (!r) continue;
    if (r->results.size() > kMaxResults) std::abort();
    if (!arc) {
      // extract_authserv_id reads plain Authentication-Results values (an
      // ARC-Authentication-Results value starts with "i=N;" instead).
      auto id = extract_authserv_id(in);
      if (!id || *id != r->authserv_id) std::abort();
    }
    AuthResults rebuilt;
    rebuilt.authserv_id = r->authserv_id;
    for (const auto& pr : r->results) {
      if (pr.result.properties.size() > kMaxProperties) std::abort();
      rebuilt.results.push_back(pr.result);
    }
    if (rebuilt.results.empty()) continue;
    auto again = parse_auth_results(format_value(rebuilt));
    if (!again || again->results.size() != rebuilt.results.size()) std::abort();
    for (size_t i = 0; i < rebuilt.results.size(); ++i) {
      const auto& a = again->results[i].result;
      const auto& b = rebuilt.results[i];
      if (a.method != b.method || a.result != b.result || a.properties.size() != b.properties.size()) std::abort();
    }
  }
  (void)claims_authserv_id(in, "mx.example.org");
  return 0;
}
