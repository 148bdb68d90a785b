// Unit tests for MilterSession against a scripted fake milter: a Unix
// socket in a temporary directory served by a thread that runs a test's
// script (read the MTA's packets, answer with chosen replies). Covers option
// negotiation (flags, symbol lists, no-send / no-reply), every verdict,
// every modification, SMFIR_PROGRESS, body chunking and skip, timeouts, a
// milter that closes mid-session and one that is not there.
#include "milter/session.h"
#include "run_util.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <thread>

namespace tern::milter {
namespace {

using namespace std::string_literals;
using namespace std::chrono_literals;
namespace asio = boost::asio;

// Runs one session call to completion on `io`.
using testing::run;
using testing::run_void;

// The milter's end of one connection: blocking reads with a timeout.
class MilterPeer {
 public:
  explicit MilterPeer(int fd) : fd_(fd) {}
  std::optional<Packet> read(std::chrono::milliseconds timeout = 5000ms) {
    for (;;) {
      auto next = reader_.next();
      if (!next) return std::nullopt;
      if (next.value()) return *next.value();
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
      char buf[65536];
      ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) return std::nullopt;
      reader_.feed(std::string_view(buf, static_cast<size_t>(n)));
    }
  }
  // Reads packets until one with `command`, skipping macro packets (which are checked elsewhere).
  std::optional<Packet> expect(char command) {
    for (;;) {
      auto p = read();
      if (!p) return std::nullopt;
      if (p->command == command) return p;
      if (p->command != cmd::kMacro) {
        ADD_FAILURE() << "expected '" << command << "', got '" << p->command << "'";
        return std::nullopt;
      }
    }
  }
  void send(char command, std::string_view data = {}) {
    std::string packet = encode_packet(command, data);
    // MSG_NOSIGNAL: the session may already have hung up (protocol error tests).
    (void)::send(fd_, packet.data(), packet.size(), MSG_NOSIGNAL);
  }
  // Answers OPTNEG with the given flags (and symbol lists appended verbatim).
  void negotiate(uint32_t actions, uint32_t protocol, std::string_view symbol_lists = {}) {
    auto p = read();
    ASSERT_TRUE(p);
    ASSERT_EQ(p->command, cmd::kOptionNegotiation);
    offered = parse_negotiation(p->data).value();
    send(cmd::kOptionNegotiation, encode_negotiation(6, actions, protocol) + std::string(symbol_lists));
  }
  void close() { ::shutdown(fd_, SHUT_RDWR); }

  Negotiation offered;

 private:
  int fd_;
  PacketReader reader_{};
};

class FakeMilter {
 public:
  using Script = std::function<void(MilterPeer&)>;
  explicit FakeMilter(Script script) {
    char tmpl[] = "/tmp/tern-milter-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ + "/milter.sock";
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 4) != 0) {
      std::abort();
    }
    thread_ = std::thread([this, script = std::move(script)] {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      MilterPeer peer(fd);
      script(peer);
      // Keep the connection until the client is done, so that "closed by
      // the milter" only happens when a script asks for it.
      pollfd p{fd, POLLIN, 0};
      char buf[4096];
      while (::poll(&p, 1, 3000) > 0 && ::read(fd, buf, sizeof buf) > 0) {
      }
      ::close(fd);
    });
  }
  ~FakeMilter() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    thread_.join();
    ::close(listen_fd_);
    std::filesystem::remove_all(dir_);
  }
  MilterOptions options() const {
    MilterOptions o;
    o.address = "unix:" + path_;
    o.connect_timeout = 2000ms;
    o.reply_timeout = 2000ms;
    return o;
  }

 private:
  std::string dir_, path_;
  int listen_fd_ = -1;
  std::thread thread_;
};

class MilterSessionTest : public ::testing::Test {
 protected:
  asio::io_context io;
  const std::vector<std::string> no_args;
};

TEST_F(MilterSessionTest, NegotiatesAndHonoursNoSendNoReplyAndSymbolLists) {
  std::vector<Packet> seen;
  FakeMilter milter([&](MilterPeer& peer) {
    // Wants no HELO, does not answer CONNECT, wants two connect macros.
    peer.negotiate(action::kAddHeaders, proto::kNoHelo | proto::kNoReplyConnect, "\0\0\0\0{client_addr} j\0"s);
    for (int i = 0; i < 3; ++i) seen.push_back(*peer.read());  // macros, connect, (no helo) macros for mail
    seen.push_back(*peer.read());                              // mail
    peer.send(reply::kContinue);
    EXPECT_EQ(peer.offered.version, 6u);
    EXPECT_EQ(peer.offered.actions, action::kAll);
    EXPECT_EQ(peer.offered.protocol & proto::kSkip, proto::kSkip);
  });
  MilterSession session(io.get_executor(), milter.options());
  session.set_macro("j", "mx.example.test");
  session.set_macro("{daemon_name}", "tern");  // not in the milter's list: not sent
  session.set_macro("client_addr", "192.0.2.7");
  session.set_macro("i", "QID1");
  ASSERT_TRUE(run(io, session.open()));
  EXPECT_EQ(session.negotiated().protocol, proto::kNoHelo | proto::kNoReplyConnect);

  ConnectInfo info{"client.example", Family::kInet, "192.0.2.7", 40000};
  auto connect = run(io, session.connect(info));
  ASSERT_TRUE(connect) << connect.error().to_string();
  EXPECT_TRUE(connect->is_continue());
  auto helo = run(io, session.helo("client.example"));
  ASSERT_TRUE(helo);
  EXPECT_TRUE(helo->is_continue());
  std::vector<std::string> args{"SIZE=100", "BODY=8BITMIME"};
  auto mail = run(io, session.mail_from("a@example.org", args));
  ASSERT_TRUE(mail) << mail.error().to_string();
  EXPECT_TRUE(mail->is_continue());
  run_void(io, session.quit());

  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].command, cmd::kMacro);
  EXPECT_EQ(seen[0].data,
            "C{client_addr}\0"
            "192.0.2.7\0j\0mx.example.test\0"s);
  EXPECT_EQ(seen[1].command, cmd::kConnect);
  EXPECT_EQ(seen[1].data, encode_connect("client.example", Family::kInet, 40000, "192.0.2.7"));
  EXPECT_EQ(seen[2].command, cmd::kMacro);  // default mail macros: i and {mail_addr}
  EXPECT_EQ(seen[2].data, "Mi\0QID1\0{mail_addr}\0a@example.org\0"s);
  EXPECT_EQ(seen[3].command, cmd::kMail);
  EXPECT_EQ(seen[3].data, "<a@example.org>\0SIZE=100\0BODY=8BITMIME\0"s);
}

TEST_F(MilterSessionTest, RejectTempfailReplyCodePerStage) {
  FakeMilter milter([](MilterPeer& peer) {
    peer.negotiate(0, 0);
    ASSERT_TRUE(peer.expect(cmd::kConnect));
    peer.send(reply::kContinue);
    ASSERT_TRUE(peer.expect(cmd::kHelo));
    peer.send(reply::kContinue);
    ASSERT_TRUE(peer.expect(cmd::kMail));
    peer.send(reply::kReject);
    ASSERT_TRUE(peer.expect(cmd::kAbort));
    ASSERT_TRUE(peer.expect(cmd::kMail));
    peer.send(reply::kContinue);
    ASSERT_TRUE(peer.expect(cmd::kRcpt));
    peer.send(reply::kTempfail);
    ASSERT_TRUE(peer.expect(cmd::kRcpt));
    peer.send(reply::kReplyCode, "553-5.7.1 no such\r\n553 5.7.1 user here\0"s);
    ASSERT_TRUE(peer.expect(cmd::kRcpt));
    peer.send(reply::kProgress);
    peer.send(reply::kContinue);
  });
  MilterSession session(io.get_executor(), milter.options());
  ASSERT_TRUE(run(io, session.open()));
  ConnectInfo info{"[192.0.2.1]", Family::kInet, "192.0.2.1", 1234};
  ASSERT_TRUE(run(io, session.connect(info))->is_continue());
  ASSERT_TRUE(run(io, session.helo("x.example"))->is_continue());
  auto mail = run(io, session.mail_from("spam@example.org", no_args));
  ASSERT_TRUE(mail);
  EXPECT_EQ(mail->kind, Verdict::Kind::kReject);
  EXPECT_EQ(mail->to_string(), "550 5.7.1 Command rejected");
  ASSERT_TRUE(run(io, session.abort_message()));
  ASSERT_TRUE(run(io, session.mail_from("ok@example.org", no_args))->is_continue());
  auto r1 = run(io, session.rcpt_to("later@example.test", no_args));
  ASSERT_TRUE(r1);
  EXPECT_EQ(r1->kind, Verdict::Kind::kTempfail);
  EXPECT_EQ(r1->code, 451);
  EXPECT_EQ(r1->enhanced, "4.7.1");
  auto r2 = run(io, session.rcpt_to("nobody@example.test", no_args));
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->kind, Verdict::Kind::kReply);
  EXPECT_EQ(r2->code, 553);
  EXPECT_EQ(r2->enhanced, "5.7.1");
  EXPECT_EQ(r2->text, "no such\nuser here");
  EXPECT_TRUE(r2->refuses());
  auto r3 = run(io, session.rcpt_to("fine@example.test", no_args));  // after a progress packet
  ASSERT_TRUE(r3);
  EXPECT_TRUE(r3->is_continue());
  run_void(io, session.quit());
}

TEST_F(MilterSessionTest, AcceptAtConnectEndsTheConversation) {
  FakeMilter milter([](MilterPeer& peer) {
    peer.negotiate(0, 0);
    ASSERT_TRUE(peer.expect(cmd::kConnect));
    peer.send(reply::kAccept);
    // Nothing more until QUIT.
    auto next = peer.read();
    ASSERT_TRUE(next);
    EXPECT_EQ(next->command, cmd::kQuit);
  });
  MilterSession session(io.get_executor(), milter.options());
  ASSERT_TRUE(run(io, session.open()));
  ConnectInfo info{"localhost", Family::kUnix, "/run/x.sock", 0};
  EXPECT_EQ(run(io, session.connect(info))->kind, Verdict::Kind::kAccept);
  EXPECT_EQ(run(io, session.helo("h"))->kind, Verdict::Kind::kAccept);
  EXPECT_EQ(run(io, session.mail_from("a@b.example", no_args))->kind, Verdict::Kind::kAccept);
  auto eom = run(io, session.end_of_message());
  ASSERT_TRUE(eom);
  EXPECT_EQ(eom->verdict.kind, Verdict::Kind::kAccept);
  EXPECT_TRUE(eom->modifications.empty());
  run_void(io, session.quit());
}

TEST_F(MilterSessionTest, RejectAtConnectRefusesTheConnection) {
  FakeMilter milter([](MilterPeer& peer) {
    peer.negotiate(0, 0);
    ASSERT_TRUE(peer.expect(cmd::kConnect));
    peer.send(reply::kReplyCode, "554 5.7.1 go away\0"s);
    // Nothing more until QUIT.
    auto next = peer.read();
    ASSERT_TRUE(next);
    EXPECT_EQ(next->command, cmd::kQuit);
  });
  MilterSession session(io.get_executor(), milter.options());
  ASSERT_TRUE(run(io, session.open()));
  ConnectInfo info{"bad.example", Family::kInet, "192.0.2.66", 25};
  auto connect = run(io, session.connect(info));
  ASSERT_TRUE(connect);
  EXPECT_EQ(connect->to_string(), "554 5.7.1 go away");
  auto helo = run(io, session.helo("bad.example"));
  ASSERT_TRUE(helo);
  EXPECT_EQ(helo->to_string(), "554 5.7.1 go away");
  EXPECT_EQ(run(io, session.mail_from("a@b.example", no_args))->code, 554);
  run_void(io, session.quit());
}

TEST_F(MilterSessionTest, DiscardAtRcptCoversTheMessageOnly) {
  FakeMilter milter([](MilterPeer& peer) {
    peer.negotiate(0, proto::kNoConnect | proto::kNoHelo);
    ASSERT_TRUE(peer.expect(cmd::kMail));
    peer.send(reply::kContinue);
    ASSERT_TRUE(peer.expect(cmd::kRcpt));
    peer.send(reply::kDiscard);
    // Next message: asked again.
    ASSERT_TRUE(peer.expect(cmd::kMail));
    peer.send(reply::kContinue);
  });
  MilterSession session(io.get_executor(), milter.options());
  ASSERT_TRUE(run(io, session.open()));
  ASSERT_TRUE(run(io, session.mail_from("a@b.example", no_args))->is_continue());
  EXPECT_EQ(run(io, session.rcpt_to("x@y.example", no_args))->kind, Verdict::Kind::kDiscard);
  EXPECT_EQ(run(io, session.rcpt_to("z@y.example", no_args))->kind, Verdict::Kind::kDiscard);
  EXPECT_EQ(run(io, session.data())->kind, Verdict::Kind::kDiscard);
  EXPECT_EQ(run(io, session.end_of_message())->verdict.kind, Verdict::Kind::kDiscard);
  EXPECT_TRUE(run(io, session.mail_from("next@b.example", no_args))->is_continue());
  run_void(io, session.quit());
}

TEST_F(MilterSessionTest, HeadersBodyChunksAndEveryModification) {
  std::vector<Packet> headers;
  std::vector<size_t> chunk_sizes;
  FakeMilter milter([&](MilterPeer& peer) {
    peer.negotiate(action::kAll, proto::kNoConnect | proto::kNoHelo | proto::kNoReplyHeader);
    ASSERT_TRUE(peer.expect(cmd::kMail));
    peer.send(reply::kContinue);
    ASSERT_TRUE(peer.expect(cmd::kRcpt));
    peer.send(reply::kContinue);
    ASSERT_TRUE(peer.expect(cmd::kData));
    peer.send(reply::kContinue);
    headers.push_back(*peer.expect(cmd::kHeader));
    headers.push_back(*peer.expect(cmd::kHeader));
    ASSERT_TRUE(peer.expect(cmd::kEndOfHeaders));
    peer.send(reply::kContinue);
    for (int i = 0; i < 3; ++i) {
      auto chunk = peer.expect(cmd::kBody);
      ASSERT_TRUE(chunk);
      chunk_sizes.push_back(chunk->data.size());
      peer.send(reply::kContinue);
    }
    ASSERT_TRUE(peer.expect(cmd::kEndOfBody));
    peer.send(reply::kAddHeader, "X-Added\0yes\0"s);
    peer.send(reply::kInsertHeader, "\0\0\0\0X-First\0top\0"s);
    peer.send(reply::kChangeHeader, "\0\0\0\x01Subject\0[SPAM] hi\0"s);
    peer.send(reply::kChangeHeader, "\0\0\0\x01X-Old\0\0"s);
    peer.send(reply::kReplaceBody, "new ");
    peer.send(reply::kProgress);
    peer.send(reply::kAddRecipient, "<added@example.test>\0"s);
    peer.send(reply::kReplaceBody, "body\r\n");
    peer.send(reply::kAddRecipientWithArgs, "<args@example.test>\0NOTIFY=NEVER\0"s);
    peer.send(reply::kDeleteRecipient, "<gone@example.test>\0"s);
    peer.send(reply::kChangeSender, "<new@example.org>\0SIZE=5\0"s);
    peer.send(reply::kQuarantine, "looks odd\0"s);
    peer.send(reply::kContinue);
  });
  MilterSession session(io.get_executor(), milter.options());
  ASSERT_TRUE(run(io, session.open()));
  ASSERT_TRUE(run(io, session.mail_from("a@example.org", no_args))->is_continue());
  ASSERT_TRUE(run(io, session.rcpt_to("gone@example.test", no_args))->is_continue());
  ASSERT_TRUE(run(io, session.data())->is_continue());
  ASSERT_TRUE(run(io, session.header("Subject", " hi"))->is_continue());
  ASSERT_TRUE(run(io, session.header("X-Old", "\tfolded\r\n more"))->is_continue());
  ASSERT_TRUE(run(io, session.end_of_headers())->is_continue());
  std::string body(150000, 'x');
  ASSERT_TRUE(run(io, session.body(body))->is_continue());
  auto eom = run(io, session.end_of_message());
  ASSERT_TRUE(eom) << eom.error().to_string();
  EXPECT_TRUE(eom->verdict.is_continue());
  run_void(io, session.quit());

  ASSERT_EQ(headers.size(), 2u);
  EXPECT_EQ(headers[0].data, "Subject\0hi\0"s);  // leading space not negotiated: stripped
  EXPECT_EQ(headers[1].data, "X-Old\0folded\r\n more\0"s);
  EXPECT_EQ(chunk_sizes, (std::vector<size_t>{65535, 65535, 150000 - 2 * 65535}));

  using K = Modification::Kind;
  const auto& m = eom->modifications;
  ASSERT_EQ(m.size(), 10u);
  EXPECT_EQ(m[0].kind, K::kAddHeader);
  EXPECT_EQ(m[0].name, "X-Added");
  EXPECT_EQ(m[0].value, "yes");
  EXPECT_EQ(m[1].kind, K::kInsertHeader);
  EXPECT_EQ(m[1].index, 0u);
  EXPECT_EQ(m[1].name, "X-First");
  EXPECT_EQ(m[2].kind, K::kChangeHeader);
  EXPECT_EQ(m[2].index, 1u);
  EXPECT_EQ(m[2].value, "[SPAM] hi");
  EXPECT_EQ(m[3].kind, K::kChangeHeader);
  EXPECT_EQ(m[3].value, "");  // delete
  EXPECT_EQ(m[4].kind, K::kReplaceBody);
  EXPECT_EQ(m[4].body, "new body\r\n");  // both chunks joined
  EXPECT_EQ(m[5].kind, K::kAddRecipient);
  EXPECT_EQ(m[5].address, "<added@example.test>");
  EXPECT_EQ(m[5].args, "");
  EXPECT_EQ(m[6].kind, K::kAddRecipient);
  EXPECT_EQ(m[6].args, "NOTIFY=NEVER");
  EXPECT_EQ(m[7].kind, K::kDeleteRecipient);
  EXPECT_EQ(m[7].address, "<gone@example.test>");
  EXPECT_EQ(m[8].kind, K::kChangeSender);
  EXPECT_EQ(m[8].address, "<new@example.org>");
  EXPECT_EQ(m[8].args, "SIZE=5");
  EXPECT_EQ(m[9].kind, K::kQuarantine);
  EXPECT_EQ(m[9].reason, "looks odd");
}

TEST_F(MilterSessionTest, SkipStopsTheBodyAndLeadingSpaceIsKept) {
  int chunks = 0;
  std::string header_data;
  FakeMilter milter([&](MilterPeer& peer) {
    peer.negotiate(0, proto::kNoConnect | proto::kNoHelo | proto::kNoMail | proto::kNoRcpt | proto::kNoData |
                          proto::kNoEndOfHeaders | proto::kSkip | proto::kHeaderLeadingSpace);
    auto h = peer.expect(cmd::kHeader);
    ASSERT_TRUE(h);
    header_data = h->data;
    peer.send(reply::kContinue);
    for (;;) {
      auto p = peer.read();
      ASSERT_TRUE(p);
      if (p->command == cmd::kBody) {
        ++chunks;
        peer.send(reply::kSkip);
      } else if (p->command == cmd::kEndOfBody) {
        peer.send(reply::kAccept);
        break;
      }
    }
  });
  MilterSession session(io.get_executor(), milter.options());
  ASSERT_TRUE(run(io, session.open()));
  ASSERT_TRUE(run(io, session.mail_from("a@example.org", no_args))->is_continue());
  ASSERT_TRUE(run(io, session.header("Subject", " spaced"))->is_continue());
  ASSERT_TRUE(run(io, session.end_of_headers())->is_continue());
  std::string body(200000, 'y');
  ASSERT_TRUE(run(io, session.body(body))->is_continue());
  ASSERT_TRUE(run(io, session.body(body))->is_continue());  // still skipped
  auto eom = run(io, session.end_of_message());
  ASSERT_TRUE(eom);
  EXPECT_EQ(eom->verdict.kind, Verdict::Kind::kAccept);
  run_void(io, session.quit());
  EXPECT_EQ(chunks, 1);
  EXPECT_EQ(header_data, "Subject\0 spaced\0"s);
}

TEST_F(MilterSessionTest, ModificationNotNegotiatedIsAProtocolError) {
  FakeMilter milter([](MilterPeer& peer) {
    peer.negotiate(action::kAddHeaders, proto::kNoConnect | proto::kNoHelo | proto::kNoMail);
    ASSERT_TRUE(peer.expect(cmd::kEndOfBody));
    peer.send(reply::kDeleteRecipient, "<x@y>\0"s);
    peer.send(reply::kContinue);
  });
  MilterSession session(io.get_executor(), milter.options());
  ASSERT_TRUE(run(io, session.open()));
  ASSERT_TRUE(run(io, session.mail_from("a@example.org", no_args)));
  auto eom = run(io, session.end_of_message());
  ASSERT_FALSE(eom);
  EXPECT_EQ(eom.error().enhanced, "4.7.0");
  EXPECT_FALSE(session.is_open());
  ASSERT_TRUE(session.failure());
}

TEST_F(MilterSessionTest, NegotiationFlagsNotOfferedFail) {
  FakeMilter milter([](MilterPeer& peer) { peer.negotiate(0x8000, 0); });
  MilterSession session(io.get_executor(), milter.options());
  auto opened = run(io, session.open());
  ASSERT_FALSE(opened);
  EXPECT_NE(opened.error().text.find("unknown actions"), std::string::npos);
}

TEST_F(MilterSessionTest, ReplyTimeoutFailsTheSession) {
  FakeMilter milter([](MilterPeer& peer) {
    peer.negotiate(0, 0);
    ASSERT_TRUE(peer.expect(cmd::kConnect));
    std::this_thread::sleep_for(1000ms);  // never answers in time
  });
  MilterOptions options = milter.options();
  options.reply_timeout = 200ms;
  MilterSession session(io.get_executor(), options);
  ASSERT_TRUE(run(io, session.open()));
  auto start = std::chrono::steady_clock::now();
  ConnectInfo info{"h", Family::kInet6, "2001:db8::1", 25};
  auto verdict = run(io, session.connect(info));
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(verdict);
  EXPECT_EQ(verdict.error().code, 451);
  EXPECT_EQ(verdict.error().enhanced, "4.7.1");
  EXPECT_NE(verdict.error().text.find("timed out"), std::string::npos) << verdict.error().text;
  EXPECT_GE(elapsed, 190ms);
  EXPECT_LT(elapsed, 900ms);
  // Dead from now on, with the same reason.
  auto helo = run(io, session.helo("h"));
  ASSERT_FALSE(helo);
  EXPECT_NE(helo.error().text.find("timed out"), std::string::npos);
}

TEST_F(MilterSessionTest, ProgressRestartsTheReplyTimer) {
  FakeMilter milter([](MilterPeer& peer) {
    peer.negotiate(0, 0);
    ASSERT_TRUE(peer.expect(cmd::kConnect));
    for (int i = 0; i < 4; ++i) {
      std::this_thread::sleep_for(100ms);
      peer.send(reply::kProgress);
    }
    peer.send(reply::kContinue);
  });
  MilterOptions options = milter.options();
  options.reply_timeout = 250ms;
  MilterSession session(io.get_executor(), options);
  ASSERT_TRUE(run(io, session.open()));
  ConnectInfo info{"h", Family::kInet, "192.0.2.1", 25};
  auto verdict = run(io, session.connect(info));
  ASSERT_TRUE(verdict) << verdict.error().to_string();
  EXPECT_TRUE(verdict->is_continue());
}

TEST_F(MilterSessionTest, MilterClosingMidSessionIsReported) {
  FakeMilter milter([](MilterPeer& peer) {
    peer.negotiate(0, 0);
    ASSERT_TRUE(peer.expect(cmd::kConnect));
    peer.send(reply::kContinue);
    ASSERT_TRUE(peer.expect(cmd::kHelo));
    peer.close();
  });
  MilterSession session(io.get_executor(), milter.options());
  ASSERT_TRUE(run(io, session.open()));
  ConnectInfo info{"h", Family::kInet, "192.0.2.1", 25};
  ASSERT_TRUE(run(io, session.connect(info)));
  auto helo = run(io, session.helo("h"));
  ASSERT_FALSE(helo);
  EXPECT_TRUE(helo.error().transient());
  EXPECT_NE(helo.error().text.find("closed"), std::string::npos) << helo.error().text;
  EXPECT_FALSE(session.is_open());
}

TEST_F(MilterSessionTest, NoMilterListeningFailsToOpen) {
  MilterOptions options;
  options.address = "unix:/nonexistent/tern-milter.sock";
  MilterSession session(io.get_executor(), options);
  auto opened = run(io, session.open());
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, 451);
  EXPECT_NE(opened.error().text.find("connect failed"), std::string::npos) << opened.error().text;
  EXPECT_NE(opened.error().text.find("/nonexistent/tern-milter.sock"), std::string::npos);

  MilterOptions bad;
  bad.address = "nonsense";
  MilterSession bad_session(io.get_executor(), bad);
  EXPECT_FALSE(run(io, bad_session.open()));
}

TEST_F(MilterSessionTest, ConnectsOverTcp) {
  int listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listen_fd, 1), 0);
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::thread server([&] {
    int fd = ::accept(listen_fd, nullptr, nullptr);
    MilterPeer peer(fd);
    peer.negotiate(0, proto::kNoConnect);
    ASSERT_TRUE(peer.expect(cmd::kHelo));
    peer.send(reply::kContinue);
    peer.read(1000ms);  // quit
    ::close(fd);
  });
  MilterOptions options;
  options.address = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  MilterSession session(io.get_executor(), options);
  auto opened = run(io, session.open());
  ASSERT_TRUE(opened) << opened.error().to_string();
  EXPECT_TRUE(run(io, session.helo("h"))->is_continue());
  run_void(io, session.quit());
  server.join();
  ::close(listen_fd);
}

}  // namespace
}  // namespace tern::milter
