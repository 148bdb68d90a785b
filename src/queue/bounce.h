// Bouncer: turns the outcome of a delivery attempt into delivery status
// notifications and queues them as new messages (RFC 3461 §6, RFC 3464). The
// delivery agent calls after_complete() right after QueueManager::complete();
// the Bouncer compares the envelope before and after the attempt and sends
// at most one DSN of each kind per attempt:
//   - failure: every recipient that became failed in this attempt, including
//     those complete() expired ("message expired", RFC 5321 §4.5.4.1);
//   - success: recipients asked for NOTIFY=SUCCESS that were delivered here
//     ("delivered") or handed to a next hop without the DSN extension
//     ("relayed", RFC 3461 §5.2.2); a next hop that has DSN got our NOTIFY
//     and reports itself, so nothing is sent for those;
//   - delay: once per message, when a recipient is still pending
//     delay_warning_after seconds after arrival (Envelope::delay_warned is
//     persisted through QueueManager::mark_delay_warned so a restart does not
//     repeat it).
// NOTIFY, RET, ENVID and ORCPT are honoured by build_dsn (queue/dsn.h). A
// message from the null reverse-path never gets a DSN: when one fails (e.g.
// a bounce that cannot be delivered) it is only logged (RFC 5321 §4.5.5).
//
// The original content: complete() removes a finished message from the spool,
// so the Bouncer registers QueueManager::set_on_complete, which runs before
// that removal, and keeps a bounded copy (max_returned_bytes + 1 bytes, all a
// DSN can return) of messages it will report on until after_complete() takes
// it. See docs/bounces.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "base/result.h"
#include "queue/dsn.h"
#include "queue/envelope.h"
#include "queue/manager.h"
#include "queue/spool.h"

namespace tern::queue {

class Bouncer {
 public:
  struct Options {
    std::string hostname;                     // Reporting-MTA and the DSN's From: domain
    int64_t delay_warning_after = 4 * 3600;   // 0 = never send delay DSNs
    int64_t max_age = 5 * 24 * 3600;          // the queue lifetime, for Will-Retry-Until
    size_t max_returned_bytes = 1024 * 1024;  // see DsnRequest::max_returned_bytes
  };

  // Registers the on_complete hook on `queue` (replacing any other); the
  // destructor removes it. `spool` and `queue` must outlive the Bouncer.
  Bouncer(Spool& spool, QueueManager& queue, Clock& clock, Options options);
  ~Bouncer();
  Bouncer(const Bouncer&) = delete;
  Bouncer& operator=(const Bouncer&) = delete;

  // After a delivery attempt: `before` = the envelope as leased, `after` = what complete() returned.
  // remote_mta: recipient index -> remote host name that gave the reply (absent for local/own decisions).
  // relayed_without_dsn: recipient indices delivered to a next hop that lacked the DSN extension
  // (NOTIFY=SUCCESS then gets a "relayed" DSN, RFC 3461 §5.2.2.1 analogue).
  void after_complete(const Envelope& before, const Envelope& after,
                      const std::map<size_t, std::string>& remote_mta = {},
                      const std::set<size_t>& relayed_without_dsn = {});

  // Queues `dsn` as a new message (MAIL FROM:<>, one recipient) and waits
  // for it to be durable. Returns the new queue id.
  Result<std::string> queue_dsn(const Dsn& dsn);

  // Messages whose content is kept for an after_complete() not yet called.
  size_t kept_contents() const;

 private:
  void on_complete(const Envelope& before, const Envelope& after);
  // The original as a DSN may quote it: kept copy, else the spool's.
  std::optional<std::string> original_content(const Envelope& env);
  void send(DsnKind kind, const Envelope& env, const std::string& content, const DsnRequest& request);

  Spool& spool_;
  QueueManager& queue_;
  Clock& clock_;
  const Options options_;

  mutable std::mutex mu_;
  std::map<std::string, std::string> kept_;  // queue id -> content prefix
  std::deque<std::string> kept_order_;       // oldest first, to bound kept_
};

}  // namespace tern::queue
