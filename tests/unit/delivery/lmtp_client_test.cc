// Tests for the LMTP client against a scripted in-process server: pipelined
// and sequential sessions, per-recipient replies after DATA (RFC 2033 §4.2),
// dot-stuffing on the wire, 8BITMIME/SMTPUTF8 parameters, and the transient
// treatment of refused greetings, timeouts and dropped connections.
#include "delivery/lmtp_client.h"

#include <gtest/gtest.h>

#include <chrono>

#include "delivery/dot_stuff.h"
#include "delivery/local_transport.h"
#include "test_util.h"

namespace tern::delivery {
namespace {

using namespace std::chrono_literals;
using testing::FakeConnection;
using testing::FakeLmtpServer;
using testing::TempDir;

const std::string kContent = "Subject: test\r\n\r\n.dot line\r\nbody\r\n";

LmtpOptions options_for(const FakeLmtpServer& server) {
  LmtpOptions o;
  o.endpoint = server.endpoint();
  o.hostname = "mx.example.org";
  o.connect_timeout = 2000ms;
  o.command_timeout = 2000ms;
  o.data_timeout = 2000ms;
  return o;
}

// Greets and answers LHLO with the given extension lines.
void greet(FakeConnection& c, const std::string& extensions = "250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n") {
  c.write("220 fake LMTP ready\r\n");
  auto lhlo = c.read_line();
  EXPECT_EQ(lhlo.value_or(""), "LHLO mx.example.org");
  c.write("250-fake.local\r\n" + extensions);
}

TEST(LmtpClient, PerRecipientRepliesAfterData) {
  TempDir tmp;
  std::vector<std::string> commands;
  std::string data;
  FakeLmtpServer server(tmp.path(), [&](FakeConnection& c) {
    greet(c);
    for (int i = 0; i < 4; ++i) commands.push_back(c.read_line().value_or("<eof>"));  // pipelined group
    c.write("250 2.1.0 OK\r\n250 2.1.5 OK\r\n550 5.1.1 <b@x> User doesn't exist\r\n250 2.1.5 OK\r\n");
    commands.push_back(c.read_line().value_or("<eof>"));
    c.write("354 go ahead\r\n");
    data = c.read_data().value_or("");
    c.write("250 2.0.0 <a@x> Saved\r\n452-4.2.2 <c@x> over quota\r\n452 4.2.2 try later\r\n");
    commands.push_back(c.read_line().value_or("<eof>"));
    c.write("221 2.0.0 Bye\r\n");
  });
  LmtpClient client(options_for(server));
  auto results = client.deliver("s@example.com", {"a@x", "b@x", "c@x"}, kContent, false);
  server.join();

  EXPECT_EQ(commands, (std::vector<std::string>{"MAIL FROM:<s@example.com>", "RCPT TO:<a@x>", "RCPT TO:<b@x>",
                                                "RCPT TO:<c@x>", "DATA", "QUIT"}));
  EXPECT_EQ(data, "Subject: test\r\n\r\n..dot line\r\nbody\r\n.\r\n");  // stuffed and terminated
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].recipient, "a@x");
  EXPECT_EQ(results[0].code, 250);
  EXPECT_TRUE(results[0].delivered());
  EXPECT_FALSE(results[0].transient);
  EXPECT_EQ(results[1].code, 550);
  EXPECT_EQ(results[1].enhanced, "5.1.1");
  EXPECT_FALSE(results[1].transient);
  EXPECT_EQ(results[2].code, 452);
  EXPECT_EQ(results[2].enhanced, "4.2.2");
  EXPECT_EQ(results[2].text, "<c@x> over quota / try later");
  EXPECT_TRUE(results[2].transient);
}

TEST(LmtpClient, SequentialWithoutPipeliningAndEightBitBody) {
  TempDir tmp;
  bool lockstep = true;
  std::string mail_command;
  FakeLmtpServer server(tmp.path(), [&](FakeConnection& c) {
    greet(c, "250 8BITMIME\r\n");
    mail_command = c.read_line().value_or("");
    lockstep = lockstep && c.nothing_pending(100ms);  // client waits for each reply
    c.write("250 OK\r\n");
    for (const char* rcpt : {"RCPT TO:<a@x>", "RCPT TO:<b@x>"}) {
      EXPECT_EQ(c.read_line().value_or(""), rcpt);
      lockstep = lockstep && c.nothing_pending(100ms);
      c.write("250 OK\r\n");
    }
    EXPECT_EQ(c.read_line().value_or(""), "DATA");
    c.write("354 go\r\n");
    c.read_data();
    c.write("250 ok a\r\n250 ok b\r\n");
    c.read_line();
    c.write("221 bye\r\n");
  });
  LmtpClient client(options_for(server));
  auto results = client.deliver("", {"a@x", "b@x"}, "Subject: caf\xc3\xa9\r\n\r\nx\r\n", false);
  server.join();
  EXPECT_TRUE(lockstep);
  EXPECT_EQ(mail_command, "MAIL FROM:<> BODY=8BITMIME");
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[0].delivered());
  EXPECT_TRUE(results[1].delivered());
  EXPECT_EQ(results[1].enhanced, "2.0.0");  // server sent none: derived from the code
}

TEST(LmtpClient, NoDataWhenAllRecipientsRejected) {
  TempDir tmp;
  std::string after_rcpt;
  FakeLmtpServer server(tmp.path(), [&](FakeConnection& c) {
    greet(c);
    for (int i = 0; i < 3; ++i) c.read_line();
    c.write("250 OK\r\n550 5.1.1 no\r\n450 4.2.1 busy\r\n");
    after_rcpt = c.read_line().value_or("<eof>");
    c.write("221 bye\r\n");
  });
  LmtpClient client(options_for(server));
  auto results = client.deliver("s@x", {"a@x", "b@x"}, kContent, false);
  server.join();
  EXPECT_EQ(after_rcpt, "QUIT");
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].code, 550);
  EXPECT_FALSE(results[0].transient);
  EXPECT_EQ(results[1].code, 450);
  EXPECT_TRUE(results[1].transient);
}

TEST(LmtpClient, MailFromRejectedAppliesToAll) {
  TempDir tmp;
  FakeLmtpServer server(tmp.path(), [&](FakeConnection& c) {
    greet(c);
    for (int i = 0; i < 3; ++i) c.read_line();
    c.write("552 5.3.4 message too big\r\n503 5.5.1 MAIL first\r\n503 5.5.1 MAIL first\r\n");
    c.read_line();
    c.write("221 bye\r\n");
  });
  LmtpClient client(options_for(server));
  auto results = client.deliver("s@x", {"a@x", "b@x"}, kContent, false);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& r : results) {
    EXPECT_EQ(r.code, 552);
    EXPECT_EQ(r.enhanced, "5.3.4");
  }
}

TEST(LmtpClient, RefusedGreetingMakesAllTransient) {
  TempDir tmp;
  FakeLmtpServer server(tmp.path(), [](FakeConnection& c) { c.write("421 4.3.2 shutting down\r\n"); });
  LmtpClient client(options_for(server));
  auto results = client.deliver("s@x", {"a@x", "b@x"}, kContent, false);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& r : results) {
    EXPECT_TRUE(r.transient);
    EXPECT_EQ(r.code, 451);
    EXPECT_NE(r.text.find("421"), std::string::npos) << r.text;
  }
}

TEST(LmtpClient, PermanentGreetingIsStillTransient) {
  TempDir tmp;
  FakeLmtpServer server(tmp.path(), [](FakeConnection& c) { c.write("554 no service\r\n"); });
  LmtpClient client(options_for(server));
  auto results = client.deliver("s@x", {"a@x"}, kContent, false);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].transient);
  EXPECT_LT(results[0].code, 500);
}

TEST(LmtpClient, ConnectFailureIsTransient) {
  TempDir tmp;
  LmtpOptions o;
  o.endpoint = "unix:" + (tmp / "missing.sock");
  LmtpClient client(o);
  auto results = client.deliver("s@x", {"a@x", "b@x"}, kContent, false);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& r : results) {
    EXPECT_TRUE(r.transient);
    EXPECT_EQ(r.enhanced, "4.4.1");
  }
}

TEST(LmtpClient, BadEndpointIsConfigError) {
  LmtpOptions o;
  o.endpoint = "unix:relative";
  auto results = LmtpClient(o).deliver("s@x", {"a@x"}, kContent, false);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].transient);
  EXPECT_EQ(results[0].enhanced, "4.3.5");
}

TEST(LmtpClient, TimeoutAfterDataIsTransient) {
  TempDir tmp;
  FakeLmtpServer server(tmp.path(), [&](FakeConnection& c) {
    greet(c);
    for (int i = 0; i < 2; ++i) c.read_line();
    c.write("250 OK\r\n250 OK\r\n");
    c.read_line();
    c.write("354 go\r\n");
    c.read_data();
    c.read_line(1500ms);  // stay silent until the client gives up
  });
  LmtpOptions o = options_for(server);
  o.data_timeout = 200ms;
  auto start = std::chrono::steady_clock::now();
  auto results = LmtpClient(o).deliver("s@x", {"a@x"}, kContent, false);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].transient);
  EXPECT_EQ(results[0].enhanced, "4.4.2");
  EXPECT_NE(results[0].text.find("timed out"), std::string::npos) << results[0].text;
}

TEST(LmtpClient, DroppedConnectionKeepsEarlierFinalReplies) {
  TempDir tmp;
  FakeLmtpServer server(tmp.path(), [&](FakeConnection& c) {
    greet(c);
    for (int i = 0; i < 3; ++i) c.read_line();
    c.write("250 OK\r\n250 OK\r\n250 OK\r\n");
    c.read_line();
    c.write("354 go\r\n");
    c.read_data();
    c.write("250 2.0.0 saved\r\n");  // then hang up before the second reply
  });
  auto results = LmtpClient(options_for(server)).deliver("s@x", {"a@x", "b@x"}, kContent, false);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[0].delivered());
  EXPECT_FALSE(results[1].delivered());
  EXPECT_TRUE(results[1].transient);
}

TEST(LmtpClient, GarbageReplyIsTransient) {
  TempDir tmp;
  FakeLmtpServer server(tmp.path(), [&](FakeConnection& c) { c.write("HTTP/1.1 400 Bad Request\r\n"); });
  auto results = LmtpClient(options_for(server)).deliver("s@x", {"a@x"}, kContent, false);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].transient);
  EXPECT_EQ(results[0].enhanced, "4.5.0");
}

TEST(LmtpClient, Smtputf8Handling) {
  TempDir tmp;
  std::string mail_command;
  {
    FakeLmtpServer server(tmp.path(), [&](FakeConnection& c) {
      greet(c, "250-PIPELINING\r\n250 SMTPUTF8\r\n");
      mail_command = c.read_line().value_or("");
      c.read_line();
      c.write("250 OK\r\n550 no\r\n");
      c.read_line();
      c.write("221 bye\r\n");
    });
    LmtpClient(options_for(server)).deliver("s@x", {"j\xc3\xb6rg@x"}, kContent, true);
  }
  EXPECT_EQ(mail_command, "MAIL FROM:<s@x> SMTPUTF8");

  // Server without SMTPUTF8 and a non-ASCII recipient: cannot be delivered.
  TempDir tmp2;
  FakeLmtpServer server2(tmp2.path(), [&](FakeConnection& c) {
    greet(c);
    c.read_line();
    c.write("221 bye\r\n");
  });
  auto results = LmtpClient(options_for(server2)).deliver("s@x", {"j\xc3\xb6rg@x"}, kContent, true);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].code, 553);
  EXPECT_EQ(results[0].enhanced, "5.6.7");
  EXPECT_FALSE(results[0].transient);
}

TEST(LmtpClient, ParsesLhloKeywords) {
  auto reply = parse_reply("250-host\r\n250-pipelining\r\n250-8BITMIME\r\n250-SIZE 1000\r\n250 SMTPUTF8\r\n");
  ASSERT_TRUE(reply);
  auto ext = parse_lhlo_reply(*reply);
  EXPECT_TRUE(ext.pipelining);
  EXPECT_TRUE(ext.eight_bit_mime);
  EXPECT_TRUE(ext.smtputf8);
  EXPECT_FALSE(ext.enhanced_status_codes);
}

TEST(LmtpTransport, MapsMailboxAddressesAndDeduplicates) {
  TempDir tmp;
  std::vector<std::string> rcpts;
  FakeLmtpServer server(tmp.path(), [&](FakeConnection& c) {
    greet(c);
    c.read_line();
    for (int i = 0; i < 2; ++i) rcpts.push_back(c.read_line().value_or(""));
    c.write("250 OK\r\n250 OK\r\n250 OK\r\n");
    c.read_line();
    c.write("354 go\r\n");
    c.read_data();
    c.write("250 2.0.0 saved alice\r\n451 4.3.0 temporary failure\r\n");
    c.read_line();
    c.write("221 bye\r\n");
  });
  LmtpTransport transport(options_for(server));
  std::vector<LocalDelivery> list = {
      {"", "Alice+News@Example.org", "alice", "example.org", "News"},
      {"", "bob@example.org", "bob", "example.org", ""},
      {"", "news-alias@example.org", "alice", "example.org", "News"},
  };
  auto results = transport.deliver("s@x", list, kContent, false);
  server.join();
  EXPECT_EQ(rcpts, (std::vector<std::string>{"RCPT TO:<alice+News@example.org>", "RCPT TO:<bob@example.org>"}));
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].recipient, "Alice+News@Example.org");
  EXPECT_TRUE(results[0].delivered());
  EXPECT_EQ(results[1].recipient, "bob@example.org");
  EXPECT_TRUE(results[1].transient);
  EXPECT_EQ(results[2].recipient, "news-alias@example.org");
  EXPECT_TRUE(results[2].delivered());
}

}  // namespace
}  // namespace tern::delivery
