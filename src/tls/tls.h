// TLS for tern's listeners on OpenSSL 3 through Boost.Asio's ssl::context:
// server context set-up (TLS 1.2+, the operator's certificate chain and key),
// generation of a self-signed certificate for the embedded default config,
// and a description of a negotiated session for Received headers and logs.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

#include "base/result.h"

namespace tern::tls {

// A server-side TLS context loaded from PEM files. Rejects SSLv3/TLS 1.0/1.1.
Result<std::shared_ptr<boost::asio::ssl::context>> make_server_context(const std::string& cert_file,
                                                                       const std::string& key_file);

// A client-side TLS context (opportunistic: no verification unless asked).
Result<std::shared_ptr<boost::asio::ssl::context>> make_client_context(bool verify_peer);

// Writes a fresh self-signed certificate (EC P-256, SAN = hostname) and its
// private key (mode 0600) when either file is missing.
Status ensure_self_signed(const std::string& cert_file, const std::string& key_file, const std::string& hostname);

struct SessionInfo {
  std::string version;  // "TLSv1.3"
  std::string cipher;   // "TLS_AES_256_GCM_SHA384"
  int bits = 0;
};
SessionInfo describe(const SSL* ssl);

}  // namespace tern::tls
