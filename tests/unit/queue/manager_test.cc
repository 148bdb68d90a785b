// Tests for QueueManager: leasing, the retry schedule and expiry driven by a
// ManualClock, admin operations (hold/release/delete/flush/retry), the
// persistence of their effects in the spool, and wake-ups.
#include "queue/manager.h"

#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <thread>

#include "test_dir.h"

namespace tern::queue {
namespace {

using testing::TempDir;
using State = Recipient::State;

class QueueManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto spool = Spool::open(tmp_.path(), Spool::SyncMode::kFsyncEach);
    ASSERT_TRUE(spool);
    spool_ = std::move(*spool);
    manager_ = std::make_unique<QueueManager>(*spool_, clock_);
  }

  // Spools a message received now with `recipients` recipients and adds it.
  std::string enqueue(int recipients = 1) {
    auto writer = spool_->create();
    EXPECT_TRUE(writer);
    Envelope env;
    env.mail_from = "from@example.org";
    for (int i = 0; i < recipients; ++i) {
      Recipient r;
      r.address = "to" + std::to_string(i) + "@example.net";
      env.recipients.push_back(r);
    }
    env.received_at = clock_.now();
    EXPECT_TRUE((*writer)->append("Subject: hi\r\n\r\nhello\r\n"));
    EXPECT_TRUE((*writer)->finish(env));
    EXPECT_TRUE(spool_->sync());
    env.id = (*writer)->id();
    env.size = (*writer)->size();
    manager_->add(env);
    return env.id;
  }

  // Leases `id` (must be ready now), applies `outcome` to every due recipient
  // and completes it.
  Result<Envelope> attempt(const std::string& id, State outcome, const std::string& reply = "451 4.4.1 no answer") {
    auto ready = manager_->take_ready(clock_.now(), 100);
    std::optional<Envelope> mine;
    for (auto& env : ready) {
      if (env.id == id) {
        mine = env;
      } else {
        manager_->abandon(env.id);
      }
    }
    if (mine) {
      for (auto& r : mine->recipients) {
        if (r.state == State::kPending && r.next_attempt <= clock_.now()) {
          r.state = outcome;
          r.last_reply = reply;
        }
      }
      return manager_->complete(id, *mine);
    }
    return Error::local("not ready: " + id);
  }

  TempDir tmp_;
  ManualClock clock_{1'700'000'000};
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<QueueManager> manager_;
};

TEST_F(QueueManagerTest, LeaseIsExclusiveUntilCompleted) {
  std::string id = enqueue();
  auto first = manager_->take_ready(clock_.now(), 10);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].id, id);
  EXPECT_TRUE(manager_->take_ready(clock_.now(), 10).empty());
  EXPECT_FALSE(manager_->next_due().has_value());
  manager_->abandon(id);
  EXPECT_EQ(manager_->take_ready(clock_.now(), 10).size(), 1u);
  // complete() without a lease is refused.
  manager_->abandon(id);
  EXPECT_FALSE(manager_->complete(id, first[0]));
}

TEST_F(QueueManagerTest, TakeReadyHonoursMaxAndOrder) {
  std::string a = enqueue(), b = enqueue(), c = enqueue();
  auto two = manager_->take_ready(clock_.now(), 2);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0].id, a);
  EXPECT_EQ(two[1].id, b);
  auto rest = manager_->take_ready(clock_.now(), 2);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].id, c);
}

TEST_F(QueueManagerTest, RetryScheduleIsFollowedAndPersisted) {
  std::string id = enqueue();
  const std::vector<int64_t> expected_delays{300, 600, 1200, 2400, 4800, 9600, 19200, 19200, 19200};
  for (size_t i = 0; i < expected_delays.size(); ++i) {
    SCOPED_TRACE("attempt " + std::to_string(i + 1));
    const int64_t now = clock_.now();
    auto result = attempt(id, State::kPending);
    ASSERT_TRUE(result) << result.error().text;
    EXPECT_EQ(result->recipients[0].attempts, i + 1);
    EXPECT_EQ(result->recipients[0].next_attempt, now + expected_delays[i]);
    EXPECT_EQ(manager_->next_due(), now + expected_delays[i]);
    // Not ready one second early.
    EXPECT_TRUE(manager_->take_ready(now + expected_delays[i] - 1, 10).empty());
    auto stored = spool_->load(id);
    ASSERT_TRUE(stored);
    EXPECT_EQ(stored->recipients[0].attempts, i + 1);
    EXPECT_EQ(stored->recipients[0].next_attempt, now + expected_delays[i]);
    EXPECT_EQ(stored->recipients[0].last_reply, "451 4.4.1 no answer");
    clock_.advance(expected_delays[i]);
  }
}

TEST_F(QueueManagerTest, DeliveredMessageLeavesQueueAndSpool) {
  std::string id = enqueue(2);
  auto ready = manager_->take_ready(clock_.now(), 10);
  ASSERT_EQ(ready.size(), 1u);
  Envelope env = ready[0];
  env.recipients[0].state = State::kDelivered;
  env.recipients[0].last_reply = "250 ok";
  env.recipients[1].last_reply = "451 later";
  auto result = manager_->complete(id, env);
  ASSERT_TRUE(result);
  EXPECT_EQ(manager_->size(), 1u);
  EXPECT_TRUE(spool_->load(id));

  // Only the pending recipient is due next time.
  clock_.advance(300);
  ready = manager_->take_ready(clock_.now(), 10);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].recipients[0].state, State::kDelivered);
  env = ready[0];
  env.recipients[1].state = State::kFailed;
  env.recipients[1].last_reply = "550 5.1.1 unknown";
  result = manager_->complete(id, env);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->recipients[0].attempts, 1u);  // not attempted again
  EXPECT_EQ(result->recipients[1].attempts, 2u);
  EXPECT_EQ(manager_->size(), 0u);
  EXPECT_FALSE(manager_->get(id));
  EXPECT_FALSE(spool_->load(id));
}

TEST_F(QueueManagerTest, HoldReleaseArePersistedAndGateDelivery) {
  std::string id = enqueue();
  ASSERT_TRUE(manager_->hold(id));
  EXPECT_TRUE(manager_->take_ready(clock_.now(), 10).empty());
  EXPECT_FALSE(manager_->next_due().has_value());
  auto stored = spool_->load(id);
  ASSERT_TRUE(stored);
  EXPECT_TRUE(stored->held);
  EXPECT_TRUE(manager_->get(id)->held);

  ASSERT_TRUE(manager_->release(id));
  stored = spool_->load(id);
  ASSERT_TRUE(stored);
  EXPECT_FALSE(stored->held);
  EXPECT_EQ(manager_->take_ready(clock_.now(), 10).size(), 1u);

  EXPECT_FALSE(manager_->hold("0000000000zzzz"));
  EXPECT_FALSE(manager_->release("0000000000zzzz"));
}

TEST_F(QueueManagerTest, HoldDuringLeaseSurvivesCompletion) {
  std::string id = enqueue();
  auto ready = manager_->take_ready(clock_.now(), 10);
  ASSERT_EQ(ready.size(), 1u);
  ASSERT_TRUE(manager_->hold(id));
  ASSERT_TRUE(manager_->complete(id, ready[0]));  // still pending
  EXPECT_TRUE(manager_->get(id)->held);
  EXPECT_TRUE(spool_->load(id)->held);
  clock_.advance(100000);
  EXPECT_TRUE(manager_->take_ready(clock_.now(), 10).empty());
}

TEST_F(QueueManagerTest, RemoveDeletesFromQueueAndSpool) {
  std::string id = enqueue();
  EXPECT_FALSE(manager_->remove("0000000000zzzz"));
  ASSERT_TRUE(manager_->remove(id));
  EXPECT_FALSE(manager_->get(id));
  EXPECT_FALSE(spool_->load(id));
  EXPECT_TRUE(manager_->list().empty());
  EXPECT_FALSE(manager_->remove(id));
}

TEST_F(QueueManagerTest, RemoveDuringLeaseMakesCompleteFail) {
  std::string id = enqueue();
  auto ready = manager_->take_ready(clock_.now(), 10);
  ASSERT_EQ(ready.size(), 1u);
  ASSERT_TRUE(manager_->remove(id));
  EXPECT_FALSE(manager_->complete(id, ready[0]));
}

TEST_F(QueueManagerTest, FlushAndRetryMakeMessagesDueNow) {
  std::string a = enqueue(), b = enqueue();
  ASSERT_TRUE(attempt(a, State::kPending));
  ASSERT_TRUE(attempt(b, State::kPending));
  EXPECT_TRUE(manager_->take_ready(clock_.now(), 10).empty());
  EXPECT_EQ(manager_->next_due(), clock_.now() + 300);

  ASSERT_TRUE(manager_->retry(b));
  auto ready = manager_->take_ready(clock_.now(), 10);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].id, b);
  manager_->abandon(b);
  EXPECT_FALSE(manager_->retry("0000000000zzzz"));

  manager_->flush();
  EXPECT_EQ(manager_->take_ready(clock_.now(), 10).size(), 2u);
}

TEST_F(QueueManagerTest, LanesSeparateKindsOfWork) {
  std::string one = enqueue(1), two = enqueue(2), three = enqueue(1);
  // Lane 1 for messages with more than one recipient (a stand-in for "has
  // remote recipients"); reclassifies what is already queued.
  manager_->set_lane_classifier([](const Envelope& env) { return env.recipients.size() > 1 ? size_t{1} : size_t{0}; });
  auto lane1 = manager_->take_ready(clock_.now(), 10, 1);
  ASSERT_EQ(lane1.size(), 1u);
  EXPECT_EQ(lane1[0].id, two);
  auto lane0 = manager_->take_ready(clock_.now(), 10, 0);
  ASSERT_EQ(lane0.size(), 2u);
  EXPECT_EQ(lane0[0].id, one);
  EXPECT_EQ(lane0[1].id, three);
  EXPECT_FALSE(manager_->next_due(1).has_value());
  // A failed attempt puts the message back in its lane, due later.
  Envelope updated = lane1[0];
  for (auto& r : updated.recipients) r.last_reply = "451 4.4.1 later";
  ASSERT_TRUE(manager_->complete(two, updated));
  EXPECT_EQ(manager_->next_due(1), clock_.now() + 300);
  EXPECT_FALSE(manager_->next_due(0).has_value());
  // Waiting on a lane wakes for work in that lane.
  clock_.advance(300);
  EXPECT_TRUE(manager_->wait_for_work(std::chrono::milliseconds(1), 1));
  EXPECT_EQ(manager_->take_ready(clock_.now(), 10, 1).size(), 1u);
}

TEST_F(QueueManagerTest, RecipientsExpireAfterMaxAge) {
  std::string id = enqueue();
  const int64_t received = clock_.now();
  const int64_t max_age = RetryPolicy{}.max_age;
  // Fail repeatedly until shortly before expiry.
  clock_.set(received + max_age - 100);
  ASSERT_TRUE(manager_->retry(id));
  auto result = attempt(id, State::kPending, "451 4.4.1 still down");
  ASSERT_TRUE(result);
  // The next attempt is at the expiry time, not 5 minutes later.
  EXPECT_EQ(result->recipients[0].next_attempt, received + max_age);
  clock_.advance(100);
  result = attempt(id, State::kPending, "451 4.4.1 still down");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->recipients[0].state, State::kFailed);
  EXPECT_EQ(result->recipients[0].last_reply, "message expired; last error: 451 4.4.1 still down");
  EXPECT_EQ(manager_->size(), 0u);
  EXPECT_FALSE(spool_->load(id));
}

TEST_F(QueueManagerTest, RecoveredStateRestoresSchedule) {
  std::string id = enqueue();
  ASSERT_TRUE(attempt(id, State::kPending));
  ASSERT_TRUE(manager_->hold(id));
  ASSERT_TRUE(spool_->sync());
  auto recovered = spool_->recover();
  ASSERT_TRUE(recovered);
  ASSERT_EQ(recovered->size(), 1u);
  QueueManager restarted(*spool_, clock_);
  restarted.add((*recovered)[0]);
  auto env = restarted.get(id);
  ASSERT_TRUE(env);
  EXPECT_TRUE(env->held);
  EXPECT_EQ(env->recipients[0].attempts, 1u);
  EXPECT_EQ(env->recipients[0].next_attempt, clock_.now() + 300);
  ASSERT_TRUE(restarted.release(id));
  EXPECT_EQ(restarted.next_due(), clock_.now() + 300);
}

TEST_F(QueueManagerTest, OnCompleteSeesBeforeAndAfterWhileContentIsStillSpooled) {
  std::string id = enqueue(2);
  int calls = 0;
  manager_->set_on_complete([&](const Envelope& before, const Envelope& after) {
    ++calls;
    EXPECT_EQ(before.id, id);
    EXPECT_EQ(before.recipients[0].state, State::kPending);
    EXPECT_EQ(before.recipients[0].attempts, 0u);
    EXPECT_EQ(after.recipients[0].state, State::kFailed);
    EXPECT_EQ(after.recipients[0].attempts, 1u);
    // The finished message is out of the index but its content is still there.
    EXPECT_FALSE(manager_->get(id));
    auto content = spool_->read_content(id);
    ASSERT_TRUE(content) << content.error().text;
    EXPECT_EQ(*content, "Subject: hi\r\n\r\nhello\r\n");
  });
  auto result = attempt(id, State::kFailed, "550 5.1.1 unknown");
  ASSERT_TRUE(result);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(spool_->load(id));  // removed after the callback
  manager_->set_on_complete(nullptr);
}

TEST_F(QueueManagerTest, OnCompleteRunsForPendingMessagesToo) {
  std::string id = enqueue();
  std::optional<Envelope> seen;
  manager_->set_on_complete([&](const Envelope&, const Envelope& after) { seen = after; });
  ASSERT_TRUE(attempt(id, State::kPending));
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->recipients[0].attempts, 1u);
  EXPECT_TRUE(manager_->get(id));
  manager_->set_on_complete(nullptr);
}

TEST_F(QueueManagerTest, DelayWarnedFlagIsPersisted) {
  std::string id = enqueue();
  EXPECT_FALSE(manager_->mark_delay_warned("nope"));
  ASSERT_TRUE(manager_->mark_delay_warned(id));
  EXPECT_TRUE(manager_->get(id)->delay_warned);
  // A later attempt keeps it.
  ASSERT_TRUE(attempt(id, State::kPending));
  ASSERT_TRUE(spool_->sync());
  manager_.reset();
  spool_.reset();
  auto reopened = Spool::open(tmp_.path(), Spool::SyncMode::kFsyncEach);
  ASSERT_TRUE(reopened);
  spool_ = std::move(*reopened);
  auto recovered = spool_->recover();
  ASSERT_TRUE(recovered);
  ASSERT_EQ(recovered->size(), 1u);
  EXPECT_TRUE((*recovered)[0].delay_warned);
  EXPECT_EQ((*recovered)[0].recipients[0].attempts, 1u);
}

TEST_F(QueueManagerTest, WakesDeliverySideWithoutPolling) {
  std::atomic<int> callbacks{0};
  manager_->set_on_ready([&] { ++callbacks; });
  std::atomic<bool> woken{false};
  std::thread worker([&] { woken = manager_->wait_for_work(std::chrono::seconds(10)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  enqueue();
  worker.join();
  EXPECT_TRUE(woken.load());
  EXPECT_GE(callbacks.load(), 1);
  // Something is due now: returns immediately even without a new event.
  EXPECT_TRUE(manager_->wait_for_work(std::chrono::seconds(10)));
  manager_->shutdown();
  (void)manager_->take_ready(clock_.now(), 10);
  EXPECT_FALSE(manager_->wait_for_work(std::chrono::seconds(10)));
}

TEST_F(QueueManagerTest, ListIsASnapshotInArrivalOrder) {
  std::string a = enqueue(), b = enqueue(2);
  auto all = manager_->list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id, a);
  EXPECT_EQ(all[1].id, b);
  EXPECT_EQ(all[1].recipients.size(), 2u);
}

TEST_F(QueueManagerTest, GatheringWaitsForABatchOrTheWindow) {
  using std::chrono::milliseconds;
  using std::chrono::steady_clock;
  // Off by default: returns at once.
  enqueue();
  auto t0 = steady_clock::now();
  manager_->wait_for_batch(0);
  EXPECT_LT(steady_clock::now() - t0, milliseconds(1000));
  EXPECT_EQ(manager_->take_ready(clock_.now(), 10).size(), 1u);

  // (Windows of seconds, bounds of a second: a loaded machine or ASan can
  // delay any step by a good fraction of a second.)
  manager_->set_gathering(0, 3, milliseconds(2500));
  // Nothing due: returns at once (the worker then waits for work).
  t0 = steady_clock::now();
  manager_->wait_for_batch(0);
  EXPECT_LT(steady_clock::now() - t0, milliseconds(1000));
  // One due message: waits for the window.
  enqueue();
  t0 = steady_clock::now();
  manager_->wait_for_batch(0);
  EXPECT_GE(steady_clock::now() - t0, milliseconds(2400));
  EXPECT_EQ(manager_->take_ready(clock_.now(), 10).size(), 1u);
  // A full batch arriving during the window ends the wait early. (A long
  // window from here on: "early" must not depend on how fast the enqueues'
  // spool syncs are on a loaded machine or under ASan.)
  manager_->set_gathering(0, 3, milliseconds(20000));
  enqueue();
  std::thread more([&] {
    std::this_thread::sleep_for(milliseconds(50));
    enqueue();
    enqueue();
  });
  t0 = steady_clock::now();
  manager_->wait_for_batch(0);
  auto waited = steady_clock::now() - t0;
  more.join();
  EXPECT_LT(waited, milliseconds(10000));
  EXPECT_EQ(manager_->take_ready(clock_.now(), 10).size(), 3u);
  // Shutdown ends a wait.
  enqueue();
  std::thread stopper([&] {
    std::this_thread::sleep_for(milliseconds(50));
    manager_->shutdown();
  });
  t0 = steady_clock::now();
  manager_->wait_for_batch(0);
  waited = steady_clock::now() - t0;
  stopper.join();
  EXPECT_LT(waited, milliseconds(10000));
}

}  // namespace
}  // namespace tern::queue
