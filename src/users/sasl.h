// Server side of the SASL mechanisms tern offers for SMTP AUTH (RFC 4954):
// PLAIN (RFC 4616), LOGIN (the de-facto "Username:"/"Password:" exchange) and
// SCRAM-SHA-256 (RFC 5802 with SHA-256 per RFC 7677, without channel
// binding, so no -PLUS variant). Sans-I/O: the SMTP engine base64-decodes the
// client's responses and passes the raw bytes in; challenges come back as raw
// bytes for the engine to base64-encode after "334 ". Cancellation ("*") and
// the 235/535 replies are the engine's business.
//
// SMTP cannot carry data with a success reply (RFC 4954 §4), so SCRAM sends
// its server-final message ("v=...") as a last challenge and reports success
// once the client answers it with an empty response.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "users/account_store.h"

namespace tern::users {

struct SaslOptions {
  // Produces the server part of the SCRAM nonce (printable ASCII without
  // ','). Empty: 18 random bytes, base64-encoded. Tests inject a fixed value.
  std::function<std::string()> scram_nonce;
};

class SaslServer {
 public:
  struct Step {
    enum Kind { kChallenge, kSuccess, kFailure } kind = kFailure;
    std::string challenge;  // raw bytes to send with 334 (kChallenge only)
    std::string user;       // authenticated identity, canonical address (kSuccess only)
    std::string reason;     // for logs (kFailure only); never shown to the client
  };

  virtual ~SaslServer() = default;

  // "PLAIN", "LOGIN" or "SCRAM-SHA-256" (case-insensitive); nullptr otherwise.
  // `store` must outlive the returned object.
  static std::unique_ptr<SaslServer> create(std::string_view mechanism, const AccountStore& store,
                                            const SaslOptions& options = {});
  // Mechanism names to advertise in the EHLO AUTH keyword, space-separated.
  static std::string_view advertised_mechanisms() { return "SCRAM-SHA-256 PLAIN LOGIN"; }

  // First call. `initial_response` is the decoded RFC 4954 initial response
  // (an empty string for "="), or nullopt when the client sent none.
  virtual Step start(std::optional<std::string_view> initial_response) = 0;
  // Each later client response, decoded. Calling after kSuccess/kFailure fails.
  virtual Step step(std::string_view response) = 0;

 protected:
  static Step challenge(std::string bytes) { return Step{Step::kChallenge, std::move(bytes), {}, {}}; }
  static Step success(std::string user) { return Step{Step::kSuccess, {}, std::move(user), {}}; }
  static Step failure(std::string reason) { return Step{Step::kFailure, {}, {}, std::move(reason)}; }
};

// Bounds on client input, checked before any parsing.
inline constexpr size_t kMaxSaslResponseSize = 4096;

}  // namespace tern::users
