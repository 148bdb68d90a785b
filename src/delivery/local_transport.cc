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
  Dedup d = dedup(rcpts);
  std::vector<LocalDelivery> batch;
  batch.reserve(d.unique.size());
  for (size_t i : d.unique) {
    batch.push_back(rcpts[i]);
    batch.back().sender = sender;
  }
  auto stored = deliverer_.deliver_batch(batch, content);
  std::vector<RecipientResult> out;
  out.reserve(rcpts.size());
  for (size_t i = 0; i < rcpts.size(); ++i) {
    const auto& r = stored[d.slot[i]];
    if (r) out.push_back(RecipientResult::success(rcpts[i].recipient, "delivered to " + *r));
    else out.push_back(RecipientResult::from_error(rcpts[i].recipient, r.error()));
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
