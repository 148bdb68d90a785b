// The queued-message data model shared by the spool, the queue manager, the
// SMTP server (which fills it in at the end of DATA) and delivery (which reads
// it and reports per-recipient outcomes). Plain values, no behaviour; how they
// are stored on disk is described in docs/spool-format.md.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tern::queue {

// DSN NOTIFY flags (RFC 3461 §4.1), as a bitmask in Recipient::notify.
// Envelope attribute holding header fields to put above the spooled content
// when the message leaves the queue (e.g. Authentication-Results, computed
// at end of data after the content was already streamed to disk).
inline constexpr const char* kPrependAttribute = "header.prepend";

inline constexpr unsigned kNotifyNever = 1;
inline constexpr unsigned kNotifySuccess = 2;
inline constexpr unsigned kNotifyFailure = 4;
inline constexpr unsigned kNotifyDelay = 8;

struct Recipient {
  std::string address;   // where to deliver (after alias expansion)
  std::string original;  // RCPT TO as the client gave it (for DSN / Delivered-To decisions)
  unsigned notify = 0;   // DSN NOTIFY flags (bitmask: 1 NEVER, 2 SUCCESS, 4 FAILURE, 8 DELAY; 0 unset)
  std::string orcpt_type, orcpt;  // DSN ORCPT (RFC 3461 §4.2): address type and decoded address
  enum class State : uint8_t { kPending, kDelivered, kFailed } state = State::kPending;
  uint32_t attempts = 0;
  int64_t next_attempt = 0;  // unix seconds; 0 = now
  std::string last_reply;    // last SMTP/LMTP reply or local error text

  bool operator==(const Recipient&) const = default;
};

struct Envelope {
  std::string id;
  std::string mail_from;  // "" = null reverse-path
  std::vector<Recipient> recipients;
  int body = 0;  // 0 7bit, 1 8bitmime, 2 binarymime (RFC 6152, RFC 3030)
  bool smtputf8 = false;  // RFC 6531
  int ret = 0;            // DSN RET (RFC 3461 §4.3): 0 unset, 1 FULL, 2 HDRS
  std::string envid;      // DSN ENVID (RFC 3461 §4.4), decoded
  bool requiretls = false;  // RFC 8689
  int64_t received_at = 0;  // unix seconds
  std::string client_ip, client_helo, auth_user, listener, protocol;  // protocol e.g. "ESMTPS"
  bool held = false;
  // A delay DSN (RFC 3464 action "delayed") was sent for this message; it is
  // sent at most once (see queue/bounce.h). Persisted in state records.
  bool delay_warned = false;
  uint64_t size = 0;  // content bytes
  std::map<std::string, std::string> attributes;  // extensible (e.g. authentication results)

  bool operator==(const Envelope&) const = default;

  // True when at least one recipient still needs a delivery attempt.
  bool has_pending() const {
    for (const auto& r : recipients) {
      if (r.state == Recipient::State::kPending) return true;
    }
    return false;
  }
};

}  // namespace tern::queue
