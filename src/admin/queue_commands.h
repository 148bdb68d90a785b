// Queue administration commands served over the control socket: list, show,
// hold, release, delete, flush, retry. Formats the QueueManager's state for
// operators (one block per message, one line per recipient with status,
// attempts, next attempt time and the last reply).
#pragma once

#include "admin/control.h"
#include "queue/manager.h"
#include "queue/spool.h"

namespace tern::admin {

CommandHandler make_queue_handler(queue::QueueManager& queue, queue::Spool& spool);

// Formatting helpers (exposed for tests).
std::string format_queue_list(const std::vector<queue::Envelope>& messages);
std::string format_envelope(const queue::Envelope& env);

}  // namespace tern::admin
