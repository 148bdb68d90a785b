// Tests for the outbound SMTP client against an in-process scripted server
// on 127.0.0.1 (a thread per test that reads commands and writes canned
// replies, with server-side TLS through OpenSSL): EHLO/HELO fallback,
// pipelined and lock-step transactions with per-recipient replies, SIZE,
// SMTPUTF8 and DSN handling, refused greetings, dropped connections,
// STARTTLS (opportunistic, verified, required, fallback after a failed
// handshake), implicit TLS, AUTH PLAIN and SCRAM-SHA-256 (server side from
// users::SaslServer) and connection reuse.
#include "delivery/smtp_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "base/fs.h"
#include "base/strings.h"
#include "delivery/dot_stuff.h"
#include "test_util.h"
#include "tls/tls.h"
#include "users/account_store.h"
#include "users/credential.h"
#include "users/sasl.h"

namespace tern::delivery {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;

// One accepted connection of the fake server; clear text or TLS.
class Peer {
 public:
  explicit Peer(int fd) : fd_(fd) {
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~Peer() {
    if (ssl_ != nullptr) SSL_free(ssl_);
  }

  // Next line without CRLF; nullopt on EOF or after 5 s of silence.
  std::optional<std::string> line() {
    for (;;) {
      size_t eol = buffer_.find("\r\n");
      if (eol != std::string::npos) {
        std::string out = buffer_.substr(0, eol);
        buffer_.erase(0, eol + 2);
        return out;
      }
      char buf[4096];
      int n = ssl_ != nullptr ? SSL_read(ssl_, buf, sizeof buf) : static_cast<int>(::recv(fd_, buf, sizeof buf, 0));
      if (n <= 0) return std::nullopt;
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }
  // Reads one command, records it and checks its start; then sends `reply`.
  std::string expect(const std::string& prefix, const std::string& reply) {
    std::string got = line().value_or("<eof>");
    commands.push_back(got);
    EXPECT_TRUE(istarts_with(got, prefix)) << "expected " << prefix << ", got " << got;
    if (!reply.empty()) write(reply);
    return got;
  }
  // The DATA phase up to the "." line, unstuffed.
  std::string data() {
    std::string raw;
    for (;;) {
      auto l = line();
      if (!l) return "<eof>";
      raw += *l + "\r\n";
      if (*l == ".") break;
    }
    std::string content;
    EXPECT_TRUE(dot_unstuff(raw, content));
    return content;
  }
  void write(const std::string& data) {
    if (ssl_ != nullptr) {
      SSL_write(ssl_, data.data(), static_cast<int>(data.size()));
    } else {
      (void)::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    }
  }
  bool start_tls(SSL_CTX* ctx) {
    EXPECT_TRUE(buffer_.empty());
    ssl_ = SSL_new(ctx);
    SSL_set_fd(ssl_, fd_);
    bool ok = SSL_accept(ssl_) == 1;
    ERR_clear_error();
    return ok;
  }
  // True when the client sends nothing more before closing or within 300 ms.
  bool silent() {
    if (!buffer_.empty()) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 300) <= 0) return true;
    char c;
    return ::recv(fd_, &c, 1, MSG_PEEK) <= 0;
  }
  void close() { ::shutdown(fd_, SHUT_RDWR); }

  std::vector<std::string> commands;

 private:
  int fd_;
  SSL* ssl_ = nullptr;
  std::string buffer_;
};

// Listens on 127.0.0.1:0 and runs `script(peer, n)` for each of the first
// `connections` connections, one after another, on a background thread.
class FakeSmtpServer {
 public:
  using Script = std::function<void(Peer&, int)>;
  explicit FakeSmtpServer(Script script, int connections = 1) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0 || ::listen(listen_fd_, 4) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sin), &len) != 0) {
      throw std::runtime_error("fake SMTP server: bind/listen failed");
    }
    port_ = ntohs(sin.sin_port);
    thread_ = std::thread([this, script = std::move(script), connections] {
      for (int n = 0; n < connections; ++n) {
        pollfd p{listen_fd_, POLLIN, 0};
        if (::poll(&p, 1, 10000) <= 0) return;
        int fd = ::accept(listen_fd_, nullptr, nullptr);
        if (fd < 0) return;
        {
          Peer peer(fd);
          script(peer, n);
          transcript_.push_back(peer.commands);
        }
        ::close(fd);
      }
    });
  }
  ~FakeSmtpServer() {
    join();
    ::close(listen_fd_);
  }
  Endpoint endpoint() const {
    Endpoint ep;
    ep.host = "127.0.0.1";
    ep.port = port_;
    return ep;
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  // Commands seen on connection `n` (after join()).
  const std::vector<std::string>& commands(size_t n = 0) const { return transcript_.at(n); }

 private:
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::vector<std::vector<std::string>> transcript_;
};

const std::string kContent = "Subject: test\r\n\r\n.dot line\r\nbody\r\n";
const std::string kBasicExtensions =
    "250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n";

SmtpClientOptions test_options() {
  SmtpClientOptions o;
  o.helo_name = "client.example.org";
  o.tls.mode = TlsMode::kNone;
  auto t = 3000ms;
  o.timeouts = {t, t, t, t, t, t, t, t, t, t};
  return o;
}

// Greeting and EHLO with `extensions` (the lines after the first).
void greet(Peer& p, const std::string& extensions = kBasicExtensions) {
  p.write("220 mx.test ESMTP fake\r\n");
  p.expect("EHLO client.example.org", "250-mx.test hello\r\n" + extensions);
}

OutboundMessage message_to(std::vector<std::string> recipients, std::string_view content = kContent) {
  OutboundMessage m;
  m.sender = "s@example.org";
  for (auto& r : recipients) m.recipients.push_back(OutboundRecipient{std::move(r), "", "", "rfc822"});
  m.content = content;
  return m;
}

// A self-signed certificate for "mx.test" and a server context using it.
struct ServerTls {
  TempDir dir;
  std::string cert = dir / "cert.pem";
  std::string key = dir / "key.pem";
  std::shared_ptr<SSL_CTX> ctx;
  ServerTls() {
    if (!tls::ensure_self_signed(cert, key, "mx.test")) throw std::runtime_error("self-signed cert");
    ctx.reset(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
    SSL_CTX_use_certificate_chain_file(ctx.get(), cert.c_str());
    SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM);
  }
};

TEST(SmtpExtensions, ParsesKeywordsAndParameters) {
  auto reply = parse_reply(
      "250-mx.test greets you\r\n250-PIPELINING\r\n250-SIZE 35882577\r\n250-8bitmime\r\n250-SMTPUTF8\r\n"
      "250-DSN\r\n250-STARTTLS\r\n250-AUTH PLAIN scram-sha-256\r\n250-AUTH=LOGIN\r\n250-CHUNKING\r\n"
      "250-REQUIRETLS\r\n250 ENHANCEDSTATUSCODES\r\n");
  ASSERT_TRUE(reply);
  SmtpExtensions ext = parse_ehlo_reply(*reply);
  EXPECT_TRUE(ext.esmtp && ext.pipelining && ext.size && ext.eight_bit_mime && ext.smtputf8 && ext.dsn &&
              ext.starttls && ext.chunking && ext.requiretls && ext.enhanced_status_codes);
  EXPECT_EQ(ext.max_size, 35882577u);
  EXPECT_TRUE(ext.offers_auth("SCRAM-SHA-256"));
  EXPECT_TRUE(ext.offers_auth("plain"));
  EXPECT_TRUE(ext.offers_auth("LOGIN"));
  EXPECT_FALSE(ext.offers_auth("CRAM-MD5"));

  auto bare = parse_reply("250 mx.test\r\n");
  ASSERT_TRUE(bare);
  SmtpExtensions none = parse_ehlo_reply(*bare);
  EXPECT_FALSE(none.pipelining || none.size || none.starttls);
  EXPECT_TRUE(none.auth_mechanisms.empty());
}

TEST(SmtpClient, SanitizesReplyText) {
  EXPECT_EQ(sanitize_reply_text("ok\x01\x7f\xc3\xa9 done"), "ok???? done");
  EXPECT_EQ(sanitize_reply_text(std::string(1000, 'x')).size(), 300u);
}

TEST(SmtpClient, PipelinedTransactionWithPerRecipientReplies) {
  std::string data;
  FakeSmtpServer server([&](Peer& p, int) {
    greet(p);
    // All five commands must arrive before any reply: otherwise this
    // deadlocks until the client's timeout.
    for (const char* prefix : {"MAIL FROM:", "RCPT TO:<a@x>", "RCPT TO:<b@x>", "RCPT TO:<c@x>", "DATA"}) {
      p.expect(prefix, "");
    }
    p.write("250 2.1.0 OK\r\n250 2.1.5 OK\r\n450 4.2.1 <b@x> try later\r\n550-5.1.1 <c@x> no such user\r\n"
            "550 5.1.1 see https://example\r\n354 go ahead\r\n");
    data = p.data();
    p.write("250 2.0.0 Ok: queued as ABC\r\n");
    p.expect("QUIT", "221 2.0.0 Bye\r\n");
  });
  SmtpConnection conn(test_options());
  ASSERT_TRUE(conn.connect(server.endpoint()));
  EXPECT_EQ(conn.session().greeting, "mx.test ESMTP fake");
  OutboundMessage msg = message_to({"a@x", "b@x", "c@x"});
  msg.eight_bit = true;
  SendResult result = conn.send(msg);
  EXPECT_EQ(conn.last_reply(), "250 2.0.0 Ok: queued as ABC");
  conn.quit();
  server.join();

  EXPECT_EQ(server.commands()[1], "MAIL FROM:<s@example.org> SIZE=" + std::to_string(kContent.size()) +
                                      " BODY=8BITMIME");
  EXPECT_EQ(data, kContent);
  ASSERT_EQ(result.recipients.size(), 3u);
  const RecipientResult& a = result.recipients[0].result;
  EXPECT_EQ(a.recipient, "a@x");
  EXPECT_EQ(a.code, 250);
  EXPECT_EQ(a.enhanced, "2.0.0");
  EXPECT_EQ(a.text, "Ok: queued as ABC");
  EXPECT_TRUE(a.delivered());
  const RecipientResult& b = result.recipients[1].result;
  EXPECT_EQ(b.code, 450);
  EXPECT_EQ(b.enhanced, "4.2.1");
  EXPECT_TRUE(b.transient);
  const RecipientResult& c = result.recipients[2].result;
  EXPECT_EQ(c.code, 550);
  EXPECT_EQ(c.enhanced, "5.1.1");
  EXPECT_EQ(c.text, "<c@x> no such user");  // first line only
  EXPECT_FALSE(c.transient);
  EXPECT_TRUE(result.connection_usable);
}

TEST(SmtpClient, LongPipelinedGroupsAreSentInWindows) {
  FakeSmtpServer server([&](Peer& p, int) {
    greet(p);
    p.expect("MAIL", "");
    p.expect("RCPT TO:<a@x>", "");
    EXPECT_TRUE(p.silent());  // window of two: waits for these replies first
    p.write("250 ok\r\n250 ok\r\n");
    p.expect("RCPT TO:<b@x>", "");
    p.expect("RCPT TO:<c@x>", "");
    p.write("250 ok\r\n550 5.1.1 no\r\n");
    p.expect("DATA", "354 go\r\n");
    p.data();
    p.write("250 ok\r\n");
  });
  SmtpClientOptions options = test_options();
  options.max_pipelined_commands = 2;
  SmtpConnection conn(options);
  ASSERT_TRUE(conn.connect(server.endpoint()));
  SendResult result = conn.send(message_to({"a@x", "b@x", "c@x"}));
  server.join();
  EXPECT_TRUE(result.recipients[0].result.delivered());
  EXPECT_TRUE(result.recipients[1].result.delivered());
  EXPECT_EQ(result.recipients[2].result.code, 550);
}

TEST(SmtpClient, LockStepWithoutPipeliningAndHeloFallback) {
  std::string data;
  FakeSmtpServer server([&](Peer& p, int) {
    p.write("220 old.test SMTP\r\n");
    p.expect("EHLO client.example.org", "502 5.5.1 command not recognized\r\n");
    p.expect("HELO client.example.org", "250 old.test\r\n");
    p.expect("MAIL FROM:<s@example.org>", "");
    EXPECT_TRUE(p.silent());  // nothing pipelined
    p.write("250 ok\r\n");
    p.expect("RCPT TO:<a@x>", "550 no\r\n");
    p.expect("RCPT TO:<b@x>", "251 will forward\r\n");
    p.expect("DATA", "354 go\r\n");
    data = p.data();
    p.write("250 queued\r\n");
  });
  SmtpConnection conn(test_options());
  ASSERT_TRUE(conn.connect(server.endpoint()));
  EXPECT_FALSE(conn.extensions().esmtp);
  OutboundMessage msg = message_to({"a@x", "b@x"}, "no final newline");
  msg.eight_bit = true;  // not announced: the server did not offer 8BITMIME
  SendResult result = conn.send(msg);
  server.join();

  EXPECT_EQ(server.commands()[2], "MAIL FROM:<s@example.org>");
  EXPECT_EQ(data, "no final newline\r\n");
  EXPECT_EQ(result.recipients[0].result.code, 550);
  EXPECT_EQ(result.recipients[0].result.enhanced, "5.0.0");
  EXPECT_FALSE(result.recipients[0].result.transient);
  EXPECT_EQ(result.recipients[1].result.code, 250);
}

TEST(SmtpClient, NoAcceptedRecipientResetsAndStaysUsable) {
  FakeSmtpServer server([&](Peer& p, int) {
    greet(p);
    for (const char* prefix : {"MAIL", "RCPT", "RCPT", "DATA"}) p.expect(prefix, "");
    p.write("250 ok\r\n550 5.1.1 no\r\n451 4.3.0 later\r\n554 5.5.1 no valid recipients\r\n");
    p.expect("RSET", "250 2.0.0 ok\r\n");
    // Lock-step server behaviour for the second message is the same
    // connection: MAIL accepted again after the reset.
    for (const char* prefix : {"MAIL", "RCPT", "DATA"}) p.expect(prefix, "");
    p.write("250 ok\r\n250 ok\r\n354 go\r\n");
    p.data();
    p.write("250 2.0.0 queued\r\n");
  });
  SmtpConnection conn(test_options());
  ASSERT_TRUE(conn.connect(server.endpoint()));
  SendResult first = conn.send(message_to({"a@x", "b@x"}));
  EXPECT_EQ(first.recipients[0].result.code, 550);
  EXPECT_EQ(first.recipients[1].result.code, 451);
  EXPECT_TRUE(first.recipients[1].result.transient);
  EXPECT_TRUE(first.connection_usable);
  SendResult second = conn.send(message_to({"c@x"}));
  server.join();
  EXPECT_TRUE(second.recipients[0].result.delivered());
}

TEST(SmtpClient, MailRejectedAppliesToAllRecipients) {
  FakeSmtpServer server([&](Peer& p, int) {
    greet(p, "250 8BITMIME\r\n");
    p.expect("MAIL", "553 5.7.1 sender rejected\r\n");
    EXPECT_TRUE(p.silent());
  });
  SmtpConnection conn(test_options());
  ASSERT_TRUE(conn.connect(server.endpoint()));
  SendResult result = conn.send(message_to({"a@x", "b@x"}));
  server.join();
  for (const auto& r : result.recipients) {
    EXPECT_EQ(r.result.code, 553);
    EXPECT_EQ(r.result.enhanced, "5.7.1");
    EXPECT_FALSE(r.result.transient);
  }
  EXPECT_TRUE(result.connection_usable);
}

TEST(SmtpClient, ConnectionReuseForTwoMessages) {
  std::vector<std::string> bodies;
  FakeSmtpServer server([&](Peer& p, int) {
    greet(p);
    for (int m = 0; m < 2; ++m) {
      for (const char* prefix : {"MAIL", "RCPT", "DATA"}) p.expect(prefix, "");
      p.write("250 ok\r\n250 ok\r\n354 go\r\n");
      bodies.push_back(p.data());
      p.write("250 2.0.0 queued " + std::to_string(m) + "\r\n");
    }
    p.expect("QUIT", "221 bye\r\n");
  });
  SmtpConnection conn(test_options());
  ASSERT_TRUE(conn.connect(server.endpoint()));
  SendResult one = conn.send(message_to({"a@x"}, "first\r\n"));
  ASSERT_TRUE(one.connection_usable);
  SendResult two = conn.send(message_to({"b@x"}, "second\r\n"));
  EXPECT_TRUE(conn.usable());
  conn.quit();
  EXPECT_FALSE(conn.usable());
  server.join();
  EXPECT_EQ(one.recipients[0].result.text, "queued 0");
  EXPECT_EQ(two.recipients[0].result.text, "queued 1");
  EXPECT_EQ(bodies, (std::vector<std::string>{"first\r\n", "second\r\n"}));
}

TEST(SmtpClient, MessageLargerThanServerSizeFailsWithoutSending) {
  FakeSmtpServer server([&](Peer& p, int) {
    greet(p, "250-PIPELINING\r\n250 SIZE 10\r\n");
    p.expect("QUIT", "221 bye\r\n");  // nothing else was sent
  });
  SmtpConnection conn(test_options());
  ASSERT_TRUE(conn.connect(server.endpoint()));
  SendResult result = conn.send(message_to({"a@x", "b@x"}));
  conn.quit();
  server.join();
  for (const auto& r : result.recipients) {
    EXPECT_EQ(r.result.code, 552);
    EXPECT_EQ(r.result.enhanced, "5.3.4");
    EXPECT_FALSE(r.result.transient);
  }
  EXPECT_TRUE(result.connection_usable);
}

TEST(SmtpClient, SmtpUtf8RequiredButNotOfferedFailsPermanently) {
  FakeSmtpServer server([&](Peer& p, int) {
    greet(p);
    p.expect("QUIT", "221 bye\r\n");
  });
  SmtpConnection conn(test_options());
  ASSERT_TRUE(conn.connect(server.endpoint()));
  OutboundMessage msg = message_to({"j\xc3\xb6rg@x"});
  msg.smtputf8 = true;
  SendResult result = conn.send(msg);
  conn.quit();
  server.join();
  EXPECT_EQ(result.recipients[0].result.enhanced, "5.6.7");
  EXPECT_FALSE(result.recipients[0].result.transient);
  EXPECT_EQ(server.commands().size(), 2u);  // EHLO and QUIT
}

TEST(SmtpClient, SmtpUtf8OfferedIsAnnounced) {
  FakeSmtpServer server([&](Peer& p, int) {
    greet(p, "250 SMTPUTF8\r\n");
    p.expect("MAIL FROM:<s@example.org> SMTPUTF8", "250 ok\r\n");
    p.expect("RCPT TO:<j\xc3\xb6rg@x>", "250 ok\r\n");
    p.expect("DATA", "354 go\r\n");
    p.data();
    p.write("250 ok\r\n");
  });
  SmtpConnection conn(test_options());
  ASSERT_TRUE(conn.connect(server.endpoint()));
  OutboundMessage msg = message_to({"j\xc3\xb6rg@x"});
  msg.smtputf8 = true;
  SendResult result = conn.send(msg);
  server.join();
  EXPECT_TRUE(result.recipients[0].result.delivered());
}

OutboundMessage dsn_message() {
  OutboundMessage msg = message_to({"a@x", "b@x"});
  msg.dsn_ret = "hdrs";
  msg.dsn_envid = "id+1=x";
  msg.recipients[0].notify = "SUCCESS,FAILURE";
  msg.recipients[0].orcpt = "orig+a@x";
  return msg;
}

TEST(SmtpClient, DsnParametersOnlyWhenAdvertised) {
  FakeSmtpServer server([&](Peer& p, int n) {
    greet(p, n == 0 ? "250-PIPELINING\r\n250 DSN\r\n" : "250 PIPELINING\r\n");
    for (const char* prefix : {"MAIL", "RCPT", "RCPT", "DATA"}) p.expect(prefix, "");
    p.write("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    p.data();
    p.write("250 ok\r\n");
  }, 2);
  SendResult with_dsn, without_dsn;
  {
    SmtpConnection conn(test_options());
    ASSERT_TRUE(conn.connect(server.endpoint()));
    with_dsn = conn.send(dsn_message());
  }
  {
    SmtpConnection conn(test_options());
    ASSERT_TRUE(conn.connect(server.endpoint()));
    without_dsn = conn.send(dsn_message());
  }
  server.join();
  // RFC 3461 §4: RET, ENVID (xtext), NOTIFY and ORCPT (xtext).
  EXPECT_EQ(server.commands(0)[1], "MAIL FROM:<s@example.org> RET=HDRS ENVID=id+2B1+3Dx");
  EXPECT_EQ(server.commands(0)[2], "RCPT TO:<a@x> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig+2Ba@x");
  EXPECT_EQ(server.commands(0)[3], "RCPT TO:<b@x>");
  EXPECT_FALSE(with_dsn.recipients[0].dsn_not_relayed);
  // RFC 3461 §5.2.2: nothing passed on, and the caller is told so.
  EXPECT_EQ(server.commands(1)[1], "MAIL FROM:<s@example.org>");
  EXPECT_EQ(server.commands(1)[2], "RCPT TO:<a@x>");
  EXPECT_TRUE(without_dsn.recipients[0].dsn_not_relayed);
  EXPECT_FALSE(without_dsn.recipients[1].dsn_not_relayed);
  EXPECT_TRUE(without_dsn.recipients[0].result.delivered());
}

TEST(SmtpClient, RefusingGreetingsAreErrorValues) {
  FakeSmtpServer server([&](Peer& p, int n) {
    p.write(n == 0 ? "421 4.3.2 too busy\r\n" : "554 5.7.1 no SMTP service here\r\n");
  }, 2);
  SmtpConnection busy(test_options());
  Status st = busy.connect(server.endpoint());
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, 421);
  EXPECT_TRUE(st.error().transient());
  EXPECT_NE(st.error().text.find("too busy"), std::string::npos);
  EXPECT_FALSE(busy.usable());
  SmtpConnection refused(test_options());
  st = refused.connect(server.endpoint());
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, 554);
  EXPECT_EQ(st.error().enhanced, "5.7.1");
  server.join();
}

TEST(SmtpClient, ConnectionRefusedIsTransient) {
  Endpoint ep;
  {
    FakeSmtpServer server([](Peer&, int) {}, 0);
    ep = server.endpoint();
  }  // closed: nothing listens on the port now
  SmtpConnection conn(test_options());
  Status st = conn.connect(ep);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().enhanced, "4.4.1");
  EXPECT_TRUE(st.error().transient());
}

TEST(SmtpClient, ConnectionDropMidDataIsTransientForAccepted) {
  FakeSmtpServer server([&](Peer& p, int) {
    greet(p, "250 PIPELINING\r\n");
    for (const char* prefix : {"MAIL", "RCPT", "RCPT", "DATA"}) p.expect(prefix, "");
    p.write("250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n354 go\r\n");
    p.line();  // first line of content, then hang up
    p.close();
  });
  SmtpConnection conn(test_options());
  ASSERT_TRUE(conn.connect(server.endpoint()));
  std::string big(2'000'000, 'x');  // more than the socket buffers take
  SendResult result = conn.send(message_to({"a@x", "b@x"}, "Subject: big\r\n\r\n" + big + "\r\n"));
  server.join();
  EXPECT_EQ(result.recipients[0].result.code / 100, 4);
  EXPECT_TRUE(result.recipients[0].result.transient);
  EXPECT_TRUE(result.recipients[0].result.enhanced.starts_with("4.4."));
  EXPECT_EQ(result.recipients[1].result.code, 550);  // the RCPT refusal stands
  EXPECT_FALSE(result.connection_usable);
  EXPECT_FALSE(conn.usable());
}

TEST(SmtpClient, TimeoutWaitingForFinalReplyIsTransient) {
  FakeSmtpServer server([&](Peer& p, int) {
    greet(p);
    for (const char* prefix : {"MAIL", "RCPT", "DATA"}) p.expect(prefix, "");
    p.write("250 ok\r\n250 ok\r\n354 go\r\n");
    p.data();
    std::this_thread::sleep_for(600ms);  // no answer to the final dot in time
  });
  SmtpClientOptions options = test_options();
  options.timeouts.data_final = 200ms;
  SmtpConnection conn(options);
  ASSERT_TRUE(conn.connect(server.endpoint()));
  SendResult result = conn.send(message_to({"a@x"}));
  server.join();
  EXPECT_EQ(result.recipients[0].result.enhanced, "4.4.2");
  EXPECT_TRUE(result.recipients[0].result.transient);
  EXPECT_NE(result.recipients[0].result.text.find("no reply to end of data"), std::string::npos)
      << result.recipients[0].result.text;
  EXPECT_FALSE(result.connection_usable);
}

TEST(SmtpClient, StreamsContentFromSource) {
  class Pieces : public ContentSource {
   public:
    Result<std::string_view> next_chunk() override {
      static const char* parts[] = {"Subject: x\r\n\r\nline one\n", ".starts with dot\r", "\nend", ""};
      return std::string_view(parts[std::min<size_t>(n_++, 3)]);
    }

   private:
    size_t n_ = 0;
  } pieces;
  std::string data;
  FakeSmtpServer server([&](Peer& p, int) {
    greet(p);
    for (const char* prefix : {"MAIL FROM:<s@example.org> SIZE=100", "RCPT", "DATA"}) p.expect(prefix, "");
    p.write("250 ok\r\n250 ok\r\n354 go\r\n");
    data = p.data();
    p.write("250 ok\r\n");
  });
  SmtpConnection conn(test_options());
  ASSERT_TRUE(conn.connect(server.endpoint()));
  OutboundMessage msg = message_to({"a@x"}, "");
  msg.source = &pieces;
  msg.size = 100;
  SendResult result = conn.send(msg);
  server.join();
  EXPECT_TRUE(result.recipients[0].result.delivered());
  EXPECT_EQ(data, "Subject: x\r\n\r\nline one\r\n.starts with dot\r\nend\r\n");
}

TEST(SmtpClient, OpportunisticStartTls) {
  ServerTls tls;
  std::string data;
  FakeSmtpServer server([&](Peer& p, int) {
    greet(p, "250-PIPELINING\r\n250 STARTTLS\r\n");
    p.expect("STARTTLS", "220 2.0.0 ready\r\n");
    ASSERT_TRUE(p.start_tls(tls.ctx.get()));
    p.expect("EHLO client.example.org", "250-mx.test\r\n250 PIPELINING\r\n");  // RFC 3207 §4.2
    for (const char* prefix : {"MAIL", "RCPT", "DATA"}) p.expect(prefix, "");
    p.write("250 ok\r\n250 ok\r\n354 go\r\n");
    data = p.data();
    p.write("250 ok\r\n");
    p.expect("QUIT", "221 bye\r\n");
  });
  SmtpClientOptions options = test_options();
  options.tls.mode = TlsMode::kOpportunistic;
  options.tls.server_name = "mx.test";
  SmtpConnection conn(options);
  ASSERT_TRUE(conn.connect(server.endpoint()));
  EXPECT_TRUE(conn.session().tls);
  EXPECT_FALSE(conn.session().tls_info.verified);  // self-signed, not trusted
  EXPECT_FALSE(conn.session().tls_info.verify_error.empty());
  EXPECT_TRUE(conn.session().tls_info.version.starts_with("TLSv1."));
  EXPECT_FALSE(conn.session().tls_info.cipher.empty());
  EXPECT_FALSE(conn.extensions().starttls);
  SendResult result = conn.send(message_to({"a@x"}));
  conn.quit();
  server.join();
  EXPECT_TRUE(result.recipients[0].result.delivered());
  EXPECT_EQ(data, kContent);
}

// Server side for the verification tests: STARTTLS, then EHLO and QUIT.
void tls_then_quit(Peer& p, SSL_CTX* ctx) {
  greet(p, "250 STARTTLS\r\n");
  p.expect("STARTTLS", "220 ready\r\n");
  if (!p.start_tls(ctx)) return;
  if (auto l = p.line(); l && istarts_with(*l, "EHLO")) {
    p.write("250 mx.test\r\n");
    p.expect("QUIT", "221 bye\r\n");
  }
}

TEST(SmtpClient, VerifiedWhenTrustedAndNameMatches) {
  ServerTls tls;
  FakeSmtpServer server([&](Peer& p, int) { tls_then_quit(p, tls.ctx.get()); }, 2);
  SmtpClientOptions options = test_options();
  options.tls.mode = TlsMode::kRequired;
  options.tls.ca_file = tls.cert;
  options.tls.verify_names = {"other.test", "mx.test"};
  options.tls.require_verified = true;
  SmtpConnection conn(options);
  ASSERT_TRUE(conn.connect(server.endpoint()));
  EXPECT_TRUE(conn.session().tls_info.verified);
  EXPECT_NE(conn.session().tls_info.peer_subject.find("mx.test"), std::string::npos);
  conn.quit();

  // Wrong name with require_verified: 4.7.5 and no mail sent.
  options.tls.verify_names = {"mail.elsewhere.test"};
  SmtpConnection mismatch(options);
  Status st = mismatch.connect(server.endpoint());
  server.join();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().enhanced, "4.7.5");
  EXPECT_TRUE(st.error().transient());
}

TEST(SmtpClient, ContextTrustingOnlyTheCaFile) {
  ServerTls tls;
  ServerTls other;  // a second self-signed certificate: a CA that did not issue the server's
  FakeSmtpServer server([&](Peer& p, int) { tls_then_quit(p, tls.ctx.get()); }, 2);
  SmtpClientOptions options = test_options();
  options.tls.mode = TlsMode::kRequired;
  options.tls.server_name = "mx.test";
  options.tls.require_verified = true;
  auto trusted = make_client_tls_context_only(tls.cert);
  ASSERT_TRUE(trusted) << trusted.error().text;
  options.tls.context = *trusted;
  SmtpConnection conn(options);
  ASSERT_TRUE(conn.connect(server.endpoint()));
  EXPECT_TRUE(conn.session().tls_info.verified);
  conn.quit();

  // The wrong CA file: the handshake completes, verification fails, nothing more is sent.
  auto wrong = make_client_tls_context_only(other.cert);
  ASSERT_TRUE(wrong) << wrong.error().text;
  options.tls.context = *wrong;
  SmtpConnection refused(options);
  Status st = refused.connect(server.endpoint());
  server.join();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, 451);
  EXPECT_EQ(st.error().enhanced, "4.7.5");
  EXPECT_NE(st.error().text.find("verification failed for mx.test"), std::string::npos) << st.error().text;

  // A file without certificates is refused when the context is made.
  TempDir dir;
  std::string empty = dir / "empty.pem";
  ASSERT_TRUE(fs::write_file_durable(empty, "not a certificate\n"));
  EXPECT_FALSE(make_client_tls_context_only(empty));
  EXPECT_FALSE(make_client_tls_context_only(dir / "missing.pem"));
}

TEST(SmtpClient, VerifyCallbackDecides) {
  ServerTls tls;
  FakeSmtpServer server([&](Peer& p, int) { tls_then_quit(p, tls.ctx.get()); });
  SmtpClientOptions options = test_options();
  options.tls.mode = TlsMode::kOpportunistic;
  options.tls.require_verified = true;
  bool called = false;
  options.tls.verify_callback = [&](SSL* ssl, const TlsSessionInfo& info) {
    called = true;
    EXPECT_NE(ssl, nullptr);
    EXPECT_FALSE(info.verified);  // OpenSSL's verdict: self-signed
    return true;                  // e.g. a DANE-EE match would say yes here
  };
  SmtpConnection conn(options);
  ASSERT_TRUE(conn.connect(server.endpoint()));
  EXPECT_TRUE(called);
  EXPECT_TRUE(conn.session().tls_info.verified);
  conn.quit();
  server.join();
}

TEST(SmtpClient, RequiredTlsWithoutStartTlsFails) {
  FakeSmtpServer server([&](Peer& p, int) {
    greet(p);
    p.expect("QUIT", "221 bye\r\n");
  });
  SmtpClientOptions options = test_options();
  options.tls.mode = TlsMode::kRequired;
  SmtpConnection conn(options);
  Status st = conn.connect(server.endpoint());
  server.join();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().enhanced, "4.7.4");
  EXPECT_TRUE(st.error().transient());
  EXPECT_EQ(server.commands().back(), "QUIT");
}

TEST(SmtpClient, OpportunisticFallsBackToClearTextAfterFailedHandshake) {
  FakeSmtpServer server([&](Peer& p, int n) {
    if (n == 0) {
      greet(p, "250 STARTTLS\r\n");
      p.expect("STARTTLS", "220 ready\r\n");
      p.write("this is not TLS\r\n");  // broken middlebox
      return;
    }
    greet(p, "250 STARTTLS\r\n");  // second connection: the client must not try again
    p.expect("QUIT", "221 bye\r\n");
  }, 2);
  SmtpClientOptions options = test_options();
  options.tls.mode = TlsMode::kOpportunistic;
  SmtpConnection conn(options);
  ASSERT_TRUE(conn.connect(server.endpoint()));
  EXPECT_FALSE(conn.session().tls);
  conn.quit();
  server.join();
}

TEST(SmtpClient, ImplicitTls) {
  ServerTls tls;
  FakeSmtpServer server([&](Peer& p, int) {
    ASSERT_TRUE(p.start_tls(tls.ctx.get()));
    greet(p, "250 AUTH PLAIN\r\n");
    p.expect("QUIT", "221 bye\r\n");
  });
  SmtpClientOptions options = test_options();
  options.tls.implicit_tls = true;
  SmtpConnection conn(options);
  ASSERT_TRUE(conn.connect(server.endpoint()));
  EXPECT_TRUE(conn.session().tls);
  EXPECT_TRUE(conn.extensions().offers_auth("PLAIN"));
  conn.quit();
  server.join();
}

TEST(SmtpClient, AuthPlainOverTls) {
  ServerTls tls;
  std::string decoded;
  FakeSmtpServer server([&](Peer& p, int) {
    greet(p, "250-STARTTLS\r\n250 AUTH LOGIN PLAIN\r\n");
    p.expect("STARTTLS", "220 ready\r\n");
    ASSERT_TRUE(p.start_tls(tls.ctx.get()));
    p.expect("EHLO", "250-mx.test\r\n250 AUTH LOGIN PLAIN\r\n");
    std::string auth = p.expect("AUTH PLAIN ", "235 2.7.0 ok\r\n");
    EXPECT_TRUE(base64_decode(auth.substr(11), decoded));
    p.expect("QUIT", "221 bye\r\n");
  });
  SmtpClientOptions options = test_options();
  options.tls.mode = TlsMode::kRequired;
  options.credentials = SmtpCredentials{"user@example.org", "secret"};
  SmtpConnection conn(options);
  ASSERT_TRUE(conn.connect(server.endpoint()));
  EXPECT_TRUE(conn.session().authenticated);
  EXPECT_EQ(conn.session().auth_mechanism, "PLAIN");
  conn.quit();
  server.join();
  EXPECT_EQ(decoded, std::string("\0user@example.org\0secret", 24));
}

TEST(SmtpClient, AuthFailureIsTransient) {
  ServerTls tls;
  FakeSmtpServer server([&](Peer& p, int) {
    greet(p, "250-STARTTLS\r\n250 AUTH PLAIN\r\n");
    p.expect("STARTTLS", "220 ready\r\n");
    ASSERT_TRUE(p.start_tls(tls.ctx.get()));
    p.expect("EHLO", "250-mx.test\r\n250 AUTH PLAIN\r\n");
    p.expect("AUTH PLAIN ", "535 5.7.8 bad credentials\r\n");
    p.expect("QUIT", "221 bye\r\n");
  });
  SmtpClientOptions options = test_options();
  options.tls.mode = TlsMode::kOpportunistic;
  options.credentials = SmtpCredentials{"user", "wrong"};
  SmtpConnection conn(options);
  Status st = conn.connect(server.endpoint());
  server.join();
  ASSERT_FALSE(st);
  EXPECT_TRUE(st.error().transient());
  EXPECT_NE(st.error().text.find("bad credentials"), std::string::npos);
}

TEST(SmtpClient, NoCredentialsInClearText) {
  FakeSmtpServer server([&](Peer& p, int) {
    greet(p, "250 AUTH PLAIN\r\n");
    p.expect("QUIT", "221 bye\r\n");
  });
  SmtpClientOptions options = test_options();  // TLS off
  options.credentials = SmtpCredentials{"user", "secret"};
  SmtpConnection conn(options);
  Status st = conn.connect(server.endpoint());
  server.join();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().enhanced, "4.7.11");
  EXPECT_EQ(server.commands().size(), 2u);  // EHLO, QUIT: no AUTH
}

// Runs users::SaslServer's SCRAM-SHA-256 over the fake connection;
// `tamper` corrupts the server signature.
void scram_server(Peer& p, const users::AccountStore& store, bool tamper, bool& success) {
  auto sasl = users::SaslServer::create("SCRAM-SHA-256", store);
  std::string cmd = p.expect("AUTH SCRAM-SHA-256 ", "");
  std::string initial;
  ASSERT_TRUE(base64_decode(cmd.substr(19), initial));
  auto step = sasl->start(initial);
  while (step.kind == users::SaslServer::Step::kChallenge) {
    std::string challenge = step.challenge;
    if (tamper && challenge.starts_with("v=")) challenge = "v=" + base64_encode(std::string(32, 'x'));
    p.write("334 " + base64_encode(challenge) + "\r\n");
    std::string line = p.line().value_or("*");
    p.commands.push_back(line);
    if (line == "*") {
      p.write("501 5.7.0 cancelled\r\n");
      return;
    }
    std::string response;
    ASSERT_TRUE(base64_decode(line, response));
    step = sasl->step(response);
  }
  success = step.kind == users::SaslServer::Step::kSuccess;
  p.write(success ? "235 2.7.0 ok\r\n" : "535 5.7.8 no\r\n");
}

TEST(SmtpClient, AuthScramSha256PreferredAndServerVerified) {
  ServerTls tls;
  users::AccountStore store;
  store.insert("user@example.org", users::derive_credential("s3cret,=pw", 4096, "0123456789abcdef"));
  bool first_ok = false, second_ok = false;
  FakeSmtpServer server([&](Peer& p, int n) {
    greet(p, "250-STARTTLS\r\n250 AUTH PLAIN SCRAM-SHA-256\r\n");
    p.expect("STARTTLS", "220 ready\r\n");
    ASSERT_TRUE(p.start_tls(tls.ctx.get()));
    p.expect("EHLO", "250-mx.test\r\n250 AUTH PLAIN SCRAM-SHA-256\r\n");
    scram_server(p, store, n == 1, n == 0 ? first_ok : second_ok);
    p.expect("QUIT", "221 bye\r\n");
  }, 2);
  SmtpClientOptions options = test_options();
  options.tls.mode = TlsMode::kRequired;
  options.credentials = SmtpCredentials{"user@example.org", "s3cret,=pw"};
  {
    SmtpConnection conn(options);
    Status st = conn.connect(server.endpoint());
    ASSERT_TRUE(st) << st.error().to_string();
    EXPECT_EQ(conn.session().auth_mechanism, "SCRAM-SHA-256");
    EXPECT_TRUE(conn.session().authenticated);
    conn.quit();
  }
  {
    // A server that cannot prove knowledge of the password: the client
    // cancels instead of sending the final empty response.
    SmtpConnection conn(options);
    Status st = conn.connect(server.endpoint());
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().text.find("signature"), std::string::npos);
  }
  server.join();
  EXPECT_TRUE(first_ok);
  EXPECT_FALSE(second_ok);
  EXPECT_EQ(server.commands(1)[server.commands(1).size() - 2], "*");
}

}  // namespace
}  // namespace tern::delivery
