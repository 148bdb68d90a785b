// SPF record syntax (RFC 7208 §4.5, §4.6, §5, §6, §7): recognising a
// "v=spf1" record, parsing it completely into mechanisms and modifiers
// (any syntax error anywhere is a permerror, §4.6), and the macro language
// (§7) — syntax checks for domain-spec and explain-string and expansion with
// transformers, delimiters and URL escaping. No DNS here: evaluation lives in
// spf.h. Bounded: records come from DNS (at most 64 KiB), parsing is linear
// and expansion output is capped at kMaxExpansion bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/net.h"
#include "base/result.h"

namespace tern::auth {

enum class SpfQualifier : char { kPass = '+', kFail = '-', kSoftFail = '~', kNeutral = '?' };

enum class SpfMechanismKind { kAll, kInclude, kA, kMx, kPtr, kIp4, kIp6, kExists };

struct SpfMechanism {
  SpfQualifier qualifier = SpfQualifier::kPass;
  SpfMechanismKind kind = SpfMechanismKind::kAll;
  // include/exists: required; a/mx/ptr: empty means the current <domain>.
  std::string domain_spec;
  Cidr network;               // ip4 / ip6
  int cidr4 = 32, cidr6 = 128; // a / mx dual-cidr-length (§5.6)
  std::string text;           // the term as written, for results and logs
  // Whether evaluating the term queries DNS (counts against the limit of 10, §4.6.4).
  bool queries_dns() const {
    return kind == SpfMechanismKind::kInclude || kind == SpfMechanismKind::kA || kind == SpfMechanismKind::kMx ||
           kind == SpfMechanismKind::kPtr || kind == SpfMechanismKind::kExists;
  }
};

struct SpfRecord {
  std::vector<SpfMechanism> mechanisms;
  std::optional<std::string> redirect;  // domain-spec of redirect= (§6.1)
  std::optional<std::string> exp;       // domain-spec of exp= (§6.2)
};

// §4.5: a TXT record is an SPF record when it starts with "v=spf1"
// (case-insensitively) followed by a space or the end of the record.
bool is_spf_record(std::string_view txt);

// Parses a whole SPF record. Errors are permerror causes (code 550, 5.7.24)
// whose text says what is wrong.
Result<SpfRecord> parse_spf_record(std::string_view txt);

// §7.1 syntax checks. `explanation`: the explain-string grammar (allows SP and
// the c, r, t macro letters), otherwise a macro-string.
bool valid_macro_string(std::string_view s, bool explanation);
// domain-spec = macro-string domain-end (§7.1).
bool valid_domain_spec(std::string_view s);
// The toplabel production of §7.1 (also used for initial-domain checks).
bool valid_toplabel(std::string_view label);

// Values the macro letters expand to (§7.3).
struct SpfMacroContext {
  std::string sender;          // s
  std::string local_part;      // l
  std::string sender_domain;   // o
  std::string domain;          // d
  IpAddress ip;                // i, c, v (IPv4-mapped addresses already unmapped)
  std::string validated_name = "unknown";  // p
  std::string helo;            // h
  std::string receiver = "unknown";        // r
  int64_t timestamp = 0;       // t
};

inline constexpr size_t kMaxSpfExpansion = 8192;

// Expands macros in `s` (§7.3, §7.4). Error on bad syntax or oversize output.
Result<std::string> expand_spf_macros(std::string_view s, const SpfMacroContext& ctx, bool explanation);
// True when `s` uses the p macro (which needs DNS before expansion).
bool uses_p_macro(std::string_view s);
// A domain from expansion, made ready to query (§7.3): a trailing dot
// removed, then leftmost labels dropped until it is at most 253 octets.
// nullopt when no query can be made for it (an empty or over-63-octet label):
// the caller treats such names as non-existent.
std::optional<std::string> spf_query_name(std::string_view expanded);

// The i macro form of an address: dotted quad, or 32 dot-separated nibbles.
std::string spf_dotted_ip(const IpAddress& ip);
// The reverse-lookup name of an address (in-addr.arpa / ip6.arpa).
std::string reverse_name(const IpAddress& ip);

}  // namespace tern::auth
