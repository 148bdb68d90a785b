// The DNS interface every authentication and delivery component uses. Lookups
// are C++20 coroutines on Boost.Asio (`co_await resolver.query(name, type)`),
// so callers never block the event loop. Each Answer reports the outcome
// precisely — NOERROR with records, NODATA (NOERROR, no records), NXDOMAIN,
// SERVFAIL, timeout — because SPF, DKIM and DMARC map them to different
// results, and whether the answer was DNSSEC-secure, insecure or bogus.
// Implementations: UnboundResolver (libunbound, validating) and FakeResolver
// (tests: serves a table of records, counts queries).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/net.h"

namespace tern::dns {

enum class RrType : uint16_t {
  kA = 1,
  kNs = 2,
  kCname = 5,
  kSoa = 6,
  kPtr = 12,
  kMx = 15,
  kTxt = 16,
  kAaaa = 28,
  kSpf = 99,
  kTlsa = 52,
};
const char* type_name(RrType type);

enum class Rcode {
  kNoError,   // records may still be empty: NODATA
  kNxDomain,  // the name does not exist
  kServFail,  // server failure (including DNSSEC validation failure: see security)
  kTimeout,   // no answer in time
  kRefused,   // server refused, or another error rcode
};
const char* rcode_name(Rcode rcode);

enum class Security {
  kInsecure,  // no DNSSEC chain (the common case)
  kSecure,    // validated
  kBogus,     // validation failed: treat as a failure, never as data
};
const char* security_name(Security security);  // "secure", "insecure", "bogus"

struct MxRecord {
  uint16_t preference = 0;
  std::string host;  // lower-case, without trailing dot
  bool operator==(const MxRecord&) const = default;
};

struct TlsaRecord {
  uint8_t usage = 0, selector = 0, matching_type = 0;
  std::string data;  // raw bytes
  bool operator==(const TlsaRecord&) const = default;
};

struct Answer {
  Rcode rcode = Rcode::kNoError;
  Security security = Security::kInsecure;
  std::vector<std::string> txt;          // TXT: each record's character-strings concatenated
  std::vector<IpAddress> addresses;      // A / AAAA
  std::vector<MxRecord> mx;              // MX
  std::vector<std::string> names;        // PTR / CNAME / NS targets, lower-case, no trailing dot
  std::vector<TlsaRecord> tlsa;          // TLSA
  std::string canonical_name;            // after CNAMEs (empty if none)
  uint32_t ttl = 0;

  bool ok() const { return rcode == Rcode::kNoError && security != Security::kBogus; }
  bool nxdomain() const { return rcode == Rcode::kNxDomain; }
  // NOERROR with no records of the asked type.
  bool nodata() const {
    return rcode == Rcode::kNoError && txt.empty() && addresses.empty() && mx.empty() && names.empty() &&
           tlsa.empty();
  }
  // A temporary failure: SERVFAIL, timeout, refused (SPF/DKIM/DMARC temperror).
  bool temporary_failure() const {
    return rcode == Rcode::kServFail || rcode == Rcode::kTimeout || rcode == Rcode::kRefused;
  }
};

class Resolver {
 public:
  virtual ~Resolver() = default;
  // `name` without trailing dot; case-insensitive. Never throws.
  virtual boost::asio::awaitable<Answer> query(std::string name, RrType type) = 0;
};

}  // namespace tern::dns
