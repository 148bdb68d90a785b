// DKIM signature and key record parsing, verification and signing (see
// dkim.h). Section numbers refer to RFC 6376 unless stated otherwise.
#include "auth/dkim.h"

#include <algorithm>
#include <ctime>
#include <map>
#include <utility>

#include "base/fs.h"
#include "base/log.h"
#include "base/strings.h"

namespace tern::auth::dkim {

namespace {

constexpr size_t kMaxSignedHeaders = 512;
constexpr size_t kMaxKeyRecords = 10;
constexpr size_t kFoldColumn = 78;

Error sig_error(std::string text) { return Error::perm("5.7.5", std::move(text)); }

// Domain or selector: dot-separated labels of letters, digits, '-' and '_'
// (underscores occur in selectors), each 1..63 octets, at most 253 in all.
bool is_valid_dns_name(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok || ++label > 63) return false;
  }
  return label > 0;
}

// Splits a colon-separated tag value (h=, q=, key h=/s=/t=), trimming FWS.
std::vector<std::string> split_colon_list(std::string_view value) {
  std::vector<std::string> out;
  for (std::string_view part : split(value, ':')) out.push_back(strip_fws(part));
  return out;
}

bool parse_number(std::string_view value, uint64_t& out) {
  unsigned long long v = 0;
  if (!parse_u64(value, v)) return false;
  out = v;
  return true;
}

// True when `sub` equals `domain` or is a subdomain of it (case-insensitive).
bool is_same_or_subdomain(std::string_view sub, std::string_view domain) {
  if (iequals(sub, domain)) return true;
  return sub.size() > domain.size() + 1 && iends_with(sub, domain) && sub[sub.size() - domain.size() - 1] == '.';
}

std::string identity_domain(std::string_view identity) {
  size_t at = identity.rfind('@');
  return at == std::string_view::npos ? std::string() : to_lower(identity.substr(at + 1));
}

int64_t current_time(const VerifyOptions& o) {
  return o.now ? *o.now : static_cast<int64_t>(std::time(nullptr));
}

DkimResult result_for(const Signature& sig, size_t field_index) {
  DkimResult r;
  r.domain = sig.domain;
  r.selector = sig.selector;
  r.identity = sig.identity;
  r.algorithm = algorithm_name(sig.algorithm);
  r.b_full = sig.b_base64;
  // RFC 6008 §2: header.b carries enough of b= to tell signatures apart.
  r.b = sig.b_base64.substr(0, std::min<size_t>(sig.b_base64.size(), 12));
  r.field_index = field_index;
  return r;
}

struct BodyDigest {
  std::string hash;
  uint64_t canonical_length = 0;
};

BodyDigest compute_body_digest(const mail::Message& message, Canon canon, std::optional<uint64_t> limit) {
  BodyHasher hasher(canon, limit);
  hasher.update(message.body());
  BodyDigest d;
  d.hash = hasher.finish();
  d.canonical_length = hasher.canonical_length();
  return d;
}

DkimResult check_with_key(const mail::Message& message, size_t field_index, const Signature& sig,
                          const KeyRecord& key, const VerifyOptions& options, const BodyDigest* digest) {
  DkimResult r = result_for(sig, field_index);
  r.testing = key.testing;
  auto fail = [&r](Outcome s, std::string reason) {
    r.status = s;
    r.reason = std::move(reason);
    return r;
  };
  // §3.6.1 key record checks, §6.1.2.
  if (key.revoked()) return fail(Outcome::kPermError, "key revoked");
  if (key.key_type != key_type_for(sig.algorithm)) return fail(Outcome::kPermError, "key type does not match a=");
  if (!key.allows_hash("sha256")) return fail(Outcome::kPermError, "key h= does not allow sha256");
  if (!key.allows_service(options.service)) return fail(Outcome::kPermError, "key s= does not allow this service");
  if (key.strict && identity_domain(sig.identity) != sig.domain) {
    return fail(Outcome::kPermError, "key t=s requires i= domain equal to d=");
  }
  auto pub = crypto::PublicKey::from_dkim(key.key_type, key.public_key);
  if (!pub) return fail(Outcome::kPermError, "bad public key: " + pub.error().text);
  r.key_bits = pub->bits();
  // RFC 8301 §3.2: RSA keys of less than 1024 bits MUST NOT be considered valid.
  if (pub->type() == crypto::KeyType::kRsa && static_cast<size_t>(pub->bits()) < options.min_rsa_bits) {
    return fail(Outcome::kFail, "key too small (" + std::to_string(pub->bits()) + " bits)");
  }
  // §3.5 t= and x=.
  int64_t now = current_time(options);
  if (sig.expiration && static_cast<int64_t>(*sig.expiration) + options.clock_skew < now) {
    return fail(Outcome::kFail, "signature expired");
  }
  if (sig.timestamp && static_cast<int64_t>(*sig.timestamp) > now + options.clock_skew) {
    return fail(Outcome::kFail, "signature timestamp in the future");
  }
  if (sig.body_length && !options.allow_body_length) {
    return fail(Outcome::kPolicy, "l= body length limits are not accepted");
  }
  // §6.1.3 step 1-2: the body hash.
  BodyDigest local;
  if (digest == nullptr) {
    local = compute_body_digest(message, sig.body_canon, sig.body_length);
    digest = &local;
  }
  if (sig.body_length && *sig.body_length > digest->canonical_length) {
    return fail(Outcome::kFail, "l= is larger than the body");
  }
  if (!crypto::equal_bytes(digest->hash, sig.body_hash)) return fail(Outcome::kFail, "body hash mismatch");
  // §6.1.3 steps 3-4: the header hash and the signature.
  std::vector<size_t> selected = select_headers(message, sig.signed_headers, field_index);
  std::string data = header_hash_input(sig.header_canon, message, selected, message.field(field_index).raw);
  if (!pub->verify_digest(crypto::sha256(data), sig.signature)) {
    return fail(Outcome::kFail, "signature did not verify");
  }
  r.status = Outcome::kPass;
  r.reason = "good signature";
  return r;
}

// Folds a DKIM-Signature field: tags separated by "; ", a line break before
// a tag that would pass the fold column, h= broken at colons, b= last and
// broken anywhere.
class FieldFolder {
 public:
  explicit FieldFolder(std::string_view name) : out_(std::string(name) + ":"), column_(out_.size()) {}

  void add_tag(std::string_view tag) {
    if (!first_) {
      out_ += ";";
      ++column_;
    }
    put_word(tag);
    first_ = false;
  }
  // h=a:b:c as pieces "h=a:", "b:", "c" that may be broken between.
  void add_list_tag(std::string_view name, const std::vector<std::string>& items) {
    if (!first_) {
      out_ += ";";
      ++column_;
    }
    first_ = false;
    for (size_t i = 0; i < items.size(); ++i) {
      std::string piece = (i == 0 ? std::string(name) + "=" : std::string()) + items[i] + (i + 1 < items.size() ? ":" : "");
      if (i == 0) {
        put_word(piece);
      } else if (column_ + piece.size() > kFoldColumn) {
        out_ += "\r\n ";
        out_ += piece;
        column_ = 1 + piece.size();
      } else {
        out_ += piece;
        column_ += piece.size();
      }
    }
  }
  // Starts the final "b=" tag; returns the text so far (the field with an
  // empty b=, as hashed, without a line end).
  std::string begin_b() {
    out_ += ";";
    ++column_;
    put_word("b=");
    return out_;
  }
  // Appends the b= value broken into lines, then the final CRLF.
  std::string finish_b(std::string_view value) {
    while (!value.empty()) {
      size_t room = column_ < kFoldColumn ? kFoldColumn - column_ : 0;
      if (room == 0) {
        out_ += "\r\n ";
        column_ = 1;
        continue;
      }
      size_t n = std::min(room, value.size());
      out_.append(value.substr(0, n));
      column_ += n;
      value.remove_prefix(n);
    }
    out_ += "\r\n";
    return out_;
  }

 private:
  void put_word(std::string_view word) {
    if (column_ + 1 + word.size() > kFoldColumn) {
      out_ += "\r\n ";
      column_ = 1;
    } else {
      out_ += " ";
      ++column_;
    }
    out_ += word;
    column_ += word.size();
  }

  std::string out_;
  size_t column_;
  bool first_ = true;
};

}  // namespace

const char* algorithm_name(Algorithm a) { return a == Algorithm::kRsaSha256 ? "rsa-sha256" : "ed25519-sha256"; }

crypto::KeyType key_type_for(Algorithm a) {
  return a == Algorithm::kRsaSha256 ? crypto::KeyType::kRsa : crypto::KeyType::kEd25519;
}

const char* outcome_name(Outcome s) {
  switch (s) {
    case Outcome::kNone: return "none";
    case Outcome::kPass: return "pass";
    case Outcome::kFail: return "fail";
    case Outcome::kNeutral: return "neutral";
    case Outcome::kPolicy: return "policy";
    case Outcome::kTempError: return "temperror";
    case Outcome::kPermError: return "permerror";
  }
  return "none";
}

Result<Signature> parse_signature(std::string_view value) {
  auto tags = TagList::parse(value);
  if (!tags) return tags.error();
  const TagList& t = *tags;
  Signature sig;

  for (const char* required : {"v", "a", "b", "bh", "d", "h", "s"}) {
    if (!t.has(required)) return sig_error(std::string("missing required tag ") + required + "=");
  }
  if (*t.get("v") != "1") return sig_error("invalid version (v= must be 1)");

  std::string a = to_lower(*t.get("a"));
  if (a == "rsa-sha256") {
    sig.algorithm = Algorithm::kRsaSha256;
  } else if (a == "ed25519-sha256") {
    sig.algorithm = Algorithm::kEd25519Sha256;
  } else if (a == "rsa-sha1") {
    return sig_error("rsa-sha1 signatures are not accepted (RFC 8301)");
  } else {
    return sig_error("unsupported algorithm " + a);
  }

  sig.b_base64 = strip_fws(*t.get("b"));
  if (!base64_decode(sig.b_base64, sig.signature) || sig.signature.empty()) return sig_error("bad b= value");
  if (!base64_decode(strip_fws(*t.get("bh")), sig.body_hash) || sig.body_hash.size() != crypto::kSha256Size) {
    return sig_error("bad bh= value");
  }

  if (auto c = t.get("c")) {
    std::string cs = to_lower(strip_fws(*c));
    std::string_view header = cs, body = "simple";
    size_t slash = cs.find('/');
    if (slash != std::string::npos) {
      header = std::string_view(cs).substr(0, slash);
      body = std::string_view(cs).substr(slash + 1);
    }
    auto canon_of = [](std::string_view s, Canon& out) {
      if (s == "simple") out = Canon::kSimple;
      else if (s == "relaxed") out = Canon::kRelaxed;
      else return false;
      return true;
    };
    if (!canon_of(header, sig.header_canon) || !canon_of(body, sig.body_canon)) return sig_error("bad c= value");
  }

  sig.domain = to_lower(*t.get("d"));
  if (!is_valid_dns_name(sig.domain)) return sig_error("bad d= domain");
  sig.selector = to_lower(*t.get("s"));
  if (!is_valid_dns_name(sig.selector)) return sig_error("bad s= selector");

  sig.signed_headers = split_colon_list(*t.get("h"));
  if (sig.signed_headers.size() > kMaxSignedHeaders) return sig_error("too many names in h=");
  bool has_from = false;
  for (const std::string& h : sig.signed_headers) {
    if (h.empty()) return sig_error("empty name in h=");
    if (iequals(h, "from")) has_from = true;
  }
  if (!has_from) return sig_error("h= does not include From");  // §5.4

  if (auto i = t.get("i")) {
    sig.identity = std::string(*i);
    size_t at = sig.identity.rfind('@');
    if (at == std::string::npos) return sig_error("bad i= identity");
    if (!is_same_or_subdomain(std::string_view(sig.identity).substr(at + 1), sig.domain)) {
      return sig_error("i= domain is not d= or a subdomain of it");  // §3.5
    }
  } else {
    sig.identity = "@" + sig.domain;
  }

  if (auto q = t.get("q")) {
    bool dns = false;
    for (const std::string& m : split_colon_list(*q)) {
      if (iequals(m, "dns/txt") || iequals(m, "dns")) dns = true;
    }
    if (!dns) return sig_error("q= has no supported query method");
  }
  uint64_t n = 0;
  if (auto l = t.get("l")) {
    if (!parse_number(*l, n)) return sig_error("bad l= value");
    sig.body_length = n;
  }
  if (auto ts = t.get("t")) {
    if (!parse_number(*ts, n)) return sig_error("bad t= value");
    sig.timestamp = n;
  }
  if (auto x = t.get("x")) {
    if (!parse_number(*x, n)) return sig_error("bad x= value");
    sig.expiration = n;
    if (sig.timestamp && n <= *sig.timestamp) return sig_error("x= is not after t=");
  }
  return sig;
}

bool KeyRecord::allows_hash(std::string_view hash) const {
  if (hashes.empty()) return true;
  return std::any_of(hashes.begin(), hashes.end(), [&](const std::string& h) { return iequals(h, hash); });
}

bool KeyRecord::allows_service(std::string_view service) const {
  if (services.empty()) return true;
  return std::any_of(services.begin(), services.end(),
                     [&](const std::string& s) { return s == "*" || iequals(s, service); });
}

Result<KeyRecord> parse_key_record(std::string_view txt) {
  auto tags = TagList::parse(txt);
  if (!tags) return tags.error();
  const TagList& t = *tags;
  KeyRecord key;
  if (auto v = t.get("v")) {
    if (t.tags().front().name != "v") return sig_error("key v= is not the first tag");
    if (*v != "DKIM1") return sig_error("bad key version");
  }
  if (auto k = t.get("k")) {
    std::string type = to_lower(strip_fws(*k));
    if (type == "rsa") {
      key.key_type = crypto::KeyType::kRsa;
    } else if (type == "ed25519") {
      key.key_type = crypto::KeyType::kEd25519;
    } else {
      return sig_error("unknown key type k=" + type);
    }
  }
  auto p = t.get("p");
  if (!p) return sig_error("key record has no p=");
  if (!base64_decode(strip_fws(*p), key.public_key)) return sig_error("bad p= value");
  if (auto h = t.get("h")) key.hashes = split_colon_list(*h);
  if (auto s = t.get("s")) key.services = split_colon_list(*s);
  if (auto flags = t.get("t")) {
    for (const std::string& f : split_colon_list(*flags)) {
      if (f == "y") key.testing = true;
      if (f == "s") key.strict = true;
    }
  }
  return key;
}

boost::asio::awaitable<KeyLookup> fetch_keys(dns::Resolver& resolver, std::string selector, std::string domain,
                                             size_t max_record_size) {
  KeyLookup out;
  std::string name = selector + "._domainkey." + domain;
  dns::Answer answer = co_await resolver.query(name, dns::RrType::kTxt);
  out.dnssec = answer.security == dns::Security::kSecure;
  if (answer.security == dns::Security::kBogus) {
    out.status = Outcome::kTempError;
    out.reason = "key lookup: DNSSEC validation failed";
    co_return out;
  }
  if (answer.temporary_failure()) {
    out.status = Outcome::kTempError;
    out.reason = std::string("key lookup: ") + dns::rcode_name(answer.rcode);
    co_return out;
  }
  if (answer.nxdomain() || answer.txt.empty()) {
    out.status = Outcome::kPermError;
    out.reason = "no key for signature";
    co_return out;
  }
  std::string first_error;
  size_t seen = 0;
  for (const std::string& txt : answer.txt) {
    if (++seen > kMaxKeyRecords) break;
    if (txt.size() > max_record_size) {
      if (first_error.empty()) first_error = "key record too large";
      continue;
    }
    auto key = parse_key_record(txt);
    if (key) {
      out.keys.push_back(std::move(*key));
    } else if (first_error.empty()) {
      first_error = key.error().text;
    }
  }
  if (out.keys.empty()) {
    out.status = Outcome::kPermError;
    out.reason = "bad key record: " + first_error;
  }
  co_return out;
}

DkimResult verify_with_key(const mail::Message& message, size_t field_index, const Signature& sig,
                           const KeyRecord& key, const VerifyOptions& options, std::string_view body_hash) {
  if (body_hash.empty()) return check_with_key(message, field_index, sig, key, options, nullptr);
  BodyDigest d;
  d.hash = std::string(body_hash);
  d.canonical_length = UINT64_MAX;  // unknown: the caller vouches for it
  return check_with_key(message, field_index, sig, key, options, &d);
}

boost::asio::awaitable<std::vector<DkimResult>> verify(dns::Resolver& resolver, const mail::Message& message,
                                                       VerifyOptions options) {
  std::vector<DkimResult> results;
  std::vector<size_t> fields = message.find_indices("DKIM-Signature");
  if (fields.size() > options.max_signatures) {
    log::info("dkim_signatures_skipped").kv("found", fields.size()).kv("verified", options.max_signatures);
    fields.resize(options.max_signatures);
  }
  // Body hashes per (canonicalization, l=) and keys per selector/domain are
  // computed once even when several signatures share them.
  std::map<std::pair<int, std::optional<uint64_t>>, BodyDigest> body_digests;
  std::map<std::string, KeyLookup> key_cache;
  for (size_t index : fields) {
    auto sig = parse_signature(message.field(index).value);
    if (!sig) {
      DkimResult r;
      r.status = Outcome::kPermError;
      r.reason = sig.error().text;
      r.field_index = index;
      // Report what can still be read, for Authentication-Results.
      if (auto tags = TagList::parse(message.field(index).value)) {
        if (auto d = tags->get("d")) r.domain = to_lower(strip_fws(*d));
        if (auto s = tags->get("s")) r.selector = strip_fws(*s);
        if (auto a = tags->get("a")) r.algorithm = strip_fws(*a);
        if (auto b = tags->get("b")) {
          r.b_full = strip_fws(*b);
          r.b = r.b_full.substr(0, std::min<size_t>(r.b_full.size(), 12));
        }
      }
      results.push_back(std::move(r));
      continue;
    }
    std::string cache_key = sig->selector + "._domainkey." + sig->domain;
    auto it = key_cache.find(cache_key);
    if (it == key_cache.end()) {
      KeyLookup lookup = co_await fetch_keys(resolver, sig->selector, sig->domain, options.max_key_record_size);
      it = key_cache.emplace(cache_key, std::move(lookup)).first;
    }
    const KeyLookup& lookup = it->second;
    if (lookup.status != Outcome::kPass) {
      DkimResult r = result_for(*sig, index);
      r.status = lookup.status;
      r.reason = lookup.reason;
      r.dnssec = lookup.dnssec;
      results.push_back(std::move(r));
      continue;
    }
    auto body_key = std::make_pair(static_cast<int>(sig->body_canon), sig->body_length);
    auto bit = body_digests.find(body_key);
    if (bit == body_digests.end()) {
      bit = body_digests.emplace(body_key, compute_body_digest(message, sig->body_canon, sig->body_length)).first;
    }
    // Several key records (e.g. an rsa and an ed25519 one under one selector):
    // a signature passes when one of the records of its key type verifies it.
    std::optional<DkimResult> best;
    for (const KeyRecord& key : lookup.keys) {
      if (key.key_type != key_type_for(sig->algorithm) && lookup.keys.size() > 1) continue;
      DkimResult r = check_with_key(message, index, *sig, key, options, &bit->second);
      if (!best || r.status == Outcome::kPass) best = std::move(r);
      if (best->status == Outcome::kPass) break;
    }
    if (!best) {
      best = result_for(*sig, index);
      best->status = Outcome::kPermError;
      best->reason = "no key of type " + std::string(crypto::key_type_name(key_type_for(sig->algorithm)));
    }
    best->dnssec = lookup.dnssec;
    results.push_back(std::move(*best));
  }
  co_return results;
}

const std::vector<std::string>& default_signed_headers() {
  static const std::vector<std::string> kHeaders = {
      "from", "to", "cc", "subject", "date", "message-id", "reply-to", "in-reply-to", "references",
      "mime-version", "content-type", "content-transfer-encoding", "content-disposition", "content-language",
      "list-id", "list-help", "list-unsubscribe", "list-unsubscribe-post", "list-subscribe", "list-post",
      "list-owner", "list-archive", "sender", "resent-from", "resent-to", "resent-date", "resent-message-id"};
  return kHeaders;
}

Result<std::string> sign(const mail::Message& message, const SignOptions& options) {
  const crypto::PrivateKey& key = options.key;
  if (!key.valid()) return Error::local("dkim sign: no private key");
  if (key.type() == crypto::KeyType::kRsa && key.bits() < 1024) {
    return Error::local("dkim sign: RSA key under 1024 bits (RFC 8301)");
  }
  std::string domain = to_lower(options.domain);
  std::string selector = to_lower(options.selector);
  if (!is_valid_dns_name(domain)) return Error::local("dkim sign: bad domain");
  if (!is_valid_dns_name(selector)) return Error::local("dkim sign: bad selector");
  if (options.identity) {
    size_t at = options.identity->rfind('@');
    if (at == std::string::npos || !is_same_or_subdomain(options.identity->substr(at + 1), domain)) {
      return Error::local("dkim sign: i= must be in d= or a subdomain");
    }
  }
  if (message.find_indices("From").empty()) return Error::perm("5.6.0", "dkim sign: message has no From field");
  Algorithm alg = key.type() == crypto::KeyType::kRsa ? Algorithm::kRsaSha256 : Algorithm::kEd25519Sha256;

  // h=: each wanted field as many times as it occurs; From once more (§8.15).
  const std::vector<std::string>& wanted = options.headers.empty() ? default_signed_headers() : options.headers;
  std::vector<std::string> h;
  std::vector<std::string> seen;
  for (const std::string& name : wanted) {
    std::string lower = to_lower(name);
    if (std::find(seen.begin(), seen.end(), lower) != seen.end()) continue;
    seen.push_back(lower);
    size_t count = message.find_indices(lower).size();
    if (lower == "from" && options.oversign_from) ++count;
    for (size_t i = 0; i < count; ++i) h.push_back(lower);
  }
  if (std::find(seen.begin(), seen.end(), "from") == seen.end()) {
    return Error::local("dkim sign: the signed header list must include From");
  }

  BodyHasher body(options.body_canon, options.body_length);
  body.update(message.body());
  std::string bh = base64_encode(body.finish());

  int64_t now = options.timestamp ? *options.timestamp : static_cast<int64_t>(std::time(nullptr));
  FieldFolder folder("DKIM-Signature");
  folder.add_tag("v=1");
  folder.add_tag(std::string("a=") + algorithm_name(alg));
  folder.add_tag(std::string("c=") + canon_name(options.header_canon) + "/" + canon_name(options.body_canon));
  folder.add_tag("d=" + domain);
  folder.add_tag("s=" + selector);
  if (options.identity) folder.add_tag("i=" + *options.identity);
  folder.add_tag("t=" + std::to_string(now));
  if (options.expire_after) folder.add_tag("x=" + std::to_string(now + *options.expire_after));
  if (options.body_length) folder.add_tag("l=" + std::to_string(*options.body_length));
  folder.add_list_tag("h", h);
  folder.add_tag("bh=" + bh);
  std::string unsigned_field = folder.begin_b();

  std::vector<size_t> selected = select_headers(message, h);
  std::string data = header_hash_input(options.header_canon, message, selected, unsigned_field + "\r\n");
  auto signature = key.sign_digest(crypto::sha256(data));
  if (!signature) return signature.error();
  return folder.finish_b(base64_encode(*signature));
}

Result<GeneratedKey> keygen(crypto::KeyType type, int rsa_bits) {
  auto key = crypto::PrivateKey::generate(type, rsa_bits);
  if (!key) return key.error();
  GeneratedKey out;
  out.private_pem = key->to_pem();
  out.dns_txt = std::string("v=DKIM1; k=") + crypto::key_type_name(type) + "; p=" + key->dkim_public_value();
  out.key = std::move(*key);
  return out;
}

Result<crypto::PrivateKey> load_private_key(std::string_view path_or_text) {
  if (path_or_text.find("-----BEGIN") != std::string_view::npos) return crypto::PrivateKey::from_text(path_or_text);
  if (path_or_text.find('/') != std::string_view::npos || path_or_text.find('.') != std::string_view::npos) {
    auto text = fs::read_file(std::string(path_or_text), 1024 * 1024);
    if (text) return crypto::PrivateKey::from_text(*text);
  }
  return crypto::PrivateKey::from_text(path_or_text);
}

}  // namespace tern::auth::dkim
