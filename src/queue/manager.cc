// In-memory queue index with retry scheduling (see manager.h).
#include "queue/manager.h"

#include <algorithm>
#include <ctime>

#include "base/log.h"

namespace tern::queue {
namespace {

Error unknown_id(const std::string& id) { return Error::perm("5.0.0", "no such message in the queue: " + id); }

bool is_pending(const Recipient& r) { return r.state == Recipient::State::kPending; }

}  // namespace

int64_t SystemClock::now() { return static_cast<int64_t>(std::time(nullptr)); }

int64_t RetryPolicy::delay_after(uint32_t attempts) const {
  if (schedule.empty()) return 300;
  size_t index = attempts == 0 ? 0 : std::min<size_t>(attempts - 1, schedule.size() - 1);
  return schedule[index];
}

QueueManager::QueueManager(Spool& spool, Clock& clock, RetryPolicy policy)
    : spool_(spool), clock_(clock), policy_(std::move(policy)) {}

void QueueManager::unindex(Entry& entry) {
  if (entry.due) due_[entry.lane].erase({*entry.due, entry.env.id});
  entry.due.reset();
}

void QueueManager::reindex(Entry& entry) {
  unindex(entry);
  if (entry.leased || entry.env.held) return;
  std::optional<int64_t> due;
  for (const auto& r : entry.env.recipients) {
    if (is_pending(r) && (!due || r.next_attempt < *due)) due = r.next_attempt;
  }
  if (!due) return;
  entry.due = due;
  entry.lane = classifier_ ? std::min(classifier_(entry.env), kLanes - 1) : 0;
  due_[entry.lane].insert({*due, entry.env.id});
}

Status QueueManager::persist_state(const Envelope& env) {
  Status st = spool_.append_state(env);
  if (!st) log::error("queue_persist_failed").kv("id", env.id).kv("error", st.error().text);
  // Durable soon, with the next group commit (or within
  // Spool::kLazySyncDelay): a state lost in a crash only repeats an attempt.
  spool_.sync_soon();
  return st;
}

void QueueManager::notify_ready(std::optional<size_t> lane) {
  std::function<void()> callback;
  {
    std::lock_guard lock(mu_);
    for (size_t l = 0; l < kLanes; ++l) {
      if (!lane || *lane == l) ++ready_generation_[l];
    }
    callback = on_ready_;
  }
  if (lane) {
    ready_cv_[*lane].notify_one();
  } else {
    for (auto& cv : ready_cv_) cv.notify_all();
  }
  if (callback) callback();
}

void QueueManager::add(Envelope env) {
  size_t lane = 0;
  bool wake = true;
  {
    std::lock_guard lock(mu_);
    if (env.received_at == 0) env.received_at = clock_.now();
    auto [it, inserted] = entries_.try_emplace(env.id);
    Entry& entry = it->second;
    if (!inserted && entry.leased) {
      log::warn("queue_add_leased").kv("id", env.id);
      return;
    }
    unindex(entry);
    entry.env = std::move(env);
    reindex(entry);
    lane = entry.lane;
    // A worker is gathering a batch: wake it only once the batch is full
    // (it wakes by itself when its window ends).
    const Gathering& g = gathering_[lane];
    if (g.waiting > 0 && count_due(lane, g.min_count) < g.min_count) wake = false;
  }
  if (wake) notify_ready(lane);
}

size_t QueueManager::count_due(size_t lane, size_t limit) const {
  const int64_t now = clock_.now();
  size_t n = 0;
  for (auto it = due_[lane].begin(); it != due_[lane].end() && n < limit && it->first <= now; ++it) ++n;
  return n;
}

void QueueManager::set_gathering(size_t lane, size_t min_count, std::chrono::milliseconds window) {
  std::lock_guard lock(mu_);
  Gathering& g = gathering_[std::min(lane, kLanes - 1)];
  g.min_count = std::max<size_t>(1, min_count);
  g.window = window;
}

void QueueManager::wait_for_batch(size_t lane) {
  lane = std::min(lane, kLanes - 1);
  std::unique_lock lock(mu_);
  Gathering& g = gathering_[lane];
  if (g.min_count <= 1 || g.window.count() <= 0) return;
  for (;;) {
    size_t n = count_due(lane, g.min_count);
    if (shutdown_ || n == 0 || n >= g.min_count) return;
    auto now = std::chrono::steady_clock::now();
    if (!g.since) g.since = now;
    auto deadline = *g.since + g.window;
    if (now >= deadline) return;
    ++g.waiting;
    ready_cv_[lane].wait_until(lock, deadline);
    --g.waiting;
  }
}

void QueueManager::set_lane_classifier(std::function<size_t(const Envelope&)> classifier) {
  std::lock_guard lock(mu_);
  classifier_ = std::move(classifier);
  for (auto& [id, entry] : entries_) reindex(entry);
}

std::vector<Envelope> QueueManager::take_ready(int64_t now, size_t max, size_t lane) {
  std::vector<Envelope> out;
  std::lock_guard lock(mu_);
  auto& due = due_[std::min(lane, kLanes - 1)];
  gathering_[std::min(lane, kLanes - 1)].since.reset();
  while (out.size() < max && !due.empty() && due.begin()->first <= now) {
    auto it = entries_.find(due.begin()->second);
    Entry& entry = it->second;
    unindex(entry);
    entry.leased = true;
    entry.leased_recipients.clear();
    for (size_t i = 0; i < entry.env.recipients.size(); ++i) {
      const auto& r = entry.env.recipients[i];
      if (is_pending(r) && r.next_attempt <= now) entry.leased_recipients.push_back(i);
    }
    out.push_back(entry.env);
  }
  return out;
}

Result<Envelope> QueueManager::complete(const std::string& id, const Envelope& updated) {
  Envelope before, result;
  bool more_work = false;
  Status persisted;
  CompleteCallback on_complete;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return unknown_id(id);  // e.g. deleted by an operator meanwhile
    Entry& entry = it->second;
    if (!entry.leased) return Error::local("queue: complete() without a lease on " + id);
    if (updated.recipients.size() != entry.env.recipients.size()) {
      return Error::local("queue: complete() with a different recipient list for " + id);
    }
    on_complete = on_complete_;
    if (on_complete) before = entry.env;
    const int64_t now = clock_.now();
    const int64_t expires_at = entry.env.received_at + policy_.max_age;
    for (size_t i : entry.leased_recipients) {
      Recipient& r = entry.env.recipients[i];
      r.state = updated.recipients[i].state;
      r.last_reply = updated.recipients[i].last_reply;
      ++r.attempts;
      if (!is_pending(r)) continue;
      if (now >= expires_at) {
        // RFC 5321 §4.5.4.1: give up after the maximum queue lifetime.
        r.state = Recipient::State::kFailed;
        r.last_reply = r.last_reply.empty() ? "message expired" : "message expired; last error: " + r.last_reply;
      } else {
        // The last attempt is made at the expiry time rather than skipped.
        r.next_attempt = std::min(now + policy_.delay_after(r.attempts), expires_at);
      }
    }
    entry.leased = false;
    entry.leased_recipients.clear();
    result = entry.env;
    if (entry.env.has_pending()) {
      // On failure the outcome still stands in memory (and is reported to
      // on_complete); it is persisted with the next state change.
      persisted = persist_state(entry.env);
      reindex(entry);
      more_work = true;
    } else {
      // Out of the index now; the spool copy goes after on_complete ran, so
      // that a bounce can still quote the content.
      unindex(entry);
      entries_.erase(it);
    }
  }
  if (on_complete) on_complete(before, result);
  if (more_work) {
    if (!persisted) return persisted.error();
    notify_ready();
  } else {
    Status st = spool_.remove(id);
    // As for states: a DONE record lost in a crash means the message is
    // delivered once more, which the crash guarantee allows for messages in
    // flight; the next group commit (or kLazySyncDelay) makes it durable.
    spool_.sync_soon();
    if (!st) {
      log::error("queue_remove_failed").kv("id", id).kv("error", st.error().text);
      return st.error();
    }
  }
  return result;
}

void QueueManager::set_on_complete(CompleteCallback on_complete) {
  std::lock_guard lock(mu_);
  on_complete_ = std::move(on_complete);
}

Status QueueManager::mark_delay_warned(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return unknown_id(id);
  Entry& entry = it->second;
  if (entry.env.delay_warned) return ok();
  entry.env.delay_warned = true;
  // If leased, the worker's complete() persists the flag again with its results.
  return persist_state(entry.env);
}

void QueueManager::abandon(const std::string& id) {
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end() || !it->second.leased) return;
    it->second.leased = false;
    it->second.leased_recipients.clear();
    reindex(it->second);
  }
  notify_ready();
}

std::vector<Envelope> QueueManager::list() const {
  std::lock_guard lock(mu_);
  std::vector<Envelope> out;
  out.reserve(entries_.size());
  for (const auto& [id, entry] : entries_) out.push_back(entry.env);
  return out;
}

Result<Envelope> QueueManager::get(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return unknown_id(id);
  return it->second.env;
}

size_t QueueManager::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

Status QueueManager::hold(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return unknown_id(id);
  Entry& entry = it->second;
  if (entry.env.held) return ok();
  entry.env.held = true;
  reindex(entry);
  // If leased, the worker's complete() persists the flag again with the
  // delivery results; writing it now makes the hold survive a crash before.
  return persist_state(entry.env);
}

Status QueueManager::release(const std::string& id) {
  Status st;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return unknown_id(id);
    Entry& entry = it->second;
    if (!entry.env.held) return ok();
    entry.env.held = false;
    reindex(entry);
    st = persist_state(entry.env);
  }
  notify_ready();
  return st;
}

Status QueueManager::remove(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return unknown_id(id);
  unindex(it->second);
  entries_.erase(it);
  // A leased message's worker will get "unknown id" from complete().
  Status st = spool_.remove(id);
  spool_.sync_async([](Status) {});
  log::info("queue_deleted").kv("id", id);
  return st;
}

void QueueManager::flush() {
  {
    std::lock_guard lock(mu_);
    const int64_t now = clock_.now();
    for (auto& [id, entry] : entries_) {
      for (auto& r : entry.env.recipients) {
        if (is_pending(r) && r.next_attempt > now) r.next_attempt = now;
      }
      reindex(entry);
    }
  }
  notify_ready();
}

Status QueueManager::retry(const std::string& id) {
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return unknown_id(id);
    const int64_t now = clock_.now();
    for (auto& r : it->second.env.recipients) {
      if (is_pending(r) && r.next_attempt > now) r.next_attempt = now;
    }
    reindex(it->second);
  }
  notify_ready();
  return ok();
}

std::optional<int64_t> QueueManager::next_due(size_t lane) const {
  std::lock_guard lock(mu_);
  const auto& due = due_[std::min(lane, kLanes - 1)];
  if (due.empty()) return std::nullopt;
  return due.begin()->first;
}

void QueueManager::set_on_ready(std::function<void()> on_ready) {
  std::lock_guard lock(mu_);
  on_ready_ = std::move(on_ready);
}

bool QueueManager::wait_for_work(std::chrono::milliseconds max_wait, size_t lane) {
  std::unique_lock lock(mu_);
  const auto& due = due_[std::min(lane, kLanes - 1)];
  lane = std::min(lane, kLanes - 1);
  const uint64_t seen = ready_generation_[lane];
  // Also true when something is already due, so a notification that came
  // between the caller's take_ready() and this call is not lost.
  bool woken = ready_cv_[lane].wait_for(lock, max_wait, [&] {
    return shutdown_ || ready_generation_[lane] != seen || (!due.empty() && due.begin()->first <= clock_.now());
  });
  return woken && !shutdown_;
}

void QueueManager::shutdown() {
  {
    std::lock_guard lock(mu_);
    shutdown_ = true;
  }
  for (auto& cv : ready_cv_) cv.notify_all();
}

}  // namespace tern::queue
