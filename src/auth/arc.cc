// ARC chain validation and sealing (RFC 8617). See arc.h. The signature
// checks follow RFC 6376 §5 with the ARC differences: the AMS has no v= and
// no identity semantics (i= is the instance), may sign any header field
// except ARC-Seal, and need not sign From; the AS signs, in instance order,
// every AAR, AMS and AS up to its own (relaxed header canonicalization,
// §5.1.1), carries cv= and must not have h=.
#include "auth/arc.h"

#include <algorithm>
#include <array>
#include <chrono>

#include "auth/dkim.h"
#include "auth/dkim_canon.h"
#include "auth/dkim_tags.h"
#include "base/strings.h"
#include "mail/address.h"

namespace tern::auth::arc {
namespace {

enum FieldKind { kAar = 0, kAms = 1, kAs = 2 };
constexpr std::array<std::string_view, 3> kFieldNames = {"ARC-Authentication-Results", "ARC-Message-Signature",
                                                          "ARC-Seal"};

// Field indices per instance (1-based) and kind.
struct ArcSets {
  std::vector<std::array<std::vector<size_t>, 3>> by_instance;  // [i][kind] -> field indices
  unsigned max_instance = 0;
  bool any = false;
  std::string error;  // structural problem found while collecting
};

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_wsp(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Instance number 1..50 from a tag value; 0 when invalid.
unsigned parse_instance(std::string_view v) {
  unsigned long long n = 0;
  if (v.empty() || v.size() > 3 || !parse_u64(v, n) || n < 1 || n > kMaxInstances) return 0;
  return static_cast<unsigned>(n);
}

// RFC 8617 §4.1.1: the AAR value starts with "i=" instance ";".
unsigned aar_instance(std::string_view value) {
  size_t p = 0;
  while (p < value.size() && is_wsp(value[p])) ++p;
  if (p >= value.size() || value[p] != 'i') return 0;
  ++p;
  while (p < value.size() && is_wsp(value[p])) ++p;
  if (p >= value.size() || value[p] != '=') return 0;
  ++p;
  while (p < value.size() && is_wsp(value[p])) ++p;
  size_t start = p;
  while (p < value.size() && is_digit(value[p])) ++p;
  unsigned inst = parse_instance(value.substr(start, p - start));
  while (p < value.size() && is_wsp(value[p])) ++p;
  if (p >= value.size() || value[p] != ';') return 0;
  return inst;
}

ArcSets collect(const mail::Message& message) {
  ArcSets sets;
  size_t count = 0;
  for (size_t idx = 0; idx < message.field_count(); ++idx) {
    mail::HeaderField f = message.field(idx);
    int kind = -1;
    for (int k = 0; k < 3; ++k) {
      if (iequals(f.name, kFieldNames[k])) kind = k;
    }
    if (kind < 0) continue;
    sets.any = true;
    if (++count > kMaxArcFields) {
      sets.error = "too many ARC header fields";
      return sets;
    }
    unsigned inst = 0;
    if (kind == kAar) {
      inst = aar_instance(f.value);
    } else {
      auto tags = dkim::TagList::parse(f.value);
      if (tags) {
        if (auto i = tags->get("i")) inst = parse_instance(*i);
      }
    }
    if (inst == 0) {
      if (sets.error.empty()) sets.error = std::string(kFieldNames[kind]) + " without a valid i= instance";
      continue;
    }
    if (sets.by_instance.size() <= inst) sets.by_instance.resize(inst + 1);
    sets.by_instance[inst][kind].push_back(idx);
    sets.max_instance = std::max(sets.max_instance, inst);
  }
  return sets;
}

// §5.2 step 3 A/B: every instance 1..N has exactly one field of each kind.
bool structure_ok(const ArcSets& sets, std::string& why) {
  if (!sets.error.empty()) {
    why = sets.error;
    return false;
  }
  for (unsigned i = 1; i <= sets.max_instance; ++i) {
    for (int k = 0; k < 3; ++k) {
      size_t n = sets.by_instance[i][k].size();
      if (n != 1) {
        why = std::string(n == 0 ? "missing " : "duplicate ") + std::string(kFieldNames[k]) + " i=" + std::to_string(i);
        return false;
      }
    }
  }
  return true;
}

std::optional<dkim::Algorithm> parse_algorithm(std::string_view a) {
  if (a == "rsa-sha256") return dkim::Algorithm::kRsaSha256;
  if (a == "ed25519-sha256") return dkim::Algorithm::kEd25519Sha256;
  return std::nullopt;  // rsa-sha1 is refused (RFC 8301 §3.1)
}

bool valid_selector(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (std::string_view label : split(s, '.')) {
    if (label.empty() || label.size() > 63) return false;
    for (char c : label) {
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' || c == '_')) return false;
    }
  }
  return true;
}

bool valid_timestamp(std::optional<std::string_view> t) {
  if (!t) return true;
  unsigned long long n = 0;
  return !t->empty() && t->size() <= 12 && parse_u64(*t, n);
}

struct CheckResult {
  bool ok = false;
  std::string reason;
  bool dnssec = false;
};

// Verifies `digest` against the key at s._domainkey.d.
boost::asio::awaitable<CheckResult> check_with_key(dns::Resolver& resolver, std::string selector,
                                                   std::string domain, dkim::Algorithm alg, std::string digest,
                                                   std::string signature, const VerifyOptions& options) {
  CheckResult out;
  dkim::KeyLookup keys =
      co_await dkim::fetch_keys(resolver, to_lower(selector), to_lower(domain), options.max_key_record_size);
  out.dnssec = keys.dnssec;
  if (keys.status != dkim::Outcome::kPass) {
    out.reason = "key lookup: " + keys.reason;
    co_return out;
  }
  out.reason = "no usable key";
  for (const dkim::KeyRecord& key : keys.keys) {
    if (key.revoked() || key.key_type != dkim::key_type_for(alg) || !key.allows_hash("sha256")) continue;
    auto pub = crypto::PublicKey::from_dkim(key.key_type, key.public_key);
    if (!pub) {
      out.reason = "bad public key";
      continue;
    }
    if (pub->type() == crypto::KeyType::kRsa && static_cast<size_t>(pub->bits()) < options.min_rsa_bits) {
      out.reason = "RSA key too short";
      continue;
    }
    if (pub->verify_digest(digest, signature)) {
      out.ok = true;
      out.reason.clear();
      co_return out;
    }
    out.reason = "signature did not verify";
  }
  co_return out;
}

// Validates the AMS field `idx` (§5.2 step 4 / 5).
boost::asio::awaitable<CheckResult> validate_ams(dns::Resolver& resolver, const mail::Message& message, size_t idx,
                                                 const VerifyOptions& options) {
  CheckResult bad;
  mail::HeaderField f = message.field(idx);
  auto tags = dkim::TagList::parse(f.value);
  if (!tags) {
    bad.reason = "AMS: " + tags.error().text;
    co_return bad;
  }
  for (const char* required : {"i", "a", "b", "bh", "d", "s", "h"}) {
    if (!tags->has(required)) {
      bad.reason = std::string("AMS: missing ") + required + "=";
      co_return bad;
    }
  }
  auto alg = parse_algorithm(*tags->get("a"));
  if (!alg) {
    bad.reason = "AMS: unsupported algorithm";
    co_return bad;
  }
  // Without c= the AMS is taken as relaxed/relaxed, not DKIM's simple/simple:
  // ARC signers always use relaxed, and the ARC test suite (ams_fields_c_na)
  // and dkimpy's validator read a missing c= that way.
  dkim::Canon hc = dkim::Canon::kRelaxed, bc = dkim::Canon::kRelaxed;
  if (auto c = tags->get("c")) {
    std::string_view cv = *c;
    size_t slash = cv.find('/');
    std::string_view h = cv.substr(0, slash), b = slash == std::string_view::npos ? "simple" : cv.substr(slash + 1);
    auto canon = [](std::string_view s) -> std::optional<dkim::Canon> {
      if (s == "simple") return dkim::Canon::kSimple;
      if (s == "relaxed") return dkim::Canon::kRelaxed;
      return std::nullopt;
    };
    auto hcp = canon(h), bcp = canon(b);
    if (!hcp || !bcp) {
      bad.reason = "AMS: bad c=";
      co_return bad;
    }
    hc = *hcp;
    bc = *bcp;
  }
  std::string domain(*tags->get("d")), selector(*tags->get("s"));
  if (!mail::is_valid_domain(domain) || !valid_selector(selector)) {
    bad.reason = "AMS: bad d= or s=";
    co_return bad;
  }
  if (!valid_timestamp(tags->get("t"))) {
    bad.reason = "AMS: bad t=";
    co_return bad;
  }
  std::vector<std::string> names;
  const std::string h_list = dkim::strip_fws(*tags->get("h"));
  for (std::string_view n : split(h_list, ':')) {
    if (n.empty()) continue;
    if (iequals(n, "arc-seal")) {  // §4.1.2: the AMS MUST NOT sign ARC-Seal
      bad.reason = "AMS: h= includes ARC-Seal";
      co_return bad;
    }
    names.emplace_back(to_lower(n));
  }
  std::string bh, b;
  if (!base64_decode(dkim::strip_fws(*tags->get("bh")), bh) || bh.size() != crypto::kSha256Size) {
    bad.reason = "AMS: bad bh=";
    co_return bad;
  }
  if (!base64_decode(dkim::strip_fws(*tags->get("b")), b) || b.empty()) {
    bad.reason = "AMS: bad b=";
    co_return bad;
  }
  if (!crypto::equal_bytes(dkim::body_hash(bc, message.body()), bh)) {
    bad.reason = "AMS: body hash mismatch";
    co_return bad;
  }
  std::vector<size_t> selected = dkim::select_headers(message, names, idx);
  std::string digest = crypto::sha256(dkim::header_hash_input(hc, message, selected, f.raw));
  CheckResult r = co_await check_with_key(resolver, selector, domain, *alg, digest, b, options);
  if (!r.ok) r.reason = "AMS: " + r.reason;
  co_return r;
}

struct SealTags {
  dkim::Algorithm alg = dkim::Algorithm::kRsaSha256;
  std::string cv, domain, selector, signature;
};

// Parses and checks the tags of an ARC-Seal (§4.1.3).
Result<SealTags> parse_seal(std::string_view value) {
  auto tags = dkim::TagList::parse(value);
  if (!tags) return Error::perm("5.7.29", "AS: " + tags.error().text);
  for (const char* required : {"i", "a", "b", "cv", "d", "s"}) {
    if (!tags->has(required)) return Error::perm("5.7.29", std::string("AS: missing ") + required + "=");
  }
  if (tags->has("h")) return Error::perm("5.7.29", "AS: h= is not allowed");
  SealTags out;
  auto alg = parse_algorithm(*tags->get("a"));
  if (!alg) return Error::perm("5.7.29", "AS: unsupported algorithm");
  out.alg = *alg;
  out.cv = std::string(*tags->get("cv"));
  if (out.cv != "none" && out.cv != "pass" && out.cv != "fail") return Error::perm("5.7.29", "AS: bad cv=");
  out.domain = std::string(*tags->get("d"));
  out.selector = std::string(*tags->get("s"));
  if (!mail::is_valid_domain(out.domain) || !valid_selector(out.selector))
    return Error::perm("5.7.29", "AS: bad d= or s=");
  if (!valid_timestamp(tags->get("t"))) return Error::perm("5.7.29", "AS: bad t=");
  if (!base64_decode(dkim::strip_fws(*tags->get("b")), out.signature) || out.signature.empty())
    return Error::perm("5.7.29", "AS: bad b=");
  return out;
}

// §5.1.1: the ARC-Seal hash input for instance `n`: AAR, AMS, AS of every
// instance 1..n in order, relaxed; the AS(n) with b= emptied and without its
// final CRLF.
std::string seal_hash_input(const mail::Message& message, const ArcSets& sets, unsigned n,
                            std::string_view last_seal_raw) {
  std::string data;
  for (unsigned i = 1; i <= n; ++i) {
    dkim::canonicalize_header(dkim::Canon::kRelaxed, message.field(sets.by_instance[i][kAar][0]).raw, data);
    dkim::canonicalize_header(dkim::Canon::kRelaxed, message.field(sets.by_instance[i][kAms][0]).raw, data);
    if (i < n) {
      dkim::canonicalize_header(dkim::Canon::kRelaxed, message.field(sets.by_instance[i][kAs][0]).raw, data);
    }
  }
  std::string last = dkim::canonicalize_header(dkim::Canon::kRelaxed, dkim::remove_b_value(last_seal_raw));
  if (last.size() >= 2 && last.compare(last.size() - 2, 2, "\r\n") == 0) last.resize(last.size() - 2);
  data += last;
  return data;
}

ArcResult fail(ArcResult r, std::string reason) {
  r.status = ChainStatus::kFail;
  r.reason = std::move(reason);
  return r;
}

}  // namespace

const char* chain_status_name(ChainStatus s) {
  switch (s) {
    case ChainStatus::kNone: return "none";
    case ChainStatus::kPass: return "pass";
    case ChainStatus::kFail: return "fail";
  }
  return "none";
}

boost::asio::awaitable<ArcResult> verify(dns::Resolver& resolver, const mail::Message& message,
                                         VerifyOptions options) {
  ArcResult r;
  ArcSets sets = collect(message);
  // Step 1.
  if (!sets.any) co_return r;
  r.instances = sets.max_instance;
  if (sets.max_instance == 0) co_return fail(r, sets.error.empty() ? "no valid ARC instance" : sets.error);
  const unsigned n = sets.max_instance;
  // Step 2: the newest seal says the chain already failed.
  if (sets.by_instance[n][kAs].size() == 1) {
    auto latest = parse_seal(message.field(sets.by_instance[n][kAs][0]).value);
    if (latest) {
      r.domain = to_lower(latest->domain);
      r.selector = to_lower(latest->selector);
      if (latest->cv == "fail") co_return fail(r, "ARC-Seal i=" + std::to_string(n) + " has cv=fail");
    }
  }
  // Step 3.
  std::string why;
  if (!structure_ok(sets, why)) co_return fail(r, why);
  std::vector<SealTags> seals(n + 1);
  for (unsigned i = 1; i <= n; ++i) {
    auto s = parse_seal(message.field(sets.by_instance[i][kAs][0]).value);
    if (!s) co_return fail(r, s.error().text + " (i=" + std::to_string(i) + ")");
    if (s->cv != (i == 1 ? "none" : "pass"))
      co_return fail(r, "ARC-Seal i=" + std::to_string(i) + " has cv=" + s->cv);
    seals[i] = std::move(*s);
  }
  bool all_secure = true;
  // Step 4: the newest AMS.
  CheckResult ams = co_await validate_ams(resolver, message, sets.by_instance[n][kAms][0], options);
  if (!ams.ok) co_return fail(r, ams.reason + " (i=" + std::to_string(n) + ")");
  all_secure = all_secure && ams.dnssec;
  // Step 5 (optional): oldest-pass.
  r.oldest_pass = 0;
  if (options.compute_oldest_pass) {
    for (unsigned m = n - 1; m >= 1; --m) {
      CheckResult older = co_await validate_ams(resolver, message, sets.by_instance[m][kAms][0], options);
      if (!older.ok) {
        r.oldest_pass = m + 1;
        break;
      }
    }
  }
  // Step 6: every seal, newest first.
  for (unsigned i = n; i >= 1; --i) {
    std::string_view raw = message.field(sets.by_instance[i][kAs][0]).raw;
    std::string digest = crypto::sha256(seal_hash_input(message, sets, i, raw));
    CheckResult s = co_await check_with_key(resolver, seals[i].selector, seals[i].domain, seals[i].alg, digest,
                                            seals[i].signature, options);
    if (!s.ok) co_return fail(r, "AS: " + s.reason + " (i=" + std::to_string(i) + ")");
    all_secure = all_secure && s.dnssec;
  }
  // Step 7.
  r.status = ChainStatus::kPass;
  r.dnssec = all_secure;
  co_return r;
}

MethodResult to_method_result(const ArcResult& result) {
  MethodResult m;
  m.method = "arc";
  m.result = chain_status_name(result.status);
  if (result.status == ChainStatus::kFail && !result.reason.empty()) m.reason = result.reason;
  if (result.status == ChainStatus::kPass) {
    if (result.dnssec) m.dnssec = true;
    if (result.oldest_pass > 0) m.prop("header", "oldest-pass", std::to_string(result.oldest_pass));
  }
  return m;
}

std::string consolidate_auth_results(const mail::Message& message, std::string_view authserv_id) {
  std::string out(authserv_id);
  bool any = false;
  for (const mail::HeaderField& f : message.find_all("Authentication-Results")) {
    auto parsed = parse_auth_results(f.value);
    if (!parsed || !iequals(parsed->authserv_id, authserv_id)) continue;
    for (const ParsedResult& pr : parsed->results) {
      out += any ? ";\r\n " : "; ";
      out += pr.text;
      any = true;
    }
  }
  if (!any) out += "; none";
  return out;
}

namespace {

// Joins "tag=value" strings with "; ", folding after a ';' when a line would
// pass 78 columns; `b_index` is the tag whose (long base64) value is folded
// in 72-column chunks. Returns the value as it follows "Name:".
std::string layout_tags(size_t name_len, const std::vector<std::string>& tags, size_t b_index) {
  std::string out;
  size_t col = name_len + 1;
  for (size_t i = 0; i < tags.size(); ++i) {
    std::string tag = tags[i];
    if (i == b_index && tag.size() > 2) {
      std::string folded = "b=";
      std::string_view v = std::string_view(tag).substr(2);
      for (size_t p = 0; p < v.size(); p += 72) {
        if (p > 0) folded += "\r\n ";
        folded.append(v.substr(p, 72));
      }
      tag = folded;
    }
    size_t first_line = tag.find("\r\n") == std::string::npos ? tag.size() : tag.find("\r\n");
    if (i > 0) out += ';';
    if (i > 0 && col + 1 + first_line > 78) {
      out += "\r\n ";
      col = 1;
    } else {
      out += ' ';
      col += 1;
    }
    out += tag;
    size_t last_nl = tag.rfind("\r\n");
    col = last_nl == std::string::npos ? col + tag.size() : tag.size() - last_nl - 2 + 1;
  }
  return out;
}

const std::vector<std::string>& default_ams_headers() {
  static const std::vector<std::string> kHeaders = [] {
    std::vector<std::string> h = dkim::default_signed_headers();
    h.push_back("dkim-signature");
    return h;
  }();
  return kHeaders;
}

}  // namespace

Result<std::string> seal(const mail::Message& message, ChainStatus chain, std::string_view aar_payload,
                         const SealOptions& options) {
  if (!options.key.valid()) return Error::local("ARC seal: no signing key");
  if (options.key.type() == crypto::KeyType::kRsa && options.key.bits() < 1024)
    return Error::local("ARC seal: RSA key shorter than 1024 bits");
  if (!mail::is_valid_domain(options.domain) || !valid_selector(options.selector))
    return Error::local("ARC seal: bad d= or s=");
  ArcSets sets = collect(message);
  std::string why;
  if (sets.any && !structure_ok(sets, why) && chain != ChainStatus::kFail)
    return Error::local("ARC seal: existing chain is malformed (" + why + ")");
  if (!sets.error.empty()) return Error::local("ARC seal: " + sets.error);
  const unsigned n = sets.max_instance + 1;
  if (n > kMaxInstances) return Error::local("ARC seal: the chain already has 50 sets");
  if (sets.max_instance > 0 && sets.by_instance[sets.max_instance][kAs].size() == 1) {
    auto latest = parse_seal(message.field(sets.by_instance[sets.max_instance][kAs][0]).value);
    if (latest && latest->cv == "fail") return Error::local("ARC seal: chain already marked cv=fail");
  }
  if (n > 1 && chain == ChainStatus::kNone) chain = ChainStatus::kFail;  // sets exist: none is impossible
  if (n == 1) chain = ChainStatus::kNone;
  if (!structure_ok(sets, why) && sets.any) chain = ChainStatus::kFail;

  const std::string alg = options.key.type() == crypto::KeyType::kEd25519 ? "ed25519-sha256" : "rsa-sha256";
  int64_t t = options.timestamp ? *options.timestamp
                                : std::chrono::duration_cast<std::chrono::seconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count();
  const std::string inst = std::to_string(n);
  const std::string domain = to_lower(options.domain), selector = to_lower(options.selector);

  // AAR (§4.1.1).
  std::string aar = "ARC-Authentication-Results: i=" + inst + "; " + std::string(trim(aar_payload)) + "\r\n";
  mail::Message work = message;
  if (auto st = work.prepend_field(aar); !st) return st.error();

  // AMS (§4.1.2), like a DKIM-Signature with relaxed/relaxed.
  std::vector<std::string> h;
  for (const std::string& name : options.headers.empty() ? default_ams_headers() : options.headers) {
    std::string lower = to_lower(name);
    if (lower == "arc-seal") continue;
    if (options.headers.empty() && work.find_indices(lower).empty()) continue;
    h.push_back(lower);
  }
  std::string h_value;
  for (const std::string& name : h) h_value += (h_value.empty() ? "" : ":") + name;
  std::string bh = base64_encode(dkim::body_hash(dkim::Canon::kRelaxed, work.body()));
  std::vector<std::string> ams_tags = {"a=" + alg, "b=", "bh=" + bh, "c=relaxed/relaxed", "d=" + domain,
                                       "h=" + h_value, "i=" + inst, "s=" + selector, "t=" + std::to_string(t)};
  const std::string ams_name = "ARC-Message-Signature";
  std::string ams_unsigned = ams_name + ":" + layout_tags(ams_name.size(), ams_tags, 1) + "\r\n";
  std::vector<size_t> selected = dkim::select_headers(work, h);
  std::string ams_digest =
      crypto::sha256(dkim::header_hash_input(dkim::Canon::kRelaxed, work, selected, ams_unsigned));
  auto ams_sig = options.key.sign_digest(ams_digest);
  if (!ams_sig) return ams_sig.error();
  ams_tags[1] = "b=" + base64_encode(*ams_sig);
  std::string ams = ams_name + ":" + layout_tags(ams_name.size(), ams_tags, 1) + "\r\n";
  if (auto st = work.prepend_field(ams); !st) return st.error();

  // AS (§4.1.3, §5.1.1).
  std::vector<std::string> as_tags = {"a=" + alg,    "b=",         "cv=" + std::string(chain_status_name(chain)),
                                      "d=" + domain, "i=" + inst, "s=" + selector,
                                      "t=" + std::to_string(t)};
  const std::string as_name = "ARC-Seal";
  std::string as_unsigned = as_name + ":" + layout_tags(as_name.size(), as_tags, 1) + "\r\n";
  if (auto st = work.prepend_field(as_unsigned); !st) return st.error();
  ArcSets all = collect(work);
  if (all.max_instance != n || !structure_ok(all, why)) {
    if (chain != ChainStatus::kFail) return Error::local("ARC seal: cannot assemble the chain (" + why + ")");
  }
  // §5.1.2: with cv=fail the seal covers only our own set, as if it were the only one.
  std::string as_digest;
  if (chain != ChainStatus::kFail && structure_ok(all, why)) {
    as_digest = crypto::sha256(seal_hash_input(work, all, n, as_unsigned));
  } else {
    std::string data;
    dkim::canonicalize_header(dkim::Canon::kRelaxed, aar, data);
    dkim::canonicalize_header(dkim::Canon::kRelaxed, ams, data);
    std::string last = dkim::canonicalize_header(dkim::Canon::kRelaxed, dkim::remove_b_value(as_unsigned));
    last.resize(last.size() - 2);
    as_digest = crypto::sha256(data + last);
  }
  auto as_sig = options.key.sign_digest(as_digest);
  if (!as_sig) return as_sig.error();
  as_tags[1] = "b=" + base64_encode(*as_sig);
  std::string as = as_name + ":" + layout_tags(as_name.size(), as_tags, 1) + "\r\n";
  return as + ams + aar;
}

}  // namespace tern::auth::arc
