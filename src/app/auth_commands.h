// Command-line front ends of the authentication libraries:
//   tern auth check --message FILE --ip IP --helo NAME --mail-from ADDR [--authserv-id ID]
//   tern dkim keygen --algorithm rsa|ed25519 [--bits N] --selector S --domain D [--key FILE]
//   tern dkim sign --key FILE --domain D --selector S [--headers LIST] < message > signed
//   tern dkim verify < message
//   tern arc seal --key FILE --domain D --selector S [--authserv-id ID] < message > sealed
//   tern arc verify < message
// DNS goes through libunbound with the config's [dns] (or --dns IP@PORT).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "config/config.h"

namespace tern::app {

// `options` holds every "--name value" pair given (without the dashes).
int auth_command(const std::vector<std::string>& positional, const std::map<std::string, std::string>& options,
                 const config::Config& cfg);

}  // namespace tern::app
