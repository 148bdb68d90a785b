// `tern policy explain --ip IP --helo NAME --mail-from ADDR --rcpt ADDR[,ADDR...]
// [--message FILE] [--listener mx|submission] [--authenticated]`: runs the
// inbound policy decisions (sender identity, SPF, DMARC, ARC, trusted
// forwarders; src/policy/decision.h) for one transaction with the configured
// DNS, and prints every check, its result and the reply of each stage,
// without sending mail.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "config/config.h"

namespace tern::app {

int policy_command(const std::vector<std::string>& positional, const std::map<std::string, std::string>& options,
                   const config::Config& cfg);

}  // namespace tern::app
