// Delivery status notifications queued after delivery attempts (see bounce.h
// and docs/bounces.md).
#include "queue/bounce.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "base/log.h"

namespace tern::queue {
namespace {

using State = Recipient::State;

// Kept contents waiting for after_complete(); a caller that never comes
// cannot make this grow without bound.
constexpr size_t kMaxKeptContents = 64;

bool became(const Envelope& before, const Envelope& after, size_t i, State state) {
  return after.recipients[i].state == state && before.recipients[i].state != state;
}

const char* kind_name(DsnKind kind) {
  switch (kind) {
    case DsnKind::kFailure:
      return "failure";
    case DsnKind::kDelay:
      return "delay";
    case DsnKind::kSuccess:
      return "success";
  }
  return "?";
}

// True when at least one of `recipients` would be reported (saves reading
// the content when nobody asked for a DSN).
bool anyone_to_notify(const Envelope& env, const std::vector<DsnRecipient>& recipients, DsnKind kind) {
  return std::any_of(recipients.begin(), recipients.end(), [&](const DsnRecipient& r) {
    return r.index < env.recipients.size() && should_notify(env, env.recipients[r.index], kind);
  });
}

std::string remote_of(const std::map<size_t, std::string>& remote_mta, size_t index) {
  auto it = remote_mta.find(index);
  return it == remote_mta.end() ? std::string() : it->second;
}

}  // namespace

Bouncer::Bouncer(Spool& spool, QueueManager& queue, Clock& clock, Options options)
    : spool_(spool), queue_(queue), clock_(clock), options_(std::move(options)) {
  queue_.set_on_complete([this](const Envelope& before, const Envelope& after) { on_complete(before, after); });
}

Bouncer::~Bouncer() {
  queue_.set_on_complete(nullptr);
}

size_t Bouncer::kept_contents() const {
  std::lock_guard lock(mu_);
  return kept_.size();
}

// Runs inside QueueManager::complete() before a finished message leaves the
// spool: keeps what a failure or success DSN may quote of it. Success DSNs
// that after_complete() will not send (next hop with DSN) are counted too;
// the copy is dropped there.
void Bouncer::on_complete(const Envelope& before, const Envelope& after) {
  if (after.has_pending() || before.recipients.size() != after.recipients.size()) return;
  bool wanted = false;
  for (size_t i = 0; i < after.recipients.size() && !wanted; ++i) {
    const Recipient& r = after.recipients[i];
    wanted = (became(before, after, i, State::kFailed) && should_notify(after, r, DsnKind::kFailure)) ||
             (became(before, after, i, State::kDelivered) && should_notify(after, r, DsnKind::kSuccess));
  }
  if (!wanted) return;
  auto content = spool_.read_message(after);
  if (!content) {
    log::error("dsn_content_unreadable").kv("id", after.id).kv("error", content.error().text);
    return;
  }
  // One byte more than a DSN returns whole, so that build_dsn still sees an
  // oversized message as oversized and returns its header section only.
  if (content->size() > options_.max_returned_bytes + 1) content->resize(options_.max_returned_bytes + 1);
  std::lock_guard lock(mu_);
  auto [it, inserted] = kept_.insert_or_assign(after.id, std::move(*content));
  if (inserted) kept_order_.push_back(after.id);
  while (kept_order_.size() > kMaxKeptContents) {
    kept_.erase(kept_order_.front());
    kept_order_.pop_front();
  }
}

std::optional<std::string> Bouncer::original_content(const Envelope& env) {
  {
    std::lock_guard lock(mu_);
    auto it = kept_.find(env.id);
    if (it != kept_.end()) return it->second;
  }
  auto content = spool_.read_message(env);
  if (!content) {
    log::error("dsn_content_unreadable").kv("id", env.id).kv("error", content.error().text);
    return std::nullopt;
  }
  if (content->size() > options_.max_returned_bytes + 1) content->resize(options_.max_returned_bytes + 1);
  return std::move(*content);
}

void Bouncer::after_complete(const Envelope& before, const Envelope& after,
                             const std::map<size_t, std::string>& remote_mta,
                             const std::set<size_t>& relayed_without_dsn) {
  if (before.recipients.size() != after.recipients.size()) {
    log::error("dsn_skipped").kv("id", after.id).kv("reason", "recipient lists differ");
    return;
  }
  const int64_t now = clock_.now();
  std::vector<DsnRecipient> failed, succeeded, delayed;
  for (size_t i = 0; i < after.recipients.size(); ++i) {
    if (became(before, after, i, State::kFailed)) {
      failed.push_back({.index = i, .remote_mta = remote_of(remote_mta, i)});
    } else if (became(before, after, i, State::kDelivered)) {
      const bool relayed = relayed_without_dsn.count(i) != 0;
      // RFC 3461 §5.2.2: a next hop that supports DSN received our NOTIFY
      // and reports success itself; only a final delivery here or a relay to
      // a server without DSN gets a success DSN from us.
      if (!relayed && remote_mta.count(i) != 0) continue;
      succeeded.push_back({.index = i,
                           .remote_mta = remote_of(remote_mta, i),
                           .success_action = relayed ? DsnAction::kRelayed : DsnAction::kDelivered});
    }
  }
  const bool delay_due = options_.delay_warning_after > 0 && !after.delay_warned && after.has_pending() &&
                         now - after.received_at >= options_.delay_warning_after;
  if (delay_due) {
    for (size_t i = 0; i < after.recipients.size(); ++i) {
      if (after.recipients[i].state == State::kPending) {
        delayed.push_back({.index = i, .remote_mta = remote_of(remote_mta, i)});
      }
    }
  }

  if (after.mail_from.empty()) {
    // RFC 5321 §4.5.5 / RFC 3461 §6.1: nothing is ever sent to <>; a failed
    // DSN (or other null-sender message) is dropped with this line.
    if (!failed.empty()) {
      log::warn("dsn_dropped")
          .kv("id", after.id)
          .kv("rcpts", static_cast<uint64_t>(failed.size()))
          .kv("reason", "null reverse-path: a failed notification is not bounced");
    }
  } else {
    const bool any = anyone_to_notify(after, failed, DsnKind::kFailure) ||
                     anyone_to_notify(after, succeeded, DsnKind::kSuccess) ||
                     anyone_to_notify(after, delayed, DsnKind::kDelay);
    std::optional<std::string> content;
    if (any) content = original_content(after);
    // Without the content the notification still matters more than the
    // quoted original: send it with nothing attached.
    const std::string body = content ? std::move(*content) : std::string();
    auto make_request = [this](DsnKind kind, std::vector<DsnRecipient> recipients, int64_t at) {
      DsnRequest request;
      request.kind = kind;
      request.reporting_mta = options_.hostname;
      request.recipients = std::move(recipients);
      request.now = at;
      request.max_returned_bytes = options_.max_returned_bytes;
      return request;
    };
    if (!failed.empty()) {
      DsnRequest request = make_request(DsnKind::kFailure, std::move(failed), now);
      send(DsnKind::kFailure, after, body, request);
    }
    if (!succeeded.empty()) {
      DsnRequest request = make_request(DsnKind::kSuccess, std::move(succeeded), now);
      send(DsnKind::kSuccess, after, body, request);
    }
    if (!delayed.empty()) {
      DsnRequest request = make_request(DsnKind::kDelay, std::move(delayed), now);
      if (options_.max_age > 0) request.will_retry_until = after.received_at + options_.max_age;
      send(DsnKind::kDelay, after, body, request);
    }
  }
  // Marked even when nobody asked for a delay DSN: the decision is made once.
  if (delay_due && !after.mail_from.empty()) {
    if (auto st = queue_.mark_delay_warned(after.id); !st) {
      log::warn("dsn_delay_mark_failed").kv("id", after.id).kv("error", st.error().text);
    }
  }
  std::lock_guard lock(mu_);
  if (kept_.erase(after.id) != 0) std::erase(kept_order_, after.id);
}

void Bouncer::send(DsnKind kind, const Envelope& env, const std::string& content, const DsnRequest& request) {
  auto dsn = build_dsn(env, content, request);
  if (!dsn) return;  // nobody asked for this kind, or the sender cannot be written into a header
  auto id = queue_dsn(*dsn);
  if (!id) {
    log::error("dsn_queue_failed").kv("for", env.id).kv("kind", kind_name(kind)).kv("error", id.error().text);
    return;
  }
  log::info("dsn_queued")
      .kv("id", *id)
      .kv("for", env.id)
      .kv("kind", kind_name(kind))
      .kv("rcpts", static_cast<uint64_t>(dsn->reported));
}

Result<std::string> Bouncer::queue_dsn(const Dsn& dsn) {
  auto writer = spool_.create();
  if (!writer) return writer.error();
  if (auto st = (*writer)->append(dsn.content); !st) return st.error();
  Envelope env;
  env.mail_from = "";  // RFC 3461 §6.1: DSNs are sent with a null reverse-path
  Recipient rcpt;
  rcpt.address = dsn.recipient;
  env.recipients.push_back(std::move(rcpt));
  env.body = dsn.needs_8bitmime ? 1 : 0;  // RFC 6152
  env.smtputf8 = dsn.needs_smtputf8;      // RFC 6531
  env.received_at = clock_.now();
  env.listener = "bounce";
  env.protocol = "local";
  if (auto st = (*writer)->finish(env); !st) return st.error();
  // Durable before it is indexed, like a message acknowledged with 250.
  if (auto st = spool_.sync(); !st) return st.error();
  env.id = (*writer)->id();
  env.size = (*writer)->size();
  queue_.add(env);
  return env.id;
}

}  // namespace tern::queue
