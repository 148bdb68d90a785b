// `tern serve`: wires the libraries into a running MTA (see serve.cc).
#pragma once

#include "config/config.h"

namespace tern::app {

// Runs until SIGTERM/SIGINT; returns the process exit status.
int serve(const config::Config& cfg);

}  // namespace tern::app
