// Blocking client connection for delivery workers: connects to a Unix socket
// ("unix:/run/dovecot/lmtp") or TCP endpoint ("127.0.0.1:24", "[::1]:24",
// "host:24") with a connect timeout, sends with a deadline and reads SMTP/LMTP
// replies with a deadline. Delivery runs on worker threads, not the event
// loop, so poll(2)-based blocking I/O keeps the protocol code linear.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "delivery/reply_reader.h"

namespace tern::delivery {

struct Endpoint {
  bool is_unix = false;
  std::string path;  // Unix socket path when is_unix
  std::string host;  // IP literal or host name otherwise
  uint16_t port = 0;

  // "unix:/path", "/path" (Unix), or "host:port" / "[v6]:port" / "host"
  // (TCP, `default_port` when the port is omitted).
  static Result<Endpoint> parse(std::string_view text, uint16_t default_port);
  std::string to_string() const;
};

class ClientSocket {
 public:
  using Duration = std::chrono::milliseconds;

  ClientSocket() = default;
  ~ClientSocket();
  ClientSocket(ClientSocket&& other) noexcept;
  ClientSocket& operator=(ClientSocket&& other) noexcept;
  ClientSocket(const ClientSocket&) = delete;
  ClientSocket& operator=(const ClientSocket&) = delete;

  // Connects within `timeout` (each resolved address gets the remaining time).
  // Failures are 451 4.4.1 (no answer), timeouts 451 4.4.2.
  static Result<ClientSocket> connect(const Endpoint& endpoint, Duration timeout,
                                      ReplyLimits limits = {});

  // Sends all of `data` within `timeout`. Never raises SIGPIPE.
  Status send(std::string_view data, Duration timeout);
  // Reads one complete reply within `timeout`. Timeout, EOF and garbage all
  // give transient errors (451 4.4.2 / 4.5.0); the connection is then unusable.
  Result<Reply> read_reply(Duration timeout);

  bool is_open() const { return fd_ >= 0; }
  void close();

 private:
  explicit ClientSocket(int fd, ReplyLimits limits) : fd_(fd), reader_(limits) {}

  int fd_ = -1;
  ReplyReader reader_;
};

}  // namespace tern::delivery
