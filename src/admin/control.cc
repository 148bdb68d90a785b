// Control socket server and client (see control.h).
#include "admin/control.h"

#include <pthread.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/fs.h"
#include "base/log.h"
#include "base/strings.h"

namespace tern::admin {
namespace {

constexpr size_t kMaxRequest = 1024;

bool make_address(const std::string& path, sockaddr_un& addr) {
  if (path.size() >= sizeof addr.sun_path) return false;
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return true;
}

// Reads one line (without LF) within the deadline.
bool read_line(int fd, std::string& line, int timeout_ms) {
  line.clear();
  char c;
  while (line.size() < kMaxRequest) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
    ssize_t n = ::read(fd, &c, 1);
    if (n <= 0) return false;
    if (c == '\n') return true;
    line.push_back(c);
  }
  return false;
}

}  // namespace

ControlServer::ControlServer(std::string path, CommandHandler handler)
    : path_(std::move(path)), handler_(std::move(handler)) {}

ControlServer::~ControlServer() { stop(); }

Status ControlServer::start() {
  sockaddr_un addr;
  if (!make_address(path_, addr)) return Error::local("control socket path too long: " + path_);
  ::unlink(path_.c_str());
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return Error::local(fs::errno_text("socket", errno));
  mode_t old = ::umask(0077);
  int rc = ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::umask(old);
  if (rc != 0 || ::listen(listen_fd_, 64) != 0) {
    int e = errno;
    ::close(listen_fd_);
    listen_fd_ = -1;
    return Error::local(fs::errno_text("control socket " + path_, e));
  }
  if (::pipe2(wake_, O_CLOEXEC) != 0) return Error::local(fs::errno_text("pipe", errno));
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "tern-control");
    loop();
  });
  return ok();
}

void ControlServer::stop() {
  if (thread_.joinable()) {
    char c = 'x';
    [[maybe_unused]] auto n = ::write(wake_[1], &c, 1);
    thread_.join();
  }
  for (int* fd : {&listen_fd_, &wake_[0], &wake_[1]}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
  if (!path_.empty()) ::unlink(path_.c_str());
  path_.clear();
}

void ControlServer::loop() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents != 0) return;
    if ((p[0].revents & POLLIN) == 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    serve(fd);
    ::close(fd);
  }
}

void ControlServer::serve(int fd) {
  std::string line;
  if (!read_line(fd, line, 5000)) return;
  std::string_view l = trim(line);
  auto sp = l.find(' ');
  std::string command(l.substr(0, sp));
  std::string argument(sp == std::string_view::npos ? std::string_view() : trim(l.substr(sp + 1)));
  auto result = handler_(command, argument);
  std::string out;
  if (result) {
    out = "ok\n" + *result;
  } else {
    out = "error " + result.error().text + "\n";
  }
  log::info("control").kv("command", command).kv("argument", argument).kv("ok", result.has_value());
  (void)fs::write_all(fd, out);
}

Result<std::string> control_request(const std::string& path, const std::string& command, const std::string& argument,
                                    int timeout_ms) {
  sockaddr_un addr;
  if (!make_address(path, addr)) return Error::local("control socket path too long: " + path);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error::local(fs::errno_text("socket", errno));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    ::close(fd);
    return Error::local(fs::errno_text("cannot reach the server at " + path + " (is tern running?)", e));
  }
  std::string req = command + (argument.empty() ? "" : " " + argument) + "\n";
  if (auto s = fs::write_all(fd, req); !s) {
    ::close(fd);
    return s.error();
  }
  std::string resp;
  char buf[65536];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int rc = ::poll(&p, 1, timeout_ms);
    if (rc <= 0) {
      ::close(fd);
      return Error::local("timed out waiting for the server");
    }
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (resp.rfind("ok\n", 0) == 0) return resp.substr(3);
  if (resp.rfind("error ", 0) == 0) {
    std::string text = resp.substr(6);
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return Error::perm("5.0.0", text);
  }
  return Error::local("malformed reply from the server");
}

}  // namespace tern::admin
