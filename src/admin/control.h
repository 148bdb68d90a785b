// The control socket: a Unix-domain socket (mode 0600, in the data
// directory) through which `tern queue ...` talks to the running server.
// Protocol: the client sends one line "<command> [argument]\n"; the server
// answers "ok\n" or "error <text>\n", then the body, then closes. Commands
// are served on their own thread so they work against a busy server.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "base/result.h"

namespace tern::admin {

// Handles one command; returns the body or an error.
using CommandHandler = std::function<Result<std::string>(const std::string& command, const std::string& argument)>;

class ControlServer {
 public:
  ControlServer(std::string path, CommandHandler handler);
  ~ControlServer();
  Status start();  // binds (replacing a stale socket) and starts the thread
  void stop();

 private:
  void loop();
  void serve(int fd);

  std::string path_;
  CommandHandler handler_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::thread thread_;
};

// Client side: sends `command [argument]` and returns the body, or the
// server's error. Times out after `timeout_ms`.
Result<std::string> control_request(const std::string& path, const std::string& command, const std::string& argument,
                                    int timeout_ms = 30000);

}  // namespace tern::admin
