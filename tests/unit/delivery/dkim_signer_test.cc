// Tests for DkimSigner (src/delivery/dkim_signer.h): loading [dkim.sign] keys
// (errors name the file), which origins and domains are signed, and that the
// signatures it stores in the envelope verify — RSA and Ed25519 side by side
// — with the DKIM verifier (auth::dkim::verify over a FakeResolver) on the
// message exactly as it leaves the spool (Spool::read_message).
#include "delivery/dkim_signer.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "auth/dkim.h"
#include "base/strings.h"
#include "dns/fake_resolver.h"
#include "mail/message.h"
#include "queue/spool.h"

namespace tern::delivery {
namespace {

namespace dkim = auth::dkim;

template <class T>
T run_sync(boost::asio::awaitable<T> aw) {
  boost::asio::io_context ctx;
  auto fut = boost::asio::co_spawn(ctx, std::move(aw), boost::asio::use_future);
  ctx.run();
  return fut.get();
}

const std::string kContent =
    "Received: from client.example.com by mx.example.com; Thu, 26 Nov 2026 14:30:11 +0000\r\n"
    "From: Alice <alice@example.com>\r\n"
    "To: Bob <bob@example.net>\r\n"
    "Subject: signed on the way out\r\n"
    "Date: Thu, 26 Nov 2026 14:30:00 +0000\r\n"
    "Message-ID: <m1@example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Hello Bob,\r\n"
    "\r\n"
    "the numbers are attached.   \r\n";

constexpr int64_t kReceivedAt = 1'795'703'411;

class DkimSignerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto rsa = dkim::keygen(auth::crypto::KeyType::kRsa, 2048);
    auto ed = dkim::keygen(auth::crypto::KeyType::kEd25519);
    ASSERT_TRUE(rsa && ed);
    rsa_ = new dkim::GeneratedKey(std::move(*rsa));
    ed_ = new dkim::GeneratedKey(std::move(*ed));
  }
  static void TearDownTestSuite() {
    delete rsa_;
    delete ed_;
  }

  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "tern-dkim-signer-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    write(dir_ + "/rsa.pem", rsa_->private_pem);
    write(dir_ + "/ed.pem", ed_->private_pem);
    cfg_.dkim.sign["example.com"] = {{"rsa1", dir_ + "/rsa.pem", ""}, {"ed1", dir_ + "/ed.pem", "ed25519-sha256"}};
    cfg_.relay.trusted_networks = {*Cidr::parse("10.0.0.0/8")};
    resolver_.add_txt("rsa1._domainkey.example.com", rsa_->dns_txt);
    resolver_.add_txt("ed1._domainkey.example.com", ed_->dns_txt);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  static void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

  std::unique_ptr<DkimSigner> load() {
    auto signer = DkimSigner::load(cfg_);
    EXPECT_TRUE(signer) << signer.error().text;
    return signer ? std::move(*signer) : nullptr;
  }

  static queue::Envelope submission_envelope() {
    queue::Envelope env;
    env.mail_from = "alice@example.com";
    env.listener = "submission";
    env.auth_user = "alice@example.com";
    env.client_ip = "192.0.2.10";
    env.received_at = kReceivedAt;
    queue::Recipient r;
    r.address = "bob@example.net";
    env.recipients.push_back(r);
    return env;
  }

  std::vector<dkim::DkimResult> verify(const std::string& text) {
    auto message = mail::Message::parse(text);
    EXPECT_TRUE(message);
    if (!message) return {};
    dkim::VerifyOptions options;
    options.now = kReceivedAt + 60;
    return run_sync(dkim::verify(resolver_, *message, options));
  }

  static inline dkim::GeneratedKey* rsa_ = nullptr;
  static inline dkim::GeneratedKey* ed_ = nullptr;
  std::string dir_;
  config::Config cfg_;
  dns::FakeResolver resolver_;
};

TEST_F(DkimSignerTest, SignaturesInThePrependAttributeVerifyAsTheMessageLeavesTheSpool) {
  auto signer = load();
  ASSERT_TRUE(signer);
  EXPECT_EQ(signer->key_count(), 2u);
  queue::Envelope env = submission_envelope();
  const std::string earlier = "Authentication-Results: mx.example.com; auth=pass smtp.auth=alice@example.com\r\n";
  env.attributes[queue::kPrependAttribute] = earlier;
  auto added = signer->sign_into(env, kContent);
  ASSERT_TRUE(added) << added.error().text;
  EXPECT_EQ(*added, 2u);
  const std::string& prepend = env.attributes[queue::kPrependAttribute];
  // Appended below what was there; RSA first, then Ed25519 (config order).
  ASSERT_EQ(prepend.rfind(earlier, 0), 0u);
  size_t rsa = prepend.find("a=rsa-sha256");
  size_t ed = prepend.find("a=ed25519-sha256");
  ASSERT_NE(rsa, std::string::npos);
  ASSERT_NE(ed, std::string::npos);
  EXPECT_LT(rsa, ed);

  // Queue it as the server does and read it back as delivery will.
  std::string spool_dir = dir_ + "/queue";
  auto spool = queue::Spool::open(spool_dir);
  ASSERT_TRUE(spool);
  auto writer = (*spool)->create();
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append(kContent));
  ASSERT_TRUE((*writer)->finish(env));
  ASSERT_TRUE((*spool)->sync());
  env.id = (*writer)->id();
  writer->reset();
  auto leaving = (*spool)->read_message(env);
  ASSERT_TRUE(leaving) << leaving.error().text;

  auto results = verify(*leaving);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& r : results) {
    EXPECT_EQ(r.status, dkim::Outcome::kPass) << r.algorithm << ": " << r.reason;
    EXPECT_EQ(r.domain, "example.com");
  }
  EXPECT_EQ(results[0].selector, "rsa1");
  EXPECT_EQ(results[1].selector, "ed1");

  auto parsed = mail::Message::parse(*leaving);
  ASSERT_TRUE(parsed);
  auto sigs = parsed->find_all("DKIM-Signature");
  ASSERT_EQ(sigs.size(), 2u);
  for (const auto& field : sigs) {
    auto sig = dkim::parse_signature(field.value);
    ASSERT_TRUE(sig) << sig.error().text;
    EXPECT_NE(field.unfolded().find("c=relaxed/relaxed"), std::string::npos);
    EXPECT_EQ(sig->domain, "example.com");
    std::string h;
    for (const auto& name : sig->signed_headers) h += (h.empty() ? "" : ":") + to_lower(name);
    for (const char* name : {"from", "to", "subject", "date", "message-id", "mime-version", "content-type"}) {
      EXPECT_NE((":" + h + ":").find(std::string(":") + name + ":"), std::string::npos) << name << " in " << h;
    }
    EXPECT_EQ(h.find("received"), std::string::npos);
    EXPECT_EQ(h.find("authentication-results"), std::string::npos);
  }

  // Changed in transit: both fail.
  std::string tampered = *leaving;
  tampered.replace(tampered.find("signed on the way out"), 6, "SIGNED");
  auto tampered_results = verify(tampered);
  ASSERT_EQ(tampered_results.size(), 2u);
  for (const auto& r : tampered_results) EXPECT_EQ(r.status, dkim::Outcome::kFail);
}

TEST_F(DkimSignerTest, OnlyTrustedOriginsAreSigned) {
  auto signer = load();
  ASSERT_TRUE(signer);
  queue::Envelope mx;
  mx.mail_from = "alice@example.com";
  mx.listener = "mx";
  mx.client_ip = "198.51.100.7";
  EXPECT_FALSE(signer->trusted_origin(mx));
  auto none = signer->sign_into(mx, kContent);
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, 0u);
  EXPECT_EQ(mx.attributes.count(queue::kPrependAttribute), 0u);

  queue::Envelope trusted = mx;
  trusted.client_ip = "10.1.2.3";  // [relay] trusted_networks
  EXPECT_TRUE(signer->trusted_origin(trusted));
  queue::Envelope authenticated = mx;
  authenticated.auth_user = "alice@example.com";
  EXPECT_TRUE(signer->trusted_origin(authenticated));
  queue::Envelope submissions = mx;
  submissions.listener = "submissions";
  EXPECT_TRUE(signer->trusted_origin(submissions));
  EXPECT_TRUE(signer->trusted_origin("", "mx", "10.9.9.9"));
  EXPECT_FALSE(signer->trusted_origin("", "mx", "not an ip"));
  auto one = signer->sign_into(trusted, kContent);
  ASSERT_TRUE(one);
  EXPECT_EQ(*one, 2u);
}

TEST_F(DkimSignerTest, ChoosesTheHeaderFromDomainThenParentThenMailFrom) {
  auto signer = load();
  ASSERT_TRUE(signer);
  queue::Envelope env = submission_envelope();
  EXPECT_EQ(signer->signing_domain(env, kContent), "example.com");

  std::string sub = kContent;
  sub.replace(sub.find("alice@example.com"), 17, "alice@mail.example.com");
  env.mail_from = "alice@other.example";
  EXPECT_EQ(signer->signing_domain(env, sub), "example.com");  // parent of the From domain

  std::string foreign = kContent;
  foreign.replace(foreign.find("alice@example.com"), 17, "alice@elsewhere.example");
  env.mail_from = "bounces@example.com";
  EXPECT_EQ(signer->signing_domain(env, foreign), "example.com");  // MAIL FROM domain
  auto fields = signer->sign(env, foreign, kReceivedAt);
  ASSERT_TRUE(fields);
  EXPECT_NE(fields->find("d=example.com"), std::string::npos);
  auto results = verify(*fields + foreign);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].status, dkim::Outcome::kPass) << results[0].reason;

  env.mail_from = "x@elsewhere.example";
  EXPECT_EQ(signer->signing_domain(env, foreign), std::nullopt);
  auto nothing = signer->sign_into(env, foreign);
  ASSERT_TRUE(nothing);
  EXPECT_EQ(*nothing, 0u);
  EXPECT_EQ(env.attributes.count(queue::kPrependAttribute), 0u);
}

TEST_F(DkimSignerTest, LoadErrorsNameTheFile) {
  cfg_.dkim.sign["example.org"] = {{"gone", dir_ + "/missing.pem", ""}};
  auto missing = DkimSigner::load(cfg_);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().text.find(dir_ + "/missing.pem"), std::string::npos) << missing.error().text;
  EXPECT_NE(missing.error().text.find("\"example.org\""), std::string::npos);

  write(dir_ + "/junk.pem", "not a key\n");
  cfg_.dkim.sign["example.org"] = {{"junk", dir_ + "/junk.pem", ""}};
  auto junk = DkimSigner::load(cfg_);
  ASSERT_FALSE(junk);
  EXPECT_NE(junk.error().text.find(dir_ + "/junk.pem"), std::string::npos) << junk.error().text;

  cfg_.dkim.sign["example.org"] = {{"mismatch", dir_ + "/rsa.pem", "ed25519-sha256"}};
  auto mismatch = DkimSigner::load(cfg_);
  ASSERT_FALSE(mismatch);
  EXPECT_NE(mismatch.error().text.find("but the key is rsa-sha256"), std::string::npos) << mismatch.error().text;
  EXPECT_NE(mismatch.error().text.find(dir_ + "/rsa.pem"), std::string::npos);
}

TEST_F(DkimSignerTest, NoKeysConfiguredSignsNothing) {
  cfg_.dkim.sign.clear();
  auto signer = load();
  ASSERT_TRUE(signer);
  EXPECT_TRUE(signer->empty());
  queue::Envelope env = submission_envelope();
  auto none = signer->sign_into(env, kContent);
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, 0u);
  EXPECT_TRUE(env.attributes.empty());
}

}  // namespace
}  // namespace tern::delivery
