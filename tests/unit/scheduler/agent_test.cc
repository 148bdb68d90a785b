// Tests for the delivery workers: batching of leased messages into one
// transport call, outcome recording (delivered / bounced / deferred) and
// retry timing with a manual clock (no sleeps).
#include "scheduler/agent.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

namespace tern::scheduler {
namespace {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "tern-agent-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Records calls; answers per recipient from a table (default 250).
class FakeTransport : public delivery::LocalTransport {
 public:
  std::vector<delivery::RecipientResult> deliver(const std::string& sender,
                                                 const std::vector<delivery::LocalDelivery>& rcpts,
                                                 std::string_view content, bool smtputf8) override {
    std::vector<delivery::RecipientResult> out;
    for (const auto& r : rcpts) {
      seen.push_back(r.user + "|" + r.detail + "|" + r.domain + "|" + r.recipient + "|" + std::string(content));
      auto it = answers.find(r.user);
      int code = it == answers.end() ? 250 : it->second;
      delivery::RecipientResult res;
      res.recipient = r.recipient;
      res.code = code;
      res.enhanced = code == 250 ? "2.0.0" : code < 500 ? "4.2.2" : "5.1.1";
      res.text = "fake";
      res.transient = code >= 400 && code < 500;
      out.push_back(res);
    }
    return out;
  }
  std::vector<std::vector<delivery::RecipientResult>> deliver_messages(const std::vector<Message>& messages) override {
    ++batches;
    batch_sizes.push_back(messages.size());
    return LocalTransport::deliver_messages(messages);
  }
  std::map<std::string, int> answers;
  std::vector<std::string> seen;
  int batches = 0;
  std::vector<size_t> batch_sizes;
};

struct Fixture {
  TempDir tmp;
  std::unique_ptr<queue::Spool> spool = std::move(queue::Spool::open(tmp.path() + "/queue").value());
  queue::ManualClock clock;
  queue::QueueManager manager{*spool, clock};
  FakeTransport* transport = new FakeTransport();
  DeliveryAgent agent{AgentOptions{{"example.test"}, 1}, *spool, manager, clock,
                      std::unique_ptr<delivery::LocalTransport>(transport)};

  std::string queue_message(std::vector<std::string> rcpts, std::string body) {
    auto w = spool->create();
    EXPECT_TRUE(w);
    EXPECT_TRUE((*w)->append(body));
    queue::Envelope env;
    env.id = (*w)->id();
    env.mail_from = "sender@example.net";
    env.received_at = clock.now();
    for (auto& r : rcpts) {
      queue::Recipient rec;
      rec.address = r;
      rec.original = r;
      env.recipients.push_back(rec);
    }
    EXPECT_TRUE((*w)->finish(env));
    EXPECT_TRUE(spool->sync());
    manager.add(env);
    return env.id;
  }
};

TEST(DeliveryAgent, BatchesDueMessagesIntoOneTransportCall) {
  Fixture f;
  f.queue_message({"alice@example.test"}, "one\r\n");
  f.queue_message({"bob+news@Example.TEST"}, "two\r\n");
  f.queue_message({"carol@example.test"}, "three\r\n");
  EXPECT_EQ(f.agent.run_once(), 3u);
  EXPECT_EQ(f.transport->batches, 1);
  EXPECT_EQ(f.transport->batch_sizes, std::vector<size_t>{3});
  ASSERT_EQ(f.transport->seen.size(), 3u);
  EXPECT_EQ(f.transport->seen[1], "bob|news|example.test|bob+news@Example.TEST|two\r\n");
  EXPECT_EQ(f.manager.size(), 0u);  // all delivered: removed from the queue
}

TEST(DeliveryAgent, TransientFailureIsRetriedOnScheduleAndPermanentIsRecorded) {
  Fixture f;
  f.transport->answers["later"] = 452;
  f.transport->answers["gone"] = 550;
  std::string id = f.queue_message({"later@example.test", "gone@example.test", "ok@example.test"}, "x\r\n");
  EXPECT_EQ(f.agent.run_once(), 1u);
  auto env = f.manager.get(id);
  ASSERT_TRUE(env);
  EXPECT_EQ(env->recipients[0].state, queue::Recipient::State::kPending);
  EXPECT_EQ(env->recipients[0].attempts, 1u);
  EXPECT_EQ(env->recipients[0].last_reply, "452 4.2.2 fake");
  EXPECT_EQ(env->recipients[1].state, queue::Recipient::State::kFailed);
  EXPECT_EQ(env->recipients[2].state, queue::Recipient::State::kDelivered);
  // Not due before the first retry interval (5 minutes).
  f.clock.advance(299);
  EXPECT_EQ(f.agent.run_once(), 0u);
  f.clock.advance(1);
  f.transport->answers.erase("later");
  EXPECT_EQ(f.agent.run_once(), 1u);
  EXPECT_EQ(f.transport->seen.size(), 4u);  // only the deferred recipient was tried again
  // Every recipient is final now; the message leaves the queue.
  EXPECT_FALSE(f.manager.get(id));
}

TEST(DeliveryAgent, RemoteRecipientsWaitForTheSendingPath) {
  Fixture f;
  std::string id = f.queue_message({"someone@elsewhere.example"}, "x\r\n");
  EXPECT_EQ(f.agent.run_once(), 1u);
  EXPECT_TRUE(f.transport->seen.empty());
  auto env = f.manager.get(id);
  ASSERT_TRUE(env);
  EXPECT_EQ(env->recipients[0].state, queue::Recipient::State::kPending);
  EXPECT_NE(env->recipients[0].last_reply.find("4.4.0"), std::string::npos);
}

}  // namespace
}  // namespace tern::scheduler
