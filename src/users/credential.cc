// SCRAM-SHA-256 credential derivation, text form and password verification
// (see credential.h). All cryptography goes through OpenSSL 3.
#include "users/credential.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "base/strings.h"

namespace tern::users {

namespace crypto {

std::string sha256(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t out_len = 0;
  if (EVP_Q_digest(nullptr, "SHA256", nullptr, data.data(), data.size(), out, &out_len) != 1) return {};
  return std::string(reinterpret_cast<const char*>(out), out_len);
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t out_len = 0;
  static const unsigned char kEmpty = 0;
  const void* key_ptr = key.empty() ? static_cast<const void*>(&kEmpty) : key.data();
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key_ptr, key.size(),
                reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, sizeof out,
                &out_len) == nullptr) {
    return {};
  }
  return std::string(reinterpret_cast<const char*>(out), out_len);
}

std::string pbkdf2_sha256(std::string_view password, std::string_view salt, uint32_t iterations) {
  std::string out(kSha256Size, '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                        static_cast<int>(iterations), EVP_sha256(), static_cast<int>(out.size()),
                        reinterpret_cast<unsigned char*>(out.data())) != 1) {
    return {};
  }
  return out;
}

std::string random_bytes(size_t count) {
  std::string out(count, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(count)) != 1) return {};
  return out;
}

bool equal_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace crypto

namespace {
constexpr std::string_view kScheme = "SCRAM-SHA-256$";
}  // namespace

// RFC 5802 §3: SaltedPassword := Hi(password, salt, i);
// ClientKey := HMAC(SaltedPassword, "Client Key"); StoredKey := H(ClientKey);
// ServerKey := HMAC(SaltedPassword, "Server Key").
Credential derive_credential(std::string_view password, uint32_t iterations, std::string_view salt) {
  std::string salted = crypto::pbkdf2_sha256(password, salt, iterations);
  Credential c;
  c.iterations = iterations;
  c.salt = std::string(salt);
  c.stored_key = crypto::sha256(crypto::hmac_sha256(salted, "Client Key"));
  c.server_key = crypto::hmac_sha256(salted, "Server Key");
  return c;
}

Result<Credential> new_credential(std::string_view password, uint32_t iterations) {
  if (iterations < kMinIterations || iterations > kMaxIterations) {
    return Error::local("iteration count must be between " + std::to_string(kMinIterations) + " and " +
                        std::to_string(kMaxIterations));
  }
  std::string salt = crypto::random_bytes(kDefaultSaltSize);
  if (salt.empty()) return Error::local("random number generator failed");
  return derive_credential(password, iterations, salt);
}

std::string format_credential(const Credential& c) {
  std::string out(kScheme);
  out += std::to_string(c.iterations);
  out += ':';
  out += base64_encode(c.salt);
  out += '$';
  out += base64_encode(c.stored_key);
  out += ':';
  out += base64_encode(c.server_key);
  return out;
}

Result<Credential> parse_credential(std::string_view text) {
  auto bad = [](std::string what) { return Error::local(std::move(what)); };
  if (text.substr(0, kScheme.size()) != kScheme) {
    return bad("credential must start with SCRAM-SHA-256$ (plaintext passwords are not supported)");
  }
  text.remove_prefix(kScheme.size());
  auto parts = split(text, '$');
  if (parts.size() != 2) return bad("credential must be SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>");
  auto params = split(parts[0], ':');
  auto keys = split(parts[1], ':');
  if (params.size() != 2 || keys.size() != 2) {
    return bad("credential must be SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>");
  }
  unsigned long long iterations = 0;
  if (!parse_u64(params[0], iterations) || iterations < 1 || iterations > kMaxIterations) {
    return bad("bad iteration count '" + std::string(params[0]) + "'");
  }
  Credential c;
  c.iterations = static_cast<uint32_t>(iterations);
  if (!base64_decode(params[1], c.salt) || c.salt.empty()) return bad("bad base64 salt");
  if (!base64_decode(keys[0], c.stored_key) || c.stored_key.size() != kSha256Size) return bad("bad StoredKey");
  if (!base64_decode(keys[1], c.server_key) || c.server_key.size() != kSha256Size) return bad("bad ServerKey");
  return c;
}

bool verify_password(const Credential& credential, std::string_view password) {
  std::string salted = crypto::pbkdf2_sha256(password, credential.salt, credential.iterations);
  if (salted.empty()) return false;
  std::string stored = crypto::sha256(crypto::hmac_sha256(salted, "Client Key"));
  return crypto::equal_constant_time(stored, credential.stored_key);
}

bool acceptable_password(std::string_view password) {
  if (password.empty() || password.size() > 1024) return false;
  for (char c : password) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

}  // namespace tern::users
