// `tern policy explain --ip IP --helo NAME --mail-from ADDR --rcpt ADDR[,ADDR...]
// [--message FILE] [--listener mx|submission] [--authenticated]`: runs the
// inbound policy decisions (sender identity, SPF, DMARC, ARC, trusted
// forwarders; src/policy/decision.h) and the anti-abuse checks of [policy]
// (HELO FQDN, access maps, DNSBL, iprev, reject_unknown_sender_domain;
// src/policy/checks.h; rate limits and greylisting are stateful and shown as
// not evaluated) for one transaction with the configured DNS, and prints every
// check, its result and the reply of each stage, without sending mail.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "config/config.h"

namespace tern::app {

int policy_command(const std::vector<std::string>& positional, const std::map<std::string, std::string>& options,
                   const config::Config& cfg);

}  // namespace tern::app
