// Stored authentication secrets for local accounts. tern never keeps a
// password: an account holds SCRAM-SHA-256 derived keys (RFC 5802 §3 with
// SHA-256 per RFC 7677): a salt, an iteration count, StoredKey and ServerKey.
// The same record verifies PLAIN and LOGIN passwords (by re-deriving
// StoredKey) and drives the SCRAM exchange, so one format serves all three
// mechanisms. Also holds the small OpenSSL wrappers (HMAC-SHA-256, SHA-256,
// PBKDF2, random bytes, constant-time comparison) the SASL code needs.
//
// Text form, one field of an accounts-file line:
//   SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace tern::users {

inline constexpr size_t kSha256Size = 32;
// RFC 7677 §3: the iteration count SHOULD be at least 4096.
inline constexpr uint32_t kMinIterations = 4096;
inline constexpr uint32_t kDefaultIterations = 10000;
// Upper bound accepted from files: keeps a hostile or mistyped file from
// making each login cost minutes of CPU.
inline constexpr uint32_t kMaxIterations = 10'000'000;
inline constexpr size_t kDefaultSaltSize = 16;

struct Credential {
  uint32_t iterations = 0;
  std::string salt;        // raw bytes
  std::string stored_key;  // raw 32 bytes: H(ClientKey)
  std::string server_key;  // raw 32 bytes: HMAC(SaltedPassword, "Server Key")

  bool operator==(const Credential&) const = default;
};

// Derives the stored keys from a password (RFC 5802 §3). `password` is used
// as given: tern's SASLprep policy is "printable ASCII only", for which
// SASLprep is the identity (see docs/accounts-and-aliases.md).
Credential derive_credential(std::string_view password, uint32_t iterations, std::string_view salt);
// Same with a fresh random salt of kDefaultSaltSize bytes.
Result<Credential> new_credential(std::string_view password, uint32_t iterations = kDefaultIterations);

// "SCRAM-SHA-256$i:salt$stored:server".
std::string format_credential(const Credential& credential);
// Parses the text form; the error text says what is wrong (no path/line).
Result<Credential> parse_credential(std::string_view text);

// Constant-time check of a PLAIN/LOGIN password against the stored keys.
bool verify_password(const Credential& credential, std::string_view password);

// True when tern accepts `password` for new credentials: 1..1024 bytes of
// printable ASCII (0x20-0x7E), for which SASLprep (RFC 4013) changes nothing.
bool acceptable_password(std::string_view password);

namespace crypto {
std::string sha256(std::string_view data);
std::string hmac_sha256(std::string_view key, std::string_view data);
// Hi() of RFC 5802 §2.2 is PBKDF2 (RFC 8018) with HMAC as the PRF.
std::string pbkdf2_sha256(std::string_view password, std::string_view salt, uint32_t iterations);
// Cryptographically random bytes; empty string when the RNG fails.
std::string random_bytes(size_t count);
// Constant-time equality (length is not secret).
bool equal_constant_time(std::string_view a, std::string_view b);
}  // namespace crypto

}  // namespace tern::users
