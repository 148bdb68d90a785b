// Implementation of the delivery test helpers (see test_util.h).
#include "test_util.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace tern::delivery::testing {

TempDir::TempDir() : TempDir(std::filesystem::temp_directory_path().string()) {}

TempDir::TempDir(const std::string& base) {
  std::error_code ec;
  std::string root = std::filesystem::is_directory(base, ec) ? base : std::filesystem::temp_directory_path().string();
  std::string tmpl = root + "/tern-delivery-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::vector<std::string> list_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.is_regular_file()) out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

bool FakeConnection::fill(std::chrono::milliseconds timeout) {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  char buf[4096];
  ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
  if (n <= 0) return false;
  buffer_.append(buf, static_cast<size_t>(n));
  return true;
}

std::optional<std::string> FakeConnection::read_line(std::chrono::milliseconds timeout) {
  for (;;) {
    size_t eol = buffer_.find("\r\n");
    if (eol != std::string::npos) {
      std::string line = buffer_.substr(0, eol);
      buffer_.erase(0, eol + 2);
      return line;
    }
    if (!fill(timeout)) return std::nullopt;
  }
}

std::optional<std::string> FakeConnection::read_data(std::chrono::milliseconds timeout) {
  std::string data;
  for (;;) {
    auto line = read_line(timeout);
    if (!line) return std::nullopt;
    data += *line + "\r\n";
    if (*line == ".") return data;
  }
}

void FakeConnection::write(const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

bool FakeConnection::nothing_pending(std::chrono::milliseconds wait) {
  if (!buffer_.empty()) return false;
  return !fill(wait);
}

FakeLmtpServer::FakeLmtpServer(const std::string& dir, Script script) : socket_path_(dir + "/lmtp.sock") {
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::strncpy(sun.sun_path, socket_path_.c_str(), sizeof sun.sun_path - 1);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0 || ::listen(listen_fd_, 4) != 0) {
    throw std::runtime_error("fake LMTP server: bind/listen failed");
  }
  thread_ = std::thread([this, script = std::move(script)] {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) return;
    int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) return;
    FakeConnection conn(fd);
    script(conn);
    ::close(fd);
  });
}

void FakeLmtpServer::join() {
  if (thread_.joinable()) thread_.join();
}

FakeLmtpServer::~FakeLmtpServer() {
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
  join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

}  // namespace tern::delivery::testing
