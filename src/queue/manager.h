// QueueManager: the in-memory index of queued messages, used by the delivery
// scheduler (which leases due messages, delivers them and reports back) and
// by admin commands (list, hold, release, delete, flush, retry). It owns the
// retry schedule and the maximum queue lifetime, and persists every state
// change that must survive a restart (attempts, next attempt time, held flag,
// per-recipient outcomes) through Spool::append_state / Spool::remove. It
// does no other I/O. Time comes from a Clock so that retry timing can be
// tested without sleeping. Thread-safe.
//
// Division of labour with the delivery worker: the worker sets each leased
// recipient's `state` and `last_reply`; the manager counts `attempts` and
// computes `next_attempt` (or expires the recipient) in complete().
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "queue/envelope.h"
#include "queue/spool.h"

namespace tern::queue {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t now() = 0;  // unix seconds
};

class SystemClock final : public Clock {
 public:
  int64_t now() override;
};

// A clock that only moves when told to (tests).
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start = 1'700'000'000) : now_(start) {}
  int64_t now() override { return now_.load(); }
  void set(int64_t t) { now_.store(t); }
  void advance(int64_t seconds) { now_.fetch_add(seconds); }

 private:
  std::atomic<int64_t> now_;
};

struct RetryPolicy {
  // Delay after the 1st, 2nd, ... failed attempt; the last one repeats.
  std::vector<int64_t> schedule{5 * 60, 10 * 60, 20 * 60, 40 * 60, 80 * 60, 160 * 60, 320 * 60};
  // After this long in the queue, still-pending recipients fail with
  // "message expired" (RFC 5321 §4.5.4.1: give up after 4-5 days).
  int64_t max_age = 5 * 24 * 3600;

  // Delay before the next attempt after `attempts` (>= 1) attempts.
  int64_t delay_after(uint32_t attempts) const;
  bool expired(const Envelope& env, int64_t now) const { return now - env.received_at >= max_age; }
};

class QueueManager {
 public:
  QueueManager(Spool& spool, Clock& clock, RetryPolicy policy = {});
  QueueManager(const QueueManager&) = delete;
  QueueManager& operator=(const QueueManager&) = delete;

  // Indexes a new (just acknowledged) or recovered message. received_at = 0
  // is replaced by the clock's now. Replaces an unleased entry with the same id.
  void add(Envelope env);

  // Leases up to `max` unheld messages that have a pending recipient with
  // next_attempt <= now, earliest first. A leased message is not returned
  // again until complete() or abandon(). The worker should attempt the
  // recipients with state kPending and next_attempt <= now.
  std::vector<Envelope> take_ready(int64_t now, size_t max, size_t lane = 0);

  // Lanes let different workers take different kinds of messages (the
  // delivery agent: local-only messages in lane 0, messages with remote
  // recipients in lane 1) without scanning past each other's work. The
  // classifier runs under the manager's lock whenever a message is
  // (re)indexed; it must return a value below kLanes. Default: all lane 0.
  static constexpr size_t kLanes = 2;
  void set_lane_classifier(std::function<size_t(const Envelope&)> classifier);

  // Ends the lease on `id`. For each recipient that was due when leased,
  // takes state and last_reply from `updated`, counts the attempt and, if
  // still pending, schedules the next attempt or expires it. Persists the
  // result (append_state, or remove() when nothing is pending) and requests a
  // group sync. Returns the resulting envelope, so that the caller can see
  // recipients that expired here (for DSNs).
  //
  // The on_complete callback (set_on_complete) runs inside complete(), after
  // the outcome is decided and persisted but before a finished message's
  // content is removed from the spool, outside the manager's lock: it may
  // read the content with Spool::read_message and call other manager methods.
  // A finished message is already gone from the index while it runs.
  Result<Envelope> complete(const std::string& id, const Envelope& updated);
  // before = the envelope as the manager held it when complete() started;
  // after = what complete() returns. Runs on the thread calling complete().
  using CompleteCallback = std::function<void(const Envelope& before, const Envelope& after)>;
  void set_on_complete(CompleteCallback on_complete);
  // Ends the lease on `id` without recording an attempt (e.g. shutdown).
  void abandon(const std::string& id);

  std::vector<Envelope> list() const;  // snapshot, sorted by id (arrival order)
  Result<Envelope> get(const std::string& id) const;
  size_t size() const;

  // Admin operations; errors for unknown ids. hold/release persist the held
  // flag; flush/retry only move next_attempt in memory.
  Status hold(const std::string& id);
  Status release(const std::string& id);
  Status remove(const std::string& id);  // deletes the message from the queue and the spool
  void flush();                          // every pending recipient is due now
  Status retry(const std::string& id);   // this message's pending recipients are due now

  // Records (persistently) that the delay DSN of `id` was sent, so that it is
  // not sent again, also after a restart. Error for an unknown id.
  Status mark_delay_warned(const std::string& id);

  // Earliest next_attempt among unheld, unleased messages with pending
  // recipients; nullopt when there is none.
  std::optional<int64_t> next_due(size_t lane = 0) const;

  // Called (outside the manager's lock) whenever a message may have become
  // ready: add, release, flush, retry, complete/abandon with pending work.
  void set_on_ready(std::function<void()> on_ready);
  // Blocks until a message is due now or may have become ready (as above),
  // shutdown(), or `max_wait` elapsed. Returns false on timeout or shutdown.
  // Workers loop: take_ready(); if empty, wait_for_work(until next_due()).
  bool wait_for_work(std::chrono::milliseconds max_wait, size_t lane = 0);
  void shutdown();

  // Delivery batching ("gathering") for `lane`: its workers take messages
  // once `min_count` are due, or once the first due one has waited `window`
  // (then whatever is due). A batch of local deliveries shares its syncs
  // (file data, the new/ directory, the spool's state records), so taking
  // messages one by one as they arrive costs far more CPU per message than
  // taking them a few milliseconds later in batches. add() does not wake a
  // worker for every message while one is already gathering. Off (min 1)
  // by default.
  void set_gathering(size_t lane, size_t min_count, std::chrono::milliseconds window);
  // Blocks until `lane` has a batch to take (as above), nothing is due, or
  // shutdown(). Returns at once when gathering is off. Call before take_ready.
  void wait_for_batch(size_t lane);

 private:
  struct Entry {
    Envelope env;
    bool leased = false;
    std::vector<size_t> leased_recipients;
    std::optional<int64_t> due;  // key in due_[lane] when present
    size_t lane = 0;
  };
  void reindex(Entry& entry);    // requires mu_
  void unindex(Entry& entry);    // requires mu_
  Status persist_state(const Envelope& env);  // requires mu_
  // Wakes workers: of every lane, or (after add()) one worker of `lane`,
  // which is enough since a worker takes all due messages up to its batch
  // size. Must not hold mu_.
  void notify_ready(std::optional<size_t> lane = std::nullopt);

  Spool& spool_;
  Clock& clock_;
  const RetryPolicy policy_;

  mutable std::mutex mu_;
  std::condition_variable ready_cv_[kLanes];
  std::map<std::string, Entry> entries_;
  std::set<std::pair<int64_t, std::string>> due_[kLanes];  // per lane: (next due time, id)
  std::function<size_t(const Envelope&)> classifier_;
  uint64_t ready_generation_[kLanes] = {};
  struct Gathering {
    size_t min_count = 1;
    std::chrono::milliseconds window{0};
    std::optional<std::chrono::steady_clock::time_point> since;  // first seen due, reset by take_ready
    size_t waiting = 0;                                          // workers in wait_for_batch
  };
  Gathering gathering_[kLanes];
  size_t count_due(size_t lane, size_t limit) const;  // requires mu_; at most `limit`
  bool shutdown_ = false;
  std::function<void()> on_ready_;
  CompleteCallback on_complete_;
};

}  // namespace tern::queue
