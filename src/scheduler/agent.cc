// Delivery workers (see agent.h).
#include "scheduler/agent.h"

#include <pthread.h>

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/log.h"
#include "base/strings.h"

namespace tern::scheduler {

DeliveryAgent::DeliveryAgent(AgentOptions options, queue::Spool& spool, queue::QueueManager& queue,
                             queue::Clock& clock, std::unique_ptr<delivery::LocalTransport> local)
    : options_(std::move(options)), spool_(spool), queue_(queue), clock_(clock), local_(std::move(local)) {
  for (const auto& d : options_.local_domains) domains_.insert(to_lower(d));
}

DeliveryAgent::~DeliveryAgent() { stop(); }

void DeliveryAgent::start() {
  if (remote_ != nullptr) {
    // Messages with a due remote recipient go to the remote workers (one
    // message each, many at once, waiting on networks); local-only ones to
    // the local workers (batches, one round of syncs per batch).
    queue_.set_lane_classifier([this](const queue::Envelope& env) {
      for (const auto& r : env.recipients) {
        if (r.state == queue::Recipient::State::kPending && !is_local(r.address)) return kRemoteLane;
      }
      return kLocalLane;
    });
  }
  queue_.set_gathering(kLocalLane, kMaxBatch, options_.gather_window);
  for (size_t i = 0; i < std::max<size_t>(1, options_.workers); ++i) {
    threads_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "tern-deliver");
      worker(kMaxBatch, kLocalLane);
    });
  }
  for (size_t i = 0; remote_ != nullptr && i < options_.remote_workers; ++i) {
    threads_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "tern-remote");
      worker(1, kRemoteLane);
    });
  }
}

void DeliveryAgent::stop() {
  stopping_ = true;
  queue_.shutdown();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

bool DeliveryAgent::is_local(const std::string& address) const {
  auto at = address.rfind('@');
  if (at == std::string::npos) return true;  // bare local part (e.g. "postmaster")
  return domains_.count(to_lower(address.substr(at + 1))) > 0;
}

size_t DeliveryAgent::run_once() {
  auto batch = queue_.take_ready(clock_.now(), kMaxBatch);
  size_t n = batch.size();
  if (n > 0) deliver_batch(std::move(batch));
  return n;
}

void DeliveryAgent::worker(size_t max_batch, size_t lane) {
  // Accepting mail comes first: clients wait for our replies, deliveries
  // wait for nobody, and the queue is durable. So while the backlog is
  // moderate, workers run in the SCHED_IDLE class: they use the CPU time the
  // SMTP threads leave (and every moment they wait for the disk or for a
  // sync). A backlog of kIdleBacklog messages or more means acceptance is
  // outrunning delivery: the workers then compete at normal priority (nice
  // `options_.nice`), so the queue cannot grow without bound.
  bool idle_class = false;
  auto set_class = [&](bool idle) {
    sched_param param{};
    if (options_.yield_to_smtp && idle) {
      idle_class = ::sched_setscheduler(0, SCHED_IDLE, &param) == 0;
    } else {
      if (idle_class) ::sched_setscheduler(0, SCHED_OTHER, &param);
      idle_class = false;
      if (options_.nice > 0) ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), options_.nice);
    }
  };
  set_class(true);
  while (!stopping_) {
    bool want_idle = queue_.size() < kIdleBacklog;
    if (want_idle != idle_class && options_.yield_to_smtp) set_class(want_idle);
    // Lease whatever is due (up to kMaxBatch): under load a worker delivers
    // a burst of messages with one round of syncs. Local workers first let
    // a batch gather (QueueManager::set_gathering, at most
    // AgentOptions::gather_window).
    queue_.wait_for_batch(lane);
    auto batch = queue_.take_ready(clock_.now(), max_batch, lane);
    if (batch.empty()) {
      auto due = queue_.next_due(lane);
      int64_t wait_s = due ? std::max<int64_t>(0, *due - clock_.now()) : 60;
      queue_.wait_for_work(std::chrono::milliseconds(std::min<int64_t>(wait_s, 60) * 1000 + 50), lane);
      continue;
    }
    // A local batch's log lines (one per recipient) go out in one write.
    // (Not for remote deliveries: they can take minutes, and their lines
    // should appear as they happen.)
    std::optional<log::Batch> lines;
    if (lane == kLocalLane) lines.emplace();
    deliver_batch(std::move(batch));
  }
}

void DeliveryAgent::deliver(queue::Envelope env) {
  std::vector<queue::Envelope> one;
  one.push_back(std::move(env));
  deliver_batch(std::move(one));
}

void DeliveryAgent::deliver_batch(std::vector<queue::Envelope> batch) {
  int64_t now = clock_.now();
  struct Work {
    queue::Envelope* env;
    std::vector<size_t> idx;         // recipients handed to the local transport
    std::vector<size_t> remote_idx;  // recipients for RemoteDelivery
    std::string content;
    std::map<size_t, std::string> remote_mta;
    std::set<size_t> relayed_without_dsn;
  };
  std::vector<queue::Envelope> before;
  if (after_complete_) before = batch;
  std::vector<Work> work;
  for (auto& env : batch) {
    Work w{&env, {}, {}, {}, {}, {}};
    for (size_t i = 0; i < env.recipients.size(); ++i) {
      auto& r = env.recipients[i];
      if (r.state != queue::Recipient::State::kPending || r.next_attempt > now) continue;
      if (!is_local(r.address)) {
        if (remote_ == nullptr) {
          // No remote delivery configured (unit tests of local delivery):
          // relayed mail waits in the queue and is retried.
          r.last_reply = "451 4.4.0 remote delivery is not available in this build";
        } else {
          w.remote_idx.push_back(i);
        }
        continue;
      }
      w.idx.push_back(i);
    }
    if (!w.idx.empty() || !w.remote_idx.empty()) {
      auto content = spool_.read_message(env);
      if (!content) {
        log::error("delivery_error").kv("id", env.id).kv("error", content.error().text);
        for (size_t i : w.idx) env.recipients[i].last_reply = content.error().to_string();
        for (size_t i : w.remote_idx) env.recipients[i].last_reply = content.error().to_string();
        w.idx.clear();
        w.remote_idx.clear();
      } else {
        w.content = std::move(*content);
      }
    }
    work.push_back(std::move(w));
  }

  std::vector<delivery::LocalTransport::Message> messages;
  std::vector<size_t> message_of;  // work index of each message
  for (size_t k = 0; k < work.size(); ++k) {
    if (work[k].idx.empty()) continue;
    const auto& env = *work[k].env;
    delivery::LocalTransport::Message m;
    m.sender = env.mail_from;
    m.content = work[k].content;
    m.smtputf8 = env.smtputf8;
    for (size_t i : work[k].idx) m.rcpts.push_back(local_delivery_for(env, env.recipients[i]));
    messages.push_back(std::move(m));
    message_of.push_back(k);
  }
  auto results = messages.empty() ? std::vector<std::vector<delivery::RecipientResult>>()
                                  : local_->deliver_messages(messages);
  for (size_t m = 0; m < results.size(); ++m) {
    auto& w = work[message_of[m]];
    for (size_t k = 0; k < w.idx.size() && k < results[m].size(); ++k) {
      record_result(*w.env, w.env->recipients[w.idx[k]], results[m][k]);
    }
  }
  // Remote recipients: one message at a time, grouped by transport and
  // destination inside RemoteDelivery.
  for (auto& w : work) {
    if (w.remote_idx.empty()) continue;
    auto results = remote_->deliver(*w.env, w.remote_idx, w.content);
    for (const auto& res : results) {
      auto& r = w.env->recipients.at(res.index);
      r.state = res.state;
      r.last_reply = res.last_reply;
      if (!res.remote_mta.empty()) w.remote_mta[res.index] = res.remote_mta;
      if (res.dsn_not_relayed && res.state == queue::Recipient::State::kDelivered) {
        w.relayed_without_dsn.insert(res.index);
      }
    }
  }
  for (size_t k = 0; k < batch.size(); ++k) {
    auto& env = batch[k];
    auto done = queue_.complete(env.id, env);
    if (!done) {
      log::error("queue_error").kv("id", env.id).kv("error", done.error().text);
      continue;
    }
    // DSNs (queue::Bouncer) for what this attempt decided.
    if (after_complete_) after_complete_(before[k], *done, work[k].remote_mta, work[k].relayed_without_dsn);
  }
}

delivery::LocalDelivery DeliveryAgent::local_delivery_for(const queue::Envelope& env, const queue::Recipient& r) {
  auto at = r.address.rfind('@');
  std::string local = at == std::string::npos ? r.address : r.address.substr(0, at);
  delivery::LocalDelivery d;
  d.sender = env.mail_from;
  d.recipient = r.original.empty() ? r.address : r.original;
  d.domain = at == std::string::npos ? std::string() : to_lower(r.address.substr(at + 1));
  auto plus = local.find('+');
  d.user = to_lower(local.substr(0, plus));
  if (plus != std::string::npos) d.detail = local.substr(plus + 1);
  if (auto it = env.attributes.find("junk"); it != env.attributes.end()) d.junk = it->second == "1";
  return d;
}

void DeliveryAgent::record_result(const queue::Envelope& env, queue::Recipient& r,
                                  const delivery::RecipientResult& res) {
  std::string reply = std::to_string(res.code) + " " + res.enhanced + " " + res.text;
  r.last_reply = reply;
  const char* status = "deferred";
  if (res.delivered()) {
    r.state = queue::Recipient::State::kDelivered;
    status = "sent";
  } else if (!res.transient) {
    r.state = queue::Recipient::State::kFailed;
    status = "bounced";
  }
  log::info("delivery")
      .kv("id", env.id)
      .kv("to", r.address)
      .kv("orig_to", r.original)
      .kv("relay", "local")
      .kv("status", status)
      .kv("attempt", r.attempts + 1)
      .kv("reply", reply);
}

}  // namespace tern::scheduler
