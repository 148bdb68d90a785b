// Fuzz target: DKIM key records (RFC 6376 §3.6.1) as they come from DNS TXT
// answers, including decoding hostile p= bytes as RSA DER or raw Ed25519 keys
// through OpenSSL. A parsed record must have a usable type; a decoded key
// must have the type that was asked for.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "auth/dkim.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tern::auth;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto key = dkim::parse_key_record(in);
  if (key) {
    (void)key->allows_hash("sha256");
    (void)key->allows_service("email");
    if (!key->revoked()) {
      auto pub = crypto::PublicKey::from_dkim(key->key_type, key->public_key);
      if (pub && pub->type() != key->key_type) std::abort();
      if (pub && key->key_type == crypto::KeyType::kEd25519 && key->public_key.size() != 32) std::abort();
    }
  }
  // The raw bytes as a DER key of either type.
  for (auto type : {crypto::KeyType::kRsa, crypto::KeyType::kEd25519}) {
    auto pub = crypto::PublicKey::from_dkim(type, in);
    if (pub && pub->type() != type) std::abort();
  }
  return 0;
}
