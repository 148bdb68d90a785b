// DMARC (RFC 7489) record parsing, policy discovery, alignment and policy
// selection. See dmarc.h for the contract. All work is bounded: records are
// capped at kMaxRecordLength, report URI lists at kMaxUris entries, DNS
// answers at kMaxTxtRecords records considered, and an evaluation makes at
// most a handful of queries per From domain (at most kMaxFromDomains).
#include "auth/dmarc.h"

#include <libpsl.h>

#include <algorithm>
#include <random>

#include "base/strings.h"

namespace tern::auth::dmarc {
namespace {

constexpr size_t kMaxUris = 32;
constexpr size_t kMaxTxtRecords = 64;
constexpr size_t kMaxFromDomains = 16;
constexpr size_t kMaxTreeWalkLabels = 8;  // RFC 9989 §4.10.1

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_wsp(char c) { return c == ' ' || c == '\t'; }

// RFC 6376 §3.2 tag-name: ALPHA *ALNUMPUNC (ALNUMPUNC = ALPHA / DIGIT / "_").
bool is_tag_name(std::string_view s) {
  if (s.empty() || !is_alpha(s[0])) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return is_alpha(c) || is_digit(c) || c == '_'; });
}

// RFC 5321 §4.1.2 Keyword (Ldh-str): letters, digits, inner hyphens.
bool is_keyword(std::string_view s) {
  if (s.empty() || s.back() == '-' || s.front() == '-') return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return is_alpha(c) || is_digit(c) || c == '-'; });
}

std::optional<Policy> parse_policy(std::string_view v) {
  if (iequals(v, "none")) return Policy::kNone;
  if (iequals(v, "quarantine")) return Policy::kQuarantine;
  if (iequals(v, "reject")) return Policy::kReject;
  return std::nullopt;
}

std::optional<AlignmentMode> parse_alignment(std::string_view v) {
  if (iequals(v, "r")) return AlignmentMode::kRelaxed;
  if (iequals(v, "s")) return AlignmentMode::kStrict;
  return std::nullopt;
}

std::optional<bool> parse_yes_no(std::string_view v) {
  if (iequals(v, "y")) return true;
  if (iequals(v, "n")) return false;
  return std::nullopt;
}

// RFC 3986 §3.1 scheme ":" followed by something, without whitespace.
bool is_uri(std::string_view s) {
  size_t colon = s.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 >= s.size()) return false;
  if (!is_alpha(s[0])) return false;
  for (size_t i = 1; i < colon; ++i) {
    char c = s[i];
    if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') return false;
  }
  for (char c : s) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

// RFC 7489 §6.4: dmarc-uri *(*WSP "," *WSP dmarc-uri), dmarc-uri = URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ].
// Whitespace around "!" and before the unit is tolerated.
bool parse_uri_list(std::string_view v, std::vector<ReportUri>& out, std::string& error) {
  auto items = split(v, ',');
  if (items.size() > kMaxUris) {
    error = "too many report URIs";
    return false;
  }
  for (std::string_view raw : items) {
    std::string_view item = trim(raw);
    ReportUri uri;
    size_t bang = item.find('!');
    std::string_view u = trim(item.substr(0, bang));
    if (!is_uri(u)) {
      error = "invalid report URI";
      return false;
    }
    uri.uri = std::string(u);
    if (bang != std::string_view::npos) {
      std::string_view size = trim(item.substr(bang + 1));
      size_t digits = 0;
      while (digits < size.size() && is_digit(size[digits])) ++digits;
      unsigned long long n = 0;
      if (digits == 0 || digits > 19 || !parse_u64(size.substr(0, digits), n)) {
        error = "invalid report URI size limit";
        return false;
      }
      std::string_view unit = trim(size.substr(digits));
      if (unit.size() > 1 || (unit.size() == 1 && std::string_view("kmgtKMGT").find(unit[0]) == std::string_view::npos)) {
        error = "invalid report URI size unit";
        return false;
      }
      uri.max_size = n;
      uri.unit = unit.empty() ? 0 : ascii_lower(unit[0]);
    }
    out.push_back(std::move(uri));
  }
  return true;
}

}  // namespace

const char* policy_name(Policy p) {
  switch (p) {
    case Policy::kNone: return "none";
    case Policy::kQuarantine: return "quarantine";
    case Policy::kReject: return "reject";
  }
  return "none";
}

const char* status_name(Status s) {
  switch (s) {
    case Status::kNone: return "none";
    case Status::kPass: return "pass";
    case Status::kFail: return "fail";
    case Status::kTempError: return "temperror";
    case Status::kPermError: return "permerror";
  }
  return "none";
}

uint64_t ReportUri::max_bytes() const {
  if (!max_size) return 0;
  int shift = 0;
  switch (unit) {
    case 'k': shift = 10; break;
    case 'm': shift = 20; break;
    case 'g': shift = 30; break;
    case 't': shift = 40; break;
    default: break;
  }
  uint64_t n = *max_size;
  if (shift > 0 && n > (UINT64_MAX >> shift)) return UINT64_MAX;
  return n << shift;
}

bool is_dmarc_record(std::string_view txt) {
  size_t i = 0;
  while (i < txt.size() && is_wsp(txt[i])) ++i;
  if (i >= txt.size() || ascii_lower(txt[i]) != 'v') return false;
  ++i;
  while (i < txt.size() && is_wsp(txt[i])) ++i;
  if (i >= txt.size() || txt[i] != '=') return false;
  ++i;
  while (i < txt.size() && is_wsp(txt[i])) ++i;
  if (txt.substr(i, 6) != "DMARC1") return false;  // §6.4: %x44 %x4d %x41 %x52 %x43 %x31, case-sensitive
  i += 6;
  return i == txt.size() || is_wsp(txt[i]) || txt[i] == ';';
}

ParseResult parse_record(std::string_view txt) {
  ParseResult out;
  if (!is_dmarc_record(txt)) {
    out.status = ParseStatus::kNotDmarc;
    out.error = "not a DMARC record";
    return out;
  }
  auto syntax = [&out](std::string msg) {
    out.status = ParseStatus::kSyntaxError;
    out.error = std::move(msg);
    return out;
  };
  if (txt.size() > kMaxRecordLength) return syntax("record too long");

  auto parts = split(txt, ';');
  if (parts.size() < 2) return syntax("missing \";\" after the version tag");
  {
    // "v = DMARC1" is fine; "v=DMARC1 p=none" (missing ";") is not.
    std::string_view first = trim(parts[0]);
    if (trim(first.substr(first.find('=') + 1)) != "DMARC1") return syntax("junk after the version tag");
  }

  Record& rec = out.record;
  bool p_seen = false, p_valid = false, sp_invalid = false;
  std::vector<std::string> seen{"v"};
  size_t tag_index = 0;  // index among non-empty tags after v
  for (size_t i = 1; i < parts.size(); ++i) {
    std::string_view tag = trim(parts[i]);
    if (tag.empty()) continue;  // tolerate ";;" and a trailing ";"
    ++tag_index;
    size_t eq = tag.find('=');
    if (eq == std::string_view::npos) return syntax("missing tag or value: \"" + std::string(tag) + "\"");
    std::string name = to_lower(trim(tag.substr(0, eq)));
    std::string_view value = trim(tag.substr(eq + 1));
    if (!is_tag_name(name)) return syntax("invalid tag name \"" + name + "\"");
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) return syntax("duplicate tag \"" + name + "\"");
    seen.push_back(name);
    if (value.empty()) {
      // An empty value is only tolerated for unknown tags.
      if (name == "p" || name == "sp" || name == "np" || name == "adkim" || name == "aspf" || name == "pct" ||
          name == "ri" || name == "fo" || name == "rf" || name == "rua" || name == "ruf" || name == "t" ||
          name == "psd")
        return syntax("empty value for \"" + name + "\"");
      continue;
    }
    if (name == "p") {
      // §6.4 ABNF: dmarc-record = dmarc-version dmarc-sep [dmarc-request] ...
      if (tag_index != 1) return syntax("\"p\" must directly follow \"v\"");
      p_seen = true;
      if (auto p = parse_policy(value)) {
        rec.p = *p;
        p_valid = true;
      }
    } else if (name == "sp") {
      if (auto p = parse_policy(value)) rec.sp = *p;
      else sp_invalid = true;
    } else if (name == "np") {
      auto p = parse_policy(value);
      if (!p) return syntax("invalid np");
      rec.np = *p;
    } else if (name == "adkim" || name == "aspf") {
      auto a = parse_alignment(value);
      if (!a) return syntax("invalid " + name);
      (name == "adkim" ? rec.adkim : rec.aspf) = *a;
    } else if (name == "pct") {
      unsigned long long n = 0;
      if (!parse_u64(value, n) || n > 100) return syntax("invalid pct");
      rec.pct = static_cast<unsigned>(n);
    } else if (name == "ri") {
      unsigned long long n = 0;
      if (!parse_u64(value, n) || n > UINT32_MAX) return syntax("invalid ri");
      rec.ri = static_cast<uint32_t>(n);
    } else if (name == "fo") {
      rec.fo.clear();
      for (std::string_view f : split(value, ':')) {
        std::string o = to_lower(trim(f));
        if (o != "0" && o != "1" && o != "d" && o != "s") return syntax("invalid fo");
        rec.fo.push_back(o);
      }
    } else if (name == "rf") {
      rec.rf.clear();
      for (std::string_view f : split(value, ':')) {
        std::string_view k = trim(f);
        if (!is_keyword(k)) return syntax("invalid rf");
        rec.rf.push_back(to_lower(k));
      }
    } else if (name == "rua" || name == "ruf") {
      std::string err;
      if (!parse_uri_list(value, name == "rua" ? rec.rua : rec.ruf, err)) return syntax(err);
    } else if (name == "t") {
      auto b = parse_yes_no(value);
      if (!b) return syntax("invalid t");
      rec.testing = *b;
    } else if (name == "psd") {
      if (iequals(value, "u")) continue;
      auto b = parse_yes_no(value);
      if (!b) return syntax("invalid psd");
      rec.psd = *b;
    }
    // Unknown tags are ignored (§6.3: extensible tag-value syntax).
  }

  // §6.6.3 step 6: no valid p, or an invalid sp.
  if (!p_seen || !p_valid || sp_invalid) {
    if (rec.rua.empty()) {
      out.status = ParseStatus::kNoPolicy;
      out.error = p_seen && !p_valid ? "invalid p" : sp_invalid ? "invalid sp" : "missing p";
      return out;
    }
    rec.p = Policy::kNone;
    rec.sp.reset();
    rec.p_defaulted = true;
  }
  out.status = ParseStatus::kOk;
  return out;
}

std::string organizational_domain(std::string_view domain) {
  if (domain.empty()) return {};
  static const psl_ctx_t* const psl = [] {
    const psl_ctx_t* ctx = psl_builtin();
    return ctx ? ctx : psl_latest(nullptr);
  }();
  if (!psl) return std::string(domain);
  std::string d(domain);
  const char* reg = psl_registrable_domain(psl, d.c_str());
  return reg ? std::string(reg) : std::string();
}

bool aligned(std::string_view from_domain, std::string_view auth_domain, AlignmentMode mode) {
  if (from_domain.empty() || auth_domain.empty()) return false;
  if (mode == AlignmentMode::kStrict) return iequals(from_domain, auth_domain);
  std::string a = organizational_domain(to_lower(from_domain));
  std::string b = organizational_domain(to_lower(auth_domain));
  return !a.empty() && a == b;
}

namespace {

std::string normalize_domain(std::string_view d) {
  d = trim(d);
  while (!d.empty() && d.back() == '.') d.remove_suffix(1);
  return to_lower(d);
}

struct Lookup {
  enum Kind { kFound, kAbsent, kMultiple, kTemp } kind = kAbsent;
  ParseResult parsed;
  bool secure = false;
};

// §6.6.3 steps 1-2 (or 3-4) for one domain.
boost::asio::awaitable<Lookup> lookup_policy(dns::Resolver& resolver, const std::string& domain) {
  Lookup out;
  dns::Answer ans = co_await resolver.query("_dmarc." + domain, dns::RrType::kTxt);
  if (ans.temporary_failure() || ans.security == dns::Security::kBogus) {
    out.kind = Lookup::kTemp;
    co_return out;
  }
  if (ans.rcode != dns::Rcode::kNoError) co_return out;  // NXDOMAIN: no record
  out.secure = ans.security == dns::Security::kSecure;
  const std::string* found = nullptr;
  size_t count = 0;
  for (size_t i = 0; i < ans.txt.size() && i < kMaxTxtRecords; ++i) {
    if (!is_dmarc_record(ans.txt[i])) continue;
    ++count;
    found = &ans.txt[i];
  }
  if (count == 0) co_return out;
  if (count > 1) {
    out.kind = Lookup::kMultiple;
    co_return out;
  }
  out.kind = Lookup::kFound;
  out.parsed = parse_record(*found);
  co_return out;
}

// DMARCbis "non-existent domain": NXDOMAIN, or no A, AAAA and MX records.
// Temporary failures count as existing (the milder sp applies).
boost::asio::awaitable<bool> domain_exists(dns::Resolver& resolver, const std::string& domain) {
  for (dns::RrType t : {dns::RrType::kA, dns::RrType::kAaaa, dns::RrType::kMx}) {
    dns::Answer ans = co_await resolver.query(domain, t);
    if (ans.nxdomain()) co_return false;
    if (!ans.ok() || !ans.nodata()) co_return true;
  }
  co_return false;
}

// Fills `r` from a lookup that found something; returns true when a usable record was found.
bool apply_lookup(DmarcResult& r, Lookup& l) {
  r.dnssec_secure = l.secure;
  switch (l.kind) {
    case Lookup::kTemp:
      r.status = Status::kTempError;
      r.error = "DNS failure looking up _dmarc." + r.record_domain;
      return false;
    case Lookup::kMultiple:
      r.status = Status::kNone;
      r.error = "multiple DMARC records";
      return false;
    case Lookup::kAbsent:
      r.status = Status::kNone;
      r.error = "no DMARC record";
      return false;
    case Lookup::kFound: break;
  }
  switch (l.parsed.status) {
    case ParseStatus::kOk:
      r.status = Status::kPass;  // placeholder: "found"
      r.record_found = true;
      r.record = std::move(l.parsed.record);
      return true;
    case ParseStatus::kSyntaxError:
      r.status = Status::kPermError;
      r.error = l.parsed.error;
      return false;
    case ParseStatus::kNoPolicy:
    case ParseStatus::kNotDmarc:
      r.status = Status::kNone;
      r.error = l.parsed.error;
      return false;
  }
  return false;
}

std::vector<std::string_view> labels_of(std::string_view d) { return split(d, '.'); }

std::string join_from(const std::vector<std::string_view>& labels, size_t first) {
  std::string out;
  for (size_t i = first; i < labels.size(); ++i) {
    if (!out.empty()) out += '.';
    out += labels[i];
  }
  return out;
}

// RFC 9989 §4.10.1 DNS tree walk for the policy record, above `from` (whose
// own record the caller already looked up and found absent).
boost::asio::awaitable<DmarcResult> discover_tree_walk(dns::Resolver& resolver, const std::string& from,
                                                       const DmarcResult& base) {
  DmarcResult r = base;
  auto labels = labels_of(from);
  size_t start = 1;
  if (labels.size() > kMaxTreeWalkLabels) start = labels.size() - (kMaxTreeWalkLabels - 1);
  for (size_t i = start; i < labels.size(); ++i) {
    std::string d = join_from(labels, i);
    Lookup pl = co_await lookup_policy(resolver, d);
    if (pl.kind == Lookup::kAbsent || pl.kind == Lookup::kMultiple) continue;
    r.record_domain = d;
    r.from_org_record = true;
    apply_lookup(r, pl);
    co_return r;
  }
  r.error = "no DMARC record";
  co_return r;
}

}  // namespace

boost::asio::awaitable<DmarcResult> discover(dns::Resolver& resolver, std::string from_domain,
                                             const Options& options) {
  std::string from = normalize_domain(from_domain);
  if (from.empty() || from.size() > 253) {
    DmarcResult r;
    r.status = Status::kPermError;
    r.error = "invalid From domain";
    co_return r;
  }
  DmarcResult r;
  r.from_domain = from;
  r.record_domain = from;
  // §6.6.3 steps 1-2.
  Lookup l = co_await lookup_policy(resolver, from);
  if (l.kind != Lookup::kAbsent) {
    apply_lookup(r, l);
    co_return r;
  }
  if (options.tree_walk) co_return co_await discover_tree_walk(resolver, from, r);
  // Steps 3-4: the Organizational Domain, if different.
  std::string org = organizational_domain(from);
  if (org.empty() || org == from) {
    apply_lookup(r, l);
    co_return r;
  }
  r.record_domain = org;
  r.from_org_record = true;
  Lookup ol = co_await lookup_policy(resolver, org);
  apply_lookup(r, ol);
  co_return r;
}

namespace {

unsigned default_random_percent() {
  thread_local std::mt19937 gen{std::random_device{}()};
  return std::uniform_int_distribution<unsigned>(0, 99)(gen);
}

boost::asio::awaitable<DmarcResult> evaluate_one(dns::Resolver& resolver, const std::string& from,
                                                 const DmarcInput& in, const Options& options) {
  DmarcResult r = co_await discover(resolver, from, options);
  if (!r.record_found) co_return r;
  const Record& rec = *r.record;

  // §6.6.2 step 5 / §3.1: identifier alignment.
  bool spf_temp = false, dkim_temp = false;
  if (in.spf == MechanismResult::kPass) {
    r.spf_aligned = aligned(r.from_domain, normalize_domain(in.spf_domain), rec.aspf);
  } else if (in.spf == MechanismResult::kTempError) {
    spf_temp = in.spf_domain.empty() || aligned(r.from_domain, normalize_domain(in.spf_domain), rec.aspf);
  }
  for (const DkimVerdict& d : in.dkim) {
    std::string dd = normalize_domain(d.domain);
    bool al = aligned(r.from_domain, dd, rec.adkim);
    if (d.result == MechanismResult::kPass && al && !r.dkim_aligned) {
      r.dkim_aligned = true;
      r.aligned_dkim_domain = dd;
    } else if (d.result == MechanismResult::kTempError && al) {
      dkim_temp = true;
    }
  }
  if (r.spf_aligned || r.dkim_aligned) {
    r.status = Status::kPass;
  } else if (spf_temp || dkim_temp) {
    r.status = Status::kTempError;  // §6.6.2: cannot conclude a permanent failure
    r.error = "temporary error in an underlying authentication check";
  } else {
    r.status = Status::kFail;
  }

  // The applicable policy: p at the record's own domain, sp (or np for a
  // non-existent domain) when the record came from a parent domain.
  if (!r.from_org_record) {
    r.policy = rec.p;
  } else if (rec.np && !(co_await domain_exists(resolver, r.from_domain))) {
    r.policy = *rec.np;
  } else {
    r.policy = rec.subdomain_policy();
  }

  // §6.6.4 sampling.
  if (r.status == Status::kFail) {
    r.disposition = r.policy;
    if (rec.pct < 100) {
      unsigned roll = options.random_percent ? options.random_percent() : default_random_percent();
      if (roll >= rec.pct) {
        r.sampled_out = true;
        r.disposition = r.policy == Policy::kReject ? Policy::kQuarantine : Policy::kNone;
      }
    }
  }
  co_return r;
}

int strictness(Policy p) { return p == Policy::kReject ? 2 : p == Policy::kQuarantine ? 1 : 0; }

}  // namespace

boost::asio::awaitable<DmarcResult> evaluate(dns::Resolver& resolver, const DmarcInput& in, const Options& options) {
  // §6.6.1: no From domain at all.
  if (in.from_domains.empty()) {
    DmarcResult r;
    r.status = Status::kPermError;
    r.error = "no RFC5322.From domain";
    co_return r;
  }
  std::vector<std::string> domains;
  for (const std::string& d : in.from_domains) {
    std::string n = normalize_domain(d);
    if (std::find(domains.begin(), domains.end(), n) == domains.end()) domains.push_back(n);
    if (domains.size() >= kMaxFromDomains) break;
  }
  if (domains.size() == 1) co_return co_await evaluate_one(resolver, domains[0], in, options);

  // §6.6.1: several From domains: evaluate each and apply the strictest
  // policy among the checks that fail.
  std::vector<DmarcResult> results;
  for (const std::string& d : domains) results.push_back(co_await evaluate_one(resolver, d, in, options));
  const DmarcResult* pick = nullptr;
  for (const DmarcResult& r : results) {
    if (r.status == Status::kFail && (!pick || strictness(r.disposition) > strictness(pick->disposition) ||
                                      (strictness(r.disposition) == strictness(pick->disposition) &&
                                       strictness(r.policy) > strictness(pick->policy))))
      pick = &r;
  }
  for (Status s : {Status::kTempError, Status::kPermError, Status::kPass}) {
    for (const DmarcResult& r : results) {
      if (!pick && r.status == s) pick = &r;
    }
  }
  if (!pick) pick = &results.front();
  co_return *pick;
}

MethodResult to_method_result(const DmarcResult& result) {
  MethodResult m;
  m.method = "dmarc";
  m.result = status_name(result.status);
  if (result.status == Status::kNone) return m;
  if (result.record_found) {
    m.comment = std::string("p=") + policy_name(result.policy) + " dis=" + policy_name(result.disposition);
    if (result.dnssec_secure) m.dnssec = true;
  } else if (!result.error.empty()) {
    m.comment = result.error;
  }
  m.prop("header", "from", result.from_domain.empty() ? "none" : result.from_domain);
  m.prop("policy", "dmarc", policy_name(result.policy));
  return m;
}

}  // namespace tern::auth::dmarc
