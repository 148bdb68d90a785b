// Tests for RemoteDelivery against in-process SMTP servers on loopback
// addresses (127.0.0.1, .2, .3 share one port, so MX hosts differ only by
// address, as on port 25) and dns::FakeResolver behind a BlockingResolver:
// MX fallthrough (refused connection, 4xx greeting), per-recipient outcomes,
// one transaction per domain, connection reuse, destination backoff,
// per-destination connection limit, null MX, route switching to a smarthost
// after N attempts, the fail transport, Return-Path stripping, transport
// passwords, and the DeliveryAgent handing remote recipients over.
#include "scheduler/remote.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "base/strings.h"
#include "delivery/dot_stuff.h"
#include "dns/fake_resolver.h"
#include "scheduler/agent.h"

namespace tern::scheduler {
namespace {

using namespace std::chrono_literals;
using State = queue::Recipient::State;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "tern-remote-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A received mail transaction.
struct Transaction {
  std::string mail_from;
  std::vector<std::string> rcpts;  // accepted ones
  std::string content;
};

// A rule-driven SMTP server on `address`:`port` (port 0: any free one). Each
// connection runs on its own thread. RCPT replies come from the local part:
// "defer..." gets 450, "reject..." 550, anything else 250. Counts
// connections and the most open at once (a connection stops counting when
// QUIT arrives or the peer goes away).
class FakeMx {
 public:
  FakeMx(const std::string& address, uint16_t port, std::string greeting = "220 fake.test ESMTP\r\n")
      : greeting_(std::move(greeting)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    ::inet_pton(AF_INET, address.c_str(), &sin.sin_addr);
    sin.sin_port = htons(port);
    socklen_t len = sizeof sin;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sin), &len) != 0) {
      throw std::runtime_error("fake MX: bind/listen failed on " + address);
    }
    port_ = ntohs(sin.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~FakeMx() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    acceptor_.join();
    for (auto& t : sessions_) t.join();
    ::close(fd_);
  }
  uint16_t port() const { return port_; }
  int connections() const { return connections_; }
  int max_open() const { return max_open_; }
  std::vector<Transaction> transactions() const {
    std::lock_guard lk(mu_);
    return transactions_;
  }
  std::vector<std::string> commands() const {
    std::lock_guard lk(mu_);
    return commands_;
  }
  std::chrono::milliseconds data_delay{0};

 private:
  void accept_loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      ++connections_;
      std::lock_guard lk(mu_);
      sessions_.emplace_back([this, c] { session(c); });
    }
  }
  void session(int c) {
    timeval tv{5, 0};
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int now_open = ++open_;
    int seen = max_open_;
    while (now_open > seen && !max_open_.compare_exchange_weak(seen, now_open)) {
    }
    bool counted = true;
    auto uncount = [&] {
      if (counted) --open_;
      counted = false;
    };
    std::string buf;
    auto line = [&]() -> std::optional<std::string> {
      for (;;) {
        auto eol = buf.find("\r\n");
        if (eol != std::string::npos) {
          std::string l = buf.substr(0, eol);
          buf.erase(0, eol + 2);
          return l;
        }
        char tmp[4096];
        ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
        if (n <= 0) return std::nullopt;
        buf.append(tmp, static_cast<size_t>(n));
      }
    };
    auto say = [&](const std::string& s) { (void)::send(c, s.data(), s.size(), MSG_NOSIGNAL); };
    say(greeting_);
    if (greeting_.rfind("220", 0) == 0) {
      Transaction t;
      while (auto l = line()) {
        {
          std::lock_guard lk(mu_);
          commands_.push_back(*l);
        }
        std::string upper = to_upper(*l);
        if (upper.rfind("EHLO", 0) == 0) {
          say("250-fake.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n");
        } else if (upper.rfind("MAIL FROM:", 0) == 0) {
          t = Transaction{};
          t.mail_from = l->substr(10);
          say("250 2.1.0 ok\r\n");
        } else if (upper.rfind("RCPT TO:", 0) == 0) {
          std::string to = l->substr(8);
          if (to.find("<defer") == 0) {
            say("450 4.2.1 try later\r\n");
          } else if (to.find("<reject") == 0) {
            say("550 5.1.1 no such user\r\n");
          } else {
            t.rcpts.push_back(to);
            say("250 2.1.5 ok\r\n");
          }
        } else if (upper == "DATA") {
          say("354 go\r\n");
          std::string raw;
          while (auto d = line()) {
            raw += *d + "\r\n";
            if (*d == ".") break;
          }
          std::string content;
          delivery::dot_unstuff(raw, content);
          t.content = content;
          std::this_thread::sleep_for(data_delay);
          {
            std::lock_guard lk(mu_);
            transactions_.push_back(t);
          }
          say("250 2.0.0 queued\r\n");
        } else if (upper == "RSET") {
          say("250 2.0.0 ok\r\n");
        } else if (upper == "QUIT") {
          uncount();
          say("221 2.0.0 bye\r\n");
          break;
        } else {
          say("502 5.5.1 unknown\r\n");
        }
      }
    } else {
      // A refusing greeting: wait for QUIT or EOF.
      auto l = line();
      uncount();
      if (l) say("221 bye\r\n");
    }
    uncount();
    ::close(c);
  }

  std::string greeting_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> open_{0};
  std::atomic<int> max_open_{0};
  std::thread acceptor_;
  std::vector<std::thread> sessions_;
  mutable std::mutex mu_;
  std::vector<Transaction> transactions_;
  std::vector<std::string> commands_;
};

// A dns::Resolver answering from a FakeResolver the test keeps.
class Forwarding : public dns::Resolver {
 public:
  explicit Forwarding(dns::FakeResolver& target) : target_(target) {}
  boost::asio::awaitable<dns::Answer> query(std::string name, dns::RrType type) override {
    co_return target_.lookup(name, type);
  }

 private:
  dns::FakeResolver& target_;
};

// RemoteDelivery wired to a FakeResolver and the fake servers' port.
struct World {
  dns::FakeResolver dns;
  std::unique_ptr<delivery::BlockingResolver> resolver;
  queue::ManualClock clock;
  std::unique_ptr<RemoteDelivery> remote;
  FakeMx main{"127.0.0.1", 0};  // 127.0.0.1:port, and fixes the port every direct delivery uses

  World() {
    resolver = std::move(delivery::BlockingResolver::create([this](boost::asio::any_io_executor) {
                           return Result<std::unique_ptr<dns::Resolver>>(std::make_unique<Forwarding>(dns));
                         }).value());
  }
  ~World() {
    if (remote) remote->shutdown();
  }
  RemoteOptions options() {
    RemoteOptions o;
    o.helo_name = "out.example.org";
    o.direct_port = main.port();
    o.lookup = [this](const std::string& domain) { return resolver->resolve_destination(domain); };
    auto t = 3000ms;
    o.timeouts = {t, t, t, t, t, t, t, t, t, t};
    o.slot_wait = 5s;
    return o;
  }
  void start(RemoteOptions o) { remote = std::make_unique<RemoteDelivery>(std::move(o), clock); }
  void start() { start(options()); }
};

queue::Envelope envelope(const std::vector<std::string>& rcpts, uint32_t attempts = 0) {
  queue::Envelope env;
  env.id = "TESTID";
  env.mail_from = "sender@example.org";
  for (const auto& r : rcpts) {
    queue::Recipient rec;
    rec.address = r;
    rec.original = r;
    rec.attempts = attempts;
    env.recipients.push_back(rec);
  }
  return env;
}

std::vector<size_t> all(const queue::Envelope& env) {
  std::vector<size_t> out;
  for (size_t i = 0; i < env.recipients.size(); ++i) out.push_back(i);
  return out;
}

const std::string kContent = "Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\nSubject: hi\r\n\r\nbody\r\n";

TEST(StripReturnPath, RemovesEveryReturnPathFieldOfTheHeaderOnly) {
  std::string in =
      "Return-Path: <a@b>\r\nReceived: from x\r\n\tby y\r\nreturn-path :\r\n <folded@b>\r\nSubject: s\r\n\r\n"
      "Return-Path: in the body\r\n";
  EXPECT_EQ(strip_return_path(in), "Received: from x\r\n\tby y\r\nSubject: s\r\n\r\nReturn-Path: in the body\r\n");
  EXPECT_EQ(strip_return_path("Subject: x\n\nbody\n"), "Subject: x\n\nbody\n");
  EXPECT_EQ(strip_return_path("Return-Path: <>\n"), "");
}

TEST(TransportPasswords, ReadsFileWithoutTrailingNewlineAndNamesMissingFile) {
  TempDir tmp;
  std::string file = tmp.path() + "/pw";
  std::ofstream(file) << "s3cret\n";
  delivery::RouteTable table;
  delivery::Transport t;
  t.name = "relay";
  t.kind = delivery::TransportKind::kSubmission;
  t.auth_user = "u";
  t.auth_password_file = file;
  table.transports.push_back(t);
  auto pw = load_transport_passwords(table);
  ASSERT_TRUE(pw) << pw.error().to_string();
  EXPECT_EQ(pw->at("relay"), "s3cret");
  table.transports[0].auth_password_file = tmp.path() + "/missing";
  auto bad = load_transport_passwords(table);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().text.find(tmp.path() + "/missing"), std::string::npos);
  EXPECT_NE(bad.error().text.find("relay"), std::string::npos);
}

TEST(RemoteDelivery, FallsThroughToNextMxWhenConnectionIsRefused) {
  World w;
  w.dns.add_mx("a.test", 10, "mx1.a.test");
  w.dns.add_address("mx1.a.test", "127.0.0.2");  // nothing listens there
  w.dns.add_mx("a.test", 20, "mx2.a.test");
  w.dns.add_address("mx2.a.test", "127.0.0.1");
  w.start();
  auto env = envelope({"bob@a.test"});
  auto res = w.remote->deliver(env, all(env), kContent);
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].state, State::kDelivered) << res[0].last_reply;
  EXPECT_EQ(res[0].remote_mta, "mx2.a.test");
  EXPECT_EQ(w.main.transactions().size(), 1u);
  EXPECT_EQ(w.remote->backoff_until("direct:a.test"), 0);
}

TEST(RemoteDelivery, FallsThroughToNextMxOn4xxGreeting) {
  World w;
  FakeMx busy("127.0.0.3", w.main.port(), "421 4.3.2 busy\r\n");
  w.dns.add_mx("a.test", 10, "mx1.a.test");
  w.dns.add_address("mx1.a.test", "127.0.0.3");
  w.dns.add_mx("a.test", 20, "mx2.a.test");
  w.dns.add_address("mx2.a.test", "127.0.0.1");
  w.start();
  auto env = envelope({"bob@a.test"});
  auto res = w.remote->deliver(env, all(env), kContent);
  EXPECT_EQ(res[0].state, State::kDelivered) << res[0].last_reply;
  EXPECT_EQ(busy.connections(), 1);
  EXPECT_EQ(res[0].remote_mta, "mx2.a.test");
}

TEST(RemoteDelivery, PerRecipientRepliesInOneTransaction) {
  World w;
  w.dns.add_mx("a.test", 10, "mx.a.test");
  w.dns.add_address("mx.a.test", "127.0.0.1");
  w.start();
  auto env = envelope({"ok@a.test", "defer@a.test", "reject@a.test", "ok2@a.test"});
  auto res = w.remote->deliver(env, all(env), kContent);
  ASSERT_EQ(res.size(), 4u);
  EXPECT_EQ(res[0].state, State::kDelivered);
  EXPECT_EQ(res[1].state, State::kPending);
  EXPECT_EQ(res[1].last_reply, "450 4.2.1 try later");
  EXPECT_EQ(res[2].state, State::kFailed);
  EXPECT_EQ(res[2].last_reply, "550 5.1.1 no such user");
  EXPECT_EQ(res[3].state, State::kDelivered);
  auto tx = w.main.transactions();
  ASSERT_EQ(tx.size(), 1u);  // both accepted recipients in one transaction
  EXPECT_EQ(tx[0].rcpts, (std::vector<std::string>{"<ok@a.test>", "<ok2@a.test>"}));
  EXPECT_EQ(w.main.connections(), 1);
}

TEST(RemoteDelivery, ReusesTheConnectionForTheNextMessage) {
  World w;
  w.dns.add_mx("a.test", 10, "mx.a.test");
  w.dns.add_address("mx.a.test", "127.0.0.1");
  w.start();
  auto env = envelope({"one@a.test"});
  EXPECT_EQ(w.remote->deliver(env, all(env), kContent)[0].state, State::kDelivered);
  EXPECT_EQ(w.remote->idle_connections(), 1u);
  auto env2 = envelope({"two@a.test"});
  EXPECT_EQ(w.remote->deliver(env2, all(env2), kContent)[0].state, State::kDelivered);
  EXPECT_EQ(w.main.connections(), 1);
  EXPECT_EQ(w.main.transactions().size(), 2u);
  w.remote->shutdown();  // QUIT the cached connections before the smarthost goes away
}

TEST(RemoteDelivery, IdleConnectionsAreClosedAfterTheIdleTimeout) {
  World w;
  w.dns.add_mx("a.test", 10, "mx.a.test");
  w.dns.add_address("mx.a.test", "127.0.0.1");
  auto o = w.options();
  o.idle_timeout = 100ms;
  w.start(o);
  auto env = envelope({"one@a.test"});
  EXPECT_EQ(w.remote->deliver(env, all(env), kContent)[0].state, State::kDelivered);
  for (int i = 0; i < 100 && w.remote->open_connections() > 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(w.remote->open_connections(), 0u);
  auto cmds = w.main.commands();
  EXPECT_EQ(cmds.back(), "QUIT");
}

TEST(RemoteDelivery, FailingDestinationIsBackedOffAndNotTried) {
  World w;
  FakeMx busy("127.0.0.3", w.main.port(), "421 4.3.2 busy\r\n");
  w.dns.add_mx("b.test", 10, "mx.b.test");
  w.dns.add_address("mx.b.test", "127.0.0.3");
  auto o = w.options();
  o.backoff_initial = 60;
  w.start(o);
  auto env = envelope({"x@b.test"});
  auto res = w.remote->deliver(env, all(env), kContent);
  EXPECT_EQ(res[0].state, State::kPending);
  EXPECT_EQ(busy.connections(), 1);
  EXPECT_EQ(w.remote->backoff_until("direct:b.test"), w.clock.now() + 60);

  auto env2 = envelope({"y@b.test"});
  res = w.remote->deliver(env2, all(env2), kContent);
  EXPECT_EQ(res[0].state, State::kPending);
  EXPECT_NE(res[0].last_reply.find("backed off"), std::string::npos) << res[0].last_reply;
  EXPECT_EQ(busy.connections(), 1);  // not tried

  w.clock.advance(61);
  res = w.remote->deliver(env2, all(env2), kContent);
  EXPECT_EQ(busy.connections(), 2);  // tried again, and the backoff doubles
  EXPECT_EQ(w.remote->backoff_until("direct:b.test"), w.clock.now() + 120);
}

TEST(RemoteDelivery, PerDestinationConnectionLimit) {
  World w;
  w.main.data_delay = 300ms;
  w.dns.add_mx("a.test", 10, "mx.a.test");
  w.dns.add_address("mx.a.test", "127.0.0.1");
  auto o = w.options();
  o.max_connections_per_destination = 1;
  o.idle_timeout = 0ms;  // no reuse: every message needs its own connection
  w.start(o);
  std::vector<std::thread> threads;
  std::atomic<int> delivered{0};
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      auto env = envelope({"u" + std::to_string(i) + "@a.test"});
      if (w.remote->deliver(env, all(env), kContent)[0].state == State::kDelivered) ++delivered;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(delivered, 3);
  EXPECT_EQ(w.main.max_open(), 1);
  EXPECT_EQ(w.main.transactions().size(), 3u);
}

TEST(RemoteDelivery, NullMxFailsPermanentlyWithoutConnecting) {
  World w;
  w.dns.add_mx("null.test", 0, ".");
  w.start();
  auto env = envelope({"x@null.test"});
  auto res = w.remote->deliver(env, all(env), kContent);
  EXPECT_EQ(res[0].state, State::kFailed);
  EXPECT_EQ(res[0].last_reply.rfind("556 5.1.10", 0), 0u) << res[0].last_reply;
  EXPECT_EQ(w.main.connections(), 0);
}

TEST(RemoteDelivery, RouteSwitchesToSmarthostAfterAttempts) {
  World w;
  FakeMx smarthost("127.0.0.1", 0);
  w.dns.add_mx("c.test", 10, "mx.c.test");
  w.dns.add_address("mx.c.test", "127.0.0.1");
  auto o = w.options();
  delivery::Transport relay;
  relay.name = "relay";
  relay.kind = delivery::TransportKind::kSmtp;
  relay.host = HostPort{"127.0.0.1", smarthost.port()};
  o.routes.transports.push_back(relay);
  delivery::Route route;
  route.to_domain = {"c.test"};
  route.minimum_attempts = 2;
  route.transport = "relay";
  o.routes.global_routes.push_back(route);
  w.start(o);

  auto first = envelope({"x@c.test"}, 1);
  EXPECT_EQ(w.remote->deliver(first, all(first), kContent)[0].state, State::kDelivered);
  EXPECT_EQ(w.main.transactions().size(), 1u);
  EXPECT_EQ(smarthost.transactions().size(), 0u);

  auto later = envelope({"x@c.test", "y@other.test"}, 2);  // one smarthost transaction for both domains
  w.dns.add_mx("other.test", 10, "mx.c.test");
  auto res = w.remote->deliver(later, all(later), kContent);
  EXPECT_EQ(res[0].state, State::kDelivered);
  EXPECT_EQ(res[0].remote_mta, "127.0.0.1");
  EXPECT_EQ(res[1].state, State::kDelivered);  // other.test has no route: direct
  ASSERT_EQ(smarthost.transactions().size(), 1u);
  EXPECT_EQ(smarthost.transactions()[0].rcpts, std::vector<std::string>{"<x@c.test>"});
  EXPECT_EQ(w.main.transactions().size(), 2u);
  w.remote->shutdown();  // QUIT the cached connections before the smarthost goes away
}

TEST(RemoteDelivery, FailTransportRecordsItsReply) {
  World w;
  auto o = w.options();
  for (auto [name, message, domain] : {std::tuple{"deny", "5.7.1 not allowed", "deny.test"},
                                       std::tuple{"hold", "4.3.0 held by policy", "hold.test"}}) {
    delivery::Transport t;
    t.name = name;
    t.kind = delivery::TransportKind::kFail;
    t.message = message;
    o.routes.transports.push_back(t);
    delivery::Route r;
    r.to_domain = {domain};
    r.transport = name;
    o.routes.global_routes.push_back(r);
  }
  w.start(o);
  auto env = envelope({"x@deny.test", "y@hold.test"});
  auto res = w.remote->deliver(env, all(env), kContent);
  EXPECT_EQ(res[0].state, State::kFailed);
  EXPECT_EQ(res[0].last_reply, "550 5.7.1 not allowed");
  EXPECT_EQ(res[1].state, State::kPending);
  EXPECT_EQ(res[1].last_reply, "451 4.3.0 held by policy");
  EXPECT_EQ(w.main.connections(), 0);
}

TEST(RemoteDelivery, ReturnPathIsNotSentButTraceFieldsAre) {
  World w;
  w.dns.add_mx("a.test", 10, "mx.a.test");
  w.dns.add_address("mx.a.test", "127.0.0.1");
  w.start();
  auto env = envelope({"bob@a.test"});
  auto res = w.remote->deliver(env, all(env), "Return-Path: <sender@example.org>\r\n" + kContent);
  EXPECT_EQ(res[0].state, State::kDelivered);
  auto tx = w.main.transactions();
  ASSERT_EQ(tx.size(), 1u);
  EXPECT_EQ(tx[0].content, kContent);
  EXPECT_EQ(tx[0].mail_from, "<sender@example.org>");
}

TEST(RemoteDelivery, DnsFailureIsTransientAndUnknownDomainPermanent) {
  World w;
  w.dns.set_rcode("servfail.test", dns::Rcode::kServFail);
  w.start();
  auto env = envelope({"x@servfail.test", "y@nxdomain.test"});
  auto res = w.remote->deliver(env, all(env), kContent);
  EXPECT_EQ(res[0].state, State::kPending) << res[0].last_reply;
  EXPECT_EQ(res[1].state, State::kFailed) << res[1].last_reply;
  // The failing lookup is not repeated for the next message meanwhile.
  EXPECT_EQ(w.remote->backoff_until("direct:servfail.test"), w.clock.now() + 60);
  EXPECT_EQ(w.remote->backoff_until("direct:nxdomain.test"), 0);
  w.dns.clear_queries();
  auto env2 = envelope({"z@servfail.test"});
  EXPECT_EQ(w.remote->deliver(env2, all(env2), kContent)[0].state, State::kPending);
  EXPECT_EQ(w.dns.query_count(), 0u);
}

TEST(RemoteDelivery, AfterShutdownDeliveriesAreDeferredUntried) {
  World w;
  w.dns.add_mx("a.test", 10, "mx.a.test");
  w.dns.add_address("mx.a.test", "127.0.0.1");
  w.start();
  w.remote->shutdown();
  auto env = envelope({"bob@a.test"});
  auto res = w.remote->deliver(env, all(env), kContent);
  EXPECT_EQ(res[0].state, State::kPending);
  EXPECT_EQ(res[0].last_reply, "451 4.3.2 delivery is shutting down");
  EXPECT_EQ(w.main.connections(), 0);
}

// The agent hands non-local recipients of a lease to RemoteDelivery and
// reports remote_mta to the after-complete hook.
class NullTransport : public delivery::LocalTransport {
 public:
  std::vector<delivery::RecipientResult> deliver(const std::string&, const std::vector<delivery::LocalDelivery>& rcpts,
                                                 std::string_view, bool) override {
    std::vector<delivery::RecipientResult> out;
    for (const auto& r : rcpts) out.push_back(delivery::RecipientResult::success(r.recipient, "ok"));
    local += rcpts.size();
    return out;
  }
  size_t local = 0;
};

TEST(DeliveryAgentRemote, LocalAndRemoteRecipientsInOneLease) {
  World w;
  w.dns.add_mx("a.test", 10, "mx.a.test");
  w.dns.add_address("mx.a.test", "127.0.0.1");
  w.start();
  TempDir tmp;
  auto spool = std::move(queue::Spool::open(tmp.path() + "/queue").value());
  queue::QueueManager manager(*spool, w.clock);
  auto* local = new NullTransport();
  DeliveryAgent agent(AgentOptions{{"example.test"}, 1}, *spool, manager, w.clock,
                      std::unique_ptr<delivery::LocalTransport>(local));
  agent.set_remote(w.remote.get());
  std::map<size_t, std::string> seen_mta;
  queue::Envelope seen_after;
  agent.set_after_complete([&](const queue::Envelope&, const queue::Envelope& after,
                               const std::map<size_t, std::string>& mta, const std::set<size_t>&) {
    seen_mta = mta;
    seen_after = after;
  });
  auto writer = spool->create();
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append(kContent));
  auto env = envelope({"alice@example.test", "bob@a.test", "defer@a.test"});
  env.id = (*writer)->id();
  env.received_at = w.clock.now();
  ASSERT_TRUE((*writer)->finish(env));
  ASSERT_TRUE(spool->sync());
  manager.add(env);
  EXPECT_EQ(agent.run_once(), 1u);
  EXPECT_EQ(local->local, 1u);
  ASSERT_EQ(seen_after.recipients.size(), 3u);
  EXPECT_EQ(seen_after.recipients[0].state, State::kDelivered);
  EXPECT_EQ(seen_after.recipients[1].state, State::kDelivered);
  EXPECT_EQ(seen_after.recipients[2].state, State::kPending);
  EXPECT_EQ(seen_after.recipients[2].attempts, 1u);
  EXPECT_EQ(seen_mta.at(1), "mx.a.test");
  ASSERT_EQ(w.main.transactions().size(), 1u);
}

}  // namespace
}  // namespace tern::scheduler
