// count_sink: a do-nothing SMTP server that counts what it receives, for
// bench/relay. smtp-sink's own counter (-c) is not flushed when its output
// goes to a file, so the relay benchmark cannot tell when the last message
// arrived; this sink rewrites a status file ("<messages> <recipients>
// <monotonic ns of the last message>\n") after every message instead.
// Single-threaded, epoll, level-triggered; accepts pipelined commands,
// advertises PIPELINING, 8BITMIME, SMTPUTF8, SIZE and DSN, and answers 250 to
// everything but DATA (354) and QUIT (221). Not a test of anything: a
// measuring instrument.
//
//   count_sink 127.0.0.1:PORT STATUS_FILE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <unordered_map>

namespace {

struct Conn {
  std::string in;
  std::string out;
  bool in_data = false;
};

uint64_t messages = 0, recipients = 0;
int status_fd = -1;

void write_status() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  char buf[96];
  int n = std::snprintf(buf, sizeof buf, "%llu %llu %lld%09ld\n", static_cast<unsigned long long>(messages),
                        static_cast<unsigned long long>(recipients), static_cast<long long>(ts.tv_sec), ts.tv_nsec);
  if (::pwrite(status_fd, buf, static_cast<size_t>(n), 0) < 0) std::perror("status file");
}

bool starts_with_ci(const std::string& s, size_t at, const char* word) {
  for (size_t i = 0; word[i] != 0; ++i) {
    if (at + i >= s.size() || std::toupper(static_cast<unsigned char>(s[at + i])) != word[i]) return false;
  }
  return true;
}

// Consumes complete commands (or the message body) from c.in; false = close.
bool process(Conn& c) {
  size_t pos = 0;
  bool keep = true;
  while (keep) {
    if (c.in_data) {
      // The data region starts at the CRLF that ended the DATA command, so
      // CRLF.CRLF finds the end of an empty body too.
      size_t end = c.in.find("\r\n.\r\n", pos);
      if (end == std::string::npos) {
        if (c.in.size() - pos > 4) pos = c.in.size() - 4;  // keep what could start the terminator
        break;
      }
      pos = end + 5;
      c.in_data = false;
      ++messages;
      write_status();
      c.out += "250 2.0.0 Ok: counted\r\n";
      continue;
    }
    size_t eol = c.in.find("\r\n", pos);
    if (eol == std::string::npos) break;
    if (starts_with_ci(c.in, pos, "EHLO")) {
      c.out += "250-count-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250 SIZE 0\r\n";
    } else if (starts_with_ci(c.in, pos, "RCPT")) {
      ++recipients;
      c.out += "250 2.1.5 Ok\r\n";
    } else if (starts_with_ci(c.in, pos, "DATA")) {
      c.out += "354 End data with <CR><LF>.<CR><LF>\r\n";
      c.in_data = true;
      pos = eol;
      continue;
    } else if (starts_with_ci(c.in, pos, "QUIT")) {
      c.out += "221 2.0.0 Bye\r\n";
      keep = false;
    } else {
      c.out += "250 2.0.0 Ok\r\n";
    }
    pos = eol + 2;
  }
  c.in.erase(0, std::min(pos, c.in.size()));
  return keep;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: count_sink 127.0.0.1:PORT STATUS_FILE\n");
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  std::string hostport = argv[1];
  auto colon = hostport.rfind(':');
  if (colon == std::string::npos) return 2;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(hostport.c_str() + colon + 1)));
  if (::inet_pton(AF_INET, hostport.substr(0, colon).c_str(), &addr.sin_addr) != 1) return 2;
  status_fd = ::open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (status_fd < 0) {
    std::perror(argv[2]);
    return 1;
  }
  write_status();
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, 4096) != 0) {
    std::perror("bind/listen");
    return 1;
  }
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  ::epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  std::unordered_map<int, std::unique_ptr<Conn>> conns;
  epoll_event events[256];
  char buf[65536];
  for (;;) {
    int n = ::epoll_wait(ep, events, 256, -1);
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        for (;;) {
          int c = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event cev{};
          cev.events = EPOLLIN;
          cev.data.fd = c;
          ::epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
          auto conn = std::make_unique<Conn>();
          conn->out = "220 count-sink ESMTP\r\n";
          ::send(c, conn->out.data(), conn->out.size(), MSG_NOSIGNAL);
          conn->out.clear();
          conns[c] = std::move(conn);
        }
        continue;
      }
      auto it = conns.find(fd);
      if (it == conns.end()) continue;
      Conn& c = *it->second;
      ssize_t got = ::recv(fd, buf, sizeof buf, 0);
      bool keep = got > 0;
      if (keep) {
        c.in.append(buf, static_cast<size_t>(got));
        keep = process(c);
        // Replies are small; a full socket buffer here would mean a broken
        // client, which a benchmark sink may simply drop.
        if (!c.out.empty()) ::send(fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
        c.out.clear();
      } else if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
        keep = true;
      }
      if (!keep) {
        ::close(fd);
        conns.erase(it);
      }
    }
  }
}
