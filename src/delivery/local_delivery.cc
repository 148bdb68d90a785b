// Helpers for the local delivery value types (see local_delivery.h).
#include "delivery/local_delivery.h"

#include <utility>

namespace tern::delivery {

std::string LocalDelivery::mailbox_address() const {
  if (user.empty() || domain.empty()) return recipient;
  std::string out = user;
  if (!detail.empty()) out += "+" + detail;
  out += "@" + domain;
  return out;
}

RecipientResult RecipientResult::success(std::string recipient, std::string text) {
  return RecipientResult{std::move(recipient), 250, "2.0.0", std::move(text), false};
}

RecipientResult RecipientResult::from_error(std::string recipient, const Error& error) {
  // Anything that is not a definite 5xx is retried: losing mail to a local
  // hiccup is worse than retrying a hopeless one until the queue lifetime ends.
  bool permanent = error.code >= 500 && error.code < 600;
  return RecipientResult{std::move(recipient), error.code, error.enhanced, error.text, !permanent};
}

}  // namespace tern::delivery
