// ARC, the Authenticated Received Chain (RFC 8617): validation of the chain
// of ARC sets on a message (ARC-Authentication-Results, ARC-Message-Signature
// and ARC-Seal with the same instance i=), giving the chain validation status
// cv=none/pass/fail and the "oldest-pass" instance (§5.2), and sealing: adding
// the next ARC set for our ADMD (§5.1). Signatures reuse the DKIM building
// blocks (tag lists, canonicalization, key records, RSA-SHA256 and
// Ed25519-SHA256); key records come through dns::Resolver, so there is no
// socket code here. Work is bounded: at most kMaxInstances sets and
// kMaxArcFields ARC header fields are examined.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/auth_results.h"
#include "auth/crypto.h"
#include "base/result.h"
#include "dns/resolver.h"
#include "mail/message.h"

namespace tern::auth::arc {

inline constexpr unsigned kMaxInstances = 50;  // RFC 8617 §4.2.1
inline constexpr size_t kMaxArcFields = 3 * kMaxInstances + 3;

enum class ChainStatus { kNone, kPass, kFail };
const char* chain_status_name(ChainStatus s);  // "none" / "pass" / "fail"

struct ArcResult {
  ChainStatus status = ChainStatus::kNone;
  unsigned instances = 0;    // N, the highest instance present (0 without ARC sets)
  unsigned oldest_pass = 0;  // §5.2 step 5: lowest instance whose AMS validates; 0 = all do
  std::string reason;        // why the chain failed
  std::string domain;        // d= of the newest ARC-Seal (for reporting)
  std::string selector;      // s= of the newest ARC-Seal
  bool dnssec = false;       // every key record answer used was DNSSEC-secure
};

struct VerifyOptions {
  size_t min_rsa_bits = 1024;     // RFC 8301 §3.2 applies to ARC too
  bool compute_oldest_pass = true;
  size_t max_key_record_size = 8192;
};

// Validates the chain (RFC 8617 §5.2). Never fails as a whole.
boost::asio::awaitable<ArcResult> verify(dns::Resolver& resolver, const mail::Message& message,
                                         VerifyOptions options = {});

// The "arc" result for an Authentication-Results field (RFC 8617 §7.2):
// arc=<cv> with header.oldest-pass when non-zero.
MethodResult to_method_result(const ArcResult& result);

struct SealOptions {
  std::string domain;    // d=
  std::string selector;  // s=
  crypto::PrivateKey key;  // RSA (a=rsa-sha256) or Ed25519 (a=ed25519-sha256)
  // AMS h= (lower-case names). Empty: a default set (From, To, Subject, Date,
  // Message-ID, MIME headers, DKIM-Signature, ...). ARC-Seal is never allowed.
  std::vector<std::string> headers;
  std::optional<int64_t> timestamp;  // t=; default now
};

// The ARC-Authentication-Results payload (without "i=N; ") that consolidates
// every Authentication-Results field of `message` carrying `authserv_id`, in
// order, one result after another ("id; r1; r2; ..."), or "id; none" when
// there is none. Used when the caller has no fresher results to copy.
std::string consolidate_auth_results(const mail::Message& message, std::string_view authserv_id);

// Seals `message` (RFC 8617 §5.1): given the chain status the validator
// found (`chain`), and the A-R payload to copy into the AAR ("authserv-id;
// results..." e.g. from format_value() or consolidate_auth_results()),
// returns the three new header fields, newest first and CRLF-terminated,
// ready to prepend in this order: ARC-Seal, ARC-Message-Signature,
// ARC-Authentication-Results. Errors: the chain already has kMaxInstances
// sets, or its latest seal says cv=fail (§5.1.2: nothing more to add), no or
// bad key, RSA key under 1024 bits, bad domain/selector, malformed ARC
// fields that make the next instance number unknowable.
Result<std::string> seal(const mail::Message& message, ChainStatus chain, std::string_view aar_payload,
                         const SealOptions& options);

}  // namespace tern::auth::arc
