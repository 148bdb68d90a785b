// poll(2)-driven blocking client socket (see client_socket.h).
#include "delivery/client_socket.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "base/fs.h"
#include "base/net.h"

namespace tern::delivery {

namespace {

using Clock = std::chrono::steady_clock;

// Milliseconds left until `deadline`, clamped to [0, INT_MAX] for poll(2).
int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return 0;
  if (left > 0x7fffffff) return 0x7fffffff;
  return static_cast<int>(left);
}

// Waits for `events` on fd until the deadline: 1 ready, 0 timeout, -1 error (errno set).
int wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, remaining_ms(deadline));
    if (rc < 0 && errno == EINTR) continue;
    return rc;
  }
}

// Non-blocking connect of one address, finished within the deadline.
Result<int> connect_one(int family, const sockaddr* addr, socklen_t len, const std::string& what,
                        Clock::time_point deadline) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error::temp("4.4.1", fs::errno_text("socket", errno));
  if (::connect(fd, addr, len) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      int e = errno;
      ::close(fd);
      return Error::temp("4.4.1", fs::errno_text("connect " + what, e));
    }
    int rc = wait_for(fd, POLLOUT, deadline);
    if (rc == 0) {
      ::close(fd);
      return Error::temp("4.4.2", "connect " + what + ": timed out");
    }
    int err = 0;
    socklen_t err_len = sizeof err;
    if (rc < 0) err = errno;
    else if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len) != 0) err = errno;
    if (err != 0) {
      ::close(fd);
      return Error::temp("4.4.1", fs::errno_text("connect " + what, err));
    }
  }
  return fd;
}

}  // namespace

Result<Endpoint> Endpoint::parse(std::string_view text, uint16_t default_port) {
  Endpoint ep;
  if (text.substr(0, 5) == "unix:") text.remove_prefix(5), ep.is_unix = true;
  else if (!text.empty() && text[0] == '/') ep.is_unix = true;
  if (ep.is_unix) {
    if (text.empty() || text[0] != '/') return Error::temp("4.3.5", "unix socket path must be absolute");
    if (text.size() >= sizeof(sockaddr_un::sun_path)) return Error::temp("4.3.5", "unix socket path too long");
    ep.path = std::string(text);
    return ep;
  }
  auto hp = HostPort::parse(text, default_port);
  if (!hp || hp->host.empty() || hp->port == 0) {
    return Error::temp("4.3.5", "bad endpoint \"" + std::string(text) + "\" (want unix:/path or host:port)");
  }
  ep.host = hp->host;
  ep.port = hp->port;
  return ep;
}

std::string Endpoint::to_string() const {
  if (is_unix) return "unix:" + path;
  return HostPort{host, port}.to_string();
}

ClientSocket::~ClientSocket() { close(); }

ClientSocket::ClientSocket(ClientSocket&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), reader_(std::move(other.reader_)) {}

ClientSocket& ClientSocket::operator=(ClientSocket&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    reader_ = std::move(other.reader_);
  }
  return *this;
}

void ClientSocket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<ClientSocket> ClientSocket::connect(const Endpoint& endpoint, Duration timeout, ReplyLimits limits) {
  auto deadline = Clock::now() + timeout;
  std::string what = endpoint.to_string();
  if (endpoint.is_unix) {
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    if (endpoint.path.size() >= sizeof sun.sun_path) return Error::temp("4.3.5", what + ": path too long");
    std::memcpy(sun.sun_path, endpoint.path.data(), endpoint.path.size());
    auto fd = connect_one(AF_UNIX, reinterpret_cast<sockaddr*>(&sun), sizeof sun, what, deadline);
    if (!fd) return fd.error();
    return ClientSocket(*fd, limits);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  std::string port = std::to_string(endpoint.port);
  int rc = ::getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &list);
  if (rc != 0) return Error::temp("4.4.3", what + ": " + ::gai_strerror(rc));
  Error last = Error::temp("4.4.1", what + ": no addresses");
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    auto fd = connect_one(ai->ai_family, ai->ai_addr, ai->ai_addrlen, what, deadline);
    if (fd) {
      ::freeaddrinfo(list);
      return ClientSocket(*fd, limits);
    }
    last = fd.error();
    if (remaining_ms(deadline) == 0) break;
  }
  ::freeaddrinfo(list);
  return last;
}

Status ClientSocket::send(std::string_view data, Duration timeout) {
  if (fd_ < 0) return Error::temp("4.4.2", "connection closed");
  auto deadline = Clock::now() + timeout;
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int rc = wait_for(fd_, POLLOUT, deadline);
      if (rc == 0) return Error::temp("4.4.2", "timed out sending to server");
      if (rc < 0) return Error::temp("4.4.2", fs::errno_text("poll", errno));
      continue;
    }
    return Error::temp("4.4.2", fs::errno_text("send", errno));
  }
  return ok();
}

Result<Reply> ClientSocket::read_reply(Duration timeout) {
  if (fd_ < 0) return Error::temp("4.4.2", "connection closed");
  auto deadline = Clock::now() + timeout;
  char buf[4096];
  for (;;) {
    auto next = reader_.next();
    if (!next) return next.error();
    if (next.value()) return std::move(*next.value());
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      reader_.feed(std::string_view(buf, static_cast<size_t>(n)));
      continue;
    }
    if (n == 0) return Error::temp("4.4.2", "connection closed by server");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      int rc = wait_for(fd_, POLLIN, deadline);
      if (rc == 0) return Error::temp("4.4.2", "timed out waiting for server reply");
      if (rc < 0) return Error::temp("4.4.2", fs::errno_text("poll", errno));
      continue;
    }
    return Error::temp("4.4.2", fs::errno_text("recv", errno));
  }
}

}  // namespace tern::delivery
