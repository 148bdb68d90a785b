// Helpers shared by the delivery tests: a self-removing temporary directory,
// file listing/reading, and a scripted in-process LMTP server on a Unix
// socket, so client behaviour (per-recipient replies, timeouts, dropped
// connections) can be tested without an external daemon.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace tern::delivery::testing {

class TempDir {
 public:
  TempDir();
  // Under `base` (e.g. "/dev/shm" for volume tests, where removing a
  // thousand synced files from a disk would dominate the test's run time);
  // falls back to the system temp directory when `base` does not exist.
  explicit TempDir(const std::string& base);
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Regular files directly inside `dir` (names only, sorted).
std::vector<std::string> list_files(const std::string& dir);
std::string read_whole_file(const std::string& path);

// One accepted connection of the fake server.
class FakeConnection {
 public:
  explicit FakeConnection(int fd) : fd_(fd) {}
  // Next CRLF-terminated line without its CRLF; nullopt on EOF/timeout.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
  // DATA content up to and including the "." line, as sent (still stuffed).
  std::optional<std::string> read_data(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
  void write(const std::string& data);
  // True when nothing more is buffered or arrives within `wait`.
  bool nothing_pending(std::chrono::milliseconds wait);

 private:
  bool fill(std::chrono::milliseconds timeout);
  int fd_;
  std::string buffer_;
};

// Listens on <dir>/lmtp.sock and runs `script` for the first connection on
// a background thread; records every line the script read in `transcript`.
class FakeLmtpServer {
 public:
  using Script = std::function<void(FakeConnection&)>;
  FakeLmtpServer(const std::string& dir, Script script);
  ~FakeLmtpServer();
  std::string endpoint() const { return "unix:" + socket_path_; }
  void join();

 private:
  std::string socket_path_;
  int listen_fd_ = -1;
  std::thread thread_;
};

}  // namespace tern::delivery::testing
