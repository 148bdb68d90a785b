// UnboundResolver against a real DNS server: the test starts dnsmasq on a
// free loopback port with a small zone under tern.example (libunbound
// answers the RFC 6761 "test." zone itself, so it cannot be used) and checks TXT (including
// character-strings split because they exceed 255 bytes), MX, A, AAAA, PTR,
// CNAME, NXDOMAIN, NODATA and the DNSSEC status ("insecure": no trust
// anchor), then a timeout against a port where a socket is bound but never
// answers. Fails with a clear message when dnsmasq is not installed.
#include "dns/unbound_resolver.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <future>
#include <thread>

extern char** environ;

namespace tern::dns {
namespace {

constexpr const char* kDnsmasq = "/usr/sbin/dnsmasq";

// Binds a UDP and a TCP socket to the same free port on 127.0.0.1 and
// returns the port (-1 on failure). Closing both leaves the port free for
// dnsmasq; keeping them open makes a server that never answers.
int bind_port(int& udp, int& tcp) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    udp = socket(AF_INET, SOCK_DGRAM, 0);
    if (bind(udp, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return -1;
    socklen_t len = sizeof addr;
    getsockname(udp, reinterpret_cast<sockaddr*>(&addr), &len);
    tcp = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // TIME_WAIT leftovers of other tests
    if (bind(tcp, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 && listen(tcp, 1) == 0) {
      return ntohs(addr.sin_port);
    }
    close(udp);
    close(tcp);
  }
  return -1;
}

// Sends a raw DNS query for host.tern.example/A and waits for any reply: dnsmasq is up.
bool server_answers(int port) {
  static const unsigned char kQuery[] = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 4, 'h', 'o', 's', 't', 4, 't', 'e', 'r', 'n',
                                         7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1, 0, 1};
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sendto(fd, kQuery, sizeof kQuery, 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  pollfd p{fd, POLLIN, 0};
  bool ok = poll(&p, 1, 200) == 1;
  if (ok) {
    char buf[512];
    ok = recv(fd, buf, sizeof buf, 0) > 12;
  }
  close(fd);
  return ok;
}

class UnboundResolverTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(kDnsmasq)) {
      setup_error_ = std::string(kDnsmasq) + " is missing: install dnsmasq-base to run the UnboundResolver tests";
      return;
    }
    int udp = -1, tcp = -1;
    port_ = bind_port(udp, tcp);
    close(udp);
    close(tcp);
    if (port_ <= 0) {
      setup_error_ = std::string("no free loopback port: ") + std::strerror(errno);
      return;
    }
    std::string part1(200, 'a'), part2(200, 'b');
    std::vector<std::string> args = {
        kDnsmasq, "--no-daemon", "--conf-file=/dev/null", "--pid-file=", "--port=" + std::to_string(port_),
        "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts", "--log-facility=/dev/null",
        "--local=/tern.example/", "--local=/22.11.in-addr.arpa/", "--txt-record=txt.tern.example,v=spf1 -all",
        "--txt-record=long.tern.example," + part1 + "," + part2, "--mx-host=mx.tern.example,mail1.tern.example,10",
        "--mx-host=mx.tern.example,mail2.tern.example,20", "--host-record=host.tern.example,192.0.2.1,2001:db8::1",
        "--ptr-record=1.22.11.in-addr.arpa,host.tern.example", "--cname=alias.tern.example,host.tern.example"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, kDnsmasq, nullptr, nullptr, argv.data(), environ) != 0) {
      setup_error_ = "cannot start dnsmasq";
      return;
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!server_answers(port_)) {
      if (std::chrono::steady_clock::now() > deadline) {
        setup_error_ = "dnsmasq did not answer on port " + std::to_string(port_);
        return;
      }
    }
  }
  static void TearDownTestSuite() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
      pid_ = 0;
    }
  }

  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  std::unique_ptr<UnboundResolver> make(int port, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    UnboundConfig cfg;
    cfg.nameservers = {"127.0.0.1@" + std::to_string(port)};
    cfg.query_timeout = timeout;
    auto r = UnboundResolver::create(ctx_.get_executor(), cfg);
    EXPECT_TRUE(r) << (r ? "" : r.error().text);
    return r ? std::move(*r) : nullptr;
  }

  Answer query(Resolver& r, const char* name, RrType type) {
    auto fut = boost::asio::co_spawn(ctx_, r.query(name, type), boost::asio::use_future);
    ctx_.restart();
    ctx_.run();
    return fut.get();
  }

  boost::asio::io_context ctx_;
  static inline std::string setup_error_;
  static inline int port_ = 0;
  static inline pid_t pid_ = 0;
};

TEST_F(UnboundResolverTest, TxtIncludingSplitStrings) {
  auto r = make(port_);
  ASSERT_TRUE(r);
  Answer a = query(*r, "txt.tern.example", RrType::kTxt);
  EXPECT_EQ(a.rcode, Rcode::kNoError);
  EXPECT_EQ(a.security, Security::kInsecure);
  EXPECT_EQ(a.txt, std::vector<std::string>{"v=spf1 -all"});
  a = query(*r, "LONG.tern.example", RrType::kTxt);
  ASSERT_EQ(a.txt.size(), 1u);
  EXPECT_EQ(a.txt[0], std::string(200, 'a') + std::string(200, 'b'));
  EXPECT_EQ(r->outstanding(), 0u);
}

TEST_F(UnboundResolverTest, MxAddressesPtrCname) {
  auto r = make(port_);
  ASSERT_TRUE(r);
  Answer a = query(*r, "mx.tern.example", RrType::kMx);
  ASSERT_EQ(a.mx.size(), 2u);
  std::sort(a.mx.begin(), a.mx.end(), [](auto& x, auto& y) { return x.preference < y.preference; });
  EXPECT_EQ(a.mx[0], (MxRecord{10, "mail1.tern.example"}));
  EXPECT_EQ(a.mx[1], (MxRecord{20, "mail2.tern.example"}));
  a = query(*r, "host.tern.example", RrType::kA);
  ASSERT_EQ(a.addresses.size(), 1u);
  EXPECT_EQ(a.addresses[0].to_string(), "192.0.2.1");
  a = query(*r, "host.tern.example", RrType::kAaaa);
  ASSERT_EQ(a.addresses.size(), 1u);
  EXPECT_EQ(a.addresses[0].to_string(), "2001:db8::1");
  a = query(*r, "1.22.11.in-addr.arpa", RrType::kPtr);
  EXPECT_EQ(a.names, std::vector<std::string>{"host.tern.example"});
  a = query(*r, "alias.tern.example", RrType::kA);
  ASSERT_EQ(a.addresses.size(), 1u);
  EXPECT_EQ(a.canonical_name, "host.tern.example");
}

TEST_F(UnboundResolverTest, NxdomainAndNodata) {
  auto r = make(port_);
  ASSERT_TRUE(r);
  Answer a = query(*r, "nosuch.tern.example", RrType::kA);
  EXPECT_EQ(a.rcode, Rcode::kNxDomain);
  EXPECT_TRUE(a.nxdomain());
  a = query(*r, "host.tern.example", RrType::kTxt);
  EXPECT_EQ(a.rcode, Rcode::kNoError);
  EXPECT_TRUE(a.nodata());
  a = query(*r, "bad..name.tern.example", RrType::kA);  // cannot be sent: treated as non-existent
  EXPECT_TRUE(a.nxdomain());
}

TEST_F(UnboundResolverTest, SilentServerTimesOut) {
  int udp = -1, tcp = -1;
  int silent = bind_port(udp, tcp);
  ASSERT_GT(silent, 0);
  auto r = make(silent, std::chrono::milliseconds(300));
  ASSERT_TRUE(r);
  auto start = std::chrono::steady_clock::now();
  Answer a = query(*r, "host.tern.example", RrType::kA);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(a.rcode, Rcode::kTimeout);
  EXPECT_TRUE(a.temporary_failure());
  EXPECT_LT(took, std::chrono::seconds(3));
  EXPECT_EQ(r->outstanding(), 0u);
  close(udp);
  close(tcp);
}

TEST_F(UnboundResolverTest, ConcurrentQueriesOnOneContext) {
  auto r = make(port_);
  ASSERT_TRUE(r);
  std::vector<std::future<Answer>> futures;
  const char* names[] = {"host.tern.example", "mx.tern.example", "txt.tern.example", "nosuch.tern.example"};
  const RrType types[] = {RrType::kA, RrType::kMx, RrType::kTxt, RrType::kA};
  for (int i = 0; i < 20; ++i) {
    futures.push_back(boost::asio::co_spawn(ctx_, r->query(names[i % 4], types[i % 4]), boost::asio::use_future));
  }
  ctx_.restart();
  ctx_.run();
  for (int i = 0; i < 20; ++i) {
    Answer a = futures[static_cast<size_t>(i)].get();
    if (i % 4 == 3) {
      EXPECT_TRUE(a.nxdomain()) << i;
    } else {
      EXPECT_TRUE(a.ok() && !a.nodata()) << i;
    }
  }
  EXPECT_EQ(r->outstanding(), 0u);
}

TEST_F(UnboundResolverTest, DestroyingResolverEndsOutstandingQueries) {
  int udp = -1, tcp = -1;
  int silent = bind_port(udp, tcp);
  ASSERT_GT(silent, 0);
  auto r = make(silent, std::chrono::seconds(30));
  ASSERT_TRUE(r);
  auto fut = boost::asio::co_spawn(ctx_, r->query("host.tern.example", RrType::kA), boost::asio::use_future);
  ctx_.restart();
  ctx_.run_for(std::chrono::milliseconds(50));
  EXPECT_EQ(r->outstanding(), 1u);
  r.reset();
  auto start = std::chrono::steady_clock::now();
  ctx_.run();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_EQ(fut.get().rcode, Rcode::kTimeout);
  close(udp);
  close(tcp);
}

TEST_F(UnboundResolverTest, BadForwarderIsAnError) {
  UnboundConfig cfg;
  cfg.nameservers = {"not-an-address"};
  auto r = UnboundResolver::create(ctx_.get_executor(), cfg);
  EXPECT_FALSE(r);
}

}  // namespace
}  // namespace tern::dns
