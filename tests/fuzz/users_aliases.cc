// Fuzz target: arbitrary text as an aliases file. When it parses, the entries
// are exercised through a Directory (check, expand, may_send_as) so the
// expansion bounds (depth, fan-out, loops) are hit with hostile graphs too.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "users/aliases.h"
#include "users/directory.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto aliases = tern::users::Aliases::parse(text, "fuzz");
  if (!aliases) return 0;
  auto accounts = std::make_shared<tern::users::AccountStore>();
  accounts->insert("alice@example.test", {});
  accounts->insert("bob@other.test", {});
  tern::users::Directory directory({"example.test", "other.test"}, accounts,
                                   std::make_shared<const tern::users::Aliases>(std::move(aliases).value()),
                                   "alice");
  // Try every name that appears before a ':' at the start of a line, in both
  // local domains, plus a few fixed addresses.
  size_t tried = 0;
  size_t pos = 0;
  while (pos < text.size() && tried < 64) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) continue;
    std::string name(line.substr(0, colon));
    for (const char* domain : {"example.test", "other.test"}) {
      std::string address = name.find('@') == std::string::npos ? name + "@" + domain : name;
      (void)directory.check(address);
      (void)directory.expand(address);
      (void)directory.may_send_as("alice@example.test", address);
      ++tried;
    }
  }
  (void)directory.expand("postmaster@other.test");
  (void)directory.expand("nobody+tag@example.test");
  return 0;
}
