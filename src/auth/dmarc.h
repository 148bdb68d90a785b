// DMARC (RFC 7489): parsing of _dmarc TXT policy records, policy discovery
// at the RFC5322.From domain and its Organizational Domain (public suffix
// list via libpsl), identifier alignment of the SPF and DKIM results, and the
// resulting DMARC verdict together with the policy the receiver should apply
// (p / sp, the DMARCbis np for non-existent subdomains, pct sampling). The
// module does no I/O of its own: DNS goes through dns::Resolver. The SPF and
// DKIM verdicts are inputs; the caller computes them with the SPF and DKIM
// libraries.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/auth_results.h"
#include "dns/resolver.h"

namespace tern::auth::dmarc {

// RFC 7489 §6.3 "p"/"sp" values (and DMARCbis "np").
enum class Policy { kNone, kQuarantine, kReject };
const char* policy_name(Policy p);

// RFC 7489 §3.1: relaxed ("r") or strict ("s") identifier alignment.
enum class AlignmentMode { kRelaxed, kStrict };

// One rua/ruf entry (RFC 7489 §6.4 dmarc-uri): the URI and an optional size
// limit ("!10m"): number and unit (0 = none, 'k', 'm', 'g', 't').
struct ReportUri {
  std::string uri;
  std::optional<uint64_t> max_size;
  char unit = 0;
  // The limit in bytes (units are powers of 1024), or 0 when absent. Saturates.
  uint64_t max_bytes() const;
};

struct Record {
  Policy p = Policy::kNone;
  std::optional<Policy> sp;  // subdomain policy; defaults to p
  std::optional<Policy> np;  // DMARCbis non-existent subdomain policy; defaults to sp
  AlignmentMode adkim = AlignmentMode::kRelaxed;
  AlignmentMode aspf = AlignmentMode::kRelaxed;
  unsigned pct = 100;
  std::vector<ReportUri> rua, ruf;
  std::vector<std::string> fo{"0"};   // failure reporting options, as given
  std::vector<std::string> rf{"afrf"};  // failure report formats, lower-cased
  uint32_t ri = 86400;
  std::optional<bool> psd;      // DMARCbis psd=y/n ("u" leaves it unset)
  bool testing = false;         // DMARCbis t=y
  // True when p (or sp) was missing/invalid and a valid rua made the record
  // act as "p=none" (RFC 7489 §6.6.3 step 6.1).
  bool p_defaulted = false;

  Policy subdomain_policy() const { return sp.value_or(p); }
  Policy nonexistent_policy() const { return np.value_or(subdomain_policy()); }
};

enum class ParseStatus {
  kOk,
  kNotDmarc,     // does not start with "v=DMARC1": not a DMARC record at all (§6.6.3 step 2)
  kSyntaxError,  // a DMARC record with a syntax error: permerror
  kNoPolicy,     // no valid p (or an invalid sp) and no valid rua: §6.6.3 step 6.2, no DMARC processing
};

struct ParseResult {
  ParseStatus status = ParseStatus::kNotDmarc;
  Record record;      // meaningful when status == kOk
  std::string error;  // human-readable, when status != kOk
};

// Maximum record length accepted; longer records are syntax errors.
inline constexpr size_t kMaxRecordLength = 8192;

// True when `txt` starts with the DMARC version tag "v=DMARC1" (§6.3: it
// MUST be first; "DMARC1" is case-sensitive, the tag name is not).
bool is_dmarc_record(std::string_view txt);

// Parses a _dmarc TXT record (RFC 7489 §6.3, §6.4 ABNF). Tag names are
// case-insensitive; whitespace around "=" and ";" is allowed; unknown tags are
// ignored; duplicate tags and malformed known tags are syntax errors; "p"
// must come directly after "v" when present (the §6.4 ABNF order).
ParseResult parse_record(std::string_view txt);

// Organizational Domain (RFC 7489 §3.2) from the public suffix list: the
// registrable domain, or "" when `domain` is itself a public suffix (or
// empty). `domain` should be lower-case ASCII without trailing dot.
std::string organizational_domain(std::string_view domain);

// Identifier alignment (RFC 7489 §3.1): strict = equal (case-insensitive);
// relaxed = same non-empty Organizational Domain.
bool aligned(std::string_view from_domain, std::string_view auth_domain, AlignmentMode mode);

// The verdict of an underlying mechanism, as SPF / DKIM report it.
enum class MechanismResult { kNone, kPass, kFail, kSoftFail, kNeutral, kTempError, kPermError, kPolicy };

struct DkimVerdict {
  std::string domain;  // the d= of the signature
  MechanismResult result = MechanismResult::kNone;
  std::string selector;  // optional, for reporting only
};

struct DmarcInput {
  // Domains of the RFC5322.From addresses, in order (RFC 7489 §6.6.1). Empty
  // when the message has no From field or no address with a domain.
  std::vector<std::string> from_domains;
  MechanismResult spf = MechanismResult::kNone;
  std::string spf_domain;  // the domain SPF evaluated (MAIL FROM, or HELO if MAIL FROM was null)
  std::vector<DkimVerdict> dkim;
};

// RFC 8601 result words for the "dmarc" method.
enum class Status { kNone, kPass, kFail, kTempError, kPermError };
const char* status_name(Status s);

struct DmarcResult {
  Status status = Status::kNone;
  std::string from_domain;    // the Author Domain the verdict is for ("" if none)
  std::string record_domain;  // where the policy record was looked up / found
  bool record_found = false;
  bool from_org_record = false;  // the policy came from the Organizational Domain (or a tree-walk parent)
  std::optional<Record> record;
  // The policy that applies to this author domain (p, sp or np).
  Policy policy = Policy::kNone;
  // What the receiver should do: `policy` when the status is fail and the
  // message was sampled in; none otherwise. When pct sampled the message out,
  // reject becomes quarantine and quarantine becomes none (§6.6.4).
  Policy disposition = Policy::kNone;
  bool sampled_out = false;  // pct sampling excluded the message
  bool spf_aligned = false;
  bool dkim_aligned = false;
  std::string aligned_dkim_domain;  // the d= that passed aligned, if any
  bool dnssec_secure = false;       // the policy record answer was DNSSEC-validated
  std::string error;                // explanation for none/temperror/permerror
  // Whether the verdict should be acted upon: a record was found, the
  // status is pass/fail/temperror, and pct did not sample the message out.
  bool use_result() const {
    return record_found && !sampled_out &&
           (status == Status::kPass || status == Status::kFail || status == Status::kTempError);
  }
  bool reject() const { return status == Status::kFail && policy == Policy::kReject; }
};

struct Options {
  // Returns a number in [0, 100) for pct sampling; by default a random one.
  std::function<unsigned()> random_percent;
  // DMARCbis (RFC 9989) DNS tree walk instead of the RFC 7489 PSL lookup.
  bool tree_walk = false;
};

// Policy discovery only (RFC 7489 §6.6.3), for one Author Domain. The result
// has status none (no record, multiple records, §6.6.3 step 6.2),
// temperror (DNS failure) or permerror (syntax error), or pass with the record
// filled in (meaning only "a record was found"; evaluate() decides the rest).
boost::asio::awaitable<DmarcResult> discover(dns::Resolver& resolver, std::string from_domain,
                                             const Options& options = {});

// Full evaluation (RFC 7489 §6.6.2). With several From domains every one is
// evaluated and, per §6.6.1, the failing check with the strictest policy is
// returned; otherwise temperror, then permerror, then the first pass, then
// none. With no From domain the result is permerror.
boost::asio::awaitable<DmarcResult> evaluate(dns::Resolver& resolver, const DmarcInput& in,
                                             const Options& options = {});

// The "dmarc" entry of an Authentication-Results field (RFC 7489 §11.1):
// dmarc=<status> with a "(p=<policy> dis=<disposition>)" comment,
// header.from=<author domain> ("none" when there is none) and
// policy.dmarc=<applicable policy>; for "none" (no record, DMARC does not
// apply) just "dmarc=none". DNSSEC status of the record as in auth_results.h.
MethodResult to_method_result(const DmarcResult& result);

}  // namespace tern::auth::dmarc
