// Tests for the PLAIN, LOGIN and SCRAM-SHA-256 server mechanisms, including
// the RFC 7677 §3 example exchange.
#include "users/sasl.h"

#include <gtest/gtest.h>

#include "base/strings.h"
#include "test_util.h"

namespace tern::users {
namespace {

using namespace std::string_literals;
using Step = SaslServer::Step;

constexpr uint32_t kIter = 4096;

class SaslTest : public ::testing::Test {
 protected:
  SaslTest() {
    store_.insert("alice@example.test", derive_credential("wonderland", kIter, "alice-salt"));
    std::string rfc_salt;
    EXPECT_TRUE(base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", rfc_salt));
    store_.insert("user", derive_credential("pencil", kIter, rfc_salt));
  }
  AccountStore store_;
};

TEST_F(SaslTest, UnknownMechanism) {
  EXPECT_EQ(SaslServer::create("CRAM-MD5", store_), nullptr);
  EXPECT_EQ(SaslServer::create("SCRAM-SHA-1", store_), nullptr);
  EXPECT_NE(SaslServer::create("plain", store_), nullptr);
  EXPECT_NE(SaslServer::create("scram-sha-256", store_), nullptr);
}

// --- PLAIN ---

TEST_F(SaslTest, PlainInitialResponseSuccess) {
  auto s = SaslServer::create("PLAIN", store_);
  Step r = s->start("\0Alice@Example.test\0wonderland"s);
  ASSERT_EQ(r.kind, Step::kSuccess) << r.reason;
  EXPECT_EQ(r.user, "alice@example.test");
}

TEST_F(SaslTest, PlainAfterEmptyChallenge) {
  auto s = SaslServer::create("PLAIN", store_);
  Step c = s->start(std::nullopt);
  ASSERT_EQ(c.kind, Step::kChallenge);
  EXPECT_EQ(c.challenge, "");
  Step r = s->step("alice@example.test\0alice@example.test\0wonderland"s);
  ASSERT_EQ(r.kind, Step::kSuccess) << r.reason;
  // Nothing more is accepted after the outcome.
  EXPECT_EQ(s->step("\0alice@example.test\0wonderland"s).kind, Step::kFailure);
}

TEST_F(SaslTest, PlainFailures) {
  auto run = [&](std::string message) { return SaslServer::create("PLAIN", store_)->start(message); };
  Step wrong = run("\0alice@example.test\0wonderlan"s);
  EXPECT_EQ(wrong.kind, Step::kFailure);
  EXPECT_EQ(wrong.reason, "wrong password");
  Step unknown = run("\0nobody@example.test\0wonderland"s);
  EXPECT_EQ(unknown.kind, Step::kFailure);
  EXPECT_EQ(unknown.reason, "unknown user");
  Step authzid = run("bob@example.test\0alice@example.test\0wonderland"s);
  EXPECT_EQ(authzid.kind, Step::kFailure);
  EXPECT_EQ(authzid.reason, "authzid differs from authcid");
  EXPECT_EQ(run("alice@example.test wonderland").kind, Step::kFailure);
  EXPECT_EQ(run("\0alice@example.test"s).kind, Step::kFailure);
  EXPECT_EQ(run("\0alice@example.test\0wonderland\0extra"s).kind, Step::kFailure);
  EXPECT_EQ(run("\0\0wonderland"s).kind, Step::kFailure);
  EXPECT_EQ(run("").kind, Step::kFailure);
  EXPECT_EQ(run("\0alice@example.test\0"s + std::string(5000, 'x')).kind, Step::kFailure);
}

// --- LOGIN ---

TEST_F(SaslTest, LoginSuccess) {
  auto s = SaslServer::create("LOGIN", store_);
  Step c1 = s->start(std::nullopt);
  ASSERT_EQ(c1.kind, Step::kChallenge);
  EXPECT_EQ(c1.challenge, "Username:");
  Step c2 = s->step("alice@example.test");
  ASSERT_EQ(c2.kind, Step::kChallenge);
  EXPECT_EQ(c2.challenge, "Password:");
  Step r = s->step("wonderland");
  ASSERT_EQ(r.kind, Step::kSuccess) << r.reason;
  EXPECT_EQ(r.user, "alice@example.test");
  EXPECT_EQ(s->step("again").kind, Step::kFailure);
}

TEST_F(SaslTest, LoginWithInitialUsername) {
  auto s = SaslServer::create("LOGIN", store_);
  Step c = s->start("alice@example.test");
  ASSERT_EQ(c.kind, Step::kChallenge);
  EXPECT_EQ(c.challenge, "Password:");
  EXPECT_EQ(s->step("wonderland").kind, Step::kSuccess);
}

TEST_F(SaslTest, LoginFailures) {
  auto s = SaslServer::create("LOGIN", store_);
  s->start(std::nullopt);
  s->step("alice@example.test");
  Step r = s->step("WONDERLAND");
  EXPECT_EQ(r.kind, Step::kFailure);
  EXPECT_EQ(r.reason, "wrong password");

  auto empty_user = SaslServer::create("LOGIN", store_);
  empty_user->start(std::nullopt);
  EXPECT_EQ(empty_user->step("").kind, Step::kFailure);

  auto empty_password = SaslServer::create("LOGIN", store_);
  empty_password->start("alice@example.test");
  EXPECT_EQ(empty_password->step("").kind, Step::kFailure);
}

// --- SCRAM-SHA-256 ---

SaslOptions fixed_nonce(std::string nonce) {
  SaslOptions o;
  o.scram_nonce = [nonce] { return nonce; };
  return o;
}

TEST_F(SaslTest, ScramRfc7677Example) {
  auto s = SaslServer::create("SCRAM-SHA-256", store_, fixed_nonce("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"));
  Step first = s->start("n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  ASSERT_EQ(first.kind, Step::kChallenge) << first.reason;
  EXPECT_EQ(first.challenge, "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
  Step final_step = s->step(
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
      "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  ASSERT_EQ(final_step.kind, Step::kChallenge) << final_step.reason;
  EXPECT_EQ(final_step.challenge, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
  Step done = s->step("");
  ASSERT_EQ(done.kind, Step::kSuccess) << done.reason;
  EXPECT_EQ(done.user, "user");
}

TEST_F(SaslTest, ScramWrongProof) {
  auto s = SaslServer::create("SCRAM-SHA-256", store_, fixed_nonce("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"));
  ASSERT_EQ(s->start("n,,n=user,r=rOprNGfwEbeRWgbNEkqO").kind, Step::kChallenge);
  Step r = s->step(
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
      "p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  EXPECT_EQ(r.kind, Step::kFailure);
  EXPECT_EQ(r.reason, "invalid proof");
}

// Runs a full exchange with a client that computes its proof from `password`.
Step scram_login(const AccountStore& store, const std::string& gs2, const std::string& user,
                 const std::string& password, const std::string& cbind_override = {}) {
  auto s = SaslServer::create("SCRAM-SHA-256", store);
  Step c = s->start(std::nullopt);
  if (c.kind != Step::kChallenge || !c.challenge.empty()) return c;
  std::string bare = "n=" + user + ",r=clientnonce123";
  Step first = s->step(gs2 + bare);
  if (first.kind != Step::kChallenge) return first;
  // Parse r=...,s=...,i=...
  auto attrs = split(first.challenge, ',');
  std::string nonce(attrs[0].substr(2));
  std::string salt;
  EXPECT_TRUE(base64_decode(attrs[1].substr(2), salt));
  unsigned long long iterations = 0;
  EXPECT_TRUE(parse_u64(attrs[2].substr(2), iterations));
  std::string without_proof =
      "c=" + (cbind_override.empty() ? base64_encode(gs2) : cbind_override) + ",r=" + nonce;
  std::string auth = bare + "," + first.challenge + "," + without_proof;
  std::string proof = testing::scram_proof(password, salt, static_cast<uint32_t>(iterations), auth);
  Step fin = s->step(without_proof + ",p=" + proof);
  if (fin.kind != Step::kChallenge) return fin;
  EXPECT_EQ(fin.challenge.rfind("v=", 0), 0u);
  return s->step("");
}

TEST_F(SaslTest, ScramClientRoundTrip) {
  Step ok = scram_login(store_, "n,,", "alice@example.test", "wonderland");
  ASSERT_EQ(ok.kind, Step::kSuccess) << ok.reason;
  EXPECT_EQ(ok.user, "alice@example.test");
  // "y": client supports channel binding but thinks we do not (true).
  EXPECT_EQ(scram_login(store_, "y,,", "alice@example.test", "wonderland").kind, Step::kSuccess);
  // authzid equal to the user is fine.
  EXPECT_EQ(scram_login(store_, "n,a=alice@example.test,", "alice@example.test", "wonderland").kind,
            Step::kSuccess);
}

TEST_F(SaslTest, ScramFailures) {
  Step wrong = scram_login(store_, "n,,", "alice@example.test", "wonderlan");
  EXPECT_EQ(wrong.kind, Step::kFailure);
  EXPECT_EQ(wrong.reason, "invalid proof");

  Step unknown = scram_login(store_, "n,,", "ghost@example.test", "wonderland");
  EXPECT_EQ(unknown.kind, Step::kFailure);
  EXPECT_EQ(unknown.reason, "unknown user");

  Step authzid = scram_login(store_, "n,a=bob@example.test,", "alice@example.test", "wonderland");
  EXPECT_EQ(authzid.kind, Step::kFailure);
  EXPECT_EQ(authzid.reason, "authzid differs from username");

  Step cbind = scram_login(store_, "n,,", "alice@example.test", "wonderland", base64_encode("y,,"));
  EXPECT_EQ(cbind.kind, Step::kFailure);
  EXPECT_EQ(cbind.reason, "channel binding data does not match gs2-header");

  Step plus = scram_login(store_, "p=tls-unique,,", "alice@example.test", "wonderland");
  EXPECT_EQ(plus.kind, Step::kFailure);
}

TEST_F(SaslTest, ScramUnknownUserGetsPlausibleSaltWithoutLeaking) {
  auto s = SaslServer::create("SCRAM-SHA-256", store_);
  Step r = s->start("n,,n=ghost@example.test,r=abc");
  ASSERT_EQ(r.kind, Step::kChallenge);
  EXPECT_NE(r.challenge.find(",s="), std::string::npos);
  EXPECT_NE(r.challenge.find(",i=10000"), std::string::npos);
}

TEST_F(SaslTest, ScramMalformedClientFirst) {
  const char* bad[] = {
      "x,,n=user,r=abc",                       // bad cbind flag
      "n,n=user,r=abc",                        // missing authzid comma
      "n,,r=abc,n=user",                       // order
      "n,,n=user",                             // no nonce
      "n,,n=,r=abc",                           // empty user
      "n,,n=us=er,r=abc",                      // bad saslname escape
      "n,,m=ext,n=user,r=abc",                 // mandatory extension
      "n,,n=user,r=",                          // empty nonce
      "n,,n=user,r=a b",                       // space in nonce
      "n,,n=user,r=abc,1=x",                   // bad extension
      "n,b=user,n=user,r=abc",                 // bad authzid
  };
  for (const char* m : bad) {
    auto s = SaslServer::create("SCRAM-SHA-256", store_);
    EXPECT_EQ(s->start(std::string_view(m)).kind, Step::kFailure) << m;
  }
  // An empty initial response asks for the (empty) challenge; an empty
  // client-first message after it is malformed.
  auto empty = SaslServer::create("SCRAM-SHA-256", store_);
  ASSERT_EQ(empty->start(std::string_view()).kind, Step::kChallenge);
  EXPECT_EQ(empty->step("").kind, Step::kFailure);
  auto nul = SaslServer::create("SCRAM-SHA-256", store_);
  EXPECT_EQ(nul.get()->start("n,,n=user\0,r=abc"s).kind, Step::kFailure);
}

TEST_F(SaslTest, ScramSaslnameEscapes) {
  store_.insert("a,b=c@example.test", derive_credential("pw", kIter, "s"));
  Step ok = scram_login(store_, "n,,", "a=2Cb=3Dc@example.test", "pw");
  ASSERT_EQ(ok.kind, Step::kSuccess) << ok.reason;
  EXPECT_EQ(ok.user, "a,b=c@example.test");
}

TEST_F(SaslTest, ScramMalformedClientFinal) {
  const std::string prefix = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
  const std::string proof = ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
  const std::string bad[] = {
      prefix,                                                                   // no proof
      prefix + ",p=short",                                                      // bad proof
      prefix + ",p=AAAA",                                                       // proof too short
      "c=biws,r=rOprNGfwEbeRWgbNEkqO" + proof,                                  // client nonce only
      "c=bmVz,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" + proof,    // wrong c=
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,c=biws" + proof,    // order
      "",                                                                       // empty
      "c=biws" + proof,                                                         // no nonce
  };
  for (const auto& m : bad) {
    auto s = SaslServer::create("SCRAM-SHA-256", store_, fixed_nonce("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"));
    ASSERT_EQ(s->start("n,,n=user,r=rOprNGfwEbeRWgbNEkqO").kind, Step::kChallenge);
    EXPECT_EQ(s->step(m).kind, Step::kFailure) << m;
  }
}

TEST_F(SaslTest, ScramRequiresEmptyAcknowledgement) {
  auto s = SaslServer::create("SCRAM-SHA-256", store_, fixed_nonce("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"));
  ASSERT_EQ(s->start("n,,n=user,r=rOprNGfwEbeRWgbNEkqO").kind, Step::kChallenge);
  ASSERT_EQ(s->step("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
                .kind,
            Step::kChallenge);
  EXPECT_EQ(s->step("junk").kind, Step::kFailure);
}

}  // namespace
}  // namespace tern::users
