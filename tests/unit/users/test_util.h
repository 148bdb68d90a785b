// Shared helpers for the users tests: a self-deleting temporary directory and
// a minimal SCRAM-SHA-256 client computation (RFC 5802 §3) to drive the server.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "base/strings.h"
#include "users/credential.h"

namespace tern::users::testing {

class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "tern-users-XXXXXX").string();
    path_ = ::mkdtemp(templ.data()) ? templ : std::string();
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// ClientProof for the given exchange, base64-encoded.
inline std::string scram_proof(const std::string& password, const std::string& salt, uint32_t iterations,
                               const std::string& auth_message) {
  std::string salted = crypto::pbkdf2_sha256(password, salt, iterations);
  std::string client_key = crypto::hmac_sha256(salted, "Client Key");
  std::string stored_key = crypto::sha256(client_key);
  std::string signature = crypto::hmac_sha256(stored_key, auth_message);
  std::string proof = client_key;
  for (size_t i = 0; i < proof.size(); ++i) proof[i] = static_cast<char>(proof[i] ^ signature[i]);
  return base64_encode(proof);
}

}  // namespace tern::users::testing
