// Delivery workers (see agent.h).
#include "scheduler/agent.h"

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
  for (size_t i = 0; i < std::max<size_t>(1, options_.workers); ++i) {
    threads_.emplace_back([this] { worker(); });
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
  auto batch = queue_.take_ready(clock_.now(), 64);
  for (auto& env : batch) deliver(std::move(env));
  return batch.size();
}

void DeliveryAgent::worker() {
  while (!stopping_) {
    auto batch = queue_.take_ready(clock_.now(), 1);
    if (batch.empty()) {
      auto due = queue_.next_due();
      int64_t wait_s = due ? std::max<int64_t>(0, *due - clock_.now()) : 60;
      queue_.wait_for_work(std::chrono::milliseconds(std::min<int64_t>(wait_s, 60) * 1000 + 50));
      continue;
    }
    for (auto& env : batch) deliver(std::move(env));
  }
}

void DeliveryAgent::deliver(queue::Envelope env) {
  int64_t now = clock_.now();
  std::vector<size_t> local_idx;
  std::vector<delivery::LocalDelivery> local_rcpts;
  for (size_t i = 0; i < env.recipients.size(); ++i) {
    auto& r = env.recipients[i];
    if (r.state != queue::Recipient::State::kPending || r.next_attempt > now) continue;
    if (!is_local(r.address)) {
      // Remote delivery (MX lookup, SMTP client) arrives with the sending
      // issue; until then relayed mail waits in the queue and is retried.
      r.last_reply = "451 4.4.0 remote delivery is not available in this build";
      continue;
    }
    auto at = r.address.rfind('@');
    std::string local = at == std::string::npos ? r.address : r.address.substr(0, at);
    delivery::LocalDelivery d;
    d.sender = env.mail_from;
    d.recipient = r.original.empty() ? r.address : r.original;
    d.domain = at == std::string::npos ? std::string() : to_lower(r.address.substr(at + 1));
    auto plus = local.find('+');
    d.user = to_lower(local.substr(0, plus));
    if (plus != std::string::npos) d.detail = local.substr(plus + 1);
    local_idx.push_back(i);
    local_rcpts.push_back(std::move(d));
  }
  if (!local_rcpts.empty()) {
    auto content = spool_.read_content(env.id);
    if (!content) {
      log::error("delivery_error").kv("id", env.id).kv("error", content.error().text);
      for (size_t i : local_idx) env.recipients[i].last_reply = content.error().to_string();
    } else {
      auto results = local_->deliver(env.mail_from, local_rcpts, *content, env.smtputf8);
      for (size_t k = 0; k < local_idx.size() && k < results.size(); ++k) {
        auto& r = env.recipients[local_idx[k]];
        const auto& res = results[k];
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
    }
  }
  auto done = queue_.complete(env.id, env);
  if (!done) log::error("queue_error").kv("id", env.id).kv("error", done.error().text);
}

}  // namespace tern::scheduler
