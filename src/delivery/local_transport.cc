// Local transports (see local_transport.h): map LocalDelivery lists onto the
// Maildir deliverer or the LMTP client and back to per-recipient results.
#include "delivery/local_transport.h"

#include <map>
#include <utility>

#include "base/strings.h"

namespace tern::delivery {

namespace {

// Mailbox identity used to avoid storing the same message twice when several
// envelope recipients (e.g. aliases) resolve to one mailbox.
std::string mailbox_key(const LocalDelivery& d) {
  if (d.user.empty() || d.domain.empty()) return "\n" + d.recipient;
  return to_lower(d.user) + "\n" + to_lower(d.domain) + "\n" + d.detail;
}

// Positions of the first occurrence of each mailbox, and for every input
// position the index of its representative among those.
struct Dedup {
  std::vector<size_t> unique;
  std::vector<size_t> slot;
};

Dedup dedup(const std::vector<LocalDelivery>& rcpts) {
  Dedup d;
  std::map<std::string, size_t> seen;
  d.slot.reserve(rcpts.size());
  for (size_t i = 0; i < rcpts.size(); ++i) {
    auto [it, inserted] = seen.emplace(mailbox_key(rcpts[i]), d.unique.size());
    if (inserted) d.unique.push_back(i);
    d.slot.push_back(it->second);
  }
  return d;
}

}  // namespace

std::vector<RecipientResult> MaildirTransport::deliver(const std::string& sender,
                                                       const std::vector<LocalDelivery>& rcpts,
                                                       std::string_view content, bool smtputf8) {
  return std::move(deliver_messages({Message{sender, rcpts, content, smtputf8}}).front());
}

std::vector<std::vector<RecipientResult>> MaildirTransport::deliver_messages(const std::vector<Message>& messages) {
  // One batch over every distinct mailbox of every message.
  std::vector<Dedup> dedups;
  std::vector<size_t> first;  // index in `batch` of each message's first unique mailbox
  std::vector<LocalDelivery> batch;
  std::vector<std::string_view> contents;
  for (const auto& m : messages) {
    dedups.push_back(dedup(m.rcpts));
    first.push_back(batch.size());
    for (size_t i : dedups.back().unique) {
      batch.push_back(m.rcpts[i]);
      batch.back().sender = m.sender;
      contents.push_back(m.content);
    }
  }
  auto stored = deliverer_.deliver_many(batch, contents);
  std::vector<std::vector<RecipientResult>> out(messages.size());
  for (size_t k = 0; k < messages.size(); ++k) {
    const auto& rcpts = messages[k].rcpts;
    out[k].reserve(rcpts.size());
    for (size_t i = 0; i < rcpts.size(); ++i) {
      const auto& r = stored[first[k] + dedups[k].slot[i]];
      if (r) out[k].push_back(RecipientResult::success(rcpts[i].recipient, "delivered to " + *r));
      else out[k].push_back(RecipientResult::from_error(rcpts[i].recipient, r.error()));
    }
  }
  return out;
}

std::vector<RecipientResult> LmtpTransport::deliver(const std::string& sender,
                                                    const std::vector<LocalDelivery>& rcpts,
                                                    std::string_view content, bool smtputf8) {
  Dedup d = dedup(rcpts);
  std::vector<std::string> addresses;
  addresses.reserve(d.unique.size());
  for (size_t i : d.unique) addresses.push_back(rcpts[i].mailbox_address());
  auto replies = client_.deliver(sender, addresses, content, smtputf8);
  std::vector<RecipientResult> out;
  out.reserve(rcpts.size());
  for (size_t i = 0; i < rcpts.size(); ++i) {
    RecipientResult r = replies[d.slot[i]];
    r.recipient = rcpts[i].recipient;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace tern::delivery
