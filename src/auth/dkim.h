// DKIM (RFC 6376) signature verification and signing, with Ed25519
// (RFC 8463) and the RFC 8301 algorithm rules (rsa-sha1 refused, RSA keys
// under 1024 bits refused). Verification parses every DKIM-Signature field
// (up to a limit), fetches each key record through the dns::Resolver
// interface (no sockets here), and reports one result per signature in RFC
// 8601 §2.7.1 terms (pass, fail, neutral, policy, temperror, permerror) with
// the reason and the properties an Authentication-Results field and DMARC
// need. Signing produces a folded DKIM-Signature field, relaxed/relaxed and
// with From over-signed by default. The building blocks (tag lists,
// canonicalization, header selection, key fetching) are public for ARC.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/crypto.h"
#include "auth/dkim_canon.h"
#include "auth/dkim_tags.h"
#include "base/result.h"
#include "dns/resolver.h"
#include "mail/message.h"

namespace tern::auth::dkim {

enum class Algorithm { kRsaSha256, kEd25519Sha256 };
const char* algorithm_name(Algorithm a);  // "rsa-sha256" / "ed25519-sha256"
crypto::KeyType key_type_for(Algorithm a);

// A parsed DKIM-Signature (RFC 6376 §3.5).
struct Signature {
  Algorithm algorithm = Algorithm::kRsaSha256;
  Canon header_canon = Canon::kSimple;  // c= defaults to simple/simple
  Canon body_canon = Canon::kSimple;
  std::string domain;                        // d=, lower-cased
  std::string selector;                      // s=, lower-cased
  std::string identity;                      // i= as written; "@" + d= when absent
  std::vector<std::string> signed_headers;   // h=, as written (compared case-insensitively)
  std::string body_hash;                     // bh=, decoded
  std::string signature;                     // b=, decoded
  std::string b_base64;                      // b= without FWS (for header.b)
  std::optional<uint64_t> body_length;       // l=
  std::optional<uint64_t> timestamp;         // t=
  std::optional<uint64_t> expiration;        // x=
};

// Parses the value of a DKIM-Signature field (after the colon). Errors are
// permanent (550 5.7.5) with a reason: tag-list syntax, v= not "1", a
// required tag missing (v a b bh d h s), a= not rsa-sha256/ed25519-sha256
// (rsa-sha1 is refused, RFC 8301 §3.1), bad c=, q= without dns/txt, h=
// without From (§5.4), i= not in d= or a subdomain (§3.5), x= not after t=,
// bad base64, bad numbers.
Result<Signature> parse_signature(std::string_view value);

// A parsed DKIM key record (RFC 6376 §3.6.1).
struct KeyRecord {
  crypto::KeyType key_type = crypto::KeyType::kRsa;  // k=, default rsa
  std::string public_key;                            // p=, decoded; empty = revoked
  std::vector<std::string> hashes;                   // h=; empty = any
  std::vector<std::string> services;                 // s=; default "*"
  bool testing = false;                              // t=y
  bool strict = false;                               // t=s: i= domain must equal d=
  bool revoked() const { return public_key.empty(); }
  bool allows_hash(std::string_view hash) const;       // "sha256"
  bool allows_service(std::string_view service) const;  // "email", "tlsrpt"
};

// Parses a key record TXT string. Errors (550 5.7.5): tag-list syntax, v=
// present but not first or not "DKIM1", missing p=, unknown k=, bad base64.
Result<KeyRecord> parse_key_record(std::string_view txt);

// RFC 8601 §2.7.1 DKIM results.
enum class Outcome { kNone, kPass, kFail, kNeutral, kPolicy, kTempError, kPermError };
const char* outcome_name(Outcome s);  // "pass", "fail", ...

struct DkimResult {
  Outcome status = Outcome::kNone;
  std::string reason;       // human-readable, e.g. "body hash mismatch"
  std::string domain;       // d= (header.d)
  std::string selector;     // s= (header.s)
  std::string identity;     // i= (header.i)
  std::string algorithm;    // a= as written (header.a)
  std::string b;            // header.b: the first 8+ characters of b= (RFC 6008)
  std::string b_full;       // the whole b= value without FWS
  int key_bits = 0;         // public key size, when a key was found
  bool dnssec = false;      // the key record's DNS answer was DNSSEC-secure
  bool testing = false;     // the key has t=y
  size_t field_index = 0;   // index of the DKIM-Signature field in the message
};

struct VerifyOptions {
  std::optional<int64_t> now;            // Unix time for t=/x= checks; default: system clock
  int64_t clock_skew = 300;              // tolerance for t= in the future and x= in the past, seconds
  size_t max_signatures = 10;            // signatures beyond this are not examined
  size_t min_rsa_bits = 1024;            // RFC 8301 §3.2
  bool allow_body_length = true;         // false: l= signatures give "policy"
  std::string service = "email";         // key s= service type (RFC 6376; "tlsrpt" for RFC 8460)
  size_t max_key_record_size = 8192;     // bytes of TXT data per key record
};

// Key lookup result for `selector._domainkey.domain`.
struct KeyLookup {
  Outcome status = Outcome::kPass;  // kPass (keys found), kTempError or kPermError
  std::string reason;
  std::vector<KeyRecord> keys;    // every parseable record (several TXT records may be present)
  bool dnssec = false;
};

// Fetches and parses the key records (RFC 6376 §3.6.2.2): SERVFAIL, timeout
// and DNSSEC-bogus answers give temperror; NXDOMAIN, no TXT record or no
// parseable record give permerror.
boost::asio::awaitable<KeyLookup> fetch_keys(dns::Resolver& resolver, std::string selector, std::string domain,
                                             size_t max_record_size = 8192);

// Verifies every DKIM-Signature field of `message` (top to bottom, at most
// `max_signatures`). Never fails as a whole: each signature has its result.
boost::asio::awaitable<std::vector<DkimResult>> verify(dns::Resolver& resolver, const mail::Message& message,
                                                       VerifyOptions options = {});

// Checks one signature against a known key (no DNS): the part of verify()
// after the key lookup, exposed for tools and tests. `field_index` is the
// DKIM-Signature field. `body_hash` is the canonical body hash for the
// signature's c= body and l=, or empty to compute it here.
DkimResult verify_with_key(const mail::Message& message, size_t field_index, const Signature& sig,
                           const KeyRecord& key, const VerifyOptions& options, std::string_view body_hash = {});

// The default header fields to sign (lower-case).
const std::vector<std::string>& default_signed_headers();

struct SignOptions {
  std::string domain;                     // d=
  std::string selector;                   // s=
  crypto::PrivateKey key;                 // its type chooses a= (rsa-sha256 or ed25519-sha256)
  Canon header_canon = Canon::kRelaxed;
  Canon body_canon = Canon::kRelaxed;
  std::vector<std::string> headers;       // empty: default_signed_headers()
  bool oversign_from = true;              // list From once more than present
  std::optional<std::string> identity;    // i=, must be in d= or a subdomain
  std::optional<int64_t> timestamp;       // t=; default now
  std::optional<int64_t> expire_after;    // x= = t= + this many seconds
  std::optional<uint64_t> body_length;    // l= (discouraged; for tests)
};

// Signs `message` and returns the complete field "DKIM-Signature: ...\r\n",
// folded at about 78 columns, ready to prepend. Errors: no From field (From
// must be signed, RFC 6376 §5.4), bad domain/selector, no or bad key, RSA key
// under 1024 bits.
Result<std::string> sign(const mail::Message& message, const SignOptions& options);

// A freshly generated signing key.
struct GeneratedKey {
  std::string private_pem;  // PKCS#8 PEM
  std::string dns_txt;      // "v=DKIM1; k=rsa; p=..." or "v=DKIM1; k=ed25519; p=..."
  crypto::PrivateKey key;
};
Result<GeneratedKey> keygen(crypto::KeyType type, int rsa_bits = 2048);

// Loads a private key from PEM text, a PEM file path, or a base64 Ed25519 seed
// (text or file).
Result<crypto::PrivateKey> load_private_key(std::string_view path_or_text);

}  // namespace tern::auth::dkim
