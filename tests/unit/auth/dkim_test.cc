// Unit tests for DKIM (src/auth/dkim*.h, src/auth/crypto.h): canonicalization
// edge cases (RFC 6376 §3.4), streaming body hashing, tag-list and signature
// parsing errors, key records, b= removal, header selection (§5.4.2),
// sign/verify round trips with both algorithms, l=, x=, t=, small RSA keys
// (RFC 8301), over-signed From, DNS failure mapping and DNSSEC reporting.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <random>

#include "auth/dkim.h"
#include "base/strings.h"
#include "dns/fake_resolver.h"
#include "test_support.h"

namespace tern::auth::dkim {
namespace {

using tern::testing::run_sync;

constexpr int64_t kNow = 1700000000;

constexpr const char* kRsa512Pem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIBUwIBADANBgkqhkiG9w0BAQEFAASCAT0wggE5AgEAAkEAzQiNVGyk2QdmWDUL\n"
    "6IfqDpDdBTzL/WUQmieucSilYhJZV+CQyw75WkbqSyg+MqXL4gUnCMHmd68kza7X\n"
    "TaA/GwIDAQABAkBCo/Xzq8BEvg/4uX0eXhaoF1OPITyYJqInyJ/9LZ3bas/obe8y\n"
    "iPK7dRNJ7kg3nxsO43+jR58R7ycq8j+do3m5AiEA+N85r1YRptjKzyxyRuCgqqnK\n"
    "E0+aaiGrMG1j0SqXkY8CIQDS5+T1keEsI4dYlL8xvfnM6XTqFTLZyHAtadSdH3/b\n"
    "tQIgIdXHc+0RrUtgF1aFmtlDPrCixolWBwPY0Fau8WsG/EUCIBlkFaqC34sC0/6U\n"
    "GdiROIu054BvAOo7OVYeUZyA+FGpAiAfPOS/J2JX+Uk08jfakYAJCCP5OxSHiHRD\n"
    "RVjou+Qb1g==\n"
    "-----END PRIVATE KEY-----\n";

constexpr const char* kMessage =
    "From: Alice <alice@example.com>\r\n"
    "To: bob@example.org\r\n"
    "Subject: Hello\r\n"
    "  world\r\n"
    "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    "Message-ID: <1@example.com>\r\n"
    "\r\n"
    "Hi Bob,  \r\n"
    "\r\n"
    "bye\r\n"
    "\r\n";

std::string b64_sha256(std::string_view s) { return base64_encode(crypto::sha256(s)); }
std::string bh(Canon c, std::string_view body, std::optional<uint64_t> l = std::nullopt) {
  return base64_encode(body_hash(c, body, l));
}

mail::Message parse(std::string text) {
  auto m = mail::Message::parse(std::move(text));
  EXPECT_TRUE(m.has_value()) << (m ? "" : m.error().text);
  return m ? std::move(*m) : mail::Message();
}

// ------------------------------------------------------- canonicalization

TEST(BodyCanon, EmptyBody) {
  // §3.4.3: simple canonicalizes an empty body to one CRLF; §3.4.4: relaxed to nothing.
  EXPECT_EQ(bh(Canon::kSimple, ""), b64_sha256("\r\n"));
  EXPECT_EQ(bh(Canon::kRelaxed, ""), b64_sha256(""));
  EXPECT_EQ(bh(Canon::kSimple, "\r\n\r\n\r\n"), b64_sha256("\r\n"));
  EXPECT_EQ(bh(Canon::kRelaxed, "\r\n  \r\n\t\r\n"), b64_sha256(""));
  // Well-known constants.
  EXPECT_EQ(bh(Canon::kSimple, ""), "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
  EXPECT_EQ(bh(Canon::kRelaxed, ""), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
}

TEST(BodyCanon, TrailingEmptyLinesAndMissingFinalCrlf) {
  EXPECT_EQ(bh(Canon::kSimple, "a\r\n\r\n\r\n"), b64_sha256("a\r\n"));
  EXPECT_EQ(bh(Canon::kSimple, "a"), b64_sha256("a\r\n"));
  EXPECT_EQ(bh(Canon::kRelaxed, "a"), b64_sha256("a\r\n"));
  EXPECT_EQ(bh(Canon::kSimple, "a\r\n\r\nb\r\n\r\n"), b64_sha256("a\r\n\r\nb\r\n"));
  // Inner empty lines stay.
  EXPECT_EQ(bh(Canon::kRelaxed, "a\r\n\r\n\r\nb"), b64_sha256("a\r\n\r\n\r\nb\r\n"));
}

TEST(BodyCanon, RelaxedWhitespace) {
  // §3.4.4: WSP at line end removed, WSP runs become one SP (also at line start).
  EXPECT_EQ(bh(Canon::kRelaxed, " C \r\nD \t E\r\n\r\n\r\n"), b64_sha256(" C\r\nD E\r\n"));
  EXPECT_EQ(bh(Canon::kRelaxed, "a  \t \r\n"), b64_sha256("a\r\n"));
  EXPECT_EQ(bh(Canon::kRelaxed, "a \r\n \r\nb"), b64_sha256("a\r\n\r\nb\r\n"));
  EXPECT_EQ(bh(Canon::kRelaxed, "trailing   "), b64_sha256("trailing\r\n"));
  // Simple keeps whitespace as is.
  EXPECT_EQ(bh(Canon::kSimple, " C \r\nD \t E\r\n\r\n\r\n"), b64_sha256(" C \r\nD \t E\r\n"));
  // A lone CR or LF is an ordinary byte.
  EXPECT_EQ(bh(Canon::kRelaxed, "a\rb \n c\r\n"), b64_sha256("a\rb \n c\r\n"));
  EXPECT_EQ(bh(Canon::kSimple, "x\r"), b64_sha256("x\r\r\n"));
}

TEST(BodyCanon, BodyLengthLimit) {
  // l= counts canonical octets.
  EXPECT_EQ(bh(Canon::kRelaxed, "abc  def\r\nmore\r\n", 5), b64_sha256("abc d"));
  EXPECT_EQ(bh(Canon::kSimple, "abc\r\n", 0), b64_sha256(""));
  EXPECT_EQ(bh(Canon::kSimple, "abc\r\n", 100), b64_sha256("abc\r\n"));
  BodyHasher h(Canon::kRelaxed, 3);
  h.update("hello   world\r\n\r\n");
  h.finish();
  EXPECT_EQ(h.canonical_length(), 13u);
}

// Streaming in arbitrary chunks gives the one-shot result, including CR|LF
// and WSP runs split across chunks; long inputs exercise the SIMD path.
TEST(BodyCanon, StreamingMatchesOneShot) {
  std::mt19937 rng(42);
  const char alphabet[] = {'a', 'b', ' ', '\t', '\r', '\n', 'x', '\xe9'};
  for (int round = 0; round < 300; ++round) {
    std::string body;
    size_t len = rng() % (round < 200 ? 80 : 5000);
    for (size_t i = 0; i < len; ++i) {
      unsigned r = rng() % 12;
      if (r < 2) body += "\r\n";
      else body.push_back(alphabet[rng() % sizeof alphabet]);
    }
    for (Canon c : {Canon::kSimple, Canon::kRelaxed}) {
      std::optional<uint64_t> limit;
      if (round % 3 == 0) limit = rng() % (len + 3);
      std::string want = body_hash(c, body, limit);
      // Reference: byte-at-a-time (no fast path ever applies to 1-byte chunks).
      BodyHasher bytes(c, limit);
      for (char ch : body) bytes.update(std::string_view(&ch, 1));
      EXPECT_EQ(bytes.finish(), want) << "round " << round;
      BodyHasher chunks(c, limit);
      size_t pos = 0;
      while (pos < body.size()) {
        size_t n = std::min<size_t>(body.size() - pos, 1 + rng() % 40);
        chunks.update(std::string_view(body).substr(pos, n));
        pos += n;
      }
      EXPECT_EQ(chunks.finish(), want) << "round " << round;
    }
  }
}

// A naive reference implementation of §3.4.4 for cross-checking.
std::string naive_relaxed(std::string_view body) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t e = body.find("\r\n", pos);
    if (e == std::string_view::npos) {
      lines.emplace_back(body.substr(pos));
      break;
    }
    lines.emplace_back(body.substr(pos, e - pos));
    pos = e + 2;
  }
  for (auto& l : lines) {
    std::string o;
    bool ws = false;
    for (char c : l) {
      if (c == ' ' || c == '\t') {
        ws = true;
        continue;
      }
      if (ws) o.push_back(' ');
      ws = false;
      o.push_back(c);
    }
    l = o;
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  std::string out;
  for (auto& l : lines) out += l + "\r\n";
  return out;
}

TEST(BodyCanon, RelaxedMatchesNaiveReference) {
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    std::string body;
    size_t len = rng() % 3000;
    for (size_t i = 0; i < len; ++i) {
      unsigned r = rng() % 20;
      body += r < 2 ? "\r\n" : r < 5 ? " " : r < 6 ? "\t" : std::string(1, static_cast<char>('a' + r));
    }
    EXPECT_EQ(base64_encode(body_hash(Canon::kRelaxed, body)), b64_sha256(naive_relaxed(body))) << body;
  }
}

TEST(HeaderCanon, SimpleAndRelaxed) {
  // RFC 6376 §3.4.5 example.
  EXPECT_EQ(canonicalize_header(Canon::kRelaxed, "A: X\r\n"), "a:X\r\n");
  EXPECT_EQ(canonicalize_header(Canon::kRelaxed, "B : Y\t\r\n\tZ  \r\n"), "b:Y Z\r\n");
  EXPECT_EQ(canonicalize_header(Canon::kSimple, "B : Y\t\r\n\tZ  \r\n"), "B : Y\t\r\n\tZ  \r\n");
  EXPECT_EQ(canonicalize_header(Canon::kRelaxed, "Subject:\r\n"), "subject:\r\n");
  EXPECT_EQ(canonicalize_header(Canon::kRelaxed, "X-Empty:   \r\n \r\n"), "x-empty:\r\n");
}

// ------------------------------------------------------- tag lists

TEST(TagList, ParsesAndRejects) {
  auto ok = TagList::parse(" v = 1 ;a=rsa-sha256;\r\n\th= from : to ;");
  ASSERT_TRUE(ok.has_value()) << ok.error().text;
  EXPECT_EQ(*ok->get("v"), "1");
  EXPECT_EQ(*ok->get("h"), "from : to");
  EXPECT_FALSE(ok->get("x").has_value());
  EXPECT_TRUE(TagList::parse("").has_value());
  EXPECT_TRUE(TagList::parse("a=").has_value());  // empty value
  EXPECT_FALSE(TagList::parse("a=1; a=2").has_value());     // duplicate
  EXPECT_FALSE(TagList::parse("a=1;; b=2").has_value());    // empty tag-spec
  EXPECT_FALSE(TagList::parse("a=1; noequals").has_value());
  EXPECT_FALSE(TagList::parse("1a=1").has_value());         // name must start with ALPHA
  EXPECT_FALSE(TagList::parse("a-b=1").has_value());
  EXPECT_FALSE(TagList::parse("=1").has_value());
  EXPECT_FALSE(TagList::parse("a=x\r\ny").has_value());    // line end not followed by WSP
  EXPECT_FALSE(TagList::parse("a=x\x01y").has_value());
  std::string many;
  for (int i = 0; i < 70; ++i) many += "t" + std::to_string(i) + "=1;";
  EXPECT_FALSE(TagList::parse(many).has_value());
}

TEST(TagList, RemoveBValue) {
  EXPECT_EQ(remove_b_value("DKIM-Signature: v=1; bh=abc; b=sig\r\n  nature\r\n"),
            "DKIM-Signature: v=1; bh=abc; b=\r\n");
  EXPECT_EQ(remove_b_value("v=1; b = sig ; bh=abc"), "v=1; b =; bh=abc");
  EXPECT_EQ(remove_b_value("DKIM-Signature: b=xyz; v=1\r\n"), "DKIM-Signature: b=; v=1\r\n");
  EXPECT_EQ(remove_b_value("bh=abc; d=b.example"), "bh=abc; d=b.example");
}

// ------------------------------------------------------- signature / key parsing

std::string sig_value(std::string extra, std::string without = "") {
  std::vector<std::pair<std::string, std::string>> tags = {
      {"v", "1"},           {"a", "rsa-sha256"}, {"d", "Example.COM"}, {"s", "sel"},
      {"h", "from:to"},     {"bh", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},
      {"b", "AAAA"}};
  std::string out;
  for (auto& [k, v] : tags) {
    if (k == without) continue;
    out += k + "=" + v + "; ";
  }
  return out + extra;
}

TEST(ParseSignature, GoodAndDefaults) {
  auto s = parse_signature(sig_value(""));
  ASSERT_TRUE(s.has_value()) << s.error().text;
  EXPECT_EQ(s->domain, "example.com");
  EXPECT_EQ(s->identity, "@example.com");
  EXPECT_EQ(s->header_canon, Canon::kSimple);
  EXPECT_EQ(s->body_canon, Canon::kSimple);
  EXPECT_EQ(s->signed_headers, (std::vector<std::string>{"from", "to"}));
  auto r = parse_signature(sig_value("c=relaxed; i=user@sub.example.com; l=10; t=5; x=6; q=dns/txt; z=a|b"));
  ASSERT_TRUE(r.has_value()) << r.error().text;
  EXPECT_EQ(r->header_canon, Canon::kRelaxed);
  EXPECT_EQ(r->body_canon, Canon::kSimple);  // "relaxed" alone means relaxed/simple
  EXPECT_EQ(*r->body_length, 10u);
}

TEST(ParseSignature, Errors) {
  for (const char* t : {"v", "a", "b", "bh", "d", "h", "s"}) {
    EXPECT_FALSE(parse_signature(sig_value("", t)).has_value()) << "missing " << t;
  }
  auto sha1 = parse_signature("v=1; a=rsa-sha1; d=example.com; s=s; h=from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA");
  ASSERT_FALSE(sha1.has_value());
  EXPECT_NE(sha1.error().text.find("8301"), std::string::npos);
  EXPECT_FALSE(parse_signature(sig_value("x=1", "v") + "; v=2").has_value());
  EXPECT_FALSE(parse_signature(sig_value("v=1")).has_value());  // duplicate v=
  EXPECT_FALSE(parse_signature(sig_value("i=u@other.com")).has_value());
  EXPECT_FALSE(parse_signature(sig_value("i=u@notexample.com")).has_value());
  EXPECT_FALSE(parse_signature(sig_value("c=fancy/simple")).has_value());
  EXPECT_FALSE(parse_signature(sig_value("q=http")).has_value());
  EXPECT_FALSE(parse_signature(sig_value("t=10; x=10")).has_value());
  EXPECT_FALSE(parse_signature(sig_value("l=-1")).has_value());
  EXPECT_FALSE(parse_signature(sig_value("l=99999999999999999999999")).has_value());
  auto no_from = sig_value("h=to:subject", "h");
  EXPECT_NE(parse_signature(no_from).error().text.find("From"), std::string::npos);
  EXPECT_FALSE(parse_signature("v=1; a=rsa-sha256; d=ex ample.com; s=s; h=from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA").has_value());
}

TEST(KeyRecord, Parse) {
  auto k = parse_key_record("v=DKIM1; k=ed25519; t=y:s; h=sha256; s=email:tlsrpt; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
  ASSERT_TRUE(k.has_value()) << k.error().text;
  EXPECT_EQ(k->key_type, crypto::KeyType::kEd25519);
  EXPECT_TRUE(k->testing);
  EXPECT_TRUE(k->strict);
  EXPECT_TRUE(k->allows_hash("sha256"));
  EXPECT_TRUE(k->allows_service("email"));
  EXPECT_FALSE(k->allows_service("other"));
  EXPECT_EQ(k->public_key.size(), 32u);
  auto revoked = parse_key_record("v=DKIM1; p=");
  ASSERT_TRUE(revoked.has_value());
  EXPECT_TRUE(revoked->revoked());
  EXPECT_FALSE(parse_key_record("k=rsa; v=DKIM1; p=AAAA").has_value());  // v= not first
  EXPECT_FALSE(parse_key_record("v=DKIM2; p=AAAA").has_value());
  EXPECT_FALSE(parse_key_record("k=dsa; p=AAAA").has_value());
  EXPECT_FALSE(parse_key_record("k=rsa").has_value());  // no p=
  EXPECT_FALSE(parse_key_record("p=!!!").has_value());
  auto sha1_only = parse_key_record("h=sha1; p=AAAA");
  ASSERT_TRUE(sha1_only.has_value());
  EXPECT_FALSE(sha1_only->allows_hash("sha256"));
}

// ------------------------------------------------------- header selection

TEST(SelectHeaders, BottomUpWithRepeats) {
  mail::Message m = parse("Received: r1\r\nFrom: f\r\nReceived: r2\r\nReceived: r3\r\nTo: t\r\n\r\n");
  // Received listed twice: r3 then r2 (the last instances, bottom-up); a
  // third "received" would select r1; a missing name selects nothing.
  EXPECT_EQ(select_headers(m, {"received", "from", "received", "cc"}), (std::vector<size_t>{3, 1, 2}));
  EXPECT_EQ(select_headers(m, {"Received", "received", "received", "received"}), (std::vector<size_t>{3, 2, 0}));
  EXPECT_EQ(select_headers(m, {"from", "from"}), (std::vector<size_t>{1}));
  EXPECT_EQ(select_headers(m, {"received"}, 3), (std::vector<size_t>{2}));
}

// ------------------------------------------------------- sign and verify

struct Fixture {
  dns::FakeResolver resolver;
  crypto::PrivateKey key;
  std::string domain = "example.com";
  std::string selector = "sel";

  explicit Fixture(crypto::KeyType type) {
    auto g = keygen(type, 1024);
    EXPECT_TRUE(g.has_value());
    key = g->key;
    resolver.add_txt(selector + "._domainkey." + domain, g->dns_txt);
  }
  SignOptions options() const {
    SignOptions o;
    o.domain = domain;
    o.selector = selector;
    o.key = key;
    o.timestamp = kNow;
    return o;
  }
  Result<std::string> sign_text(const std::string& text, SignOptions o) {
    auto f = sign(parse(text), o);
    if (!f) return f.error();
    return *f + text;
  }
  std::vector<DkimResult> check(const std::string& text, VerifyOptions vo = {}) {
    if (!vo.now) vo.now = kNow;
    return run_sync(verify(resolver, parse(text), vo));
  }
};

TEST(SignVerify, RoundTripBothAlgorithmsAllCanonicalizations) {
  for (auto type : {crypto::KeyType::kRsa, crypto::KeyType::kEd25519}) {
    Fixture fx(type);
    for (Canon hc : {Canon::kSimple, Canon::kRelaxed}) {
      for (Canon bc : {Canon::kSimple, Canon::kRelaxed}) {
        SignOptions o = fx.options();
        o.header_canon = hc;
        o.body_canon = bc;
        auto text = fx.sign_text(kMessage, o);
        ASSERT_TRUE(text.has_value()) << text.error().text;
        auto r = fx.check(*text);
        ASSERT_EQ(r.size(), 1u);
        EXPECT_EQ(r[0].status, Outcome::kPass) << r[0].reason;
        EXPECT_EQ(r[0].algorithm, type == crypto::KeyType::kRsa ? "rsa-sha256" : "ed25519-sha256");
        EXPECT_EQ(r[0].domain, "example.com");
        EXPECT_EQ(r[0].selector, "sel");
        EXPECT_GE(r[0].b.size(), 8u);
        EXPECT_FALSE(r[0].dnssec);
        // Any change to a signed header or the body breaks it.
        std::string changed = *text;
        changed.replace(changed.find("Subject: Hello"), 14, "Subject: Jello");
        EXPECT_EQ(fx.check(changed)[0].status, Outcome::kFail);
        EXPECT_EQ(fx.check(*text + "more\r\n")[0].reason, "body hash mismatch");
      }
    }
  }
}

TEST(SignVerify, RelaxedSurvivesWhitespaceChangesSimpleDoesNot) {
  Fixture fx(crypto::KeyType::kEd25519);
  auto relaxed = fx.sign_text(kMessage, fx.options());
  ASSERT_TRUE(relaxed.has_value());
  std::string munged = *relaxed;
  munged.replace(munged.find("To: bob"), 7, "to:   bob");
  munged.replace(munged.find("bye\r\n"), 5, "bye \t \r\n\r\n");
  EXPECT_EQ(fx.check(munged)[0].status, Outcome::kPass);
  SignOptions so = fx.options();
  so.header_canon = so.body_canon = Canon::kSimple;
  auto simple = fx.sign_text(kMessage, so);
  ASSERT_TRUE(simple.has_value());
  std::string m2 = *simple;
  m2.replace(m2.find("To: bob"), 7, "to:   bob");
  EXPECT_EQ(fx.check(m2)[0].status, Outcome::kFail);
}

TEST(SignVerify, FieldFormatOversigningAndFolding) {
  Fixture fx(crypto::KeyType::kRsa);
  auto field = sign(parse(kMessage), fx.options());
  ASSERT_TRUE(field.has_value());
  EXPECT_TRUE(field->starts_with("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=sel;"));
  EXPECT_TRUE(field->ends_with("\r\n"));
  for (std::string_view line : split(*field, '\n')) EXPECT_LE(line.size(), 79u) << line;  // 78 + CR
  auto m = parse(*field + kMessage);
  auto sig = parse_signature(m.field(0).value);
  ASSERT_TRUE(sig.has_value()) << sig.error().text;
  EXPECT_EQ(sig->signed_headers,
            (std::vector<std::string>{"from", "from", "to", "subject", "date", "message-id"}));
  EXPECT_EQ(*sig->timestamp, static_cast<uint64_t>(kNow));
  // From added at the top or the bottom of the header breaks the signature.
  std::string top = *field + "From: mallory@evil.example\r\n" + kMessage;
  EXPECT_EQ(fx.check(top)[0].status, Outcome::kFail);
  std::string bottom = *field + kMessage;
  bottom.insert(bottom.find("\r\n\r\n") + 2, "From: mallory@evil.example\r\n");
  EXPECT_EQ(fx.check(bottom)[0].status, Outcome::kFail);
  // Unsigned headers may be added freely.
  EXPECT_EQ(fx.check("Received: by relay\r\n" + *field + kMessage)[0].status, Outcome::kPass);
}

TEST(SignVerify, BodyLengthTag) {
  Fixture fx(crypto::KeyType::kEd25519);
  SignOptions o = fx.options();
  mail::Message m = parse(kMessage);
  BodyHasher h(o.body_canon);
  h.update(m.body());
  h.finish();
  o.body_length = h.canonical_length();
  auto text = fx.sign_text(kMessage, o);
  ASSERT_TRUE(text.has_value());
  // Content appended after the signed length still verifies (the l= risk)...
  EXPECT_EQ(fx.check(*text + "appended\r\n")[0].status, Outcome::kPass);
  // ...unless local policy refuses l=.
  VerifyOptions strict;
  strict.allow_body_length = false;
  EXPECT_EQ(fx.check(*text, strict)[0].status, Outcome::kPolicy);
  // l= larger than the body.
  o.body_length = 100000;
  auto too_long = fx.sign_text(kMessage, o);
  ASSERT_TRUE(too_long.has_value());
  EXPECT_EQ(fx.check(*too_long)[0].status, Outcome::kFail);
}

TEST(SignVerify, ExpirationAndFutureTimestamp) {
  Fixture fx(crypto::KeyType::kEd25519);
  SignOptions o = fx.options();
  o.expire_after = 3600;
  auto text = fx.sign_text(kMessage, o);
  ASSERT_TRUE(text.has_value());
  VerifyOptions vo;
  vo.now = kNow + 1000;
  EXPECT_EQ(fx.check(*text, vo)[0].status, Outcome::kPass);
  vo.now = kNow + 3600 + 301;
  auto expired = fx.check(*text, vo);
  EXPECT_EQ(expired[0].status, Outcome::kFail);
  EXPECT_EQ(expired[0].reason, "signature expired");
  vo.now = kNow - 1000;  // t= far in the future
  EXPECT_EQ(fx.check(*text, vo)[0].status, Outcome::kFail);
  vo.now = kNow - 100;  // within the allowed clock skew
  EXPECT_EQ(fx.check(*text, vo)[0].status, Outcome::kPass);
}

// Builds a signature by hand (sign() refuses small keys and rsa-sha1).
std::string hand_signed(const std::string& message, const std::string& tags, const crypto::PrivateKey& key) {
  mail::Message m = parse(message);
  auto sig_field = "DKIM-Signature: " + tags + "; b=\r\n";
  auto sig = parse_signature(tags + "; b=AAAA");
  EXPECT_TRUE(sig.has_value()) << (sig ? "" : sig.error().text);
  auto data = header_hash_input(sig->header_canon, m, select_headers(m, sig->signed_headers), sig_field);
  auto b = key.sign_digest(crypto::sha256(data));
  EXPECT_TRUE(b.has_value());
  return "DKIM-Signature: " + tags + "; b=" + base64_encode(*b) + "\r\n" + message;
}

TEST(SignVerify, SmallRsaKeyIsRejected) {
  auto key = crypto::PrivateKey::from_pem(kRsa512Pem);
  ASSERT_TRUE(key.has_value()) << key.error().text;
  EXPECT_EQ(key->bits(), 512);
  SignOptions so;
  so.domain = "example.com";
  so.selector = "small";
  so.key = *key;
  EXPECT_FALSE(sign(parse(kMessage), so).has_value());
  mail::Message m = parse(kMessage);
  std::string tags = "v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=small; h=from:to:subject; bh=" +
                     bh(Canon::kRelaxed, m.body());
  std::string text = hand_signed(kMessage, tags, *key);
  dns::FakeResolver resolver;
  resolver.add_txt("small._domainkey.example.com", "v=DKIM1; p=" + key->dkim_public_value());
  VerifyOptions vo;
  vo.now = kNow;
  auto r = run_sync(verify(resolver, parse(text), vo));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, Outcome::kFail);
  EXPECT_EQ(r[0].reason, "key too small (512 bits)");
  EXPECT_EQ(r[0].key_bits, 512);
  // The signature itself is good: with the limit lowered it passes.
  vo.min_rsa_bits = 512;
  EXPECT_EQ(run_sync(verify(resolver, parse(text), vo))[0].status, Outcome::kPass);
}

TEST(SignVerify, Sha1SignatureIsPermError) {
  Fixture fx(crypto::KeyType::kRsa);
  std::string text = "DKIM-Signature: v=1; a=rsa-sha1; d=example.com; s=sel; h=from; bh=AAAA; b=AAAA\r\n" +
                     std::string(kMessage);
  auto r = fx.check(text);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, Outcome::kPermError);
  EXPECT_EQ(r[0].domain, "example.com");  // still reported for Authentication-Results
}

TEST(SignVerify, KeyFlagsAndDnsOutcomes) {
  Fixture fx(crypto::KeyType::kEd25519);
  auto text = fx.sign_text(kMessage, fx.options());
  ASSERT_TRUE(text.has_value());
  std::string p = fx.key.dkim_public_value();
  const std::string name = "sel._domainkey.example.com";
  auto with_record = [&](const std::string& record) {
    Fixture other(crypto::KeyType::kEd25519);
    other.resolver = dns::FakeResolver();
    if (!record.empty()) other.resolver.add_txt(name, record);
    return other.check(*text)[0];
  };
  DkimResult testing = with_record("v=DKIM1; k=ed25519; t=y; p=" + p);
  EXPECT_EQ(testing.status, Outcome::kPass);
  EXPECT_TRUE(testing.testing);
  EXPECT_EQ(with_record("v=DKIM1; k=ed25519; p=").status, Outcome::kPermError);        // revoked
  EXPECT_EQ(with_record("v=DKIM1; k=rsa; p=" + p).status, Outcome::kPermError);        // wrong type
  EXPECT_EQ(with_record("v=DKIM1; k=ed25519; h=sha1; p=" + p).status, Outcome::kPermError);
  EXPECT_EQ(with_record("v=DKIM1; k=ed25519; s=tlsrpt; p=" + p).status, Outcome::kPermError);
  EXPECT_EQ(with_record("v=DKIM1; k=ed25519; t=s; p=" + p).status, Outcome::kPass);  // i= defaults to @d=
  EXPECT_EQ(with_record("garbage").status, Outcome::kPermError);
  EXPECT_EQ(with_record("").status, Outcome::kPermError);  // NXDOMAIN

  Fixture f2(crypto::KeyType::kEd25519);
  f2.resolver = dns::FakeResolver();
  f2.resolver.set_rcode(name, dns::Rcode::kServFail);
  EXPECT_EQ(f2.check(*text)[0].status, Outcome::kTempError);
  f2.resolver.set_rcode(name, dns::Rcode::kTimeout);
  EXPECT_EQ(f2.check(*text)[0].status, Outcome::kTempError);

  fx.resolver.set_security(name, dns::Security::kSecure);
  DkimResult secure = fx.check(*text)[0];
  EXPECT_EQ(secure.status, Outcome::kPass);
  EXPECT_TRUE(secure.dnssec);
  fx.resolver.set_security(name, dns::Security::kBogus);
  EXPECT_EQ(fx.check(*text)[0].status, Outcome::kTempError);
}

TEST(SignVerify, StrictKeyRejectsSubdomainIdentity) {
  Fixture fx(crypto::KeyType::kEd25519);
  SignOptions o = fx.options();
  o.identity = "user@sub.example.com";
  auto text = fx.sign_text(kMessage, o);
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(fx.check(*text)[0].status, Outcome::kPass);
  fx.resolver = dns::FakeResolver();
  fx.resolver.add_txt("sel._domainkey.example.com", "v=DKIM1; k=ed25519; t=s; p=" + fx.key.dkim_public_value());
  EXPECT_EQ(fx.check(*text)[0].status, Outcome::kPermError);
  o.identity = "user@elsewhere.org";
  EXPECT_FALSE(sign(parse(kMessage), o).has_value());
}

TEST(SignVerify, SignatureLimitAndDuplicateKeyLookups) {
  Fixture fx(crypto::KeyType::kEd25519);
  std::string text = kMessage;
  for (int i = 0; i < 12; ++i) {
    auto t = fx.sign_text(text, fx.options());
    ASSERT_TRUE(t.has_value());
    text = *t;
  }
  auto r = fx.check(text);
  ASSERT_EQ(r.size(), 10u);  // default max_signatures
  for (const auto& x : r) EXPECT_EQ(x.status, Outcome::kPass) << x.reason;
  EXPECT_EQ(fx.resolver.query_count(), 1u);
}

TEST(SignVerify, SeveralKeyRecordsUnderOneSelector) {
  Fixture fx(crypto::KeyType::kEd25519);
  auto other = keygen(crypto::KeyType::kEd25519);
  ASSERT_TRUE(other.has_value());
  // A stale record first, then the right one.
  fx.resolver = dns::FakeResolver();
  fx.resolver.add_txt("sel._domainkey.example.com", other->dns_txt);
  fx.resolver.add_txt("sel._domainkey.example.com", "v=DKIM1; k=ed25519; p=" + fx.key.dkim_public_value());
  auto text = fx.sign_text(kMessage, fx.options());
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(fx.check(*text)[0].status, Outcome::kPass);
}

TEST(SignVerify, UnparsableSignatureIsPermError) {
  Fixture fx(crypto::KeyType::kEd25519);
  auto r = fx.check("DKIM-Signature: v=1; a=ed25519-sha256; d=example.com; d=dup.example\r\n" + std::string(kMessage));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, Outcome::kPermError);
  EXPECT_NE(r[0].reason.find("duplicate"), std::string::npos);
  EXPECT_TRUE(fx.check(kMessage).empty());  // no signature: no results
}

TEST(Keys, KeygenAndLoading) {
  auto ed = keygen(crypto::KeyType::kEd25519);
  ASSERT_TRUE(ed.has_value());
  EXPECT_TRUE(ed->dns_txt.starts_with("v=DKIM1; k=ed25519; p="));
  auto reloaded = load_private_key(ed->private_pem);
  ASSERT_TRUE(reloaded.has_value());
  EXPECT_EQ(reloaded->dkim_public_value(), ed->key.dkim_public_value());
  // dkimpy's format: the raw seed in base64.
  auto from_seed = load_private_key(base64_encode(ed->key.ed25519_seed()));
  ASSERT_TRUE(from_seed.has_value());
  EXPECT_EQ(from_seed->dkim_public_value(), ed->key.dkim_public_value());
  auto rsa = keygen(crypto::KeyType::kRsa, 1024);
  ASSERT_TRUE(rsa.has_value());
  EXPECT_TRUE(rsa->dns_txt.starts_with("v=DKIM1; k=rsa; p=MIGfMA0"));
  EXPECT_FALSE(keygen(crypto::KeyType::kRsa, 512).has_value());
  EXPECT_FALSE(load_private_key("not a key").has_value());
  EXPECT_FALSE(crypto::PublicKey::from_dkim(crypto::KeyType::kEd25519, "short").has_value());
  EXPECT_FALSE(crypto::PublicKey::from_dkim(crypto::KeyType::kRsa, "\x30\x03garbage").has_value());
}

}  // namespace
}  // namespace tern::auth::dkim
