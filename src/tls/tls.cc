// TLS context set-up and self-signed certificate generation (see tls.h).
#include "tls/tls.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "base/fs.h"

namespace tern::tls {
namespace {

std::string openssl_error(std::string_view what) {
  std::string out(what);
  unsigned long e = ERR_get_error();
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += ": ";
    out += buf;
  }
  ERR_clear_error();
  return out;
}

}  // namespace

Result<std::shared_ptr<boost::asio::ssl::context>> make_server_context(const std::string& cert_file,
                                                                       const std::string& key_file) {
  auto ctx = std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);  // keeps idle TLS sessions small
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_SERVER);
  if (SSL_CTX_use_certificate_chain_file(native, cert_file.c_str()) != 1) {
    return Error::local(openssl_error("tls.cert " + cert_file));
  }
  if (SSL_CTX_use_PrivateKey_file(native, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return Error::local(openssl_error("tls.key " + key_file));
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    return Error::local(openssl_error("tls.key does not match tls.cert"));
  }
  return ctx;
}

Result<std::shared_ptr<boost::asio::ssl::context>> make_client_context(bool verify_peer) {
  auto ctx = std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls_client);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION);
  if (verify_peer) {
    SSL_CTX_set_default_verify_paths(native);
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(native, SSL_VERIFY_NONE, nullptr);
  }
  return ctx;
}

Status ensure_self_signed(const std::string& cert_file, const std::string& key_file, const std::string& hostname) {
  if (fs::exists(cert_file) && fs::exists(key_file)) return ok();
  if (auto s = fs::make_dirs(fs::dirname(cert_file), 0755); !s) return s;
  if (auto s = fs::make_dirs(fs::dirname(key_file), 0700); !s) return s;

  EVP_PKEY* pkey = EVP_EC_gen("P-256");
  if (pkey == nullptr) return Error::local(openssl_error("EC key generation"));
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  unsigned char serial[16];
  FILE* ur = std::fopen("/dev/urandom", "rb");
  if (ur != nullptr) {
    if (std::fread(serial, 1, sizeof serial, ur) != sizeof serial) serial[0] = 1;
    std::fclose(ur);
  }
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3650L * 86400);
  X509_set_pubkey(cert, pkey);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(hostname.c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(cert, name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
  std::string san = "DNS:" + hostname;
  if (X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str())) {
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }
  Status result = ok();
  if (X509_sign(cert, pkey, EVP_sha256()) == 0) {
    result = Error::local(openssl_error("signing self-signed certificate"));
  }
  if (result) {
    int kfd = ::open(key_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE* kf = kfd >= 0 ? ::fdopen(kfd, "w") : nullptr;
    if (kf == nullptr || PEM_write_PrivateKey(kf, pkey, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
      result = Error::local(fs::errno_text("writing " + key_file, errno));
    }
    if (kf != nullptr) std::fclose(kf);
  }
  if (result) {
    FILE* cf = std::fopen(cert_file.c_str(), "w");
    if (cf == nullptr || PEM_write_X509(cf, cert) != 1) {
      result = Error::local(fs::errno_text("writing " + cert_file, errno));
    }
    if (cf != nullptr) std::fclose(cf);
  }
  X509_free(cert);
  EVP_PKEY_free(pkey);
  return result;
}

SessionInfo describe(const SSL* ssl) {
  SessionInfo info;
  if (ssl == nullptr) return info;
  info.version = SSL_get_version(ssl);
  const SSL_CIPHER* c = SSL_get_current_cipher(ssl);
  if (c != nullptr) {
    info.cipher = SSL_CIPHER_get_name(c);
    info.bits = SSL_CIPHER_get_bits(c, nullptr);
  }
  return info;
}

}  // namespace tern::tls
