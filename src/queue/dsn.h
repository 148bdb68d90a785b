// Delivery status notifications: builds the bounce, delay warning or success
// report that tern sends back to the sender of a queued message (RFC 3461
// DSN extension, RFC 3464 message/delivery-status, RFC 6522 multipart/report,
// RFC 3463 status codes, RFC 6533 for internationalized mail). A pure library:
// it takes the Envelope with its per-recipient outcomes and the message
// content, and returns the DSN's SMTP envelope and its RFC 5322 text (CRLF
// line ends). It does no I/O; the caller queues the result like any other
// message (MAIL FROM:<>, RCPT TO:<original sender>).
//
// Which recipients are reported follows their NOTIFY parameter
// (should_notify); a message from the null reverse-path never gets a DSN
// (RFC 5321 §4.5.5, RFC 3464 §2). What is returned of the original message
// follows RET (RFC 3461 §4.3, §6.2), see DsnRequest::max_returned_bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "queue/envelope.h"

namespace tern::queue {

// What the DSN reports; decides the Subject, the default Action of each
// recipient and which NOTIFY flag must be set.
enum class DsnKind : uint8_t {
  kFailure,  // delivery abandoned (Action: failed)
  kDelay,    // still being retried (Action: delayed)
  kSuccess,  // delivered, relayed to a server without DSN support, or expanded
};

// RFC 3464 §2.3.3 action-value.
enum class DsnAction : uint8_t { kFailed, kDelayed, kDelivered, kRelayed, kExpanded };

// One recipient to report on.
struct DsnRecipient {
  size_t index = 0;  // into Envelope::recipients
  // DNS name of the server whose reply is in Recipient::last_reply, when the
  // outcome came from a remote SMTP/LMTP server: adds Remote-MTA and an "smtp"
  // Diagnostic-Code (RFC 3461 §6.3 (h), (i)). Empty: tern itself decided, and
  // the reply goes into an "X-tern" Diagnostic-Code (RFC 3464 §2.3.6).
  std::string remote_mta;
  // For kSuccess only: kDelivered (default), kRelayed (handed to a server
  // that does not offer DSN, RFC 3461 §5.2.2) or kExpanded (alias to several
  // recipients, RFC 3461 §5.2.7.3). Ignored for other kinds.
  DsnAction success_action = DsnAction::kDelivered;
  // Unix seconds of the last delivery attempt; 0 = DsnRequest::now when the
  // recipient has had an attempt, no Last-Attempt-Date otherwise (RFC 3464
  // §2.3.7: MUST NOT be invented).
  int64_t last_attempt = 0;
};

struct DsnRequest {
  DsnKind kind = DsnKind::kFailure;
  // Our host name: Reporting-MTA, From: MAILER-DAEMON@..., Message-ID domain.
  std::string reporting_mta;
  std::vector<DsnRecipient> recipients;
  int64_t now = 0;               // unix seconds: Date, Message-ID, default Last-Attempt-Date
  int64_t arrival_date = 0;      // unix seconds for Arrival-Date; 0 = Envelope::received_at (omitted if that is 0 too)
  int64_t will_retry_until = 0;  // kDelay only: Will-Retry-Until (RFC 3464 §2.3.9); 0 = omitted
  // Largest original message returned whole. A larger one (or one sent as
  // BINARYMIME, which cannot travel inside an 8bit MIME part) is returned as
  // its header section only, and the explanation says so (RFC 3461 §6.2
  // allows this even for RET=FULL). A header section larger than this is not
  // returned at all.
  size_t max_returned_bytes = 1024 * 1024;
};

// The DSN, ready to be queued.
struct Dsn {
  std::string mail_from;        // always "": the null reverse-path (RFC 3461 §6.1)
  std::string recipient;        // the original message's MAIL FROM address
  std::string content;          // RFC 5322 message, CRLF line ends
  bool needs_8bitmime = false;  // content has 8-bit bytes: send with BODY=8BITMIME (RFC 6152)
  bool needs_smtputf8 = false;  // the recipient/To: address is UTF-8: send with SMTPUTF8 (RFC 6531)
  size_t reported = 0;          // recipients that made it into the report
  bool returned_full = false;   // the whole original is attached (else the header section, or nothing)
};

// True when `recipient` of `env` asked for (or by default gets) a DSN of
// `kind` (RFC 3461 §4.1): never for the null reverse-path or NOTIFY=NEVER;
// without NOTIFY, failures and delays (the MTA's discretion, RFC 3461 §4.1
// allows FAILURE,DELAY as the default) but not successes; otherwise only the
// kinds named.
bool should_notify(const Envelope& env, const Recipient& recipient, DsnKind kind);

// The RFC 3463 status code in an SMTP reply such as "550 5.1.1 <x@y>: user
// unknown" (RFC 2034 §3: the enhanced code follows the reply code). Also
// finds a reply quoted later in the text ("message expired; last error: 451
// 4.4.1 ..."). Returns "" when there is no enhanced code or its class does
// not match the reply code's first digit. Leading zeros are removed.
std::string extract_enhanced_status(std::string_view reply);

// The Status value reported for a recipient whose last reply is `reply`
// under `action`: the enhanced code in the reply when its class fits the
// action (2 for delivered/relayed/expanded, 4 for delayed, 4 or 5 for
// failed), else the reply code's class with ".0.0", else the RFC 3461
// §6.3 (g) defaults 5.0.0 / 4.0.0 / 2.0.0 (4.4.7 for an expired message).
std::string dsn_status_for(std::string_view reply, DsnAction action);

// Builds the DSN for the recipients in `request` that should_notify() allows
// (indices out of range are skipped). `content` is the original message as
// queued; its header section is cut here when only headers are returned.
// Returns nullopt when no DSN must be sent: null reverse-path, nobody left
// to report, or a sender address that cannot be written into a header
// field safely (CR, LF, NUL, angle brackets, longer than 256 octets).
std::optional<Dsn> build_dsn(const Envelope& env, std::string_view content, const DsnRequest& request);

// The header section of `content`: everything up to and including the line
// end before the first empty line (all of it when there is no empty line).
std::string_view header_section(std::string_view content);

}  // namespace tern::queue
