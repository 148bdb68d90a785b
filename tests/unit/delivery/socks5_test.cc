// Tests for the SOCKS5 client (RFC 1928, RFC 1929) against an in-process
// fake proxy on 127.0.0.1: the exact bytes of the method selection,
// username/password sub-negotiation and CONNECT request for IPv4, IPv6 and
// domain-name targets; every reply code and malformed answer as an error
// value; and an SMTP session carried through the tunnel.
#include "delivery/socks5.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "delivery/smtp_client.h"

namespace tern::delivery {
namespace {

using namespace std::chrono_literals;

// Blocking byte-level peer for the fake proxy, with a 5 s receive timeout.
class ProxyPeer {
 public:
  explicit ProxyPeer(int fd) : fd_(fd) {
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  std::string read(size_t count) {
    std::string out;
    while (out.size() < count) {
      char buf[512];
      ssize_t n = ::recv(fd_, buf, std::min(sizeof buf, count - out.size()), 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  std::string line() {
    std::string out;
    char c;
    while (::recv(fd_, &c, 1, 0) == 1) {
      out += c;
      if (out.size() >= 2 && out.ends_with("\r\n")) return out.substr(0, out.size() - 2);
    }
    return out;
  }
  void write(std::string_view bytes) { (void)::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL); }

 private:
  int fd_;
};

class FakeProxy {
 public:
  using Script = std::function<void(ProxyPeer&)>;
  explicit FakeProxy(Script script) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0 || ::listen(listen_fd_, 4) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sin), &len) != 0) {
      throw std::runtime_error("fake proxy: bind/listen failed");
    }
    port_ = ntohs(sin.sin_port);
    thread_ = std::thread([this, script = std::move(script)] {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 10000) <= 0) return;
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      ProxyPeer peer(fd);
      script(peer);
      ::close(fd);
    });
  }
  ~FakeProxy() {
    join();
    ::close(listen_fd_);
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  Socks5Options options() const {
    Socks5Options o;
    o.proxy.host = "127.0.0.1";
    o.proxy.port = port_;
    o.connect_timeout = 2000ms;
    o.handshake_timeout = 2000ms;
    return o;
  }

 private:
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out += static_cast<char>(v);
  return out;
}

// Success reply with an IPv4 bound address (RFC 1928 §6).
const std::string kSuccessV4 = bytes({5, 0, 0, 1, 10, 0, 0, 1, 0x30, 0x39});

TEST(Socks5, NoAuthConnectToIpv4) {
  std::string hello, request;
  FakeProxy proxy([&](ProxyPeer& p) {
    hello = p.read(3);
    p.write(bytes({5, 0}));
    request = p.read(10);
    p.write(kSuccessV4 + "220 mx via proxy\r\n");  // the greeting may follow in the same segment
  });
  auto socket = socks5_connect(proxy.options(), "192.0.2.25", 25);
  ASSERT_TRUE(socket) << socket.error().to_string();
  auto greeting = socket->read_reply(2000ms);
  proxy.join();
  EXPECT_EQ(hello, bytes({5, 1, 0}));
  EXPECT_EQ(request, bytes({5, 1, 0, 1, 192, 0, 2, 25, 0, 25}));
  ASSERT_TRUE(greeting);
  EXPECT_EQ(greeting->code, 220);
}

TEST(Socks5, UsernamePasswordAndDomainTarget) {
  std::string hello, auth, request;
  FakeProxy proxy([&](ProxyPeer& p) {
    hello = p.read(4);
    p.write(bytes({5, 2}));
    auth = p.read(1 + 1 + 5 + 1 + 6);
    p.write(bytes({1, 0}));
    request = p.read(4 + 1 + 15 + 2);
    // Reply with a domain-name bound address, to check it is consumed exactly.
    p.write(bytes({5, 0, 0, 3, 4}) + "host" + bytes({0, 25}) + "220 ready\r\n");
  });
  Socks5Options options = proxy.options();
  options.username = "alice";
  options.password = "secret";
  auto socket = socks5_connect(options, "mx.example.test", 587);
  ASSERT_TRUE(socket) << socket.error().to_string();
  auto greeting = socket->read_reply(2000ms);
  proxy.join();
  EXPECT_EQ(hello, bytes({5, 2, 0, 2}));
  EXPECT_EQ(auth, bytes({1, 5}) + "alice" + bytes({6}) + "secret");
  EXPECT_EQ(request, bytes({5, 1, 0, 3, 15}) + "mx.example.test" + bytes({2, 0x4b}));
  ASSERT_TRUE(greeting);
  EXPECT_EQ(greeting->lines[0], "ready");
}

TEST(Socks5, Ipv6TargetAndIpv6BoundAddress) {
  std::string request;
  FakeProxy proxy([&](ProxyPeer& p) {
    p.read(3);
    p.write(bytes({5, 0}));
    request = p.read(4 + 16 + 2);
    p.write(bytes({5, 0, 0, 4}) + std::string(16, '\0') + bytes({0, 25}) + "220 v6\r\n");
  });
  auto socket = socks5_connect(proxy.options(), "2001:db8::1", 25);
  ASSERT_TRUE(socket);
  auto greeting = socket->read_reply(2000ms);
  proxy.join();
  EXPECT_EQ(request.substr(0, 4), bytes({5, 1, 0, 4}));
  EXPECT_EQ(request.substr(4, 2), bytes({0x20, 0x01}));
  EXPECT_EQ(request.substr(20), bytes({0, 25}));
  ASSERT_TRUE(greeting);
  EXPECT_EQ(greeting->code, 220);
}

struct ReplyCase {
  int rep;
  const char* enhanced;
  const char* text;
};

TEST(Socks5, EveryReplyCodeIsATransientErrorWithItsText) {
  const ReplyCase cases[] = {
      {1, "4.4.1", "general SOCKS server failure"}, {2, "4.7.0", "connection not allowed by ruleset"},
      {3, "4.4.1", "network unreachable"},          {4, "4.4.1", "host unreachable"},
      {5, "4.4.1", "connection refused"},           {6, "4.4.2", "TTL expired"},
      {7, "4.4.0", "command not supported"},        {8, "4.4.0", "address type not supported"},
      {9, "4.4.1", "unassigned reply code"},
  };
  for (const auto& c : cases) {
    FakeProxy proxy([&](ProxyPeer& p) {
      p.read(3);
      p.write(bytes({5, 0}));
      p.read(10);
      p.write(bytes({5, c.rep, 0, 1, 0, 0, 0, 0, 0, 0}));
    });
    auto socket = socks5_connect(proxy.options(), "192.0.2.25", 25);
    proxy.join();
    ASSERT_FALSE(socket) << c.rep;
    EXPECT_TRUE(socket.error().transient()) << c.rep;
    EXPECT_EQ(socket.error().enhanced, c.enhanced) << c.rep;
    EXPECT_NE(socket.error().text.find(c.text), std::string::npos) << socket.error().text;
    EXPECT_NE(socket.error().text.find("192.0.2.25:25"), std::string::npos) << socket.error().text;
  }
}

// Runs one handshake against a proxy that behaves as `script` and returns the error.
Error failure_with(FakeProxy::Script script, const std::string& username = "") {
  FakeProxy proxy(std::move(script));
  Socks5Options options = proxy.options();
  options.username = username;
  options.password = username.empty() ? "" : "pw";
  auto socket = socks5_connect(options, "192.0.2.25", 25);
  proxy.join();
  EXPECT_FALSE(socket);
  return socket ? Error::local("unexpected success") : socket.error();
}

TEST(Socks5, HandshakeFailures) {
  // No acceptable method (RFC 1928 §3).
  Error e = failure_with([](ProxyPeer& p) {
    p.read(3);
    p.write(bytes({5, 0xff}));
  });
  EXPECT_EQ(e.enhanced, "4.7.0");
  EXPECT_NE(e.text.find("requires authentication"), std::string::npos);

  // Username/password rejected (RFC 1929 §2: non-zero STATUS).
  e = failure_with(
      [](ProxyPeer& p) {
        p.read(4);
        p.write(bytes({5, 2}));
        p.read(1 + 1 + 4 + 1 + 2);
        p.write(bytes({1, 1}));
      },
      "user");
  EXPECT_EQ(e.enhanced, "4.7.0");
  EXPECT_NE(e.text.find("rejected the username/password"), std::string::npos);

  // Not a SOCKS5 server (e.g. an HTTP proxy or SOCKS4).
  e = failure_with([](ProxyPeer& p) {
    p.read(3);
    p.write("HTTP/1.1 400 Bad Request\r\n");
  });
  EXPECT_EQ(e.enhanced, "4.4.0");
  EXPECT_NE(e.text.find("not a SOCKS version 5"), std::string::npos);

  // A method we did not offer.
  e = failure_with([](ProxyPeer& p) {
    p.read(3);
    p.write(bytes({5, 2}));
  });
  EXPECT_EQ(e.enhanced, "4.4.0");

  // Unknown address type in the reply.
  e = failure_with([](ProxyPeer& p) {
    p.read(3);
    p.write(bytes({5, 0}));
    p.read(10);
    p.write(bytes({5, 0, 0, 9}));
  });
  EXPECT_EQ(e.enhanced, "4.4.0");

  // Proxy hangs up mid-handshake.
  e = failure_with([](ProxyPeer& p) { p.read(3); });
  EXPECT_EQ(e.enhanced, "4.4.2");
  EXPECT_NE(e.text.find("SOCKS5 proxy"), std::string::npos);

  // Proxy never answers: the handshake deadline.
  e = failure_with([](ProxyPeer& p) {
    p.read(3);
    std::this_thread::sleep_for(2500ms);
  });
  EXPECT_EQ(e.enhanced, "4.4.2");
  EXPECT_NE(e.text.find("timed out"), std::string::npos);
}

TEST(Socks5, ProxyUnreachableAndBadOptions) {
  Socks5Options options;
  {
    FakeProxy closed([](ProxyPeer&) {});
    options = closed.options();
    // Connect once so the fake's thread finishes, then it closes.
    auto s = ClientSocket::connect(options.proxy, 1000ms);
  }
  auto socket = socks5_connect(options, "192.0.2.25", 25);
  ASSERT_FALSE(socket);
  EXPECT_EQ(socket.error().enhanced, "4.4.1");
  EXPECT_NE(socket.error().text.find("SOCKS5 proxy connect"), std::string::npos);

  options.username = std::string(256, 'u');
  socket = socks5_connect(options, "192.0.2.25", 25);
  ASSERT_FALSE(socket);
  EXPECT_EQ(socket.error().enhanced, "4.3.5");
}

TEST(Socks5, SmtpSessionThroughProxy) {
  std::string target;
  std::vector<std::string> commands;
  FakeProxy proxy([&](ProxyPeer& p) {
    p.read(3);
    p.write(bytes({5, 0}));
    std::string head = p.read(5);
    target = p.read(static_cast<uint8_t>(head[4]) + 2);
    p.write(kSuccessV4);
    p.write("220 mx.example.test ESMTP\r\n");
    commands.push_back(p.line());
    p.write("250-mx.example.test\r\n250 PIPELINING\r\n");
    commands.push_back(p.line());
    p.write("221 bye\r\n");
  });
  SmtpClientOptions options;
  options.helo_name = "client.test";
  options.tls.mode = TlsMode::kNone;
  options.socks5 = proxy.options();
  SmtpConnection conn(options);
  Endpoint endpoint;
  endpoint.host = "mx.example.test";  // resolved by the proxy, not by us
  endpoint.port = 25;
  Status st = conn.connect(endpoint);
  ASSERT_TRUE(st) << st.error().to_string();
  EXPECT_TRUE(conn.extensions().pipelining);
  conn.quit();
  proxy.join();
  EXPECT_EQ(target, "mx.example.test" + bytes({0, 25}));
  EXPECT_EQ(commands, (std::vector<std::string>{"EHLO client.test", "QUIT"}));
}

}  // namespace
}  // namespace tern::delivery
