// Cryptographic primitives shared by DKIM (RFC 6376, RFC 8463) and ARC
// (RFC 8617), on OpenSSL 3 EVP: SHA-256 (one-shot and streaming), RSA
// (RSASSA-PKCS1-v1_5 with SHA-256, RFC 8017 §8.2) and Ed25519 (PureEdDSA,
// RFC 8032) signing and verification of a SHA-256 digest, key loading from
// PEM, from the DKIM key record p= forms (RSA SubjectPublicKeyInfo or
// RSAPublicKey DER; raw 32-byte Ed25519 public keys, RFC 8463 §4) and from a
// raw 32-byte Ed25519 seed (what dkimpy uses), and key generation. Keys are
// immutable and cheap to copy (shared ownership of the EVP_PKEY).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"

typedef struct evp_pkey_st EVP_PKEY;
typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace tern::auth::crypto {

enum class KeyType { kRsa, kEd25519 };
const char* key_type_name(KeyType type);  // "rsa" / "ed25519" (DKIM k= values)

constexpr size_t kSha256Size = 32;

// SHA-256 of `data` (32 raw bytes).
std::string sha256(std::string_view data);

// Streaming SHA-256.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&& other) noexcept;
  Sha256& operator=(Sha256&& other) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(std::string_view data);
  void update(const void* data, size_t size);
  // The 32-byte digest; the object must not be used afterwards except to reset().
  std::string finish();
  void reset();

 private:
  EVP_MD_CTX* ctx_ = nullptr;
};

class PublicKey {
 public:
  PublicKey() = default;
  KeyType type() const { return type_; }
  int bits() const { return bits_; }  // RSA modulus size; 256 for Ed25519
  bool valid() const { return pkey_ != nullptr; }
  EVP_PKEY* pkey() const { return pkey_.get(); }

  // DKIM p= bytes (after base64 decoding) for a key of type `type`: RSA as
  // SubjectPublicKeyInfo DER (RFC 6376 §3.6.1) or bare RSAPublicKey DER;
  // Ed25519 as 32 raw bytes (RFC 8463 §4). Errors are permanent (550 5.7.5).
  static Result<PublicKey> from_dkim(KeyType type, std::string_view der_or_raw);
  static Result<PublicKey> from_pem(std::string_view pem);

  // Verifies `signature` over a SHA-256 `digest`: RSA PKCS#1 v1.5 with a
  // SHA-256 DigestInfo; Ed25519 PureEdDSA with the digest as the message
  // (RFC 8463 §3). False on any failure.
  bool verify_digest(std::string_view digest, std::string_view signature) const;

 private:
  friend class PrivateKey;
  std::shared_ptr<EVP_PKEY> pkey_;
  KeyType type_ = KeyType::kRsa;
  int bits_ = 0;
};

class PrivateKey {
 public:
  PrivateKey() = default;
  KeyType type() const { return type_; }
  int bits() const { return bits_; }
  bool valid() const { return pkey_ != nullptr; }

  // PEM text: PKCS#8 "PRIVATE KEY" (RSA or Ed25519) or PKCS#1 "RSA PRIVATE KEY".
  static Result<PrivateKey> from_pem(std::string_view pem);
  // 32-byte Ed25519 seed (raw bytes).
  static Result<PrivateKey> ed25519_from_seed(std::string_view seed);
  // Loads a key file's content: PEM, or a base64 Ed25519 seed (dkimpy format).
  static Result<PrivateKey> from_text(std::string_view text);
  // A new key: RSA with `bits` (1024..8192), or Ed25519 (bits ignored).
  static Result<PrivateKey> generate(KeyType type, int bits = 2048);

  // Signs a SHA-256 digest (see PublicKey::verify_digest).
  Result<std::string> sign_digest(std::string_view digest) const;

  PublicKey public_key() const;
  // The DKIM p= value (base64): SubjectPublicKeyInfo DER for RSA, the raw
  // 32-byte key for Ed25519.
  std::string dkim_public_value() const;
  // PKCS#8 PEM.
  std::string to_pem() const;
  // Ed25519 only: the raw 32-byte seed ("" for RSA).
  std::string ed25519_seed() const;

 private:
  std::shared_ptr<EVP_PKEY> pkey_;
  KeyType type_ = KeyType::kRsa;
  int bits_ = 0;
};

// Constant-time comparison of two byte strings of equal length.
bool equal_bytes(std::string_view a, std::string_view b);

}  // namespace tern::auth::crypto
