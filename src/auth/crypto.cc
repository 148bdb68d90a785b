// OpenSSL 3 EVP implementation of the DKIM/ARC crypto helpers (see crypto.h).
// Every OpenSSL object is owned by a smart pointer; no error is thrown.
#include "auth/crypto.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "base/strings.h"

namespace tern::auth::crypto {

namespace {

struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;

std::shared_ptr<EVP_PKEY> own(EVP_PKEY* k) { return std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free); }

Error key_error(std::string text) { return Error::perm("5.7.5", std::move(text)); }

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// Fills type and size from an EVP_PKEY; false for key types DKIM does not use.
bool classify(EVP_PKEY* k, KeyType& type, int& bits) {
  switch (EVP_PKEY_get_base_id(k)) {
    case EVP_PKEY_RSA:
      type = KeyType::kRsa;
      bits = EVP_PKEY_get_bits(k);
      return true;
    case EVP_PKEY_ED25519:
      type = KeyType::kEd25519;
      bits = 256;
      return true;
    default:
      return false;
  }
}

}  // namespace

const char* key_type_name(KeyType type) { return type == KeyType::kRsa ? "rsa" : "ed25519"; }

std::string sha256(std::string_view data) {
  std::string out(kSha256Size, '\0');
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(out.data()), &len, EVP_sha256(), nullptr);
  return out;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) { reset(); }
Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }
Sha256::Sha256(Sha256&& other) noexcept : ctx_(other.ctx_) { other.ctx_ = nullptr; }
Sha256& Sha256::operator=(Sha256&& other) noexcept {
  if (this != &other) {
    EVP_MD_CTX_free(ctx_);
    ctx_ = other.ctx_;
    other.ctx_ = nullptr;
  }
  return *this;
}
void Sha256::reset() { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
void Sha256::update(std::string_view data) { update(data.data(), data.size()); }
void Sha256::update(const void* data, size_t size) {
  if (size > 0) EVP_DigestUpdate(ctx_, data, size);
}
std::string Sha256::finish() {
  std::string out(kSha256Size, '\0');
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_, reinterpret_cast<unsigned char*>(out.data()), &len);
  return out;
}

Result<PublicKey> PublicKey::from_dkim(KeyType type, std::string_view der_or_raw) {
  PublicKey key;
  EVP_PKEY* k = nullptr;
  if (type == KeyType::kEd25519) {
    if (der_or_raw.size() != 32) return key_error("ed25519 public key is not 32 bytes");
    k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                    reinterpret_cast<const unsigned char*>(der_or_raw.data()), 32);
  } else {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der_or_raw.data());
    k = d2i_PUBKEY(nullptr, &p, static_cast<long>(der_or_raw.size()));
    if (k != nullptr && p != reinterpret_cast<const unsigned char*>(der_or_raw.data() + der_or_raw.size())) {
      EVP_PKEY_free(k);  // trailing garbage
      k = nullptr;
    }
    if (k == nullptr) {
      ERR_clear_error();
      p = reinterpret_cast<const unsigned char*>(der_or_raw.data());
      k = d2i_PublicKey(EVP_PKEY_RSA, nullptr, &p, static_cast<long>(der_or_raw.size()));
    }
  }
  if (k == nullptr) {
    ERR_clear_error();
    return key_error("cannot decode public key");
  }
  key.pkey_ = own(k);
  KeyType actual;
  if (!classify(k, actual, key.bits_) || actual != type) return key_error("public key is not of the expected type");
  key.type_ = type;
  return key;
}

Result<PublicKey> PublicKey::from_pem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* k = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (k == nullptr) return key_error("cannot read PEM public key: " + openssl_error());
  PublicKey key;
  key.pkey_ = own(k);
  if (!classify(k, key.type_, key.bits_)) return key_error("unsupported public key type");
  return key;
}

bool PublicKey::verify_digest(std::string_view digest, std::string_view signature) const {
  if (!pkey_ || digest.size() != kSha256Size) return false;
  const auto* sig = reinterpret_cast<const unsigned char*>(signature.data());
  const auto* dig = reinterpret_cast<const unsigned char*>(digest.data());
  bool good = false;
  if (type_ == KeyType::kRsa) {
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new(pkey_.get(), nullptr));
    good = ctx && EVP_PKEY_verify_init(ctx.get()) == 1 &&
           EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) == 1 &&
           EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) == 1 &&
           EVP_PKEY_verify(ctx.get(), sig, signature.size(), dig, digest.size()) == 1;
  } else {
    MdCtxPtr ctx(EVP_MD_CTX_new());
    good = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey_.get()) == 1 &&
           EVP_DigestVerify(ctx.get(), sig, signature.size(), dig, digest.size()) == 1;
  }
  ERR_clear_error();
  return good;
}

Result<PrivateKey> PrivateKey::from_pem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* k = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (k == nullptr) return key_error("cannot read PEM private key: " + openssl_error());
  PrivateKey key;
  key.pkey_ = own(k);
  if (!classify(k, key.type_, key.bits_)) return key_error("unsupported private key type (want RSA or Ed25519)");
  return key;
}

Result<PrivateKey> PrivateKey::ed25519_from_seed(std::string_view seed) {
  if (seed.size() != 32) return key_error("ed25519 seed is not 32 bytes");
  EVP_PKEY* k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr,
                                             reinterpret_cast<const unsigned char*>(seed.data()), 32);
  if (k == nullptr) return key_error("cannot load ed25519 seed: " + openssl_error());
  PrivateKey key;
  key.pkey_ = own(k);
  key.type_ = KeyType::kEd25519;
  key.bits_ = 256;
  return key;
}

Result<PrivateKey> PrivateKey::from_text(std::string_view text) {
  if (text.find("-----BEGIN") != std::string_view::npos) return from_pem(text);
  std::string seed;
  if (!base64_decode(trim(text), seed, /*skip_whitespace=*/true) || seed.size() != 32) {
    return key_error("key is neither PEM nor a base64 32-byte ed25519 seed");
  }
  return ed25519_from_seed(seed);
}

Result<PrivateKey> PrivateKey::generate(KeyType type, int bits) {
  PrivateKey key;
  EVP_PKEY* k = nullptr;
  if (type == KeyType::kRsa) {
    if (bits < 1024 || bits > 8192) return key_error("RSA key size must be 1024..8192 bits");
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, nullptr));
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), bits) != 1 ||
        EVP_PKEY_keygen(ctx.get(), &k) != 1) {
      return Error::local("RSA key generation failed: " + openssl_error());
    }
  } else {
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr));
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &k) != 1) {
      return Error::local("Ed25519 key generation failed: " + openssl_error());
    }
  }
  key.pkey_ = own(k);
  classify(k, key.type_, key.bits_);
  return key;
}

Result<std::string> PrivateKey::sign_digest(std::string_view digest) const {
  if (!pkey_) return Error::local("no private key");
  if (digest.size() != kSha256Size) return Error::local("digest is not SHA-256");
  const auto* dig = reinterpret_cast<const unsigned char*>(digest.data());
  size_t len = 0;
  std::string sig;
  if (type_ == KeyType::kRsa) {
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new(pkey_.get(), nullptr));
    if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1 ||
        EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) != 1 ||
        EVP_PKEY_sign(ctx.get(), nullptr, &len, dig, digest.size()) != 1) {
      return Error::local("RSA sign failed: " + openssl_error());
    }
    sig.resize(len);
    if (EVP_PKEY_sign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, dig, digest.size()) != 1) {
      return Error::local("RSA sign failed: " + openssl_error());
    }
  } else {
    MdCtxPtr ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey_.get()) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &len, dig, digest.size()) != 1) {
      return Error::local("Ed25519 sign failed: " + openssl_error());
    }
    sig.resize(len);
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, dig, digest.size()) != 1) {
      return Error::local("Ed25519 sign failed: " + openssl_error());
    }
  }
  sig.resize(len);
  return sig;
}

PublicKey PrivateKey::public_key() const {
  PublicKey pub;
  if (!pkey_) return pub;
  // The private EVP_PKEY can verify too; share it.
  pub.pkey_ = pkey_;
  pub.type_ = type_;
  pub.bits_ = bits_;
  return pub;
}

std::string PrivateKey::dkim_public_value() const {
  if (!pkey_) return "";
  if (type_ == KeyType::kEd25519) {
    std::string raw(32, '\0');
    size_t len = raw.size();
    EVP_PKEY_get_raw_public_key(pkey_.get(), reinterpret_cast<unsigned char*>(raw.data()), &len);
    raw.resize(len);
    return base64_encode(raw);
  }
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(pkey_.get(), &der);
  if (len <= 0) return "";
  std::string out = base64_encode(std::string_view(reinterpret_cast<char*>(der), static_cast<size_t>(len)));
  OPENSSL_free(der);
  return out;
}

std::string PrivateKey::to_pem() const {
  if (!pkey_) return "";
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PrivateKey(bio.get(), pkey_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) return "";
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string PrivateKey::ed25519_seed() const {
  if (!pkey_ || type_ != KeyType::kEd25519) return "";
  std::string raw(32, '\0');
  size_t len = raw.size();
  if (EVP_PKEY_get_raw_private_key(pkey_.get(), reinterpret_cast<unsigned char*>(raw.data()), &len) != 1) return "";
  raw.resize(len);
  return raw;
}

bool equal_bytes(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace tern::auth::crypto
