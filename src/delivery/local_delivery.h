// Value types shared by the local delivery transports (Maildir, LMTP) and the
// lead's delivery workers: who a message is delivered to locally, and the
// per-recipient outcome that the queue turns into "done", "retry" or a bounce.
#pragma once

#include <string>

#include "base/result.h"

namespace tern::delivery {

// One local recipient, already resolved by the users/alias layer.
struct LocalDelivery {
  std::string sender;     // envelope sender (MAIL FROM), "" for the null sender
  std::string recipient;  // original envelope recipient, as received (Delivered-To)
  std::string user;       // mailbox local part without +detail (e.g. "alice")
  std::string domain;     // mailbox domain (e.g. "example.org")
  std::string detail;     // "+detail" part without the '+', "" when none
  // Quarantined by policy (DMARC quarantine, envelope attribute "junk"):
  // Maildir delivery files it into the Maildir++ folder ".Junk".
  bool junk = false;

  // user[+detail]@domain: the address of the resolved mailbox.
  std::string mailbox_address() const;
};

// Outcome of delivering one message to one recipient.
struct RecipientResult {
  std::string recipient;  // LocalDelivery::recipient it belongs to
  int code = 0;           // SMTP-style reply code: 2xx delivered, 4xx retry, 5xx bounce
  std::string enhanced;   // RFC 3463 status code, e.g. "2.0.0", "4.2.2"
  std::string text;       // human-readable detail (server reply text or local error)
  bool transient = false; // true: keep in queue and retry; false with code >= 500: bounce

  bool delivered() const { return code >= 200 && code < 300; }
  static RecipientResult success(std::string recipient, std::string text);
  static RecipientResult from_error(std::string recipient, const Error& error);
};

}  // namespace tern::delivery
