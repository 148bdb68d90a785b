// The delivery scheduler's workers: threads that lease due messages from the
// QueueManager, read their content from the spool, hand local recipients to
// the local transport (Maildir or LMTP) and report per-recipient outcomes
// back, which the QueueManager persists and turns into retries. Non-local
// recipients go to RemoteDelivery (remote.h) in the same lease when one is
// attached; after each completion an optional hook (the DSN Bouncer) sees the
// envelope before and after the attempt. No busy waiting: an idle worker
// sleeps until the next due time or until the queue signals new work.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "delivery/local_transport.h"
#include "queue/manager.h"
#include "queue/spool.h"
#include "scheduler/remote.h"

namespace tern::scheduler {

struct AgentOptions {
  std::vector<std::string> local_domains;  // lower-cased
  size_t workers = 4;
  // Extra workers that lease one message at a time, so that slow remote
  // servers do not hold up a whole batch (used when remote delivery is on).
  size_t remote_workers = 0;
  int nice = 10;  // scheduling priority of the workers when they compete with the SMTP threads
  bool yield_to_smtp = true;  // SCHED_IDLE while the backlog is below DeliveryAgent::kIdleBacklog
  // Local workers wait up to this long for kMaxBatch messages to be due
  // before taking fewer (QueueManager::set_gathering); 0 = take at once.
  std::chrono::milliseconds gather_window{100};
};

class DeliveryAgent {
 public:
  DeliveryAgent(AgentOptions options, queue::Spool& spool, queue::QueueManager& queue, queue::Clock& clock,
                std::unique_ptr<delivery::LocalTransport> local);
  ~DeliveryAgent();

  // After QueueManager::complete: the envelope as leased, as completed, the
  // remote MTA per recipient index and the indices relayed to a server
  // without DSN (RFC 3461 §5.2.2). Runs on the worker thread.
  using AfterComplete = std::function<void(const queue::Envelope& before, const queue::Envelope& after,
                                           const std::map<size_t, std::string>& remote_mta,
                                           const std::set<size_t>& relayed_without_dsn)>;

  // Both must be set before start(); `remote` must outlive the agent's workers.
  void set_remote(RemoteDelivery* remote) { remote_ = remote; }
  void set_after_complete(AfterComplete hook) { after_complete_ = std::move(hook); }

  void start();
  // Finishes the attempts in progress, then stops the workers.
  void stop();

  // One pass over the messages due now, on the calling thread (tests).
  size_t run_once();

  // Delivers one leased message and reports to the queue (exposed for tests).
  void deliver(queue::Envelope env);
  // Delivers leased messages together (one round of Maildir syncs).
  void deliver_batch(std::vector<queue::Envelope> batch);

  // Messages leased per batch. Larger batches share more syncs; they also
  // bound what a crash can deliver twice (a batch whose Maildir files are
  // durable but whose completion is not yet): workers x kMaxBatch.
  static constexpr size_t kMaxBatch = 16;
  // Queued messages at which delivery stops yielding the CPU to SMTP.
  static constexpr size_t kIdleBacklog = 20000;

 private:
  // Queue lanes (QueueManager::set_lane_classifier) the workers take from.
  static constexpr size_t kLocalLane = 0;
  static constexpr size_t kRemoteLane = 1;
  void worker(size_t max_batch, size_t lane);
  static delivery::LocalDelivery local_delivery_for(const queue::Envelope& env, const queue::Recipient& r);
  static void record_result(const queue::Envelope& env, queue::Recipient& r, const delivery::RecipientResult& res);
  bool is_local(const std::string& address) const;

  AgentOptions options_;
  queue::Spool& spool_;
  queue::QueueManager& queue_;
  queue::Clock& clock_;
  std::unique_ptr<delivery::LocalTransport> local_;
  RemoteDelivery* remote_ = nullptr;
  AfterComplete after_complete_;
  std::set<std::string> domains_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
};

}  // namespace tern::scheduler
