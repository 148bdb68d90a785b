// Fuzz target: SCRAM-SHA-256 server fed arbitrary client messages. The input
// is split at newlines into client-first, client-final and the final
// acknowledgement; a leading byte 'P' or 'L' instead drives PLAIN or LOGIN.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/strings.h"
#include "users/sasl.h"

namespace {

const tern::users::AccountStore& store() {
  static const tern::users::AccountStore* s = [] {
    auto* st = new tern::users::AccountStore();
    std::string salt;
    tern::base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", salt);
    // The RFC 7677 §3 example account, so the corpus can reach success.
    st->insert("user", tern::users::derive_credential("pencil", 4096, salt));
    st->insert("alice@example.test", tern::users::derive_credential("pw", 1, "salt"));
    return st;
  }();
  return *s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string mechanism = "SCRAM-SHA-256";
  if (!input.empty() && (input[0] == 'P' || input[0] == 'L')) {
    mechanism = input[0] == 'P' ? "PLAIN" : "LOGIN";
    input.remove_prefix(1);
  }
  tern::users::SaslOptions options;
  options.scram_nonce = [] { return std::string("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"); };
  auto server = tern::users::SaslServer::create(mechanism, store(), options);
  auto messages = tern::split(input, '\n');
  using Step = tern::users::SaslServer::Step;
  Step step = server->start(messages[0]);
  for (size_t i = 1; i < messages.size() && step.kind == Step::kChallenge; ++i) {
    step = server->step(messages[i]);
  }
  return 0;
}
