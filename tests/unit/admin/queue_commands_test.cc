// Tests for the queue command handler against a real spool and QueueManager
// (ManualClock): `list` shows each recipient's status, attempts, next attempt
// and last reply after a delivery attempt; `retry ID` makes a deferred message
// due now; errors for unknown or missing ids; also over the control socket.
#include "admin/queue_commands.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>

namespace tern::admin {
namespace {

using State = queue::Recipient::State;

class QueueCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "tern-admin-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    auto spool = queue::Spool::open(dir_ + "/queue");
    ASSERT_TRUE(spool) << spool.error().text;
    spool_ = std::move(*spool);
    manager_ = std::make_unique<queue::QueueManager>(*spool_, clock_);
    handler_ = make_queue_handler(*manager_, *spool_);
  }
  void TearDown() override {
    manager_.reset();
    spool_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string enqueue() {
    auto writer = spool_->create();
    EXPECT_TRUE(writer);
    queue::Envelope env;
    env.mail_from = "a@example.org";
    env.received_at = clock_.now();
    for (const char* to : {"bob@example.net", "carol@example.net"}) {
      queue::Recipient r;
      r.address = to;
      env.recipients.push_back(r);
    }
    EXPECT_TRUE((*writer)->append("Subject: x\r\n\r\nbody\r\n"));
    EXPECT_TRUE((*writer)->finish(env));
    EXPECT_TRUE(spool_->sync());
    env.id = (*writer)->id();
    env.size = (*writer)->size();
    manager_->add(env);
    return env.id;
  }

  // One attempt: bob deferred with a multi-line reply, carol delivered.
  void attempt(const std::string& id) {
    auto leased = manager_->take_ready(clock_.now(), 10);
    ASSERT_EQ(leased.size(), 1u);
    queue::Envelope updated = leased[0];
    updated.recipients[0].last_reply = "451-4.3.0 mailbox busy\r\n451 4.3.0 \"try\" later";
    updated.recipients[1].state = State::kDelivered;
    updated.recipients[1].last_reply = "250 2.0.0 ok";
    ASSERT_TRUE(manager_->complete(id, updated));
  }

  std::string run(const std::string& cmd, const std::string& arg = "") {
    auto r = handler_(cmd, arg);
    if (!r) return "error: " + r.error().text;
    return *r;
  }

  std::string dir_;
  queue::ManualClock clock_{1'795'703'411};  // 2026-11-26T14:30:11Z
  std::unique_ptr<queue::Spool> spool_;
  std::unique_ptr<queue::QueueManager> manager_;
  CommandHandler handler_;
};

TEST_F(QueueCommandsTest, ListShowsPerRecipientStatusAttemptsNextAndLastReply) {
  std::string id = enqueue();
  attempt(id);
  std::string out = run("list");
  EXPECT_NE(out.find(id + "  size=20  arrived=2026-11-26T14:30:11Z  from=<a@example.org>\n"), std::string::npos) << out;
  // Deferred: next attempt 5 minutes later (first step of the retry schedule).
  EXPECT_NE(out.find("    to=<bob@example.net> status=pending attempts=1 next=2026-11-26T14:35:11Z "
                     "last=\"451-4.3.0 mailbox busy | 451 4.3.0 \\\"try\\\" later\"\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("    to=<carol@example.net> status=delivered attempts=1 last=\"250 2.0.0 ok\"\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("-- 1 message(s), 2 recipient(s), 20 bytes"), std::string::npos);
}

TEST_F(QueueCommandsTest, RetryMakesADeferredMessageDueNow) {
  std::string id = enqueue();
  attempt(id);
  EXPECT_EQ(manager_->next_due(), clock_.now() + 300);
  EXPECT_TRUE(manager_->take_ready(clock_.now(), 10).empty());
  EXPECT_EQ(run("retry", id), id + ": scheduled for retry\n");
  EXPECT_EQ(manager_->next_due(), clock_.now());
  auto leased = manager_->take_ready(clock_.now(), 10);
  ASSERT_EQ(leased.size(), 1u);
  EXPECT_EQ(leased[0].id, id);
  manager_->abandon(id);
  EXPECT_NE(run("list").find("next=2026-11-26T14:30:11Z"), std::string::npos);
}

TEST_F(QueueCommandsTest, RetryOfAHeldMessageSaysItIsHeld) {
  std::string id = enqueue();
  attempt(id);
  EXPECT_EQ(run("hold", id), id + ": held\n");
  EXPECT_EQ(run("retry", id), id + ": scheduled for retry, but it is held: release it to deliver\n");
  EXPECT_TRUE(manager_->take_ready(clock_.now(), 10).empty());
  EXPECT_EQ(run("release", id), id + ": released\n");
  EXPECT_EQ(manager_->take_ready(clock_.now(), 10).size(), 1u);
}

TEST_F(QueueCommandsTest, RetryErrors) {
  EXPECT_EQ(run("retry"), "error: retry: queue id required");
  EXPECT_EQ(run("retry", "nosuchid"), "error: no such message in the queue: nosuchid");
}

TEST_F(QueueCommandsTest, RetryOverTheControlSocket) {
  std::string id = enqueue();
  attempt(id);
  std::string path = dir_ + "/control.sock";
  ControlServer server(path, handler_);
  ASSERT_TRUE(server.start());
  auto r = control_request(path, "retry", id);
  ASSERT_TRUE(r) << r.error().text;
  EXPECT_EQ(*r, id + ": scheduled for retry\n");
  EXPECT_EQ(manager_->next_due(), clock_.now());
  auto bad = control_request(path, "retry", "nosuchid");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().text, "no such message in the queue: nosuchid");
  server.stop();
}

TEST(QueueFormat, LongAndControlCharacterRepliesStayOnOneBoundedLine) {
  queue::Envelope e;
  e.id = "x";
  queue::Recipient r;
  r.address = "b@example.org";
  r.last_reply = "550 " + std::string(1000, 'a') + "\x01";
  e.recipients.push_back(r);
  e.delay_warned = true;
  std::string out = format_envelope(e);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2);
  EXPECT_LT(out.size(), 600u);
  EXPECT_NE(out.find("...\""), std::string::npos);
  EXPECT_NE(out.find("  delay-warned\n"), std::string::npos);
}

}  // namespace
}  // namespace tern::admin
