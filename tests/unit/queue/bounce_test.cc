// Tests for the Bouncer (src/queue/bounce.h) against a real spool and queue
// manager driven by a ManualClock: which attempts produce failure, delay and
// success DSNs, what the queued DSN's envelope and report fields say (parsed
// back from the spooled content), and that the delay DSN is sent once, also
// across a restart.
#include "queue/bounce.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "test_dir.h"

namespace tern::queue {
namespace {

using testing::TempDir;
using State = Recipient::State;

const std::string kContent =
    "From: Sender <from@example.org>\r\n"
    "To: to0@example.net\r\n"
    "Subject: hi\r\n"
    "Message-ID: <m1@example.org>\r\n"
    "\r\n"
    "hello body\r\n";

// The fields of a message/delivery-status part: [0] per-message, then one
// map per recipient (RFC 3464 §2.1). Folded lines are unfolded.
using FieldGroups = std::vector<std::map<std::string, std::string>>;

FieldGroups delivery_status_fields(const std::string& content) {
  FieldGroups groups;
  size_t type = content.find("Content-Type: message/delivery-status");
  if (type == std::string::npos) type = content.find("Content-Type: message/global-delivery-status");
  if (type == std::string::npos) return groups;
  size_t start = content.find("\r\n\r\n", type);
  if (start == std::string::npos) return groups;
  start += 4;
  size_t end = content.find("\r\n--", start);
  std::string part = content.substr(start, end == std::string::npos ? std::string::npos : end - start + 2);
  groups.emplace_back();
  std::string last;
  size_t pos = 0;
  while (pos < part.size()) {
    size_t eol = part.find("\r\n", pos);
    if (eol == std::string::npos) eol = part.size();
    std::string line = part.substr(pos, eol - pos);
    pos = eol + 2;
    if (line.empty()) {
      if (!groups.back().empty()) groups.emplace_back();
      continue;
    }
    if ((line[0] == ' ' || line[0] == '\t') && !last.empty()) {
      groups.back()[last] += line;
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    last = line.substr(0, colon);
    size_t value = line.find_first_not_of(' ', colon + 1);
    groups.back()[last] = value == std::string::npos ? "" : line.substr(value);
  }
  if (groups.back().empty()) groups.pop_back();
  return groups;
}

class BouncerTest : public ::testing::Test {
 protected:
  void SetUp() override { open(); }

  void open() {
    auto spool = Spool::open(tmp_.path(), Spool::SyncMode::kFsyncEach);
    ASSERT_TRUE(spool);
    spool_ = std::move(*spool);
    manager_ = std::make_unique<QueueManager>(*spool_, clock_);
    bouncer_ = std::make_unique<Bouncer>(*spool_, *manager_, clock_, options_);
  }

  // Stops everything and starts again from what is on disk.
  void restart() {
    ASSERT_TRUE(spool_->sync());
    bouncer_.reset();
    manager_.reset();
    spool_.reset();
    open();
    auto recovered = spool_->recover();
    ASSERT_TRUE(recovered);
    for (auto& env : *recovered) manager_->add(env);
  }

  std::string enqueue(Envelope env, const std::string& content = kContent) {
    auto writer = spool_->create();
    EXPECT_TRUE(writer);
    env.received_at = clock_.now();
    EXPECT_TRUE((*writer)->append(content));
    EXPECT_TRUE((*writer)->finish(env));
    EXPECT_TRUE(spool_->sync());
    env.id = (*writer)->id();
    env.size = (*writer)->size();
    manager_->add(env);
    return env.id;
  }

  static Envelope envelope(int recipients, unsigned notify = 0, const std::string& from = "from@example.org") {
    Envelope env;
    env.mail_from = from;
    env.listener = "mx";
    for (int i = 0; i < recipients; ++i) {
      Recipient r;
      r.address = "to" + std::to_string(i) + "@example.net";
      r.notify = notify;
      env.recipients.push_back(r);
    }
    return env;
  }

  struct Outcome {
    State state;
    std::string reply;
  };
  // Leases `id`, applies outcomes (by recipient index; missing: stays
  // pending with a 451), completes it and tells the bouncer.
  std::optional<Envelope> attempt(const std::string& id, const std::map<size_t, Outcome>& outcomes,
                                  const std::map<size_t, std::string>& remote_mta = {},
                                  const std::set<size_t>& relayed = {}) {
    std::optional<Envelope> leased;
    for (auto& env : manager_->take_ready(clock_.now(), 100)) {
      if (env.id == id) {
        leased = env;
      } else {
        manager_->abandon(env.id);
      }
    }
    if (!leased) {
      ADD_FAILURE() << "not ready: " << id;
      return std::nullopt;
    }
    Envelope updated = *leased;
    for (size_t i = 0; i < updated.recipients.size(); ++i) {
      auto& r = updated.recipients[i];
      if (r.state != State::kPending || r.next_attempt > clock_.now()) continue;
      auto it = outcomes.find(i);
      r.state = it == outcomes.end() ? State::kPending : it->second.state;
      r.last_reply = it == outcomes.end() ? "451 4.4.1 no answer" : it->second.reply;
    }
    auto after = manager_->complete(id, updated);
    EXPECT_TRUE(after) << after.error().text;
    if (!after) return std::nullopt;
    bouncer_->after_complete(*leased, *after, remote_mta, relayed);
    return *after;
  }

  // The DSN messages in the queue, oldest first.
  std::vector<Envelope> dsns() const {
    std::vector<Envelope> out;
    for (auto& env : manager_->list()) {
      if (env.listener == "bounce") out.push_back(env);
    }
    return out;
  }

  std::string content_of(const Envelope& env) const {
    auto content = spool_->read_content(env.id);
    EXPECT_TRUE(content);
    return content ? *content : "";
  }

  TempDir tmp_;
  ManualClock clock_{1'700'000'000};
  Bouncer::Options options_{.hostname = "mx.tern.example", .delay_warning_after = 4 * 3600};
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<QueueManager> manager_;
  std::unique_ptr<Bouncer> bouncer_;
};

TEST_F(BouncerTest, FailureDsnIsQueuedWithTheReportFields) {
  std::string id = enqueue(envelope(2));
  clock_.advance(10);
  auto after = attempt(
      id,
      {{0, {State::kFailed, "550 5.1.1 <to0@example.net>: user unknown"}}, {1, {State::kDelivered, "250 2.0.0 ok"}}},
      {{0, "mx.example.net"}});
  ASSERT_TRUE(after);
  // The original is finished and gone from the spool; its content was kept
  // for the report and then released.
  EXPECT_FALSE(spool_->load(id));
  EXPECT_EQ(bouncer_->kept_contents(), 0u);

  auto queued = dsns();
  ASSERT_EQ(queued.size(), 1u);
  const Envelope& dsn = queued[0];
  EXPECT_EQ(dsn.mail_from, "");
  ASSERT_EQ(dsn.recipients.size(), 1u);
  EXPECT_EQ(dsn.recipients[0].address, "from@example.org");
  EXPECT_EQ(dsn.recipients[0].state, State::kPending);
  EXPECT_EQ(dsn.received_at, clock_.now());
  EXPECT_EQ(dsn.protocol, "local");
  EXPECT_FALSE(dsn.smtputf8);
  EXPECT_EQ(dsn.body, 0);
  // Durable: the spool has it with the same envelope.
  auto stored = spool_->load(dsn.id);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->mail_from, "");
  EXPECT_EQ(stored->listener, "bounce");

  std::string content = content_of(dsn);
  EXPECT_NE(content.find("Content-Type: multipart/report; report-type=delivery-status"), std::string::npos);
  EXPECT_NE(content.find("To: <from@example.org>"), std::string::npos) << content;
  EXPECT_NE(content.find("MAILER-DAEMON@mx.tern.example"), std::string::npos);
  auto fields = delivery_status_fields(content);
  ASSERT_EQ(fields.size(), 2u) << content;  // per-message + the one failed recipient
  EXPECT_EQ(fields[0]["Reporting-MTA"], "dns; mx.tern.example");
  EXPECT_EQ(fields[1]["Final-Recipient"], "rfc822; to0@example.net");
  EXPECT_EQ(fields[1]["Action"], "failed");
  EXPECT_EQ(fields[1]["Status"], "5.1.1");
  EXPECT_EQ(fields[1]["Remote-MTA"], "dns; mx.example.net");
  EXPECT_EQ(fields[1]["Diagnostic-Code"], "smtp; 550 5.1.1 <to0@example.net>: user unknown");
  // Without RET the whole original comes back.
  EXPECT_NE(content.find("Content-Type: message/rfc822"), std::string::npos);
  EXPECT_NE(content.find("hello body"), std::string::npos);
}

TEST_F(BouncerTest, OneDsnListsEveryRecipientThatFailedInTheAttempt) {
  Envelope env = envelope(3);
  env.envid = "ENV-42";
  env.recipients[1].orcpt_type = "rfc822";
  env.recipients[1].orcpt = "Orig@Example.net";
  std::string id = enqueue(env);
  ASSERT_TRUE(attempt(id, {{0, {State::kFailed, "550 5.1.1 no"}}, {1, {State::kFailed, "552 5.2.2 full"}}}));
  auto queued = dsns();
  ASSERT_EQ(queued.size(), 1u);
  auto fields = delivery_status_fields(content_of(queued[0]));
  ASSERT_EQ(fields.size(), 3u);
  EXPECT_EQ(fields[0]["Original-Envelope-Id"], "ENV-42");
  EXPECT_EQ(fields[1]["Final-Recipient"], "rfc822; to0@example.net");
  EXPECT_EQ(fields[1]["Diagnostic-Code"], "X-tern; 550 5.1.1 no");  // no remote MTA named
  EXPECT_EQ(fields[2]["Original-Recipient"], "rfc822; Orig@Example.net");
  EXPECT_EQ(fields[2]["Status"], "5.2.2");
  // Recipient 2 is still pending: the original stays queued.
  EXPECT_TRUE(manager_->get(id));

  // Its later failure is a second DSN that reports only it.
  clock_.advance(3600);
  ASSERT_TRUE(manager_->retry(id));
  ASSERT_TRUE(attempt(id, {{2, {State::kFailed, "550 5.7.1 refused"}}}));
  queued = dsns();
  ASSERT_EQ(queued.size(), 2u);
  fields = delivery_status_fields(content_of(queued[1]));
  ASSERT_EQ(fields.size(), 2u);
  EXPECT_EQ(fields[1]["Final-Recipient"], "rfc822; to2@example.net");
  EXPECT_EQ(fields[1]["Status"], "5.7.1");
}

TEST_F(BouncerTest, ExpiredRecipientsGetAFailureDsn) {
  options_.delay_warning_after = 0;  // no delay DSN in this test
  bouncer_.reset();                  // first: its destructor unregisters the hook
  bouncer_ = std::make_unique<Bouncer>(*spool_, *manager_, clock_, options_);
  std::string id = enqueue(envelope(1));
  ASSERT_TRUE(attempt(id, {}));
  EXPECT_TRUE(dsns().empty());
  clock_.advance(5 * 24 * 3600);
  auto after = attempt(id, {});
  ASSERT_TRUE(after);
  EXPECT_EQ(after->recipients[0].state, State::kFailed);
  auto queued = dsns();
  ASSERT_EQ(queued.size(), 1u);
  auto fields = delivery_status_fields(content_of(queued[0]));
  ASSERT_EQ(fields.size(), 2u);
  EXPECT_EQ(fields[1]["Action"], "failed");
  EXPECT_EQ(fields[1]["Status"], "4.4.1");
  EXPECT_EQ(fields[1]["Diagnostic-Code"], "X-tern; message expired; last error: 451 4.4.1 no answer");
  EXPECT_FALSE(spool_->load(id));
}

TEST_F(BouncerTest, DelayDsnIsSentOnceAlsoAfterARestart) {
  std::string id = enqueue(envelope(2));
  ASSERT_TRUE(attempt(id, {{1, {State::kDelivered, "250 ok"}}}));
  EXPECT_TRUE(dsns().empty());  // too early
  clock_.advance(4 * 3600);
  ASSERT_TRUE(manager_->retry(id));
  ASSERT_TRUE(attempt(id, {}, {{0, "mx.example.net"}}));
  auto queued = dsns();
  ASSERT_EQ(queued.size(), 1u);
  std::string content = content_of(queued[0]);
  auto fields = delivery_status_fields(content);
  ASSERT_EQ(fields.size(), 2u) << content;  // only the pending recipient
  EXPECT_EQ(fields[1]["Final-Recipient"], "rfc822; to0@example.net");
  EXPECT_EQ(fields[1]["Action"], "delayed");
  EXPECT_EQ(fields[1]["Status"], "4.4.1");
  EXPECT_EQ(fields[1]["Will-Retry-Until"], "Sun, 19 Nov 2023 22:13:20 +0000");
  EXPECT_NE(content.find("text/rfc822-headers"), std::string::npos);
  EXPECT_EQ(content.find("hello body"), std::string::npos);  // headers only
  EXPECT_TRUE(manager_->get(id)->delay_warned);

  clock_.advance(3600);
  ASSERT_TRUE(manager_->retry(id));
  ASSERT_TRUE(attempt(id, {}));
  EXPECT_EQ(dsns().size(), 1u);

  restart();
  auto recovered = manager_->get(id);
  ASSERT_TRUE(recovered);
  EXPECT_TRUE(recovered->delay_warned);
  clock_.advance(3600);
  ASSERT_TRUE(manager_->retry(id));
  ASSERT_TRUE(attempt(id, {}));
  EXPECT_EQ(dsns().size(), 1u);  // the one from before the restart, still queued
}

TEST_F(BouncerTest, NotifyNeverGetsNothing) {
  std::string id = enqueue(envelope(1, kNotifyNever));
  clock_.advance(4 * 3600);
  ASSERT_TRUE(attempt(id, {}));  // past the delay threshold
  ASSERT_TRUE(manager_->retry(id));
  ASSERT_TRUE(attempt(id, {{0, {State::kFailed, "550 5.1.1 no"}}}));
  EXPECT_TRUE(dsns().empty());
  EXPECT_EQ(manager_->size(), 0u);
  EXPECT_EQ(bouncer_->kept_contents(), 0u);
}

TEST_F(BouncerTest, NullSenderNeverGetsADsnNotEvenABounceOfABounce) {
  std::string id = enqueue(envelope(1, 0, ""));
  ASSERT_TRUE(attempt(id, {{0, {State::kFailed, "550 5.1.1 no"}}}));
  EXPECT_EQ(manager_->size(), 0u);

  // A real DSN whose delivery fails is dropped (logged), not bounced.
  std::string original = enqueue(envelope(1));
  ASSERT_TRUE(attempt(original, {{0, {State::kFailed, "550 5.1.1 no"}}}));
  auto queued = dsns();
  ASSERT_EQ(queued.size(), 1u);
  ASSERT_TRUE(attempt(queued[0].id, {{0, {State::kFailed, "550 5.1.1 sender unknown"}}}));
  EXPECT_EQ(manager_->size(), 0u);
  EXPECT_FALSE(spool_->load(queued[0].id));
}

TEST_F(BouncerTest, SuccessDsnForDeliveredAndRelayedButNotForADsnCapableNextHop) {
  std::string id = enqueue(envelope(3, kNotifySuccess | kNotifyFailure));
  ASSERT_TRUE(attempt(id,
                      {{0, {State::kDelivered, "250 2.1.5 Saved"}},
                       {1, {State::kDelivered, "250 2.0.0 queued"}},
                       {2, {State::kDelivered, "250 2.0.0 queued"}}},
                      {{1, "relay.example.net"}, {2, "dsn-aware.example.net"}}, {1}));
  auto queued = dsns();
  ASSERT_EQ(queued.size(), 1u);
  std::string content = content_of(queued[0]);
  auto fields = delivery_status_fields(content);
  ASSERT_EQ(fields.size(), 3u) << content;
  EXPECT_EQ(fields[1]["Final-Recipient"], "rfc822; to0@example.net");
  EXPECT_EQ(fields[1]["Action"], "delivered");
  EXPECT_EQ(fields[1]["Status"], "2.1.5");
  EXPECT_EQ(fields[2]["Final-Recipient"], "rfc822; to1@example.net");
  EXPECT_EQ(fields[2]["Action"], "relayed");
  EXPECT_EQ(fields[2]["Remote-MTA"], "dns; relay.example.net");
  EXPECT_FALSE(spool_->load(id));
  EXPECT_EQ(bouncer_->kept_contents(), 0u);
}

TEST_F(BouncerTest, NoSuccessDsnWithoutNotifySuccess) {
  std::string id = enqueue(envelope(1));
  ASSERT_TRUE(attempt(id, {{0, {State::kDelivered, "250 ok"}}}));
  EXPECT_TRUE(dsns().empty());
  EXPECT_EQ(bouncer_->kept_contents(), 0u);
}

TEST_F(BouncerTest, RetHdrsReturnsOnlyTheHeaderSection) {
  Envelope env = envelope(1);
  env.ret = 2;
  std::string id = enqueue(env);
  ASSERT_TRUE(attempt(id, {{0, {State::kFailed, "550 5.1.1 no"}}}));
  auto queued = dsns();
  ASSERT_EQ(queued.size(), 1u);
  std::string content = content_of(queued[0]);
  EXPECT_NE(content.find("Content-Type: text/rfc822-headers"), std::string::npos);
  EXPECT_NE(content.find("Subject: hi"), std::string::npos);
  EXPECT_EQ(content.find("hello body"), std::string::npos);
  EXPECT_EQ(content.find("message/rfc822"), std::string::npos);
}

TEST_F(BouncerTest, LargeOriginalIsReturnedAsHeadersAndOnlyABoundedCopyIsKept) {
  options_.max_returned_bytes = 1000;
  bouncer_.reset();  // first: its destructor unregisters the hook
  bouncer_ = std::make_unique<Bouncer>(*spool_, *manager_, clock_, options_);
  std::string big = kContent + std::string(5000, 'x') + "\r\n";
  std::string id = enqueue(envelope(1), big);
  ASSERT_TRUE(attempt(id, {{0, {State::kFailed, "550 5.1.1 no"}}}));
  auto queued = dsns();
  ASSERT_EQ(queued.size(), 1u);
  std::string content = content_of(queued[0]);
  EXPECT_NE(content.find("larger than 1000 bytes"), std::string::npos) << content;
  EXPECT_NE(content.find("Content-Type: text/rfc822-headers"), std::string::npos);
  EXPECT_EQ(content.find("xxxxxxxxxx"), std::string::npos);
}

TEST_F(BouncerTest, Utf8SenderGetsAnSmtputf8Dsn) {
  Envelope env = envelope(1, 0, "jörg@example.org");
  env.smtputf8 = true;
  std::string id = enqueue(env);
  ASSERT_TRUE(attempt(id, {{0, {State::kFailed, "550 5.1.1 no"}}}));
  auto queued = dsns();
  ASSERT_EQ(queued.size(), 1u);
  EXPECT_EQ(queued[0].recipients[0].address, "jörg@example.org");
  EXPECT_TRUE(queued[0].smtputf8);
  EXPECT_EQ(queued[0].body, 1);
}

}  // namespace
}  // namespace tern::queue
