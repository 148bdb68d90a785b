// Tests for the sans-I/O SMTP server engine (src/smtp/session.h): command
// sequencing, pipelining (RFC 2920), DATA dot-unstuffing and the SMTP
// smuggling defence, BDAT (RFC 3030), STARTTLS injection (RFC 3207 §5),
// AUTH (RFC 4954), limits and error accounting.
#include "smtp/session.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "base/strings.h"

namespace tern::smtp {
namespace {

SessionOptions default_options() {
  SessionOptions o;
  o.hostname = "mx.test";
  return o;
}

// A test driver: feeds input, answers decisions (auto-accepting unless a hook
// handles the event), and records events, content and output.
class Driver {
 public:
  explicit Driver(SessionOptions o = default_options()) : s(std::move(o)) {
    s.greet();
    greeting = s.output();
    s.output().clear();
  }

  // Return true from the hook to say the event was answered.
  std::function<bool(ServerSession&, const Event&)> hook;

  void feed(std::string_view in) {
    s.feed(in);
    pump();
  }
  void feed_bytewise(std::string_view in) {
    for (char c : in) feed(std::string_view(&c, 1));
  }
  void pump() {
    while (auto ev = s.next()) handle(*ev);
    out += s.output();
    s.output().clear();
  }
  // The output since the last call.
  std::string take_output() {
    std::string r = out.substr(taken_);
    taken_ = out.size();
    return r;
  }

  ServerSession s;
  std::string greeting;
  std::string out;
  std::string data;
  std::vector<std::string> events;
  std::vector<std::optional<Error>> ends;
  size_t data_events = 0;
  size_t max_data_event = 0;

 private:
  void handle(const Event& ev) {
    if (hook && hook(s, ev)) {
      record(ev);
      return;
    }
    record(ev);
    if (std::holds_alternative<EvHelo>(ev)) {
      s.accept_helo();
    } else if (std::holds_alternative<EvMail>(ev) || std::holds_alternative<EvRcpt>(ev) ||
               std::holds_alternative<EvDataStart>(ev)) {
      s.accept();
    } else if (const auto* end = std::get_if<EvDataEnd>(&ev)) {
      if (end->problem) {
        s.reply(Reply::from_error(*end->problem));
      } else {
        s.reply(Reply(250, "2.0.0", "Ok: queued as Q1"));
      }
    } else if (std::holds_alternative<EvAuth>(ev) || std::holds_alternative<EvAuthResponse>(ev)) {
      s.auth_failure(Reply(535, "5.7.8", "Authentication credentials invalid"));
    }
  }
  void record(const Event& ev) {
    std::visit(
        [&](const auto& e) {
          using T = std::decay_t<decltype(e)>;
          if constexpr (std::is_same_v<T, EvHelo>) {
            events.push_back((e.esmtp ? "ehlo:" : "helo:") + e.name);
          } else if constexpr (std::is_same_v<T, EvMail>) {
            events.push_back("mail:" + e.from.str());
          } else if constexpr (std::is_same_v<T, EvRcpt>) {
            events.push_back("rcpt:" + e.to.str());
          } else if constexpr (std::is_same_v<T, EvDataStart>) {
            events.push_back(e.bdat ? "bdat-start" : "data-start");
          } else if constexpr (std::is_same_v<T, EvData>) {
            data += e.bytes;
            ++data_events;
            max_data_event = std::max(max_data_event, e.bytes.size());
          } else if constexpr (std::is_same_v<T, EvDataEnd>) {
            events.push_back(e.problem ? "data-end:" + e.problem->to_string() : "data-end:ok");
            ends.push_back(e.problem);
          } else if constexpr (std::is_same_v<T, EvStartTls>) {
            events.push_back("starttls");
          } else if constexpr (std::is_same_v<T, EvAuth>) {
            events.push_back("auth:" + e.mechanism + (e.initial_response ? "=" + *e.initial_response : ""));
          } else if constexpr (std::is_same_v<T, EvAuthResponse>) {
            events.push_back("auth-response:" + e.data);
          } else if constexpr (std::is_same_v<T, EvAuthCancelled>) {
            events.push_back("auth-cancelled");
          } else if constexpr (std::is_same_v<T, EvRset>) {
            events.push_back("rset");
          } else if constexpr (std::is_same_v<T, EvQuit>) {
            events.push_back("quit");
          } else if constexpr (std::is_same_v<T, EvClose>) {
            events.push_back("close");
          }
        },
        ev);
  }
  size_t taken_ = 0;
};

// Reply codes (first three characters of each final line) in `out`.
std::vector<std::string> final_codes(const std::string& out) {
  std::vector<std::string> codes;
  size_t start = 0;
  while (start < out.size()) {
    size_t end = out.find("\r\n", start);
    if (end == std::string::npos) break;
    std::string line = out.substr(start, end - start);
    if (line.size() >= 4 && line[3] == ' ') codes.push_back(line.substr(0, 3));
    if (line.size() == 3) codes.push_back(line);
    start = end + 2;
  }
  return codes;
}

using Codes = std::vector<std::string>;

const char* kTransaction =
    "EHLO client.example\r\n"
    "MAIL FROM:<alice@example.org>\r\n"
    "RCPT TO:<bob@example.net>\r\n"
    "DATA\r\n";

TEST(Session, GreetingHasNoEnhancedCode) {
  Driver d;
  EXPECT_EQ(d.greeting, "220 mx.test ESMTP tern\r\n");
}

TEST(Session, FullTransactionStepByStep) {
  Driver d;
  d.feed("EHLO client.example\r\n");
  std::string ehlo = d.take_output();
  EXPECT_EQ(ehlo,
            "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
            "250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-BINARYMIME\r\n250 DSN\r\n");
  d.feed("MAIL FROM:<alice@example.org>\r\n");
  EXPECT_EQ(d.take_output(), "250 2.1.0 Ok\r\n");
  EXPECT_TRUE(d.s.in_transaction());
  d.feed("RCPT TO:<bob@example.net>\r\n");
  EXPECT_EQ(d.take_output(), "250 2.1.5 Ok\r\n");
  d.feed("DATA\r\n");
  EXPECT_EQ(d.take_output(), "354 End data with <CR><LF>.<CR><LF>\r\n");
  EXPECT_EQ(d.s.phase(), ServerSession::Phase::kData);
  d.feed("Subject: hi\r\n\r\nbody\r\n.\r\n");
  EXPECT_EQ(d.take_output(), "250 2.0.0 Ok: queued as Q1\r\n");
  EXPECT_EQ(d.data, "Subject: hi\r\n\r\nbody\r\n");
  EXPECT_FALSE(d.s.in_transaction());
  EXPECT_EQ(d.s.phase(), ServerSession::Phase::kCommand);
  d.feed("QUIT\r\n");
  EXPECT_EQ(d.take_output(), "221 2.0.0 Bye\r\n");
  EXPECT_EQ(d.s.phase(), ServerSession::Phase::kClosed);
  EXPECT_EQ(d.events, (std::vector<std::string>{"ehlo:client.example", "mail:alice@example.org",
                                                "rcpt:bob@example.net", "data-start", "data-end:ok", "quit"}));
  EXPECT_EQ(d.s.helo_name(), "client.example");
}

TEST(Session, PipelinedCommandsInOneFeedGetBatchedReplies) {
  Driver d;
  d.feed(std::string(kTransaction) + "line1\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<c@example.net>\r\nRSET\r\nQUIT\r\n");
  EXPECT_EQ(final_codes(d.out), (Codes{"250", "250", "250", "354", "250", "250", "250", "250", "221"}));
  EXPECT_EQ(d.events, (std::vector<std::string>{"ehlo:client.example", "mail:alice@example.org",
                                                "rcpt:bob@example.net", "data-start", "data-end:ok", "mail:",
                                                "rcpt:c@example.net", "rset", "quit"}));
  EXPECT_EQ(d.data, "line1\r\n");
}

TEST(Session, DecisionPausesProcessingAndKeepsInputBuffered) {
  ServerSession s(default_options());
  s.feed("EHLO a.example\r\nMAIL FROM:<a@b.example>\r\nNOOP\r\n");
  auto ev = s.next();
  ASSERT_TRUE(ev && std::holds_alternative<EvHelo>(*ev));
  EXPECT_FALSE(s.next().has_value());  // waiting for the decision
  EXPECT_EQ(s.output(), "");
  EXPECT_GT(s.buffered_input(), 0u);
  s.accept_helo();
  ev = s.next();
  ASSERT_TRUE(ev && std::holds_alternative<EvMail>(*ev));
  EXPECT_EQ(std::get<EvMail>(*ev).from.str(), "a@b.example");
  s.reply(Reply(550, "5.7.1", "Sender rejected"));
  EXPECT_FALSE(s.next().has_value());
  EXPECT_FALSE(s.in_transaction());
  EXPECT_EQ(final_codes(s.output()), (Codes{"250", "550", "250"}));
  EXPECT_EQ(s.buffered_input(), 0u);
}

// Runs a script in one feed and again byte by byte: transcripts must match.
void expect_same_bytewise(const std::string& script, SessionOptions opts = default_options()) {
  Driver whole(opts), bytes(opts);
  whole.feed(script);
  bytes.feed_bytewise(script);
  EXPECT_EQ(whole.out, bytes.out);
  EXPECT_EQ(whole.data, bytes.data);
  EXPECT_EQ(whole.events, bytes.events);
  EXPECT_FALSE(whole.out.empty());
}

TEST(Session, ByteAtATimeMatchesOneFeed) {
  expect_same_bytewise(std::string(kTransaction) +
                       "..dot\r\nbare\nlf\r\n.\r\n"
                       "MAIL FROM:<x@y.example> BODY=BINARYMIME\r\nRCPT TO:<postmaster>\r\n"
                       "BDAT 7\r\nab\r\n.\r\nBDAT 3 LAST\r\nxyzNOOP\r\nFOO\r\nNOOP\n" +
                       std::string(3000, 'x') + "\r\nQUIT\r\n");
}

TEST(Session, DotUnstuffing) {
  Driver d;
  d.feed(std::string(kTransaction) + "..leading dot\r\n\r\n...\r\nmid.dle\r\n. \r\n\r\n.\r\n");
  EXPECT_EQ(d.data, ".leading dot\r\n\r\n..\r\nmid.dle\r\n \r\n\r\n");
  ASSERT_EQ(d.ends.size(), 1u);
  EXPECT_FALSE(d.ends[0].has_value());
}

TEST(Session, EmptyMessage) {
  Driver d;
  d.feed(std::string(kTransaction) + ".\r\n");
  EXPECT_EQ(d.data, "");
  EXPECT_EQ(d.events.back(), "data-end:ok");
}

// Every smuggling variant: a fake end-of-data must neither end the message
// nor let the commands after it run; the message is refused at the real end.
TEST(Session, SmugglingVariantsNeverEndData) {
  for (std::string fake : {"\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r\n", "\r\n.\r", "\r\n\r.\r\n", "\n.\r\r\n"}) {
    SCOPED_TRACE(testing::PrintToString(fake));
    Driver d;
    d.feed(std::string(kTransaction) + "hello" + fake + "MAIL FROM:<evil@attacker.example>\r\n"
           "RCPT TO:<victim@example.net>\r\nDATA\r\nsmuggled\r\n.\r\n");
    // Only one transaction happened; the smuggled MAIL was content.
    EXPECT_EQ(d.events, (std::vector<std::string>{"ehlo:client.example", "mail:alice@example.org",
                                                  "rcpt:bob@example.net", "data-start",
                                                  "data-end:550 5.6.11 Bare CR or LF not allowed in message content"}));
    EXPECT_EQ(final_codes(d.out), (Codes{"250", "250", "250", "354", "550"}));
    // Nothing emitted ever holds a bare LF or a bare CR.
    for (size_t i = 0; i < d.data.size(); ++i) {
      if (d.data[i] == '\n') {
        EXPECT_TRUE(i > 0 && d.data[i - 1] == '\r');
      }
      if (d.data[i] == '\r') {
        EXPECT_TRUE(i + 1 < d.data.size() && d.data[i + 1] == '\n');
      }
    }
  }
}

TEST(Session, BareCrInContentIsRefused) {
  Driver d;
  d.feed(std::string(kTransaction) + "a\rb\r\n.\r\nNOOP\r\n");
  EXPECT_EQ(final_codes(d.out), (Codes{"250", "250", "250", "354", "550", "250"}));
}

TEST(Session, BareLineEndingsInCommandsAreRejected) {
  Driver d;
  d.feed("EHLO a.example\nNOOP\r\nNO\rOP\r\nMAIL FROM:<a@b.example>\n");
  EXPECT_EQ(d.out.substr(0, 24), "500 5.5.2 Bare CR or LF ");
  EXPECT_EQ(final_codes(d.out), (Codes{"500", "250", "500", "500"}));
  EXPECT_TRUE(d.events.empty());
}

TEST(Session, StartTlsDiscardsInjectedCommands) {
  SessionOptions o = default_options();
  o.tls_available = true;
  Driver d(o);
  d.feed("EHLO a.example\r\n");
  EXPECT_NE(d.take_output().find("250 STARTTLS\r\n"), std::string::npos);
  d.feed("STARTTLS\r\nMAIL FROM:<evil@x.example>\r\nRCPT TO:<v@y.example>\r\n");
  EXPECT_EQ(d.take_output(), "220 2.0.0 Ready to start TLS\r\n");
  EXPECT_EQ(d.events.back(), "starttls");
  d.feed("NOOP\r\n");  // plaintext fed before the handshake is ignored too
  EXPECT_EQ(d.take_output(), "");
  d.s.tls_started();
  EXPECT_TRUE(d.s.tls_active());
  EXPECT_EQ(d.s.helo_name(), "");
  d.feed("MAIL FROM:<a@b.example>\r\n");
  EXPECT_EQ(d.take_output().substr(0, 9), "503 5.5.1");  // EHLO forgotten (RFC 3207 §4.2)
  d.feed("EHLO a.example\r\n");
  std::string ehlo = d.take_output();
  EXPECT_EQ(ehlo.find("STARTTLS"), std::string::npos);
  EXPECT_NE(ehlo.find("REQUIRETLS"), std::string::npos);
  for (const auto& e : d.events) EXPECT_NE(e, "mail:evil@x.example");
  d.feed("STARTTLS\r\n");
  EXPECT_EQ(d.take_output(), "503 5.5.1 TLS already active\r\n");
}

TEST(Session, StartTlsUnavailableOrWithArguments) {
  Driver d;
  d.feed("EHLO a.example\r\nSTARTTLS\r\n");
  EXPECT_NE(d.out.find("502 5.5.1"), std::string::npos);
  SessionOptions o = default_options();
  o.tls_available = true;
  Driver e(o);
  e.feed("EHLO a.example\r\nSTARTTLS now\r\n");
  EXPECT_NE(e.out.find("501 5.5.4"), std::string::npos);
}

TEST(Session, BdatMultipleChunks) {
  Driver d;
  d.feed("EHLO a.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n");
  d.take_output();
  d.feed("BDAT 9\r\nline\r\n.\r\n");
  EXPECT_EQ(d.take_output(), "250 2.0.0 9 octets received\r\n");
  EXPECT_EQ(d.s.phase(), ServerSession::Phase::kCommand);
  d.feed("BDAT 8 LAST\r\nbare\nlf\r");
  EXPECT_EQ(d.take_output(), "250 2.0.0 Ok: queued as Q1\r\n");
  EXPECT_EQ(d.data, "line\r\n.\r\nbare\nlf\r");  // binary: no unstuffing, bare LF allowed
  EXPECT_EQ(d.events, (std::vector<std::string>{"ehlo:a.example", "mail:a@b.example", "rcpt:c@d.example",
                                                "bdat-start", "data-end:ok"}));
}

TEST(Session, BdatSplitAcrossFeeds) {
  Driver d;
  d.feed("EHLO a.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBD");
  d.feed("AT 10 LA");
  d.feed("ST\r\n0123");
  EXPECT_EQ(d.s.phase(), ServerSession::Phase::kBdat);
  d.feed("456");
  d.feed("789QUIT\r\n");
  EXPECT_EQ(d.data, "0123456789");
  EXPECT_EQ(final_codes(d.out), (Codes{"250", "250", "250", "250", "221"}));
}

TEST(Session, BdatZeroLastAndDataAfterBdat) {
  Driver d;
  d.feed("EHLO a.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 2\r\nabDATA\r\n");
  EXPECT_EQ(final_codes(d.out), (Codes{"250", "250", "250", "250", "503"}));
  d.feed("BDAT 0 LAST\r\n");
  EXPECT_EQ(d.events.back(), "data-end:ok");
  EXPECT_EQ(d.data, "ab");
}

TEST(Session, BdatWithoutTransactionIsConsumedThenRefused) {
  Driver d;
  d.feed("EHLO a.example\r\nBDAT 6\r\nNOOP\r\nRSET\r\n");
  EXPECT_EQ(final_codes(d.out), (Codes{"250", "503", "250"}));  // "NOOP\r\n" was chunk data
  EXPECT_EQ(d.data, "");
  Driver e;
  e.hook = [](ServerSession& s, const Event& ev) {
    if (std::holds_alternative<EvRcpt>(ev)) {
      s.reply(Reply(550, "5.1.1", "No such user"));
      return true;
    }
    return false;
  };
  e.feed("EHLO a.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 3 LAST\r\nabcNOOP\r\n");
  EXPECT_EQ(final_codes(e.out), (Codes{"250", "250", "550", "554", "250"}));
}

TEST(Session, BdatOverSizeLimitIsDiscarded) {
  SessionOptions o = default_options();
  o.max_message_size = 10;
  Driver d(o);
  d.feed("EHLO a.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n");
  d.feed("BDAT 6\r\n123456BDAT 6\r\n789012BDAT 1 LAST\r\nxNOOP\r\n");
  // First chunk fits; the second exceeds: 552 and the transaction fails, so
  // the pipelined LAST chunk is consumed and refused.
  EXPECT_EQ(final_codes(d.out), (Codes{"250", "250", "250", "250", "552", "503", "250"}));
  EXPECT_LE(d.data.size(), 10u);
  EXPECT_EQ(d.data, "123456");
}

TEST(Session, BdatRejectedByDriverDiscardsChunk) {
  Driver d;
  d.hook = [](ServerSession& s, const Event& ev) {
    if (std::holds_alternative<EvDataStart>(ev)) {
      s.reply(Reply(451, "4.3.0", "Try later"));
      return true;
    }
    return false;
  };
  d.feed("EHLO a.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 6\r\nQUIT\r\nNOOP\r\n");
  EXPECT_EQ(final_codes(d.out), (Codes{"250", "250", "250", "451", "250"}));
  EXPECT_EQ(d.data, "");
  EXPECT_FALSE(d.s.in_transaction());
}

TEST(Session, SizeLimitOnMailAndOnData) {
  SessionOptions o = default_options();
  o.max_message_size = 100;
  Driver d(o);
  d.feed("EHLO a.example\r\nMAIL FROM:<a@b.example> SIZE=101\r\n");
  EXPECT_NE(d.out.find("552 5.3.4"), std::string::npos);
  EXPECT_FALSE(d.s.in_transaction());
  d.feed("MAIL FROM:<a@b.example> SIZE=50\r\nRCPT TO:<c@d.example>\r\nDATA\r\n");
  std::string line(30, 'x');
  for (int i = 0; i < 10; ++i) d.feed(line + "\r\n");
  d.feed(".\r\n");
  ASSERT_EQ(d.ends.size(), 1u);
  ASSERT_TRUE(d.ends[0].has_value());
  EXPECT_EQ(d.ends[0]->code, 552);
  EXPECT_EQ(d.ends[0]->enhanced, "5.3.4");
  EXPECT_LE(d.data.size(), 100u);
}

TEST(Session, ZeroSizeMeansNoLimit) {
  SessionOptions o = default_options();
  o.max_message_size = 0;
  Driver d(o);
  d.feed("EHLO a.example\r\nMAIL FROM:<a@b.example> SIZE=99999999999\r\nRCPT TO:<c@d.example>\r\nDATA\r\n");
  EXPECT_NE(d.out.find("250-SIZE 0\r\n"), std::string::npos);
  d.feed(std::string(100000, 'z') + "\r\n.\r\n");
  EXPECT_EQ(d.events.back(), "data-end:ok");
  EXPECT_EQ(d.data.size(), 100002u);
}

TEST(Session, LongDataLineIsRefusedWithoutBuffering) {
  SessionOptions o = default_options();
  o.max_text_line = 1000;
  Driver d(o);
  d.feed(kTransaction);
  d.feed(std::string(5000, 'y'));
  EXPECT_EQ(d.s.buffered_input(), 0u);
  d.feed("\r\nshort\r\n.\r\n");
  ASSERT_EQ(d.ends.size(), 1u);
  ASSERT_TRUE(d.ends[0].has_value());
  EXPECT_EQ(d.ends[0]->code, 554);
  EXPECT_EQ(d.ends[0]->enhanced, "5.6.0");
}

TEST(Session, LargeMessageIsStreamedInChunks) {
  Driver d;
  std::string body;
  for (int i = 0; i < 5000; ++i) body += "line " + std::to_string(i) + " of the message body\r\n";
  d.feed(std::string(kTransaction) + body + ".\r\n");
  EXPECT_EQ(d.data, body);
  EXPECT_GT(d.data_events, 1u);
  EXPECT_LE(d.max_data_event, 64u * 1024);
}

TEST(Session, RecipientLimit) {
  SessionOptions o = default_options();
  o.max_recipients = 2;
  o.max_errors = 3;
  Driver d(o);
  d.feed("EHLO a.example\r\nMAIL FROM:<a@b.example>\r\n");
  for (int i = 0; i < 5; ++i) d.feed("RCPT TO:<r" + std::to_string(i) + "@d.example>\r\n");
  EXPECT_EQ(final_codes(d.out), (Codes{"250", "250", "250", "250", "452", "452", "452"}));
  EXPECT_NE(d.out.find("452 4.5.3 Too many recipients"), std::string::npos);
  EXPECT_EQ(d.s.error_count(), 0u);  // flow control, not client errors
  EXPECT_NE(d.s.phase(), ServerSession::Phase::kClosed);
}

TEST(Session, ErrorLimitClosesWith421) {
  SessionOptions o = default_options();
  o.max_errors = 3;
  Driver d(o);
  d.feed("FOO\r\nBAR\r\nNOOP\r\nBAZ\r\nNOOP\r\n");
  EXPECT_EQ(final_codes(d.out), (Codes{"500", "500", "250", "500", "421"}));
  EXPECT_NE(d.out.find("421 4.7.0 mx.test Too many errors"), std::string::npos);
  EXPECT_EQ(d.events, (std::vector<std::string>{"close"}));
  EXPECT_EQ(d.s.phase(), ServerSession::Phase::kClosed);
  d.feed("NOOP\r\n");
  EXPECT_EQ(final_codes(d.out).size(), 5u);
}

TEST(Session, CommandLineTooLongIsDiscardedNotBuffered) {
  Driver d;
  d.feed("EHLO a.example\r\n");
  d.take_output();
  for (int i = 0; i < 100; ++i) d.feed(std::string(1000, 'A'));
  EXPECT_LT(d.s.buffered_input(), 4096u);
  EXPECT_EQ(d.take_output(), "");
  d.feed("\r\nNOOP\r\n");
  EXPECT_EQ(d.take_output(), "500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n");
  // A complete line just over the limit in one feed is also refused.
  d.feed("NOOP " + std::string(2100, 'x') + "\r\n");
  EXPECT_EQ(d.take_output(), "500 5.5.2 Line too long\r\n");
}

TEST(Session, SequenceErrors) {
  Driver d;
  d.feed("MAIL FROM:<a@b.example>\r\n");
  EXPECT_EQ(d.take_output(), "503 5.5.1 Send HELO/EHLO first\r\n");
  d.feed("EHLO a.example\r\nRCPT TO:<c@d.example>\r\nDATA\r\n");
  EXPECT_EQ(final_codes(d.take_output()), (Codes{"250", "503", "503"}));
  d.feed("MAIL FROM:<a@b.example>\r\nMAIL FROM:<a@b.example>\r\nDATA\r\n");
  EXPECT_EQ(d.take_output(), "250 2.1.0 Ok\r\n503 5.5.1 Nested MAIL command\r\n554 5.5.1 No valid recipients\r\n");
  // EHLO ends the transaction.
  d.feed("EHLO a.example\r\nRCPT TO:<c@d.example>\r\n");
  EXPECT_EQ(final_codes(d.take_output()), (Codes{"250", "503"}));
  d.feed("MAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<c@d.example>\r\nDATA\r\n");
  EXPECT_EQ(final_codes(d.take_output()), (Codes{"250", "250", "503"}));
}

TEST(Session, MailWithoutHeloWhenNotRequired) {
  SessionOptions o = default_options();
  o.require_helo = false;
  Driver d(o);
  d.feed("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nhi\r\n.\r\n");
  EXPECT_EQ(final_codes(d.take_output()), (Codes{"250", "250", "354", "250"}));
  EXPECT_EQ(d.events, (std::vector<std::string>{"mail:a@b.example", "rcpt:c@d.example", "data-start", "data-end:ok"}));
  EXPECT_EQ(d.s.helo_name(), "");
  // Without EHLO the session is plain SMTP: no ESMTP parameters (RFC 5321 §4.1.1.11).
  d.feed("MAIL FROM:<a@b.example> SIZE=10\r\n");
  EXPECT_EQ(final_codes(d.take_output()), (Codes{"555"}));
  // The default still requires a greeting.
  Driver strict;
  strict.feed("MAIL FROM:<a@b.example>\r\n");
  EXPECT_EQ(strict.take_output(), "503 5.5.1 Send HELO/EHLO first\r\n");
}

TEST(Session, SyntaxErrors) {
  Driver d;
  d.feed("EHLO\r\nHELO a b\r\nEHLO a.example\r\nMAIL TO:<a@b.example>\r\nMAIL FROM:a@b.example\r\n"
         "MAIL FROM:<a@b.example>x\r\nDATA now\r\nRSET x\r\nQUIT now\r\n\r\n");
  EXPECT_EQ(final_codes(d.out), (Codes{"501", "501", "250", "501", "501", "501", "501", "501", "501", "500"}));
}

TEST(Session, AddressErrors) {
  Driver d;
  d.feed("EHLO a.example\r\nMAIL FROM:<a..b@x.example>\r\nMAIL FROM:<j\xC3\xB8rn@x.example>\r\n"
         "MAIL FROM:<j\xC3\xB8rn@x.example> SMTPUTF8\r\nRCPT TO:<>\r\nRCPT TO:<bad@@x>\r\n"
         "RCPT TO:<\xC3\xB8@x.example>\r\nRCPT TO:<Postmaster>\r\n");
  EXPECT_EQ(final_codes(d.out), (Codes{"250", "553", "553", "250", "553", "553", "250", "250"}));
  EXPECT_NE(d.out.find("553 5.1.7"), std::string::npos);  // MAIL syntax
  EXPECT_NE(d.out.find("553 5.6.7"), std::string::npos);  // UTF-8 without SMTPUTF8
  EXPECT_NE(d.out.find("553 5.1.3"), std::string::npos);  // RCPT syntax
  EXPECT_EQ(d.events.back(), "rcpt:postmaster");
}

TEST(Session, ParametersReachEvents) {
  Driver d;
  std::optional<MailParams> mp;
  std::optional<RcptParams> rp;
  d.hook = [&](ServerSession&, const Event& ev) {
    if (auto* m = std::get_if<EvMail>(&ev)) mp = m->params;
    if (auto* r = std::get_if<EvRcpt>(&ev)) rp = r->params;
    return false;
  };
  d.feed("EHLO a.example\r\nMAIL FROM:<a@b.example> SIZE=123 RET=HDRS ENVID=x+2By\r\n"
         "RCPT TO:<c@d.example> NOTIFY=FAILURE,DELAY ORCPT=rfc822;c+40d.example\r\n"
         "RCPT TO:<e@d.example> NOTIFY=NEVER,DELAY\r\nRCPT TO:<e@d.example> FOO=BAR\r\n");
  ASSERT_TRUE(mp && rp);
  EXPECT_EQ(mp->size, 123u);
  EXPECT_EQ(mp->ret, Ret::kHdrs);
  EXPECT_EQ(mp->envid, "x+y");
  EXPECT_EQ(rp->notify, unsigned{kNotifyFailure | kNotifyDelay});
  EXPECT_EQ(rp->orcpt_type, "rfc822");
  EXPECT_EQ(rp->orcpt, "c@d.example");
  EXPECT_EQ(final_codes(d.out), (Codes{"250", "250", "250", "501", "555"}));
}

TEST(Session, HeloDisallowsParameters) {
  Driver d;
  d.feed("HELO a.example\r\nMAIL FROM:<a@b.example> SIZE=10\r\nMAIL FROM:<a@b.example>\r\n");
  EXPECT_EQ(d.out, "250 mx.test\r\n555 5.5.4 Unsupported parameter SIZE\r\n250 2.1.0 Ok\r\n");
}

TEST(Session, MiscCommands) {
  Driver d;
  d.feed("noop\r\nHELP\r\nVRFY bob\r\nVRFY\r\nEXPN list\r\nTURN\r\nXYZZY\r\nrset\r\n");
  EXPECT_EQ(d.out,
            "250 2.0.0 Ok\r\n214 2.0.0 See RFC 5321\r\n252 2.1.5 Cannot VRFY user, but will accept message\r\n"
            "501 5.5.4 Syntax: VRFY address\r\n502 5.5.1 Command not implemented\r\n"
            "502 5.5.1 Command not implemented\r\n500 5.5.1 Command unrecognized\r\n250 2.0.0 Ok\r\n");
  EXPECT_EQ(d.events, (std::vector<std::string>{"rset"}));
}

TEST(Session, QuitClosesAndIgnoresFurtherInput) {
  Driver d;
  d.feed("QUIT\r\nNOOP\r\n");
  EXPECT_EQ(d.out, "221 2.0.0 Bye\r\n");
  d.feed("NOOP\r\n");
  EXPECT_EQ(d.out, "221 2.0.0 Bye\r\n");
  EXPECT_EQ(d.events, (std::vector<std::string>{"quit"}));
}

TEST(Session, GreetingRejectWaitsForQuit) {
  ServerSession s(default_options());
  s.greet_reject(Reply(554, "5.7.1", "No service for you"));
  s.feed("EHLO a.example\r\nMAIL FROM:<a@b.example>\r\nQUIT\r\n");
  std::vector<std::string> evs;
  while (auto ev = s.next()) evs.push_back(std::holds_alternative<EvQuit>(*ev) ? "quit" : "other");
  EXPECT_EQ(s.output(), "554 5.7.1 No service for you\r\n503 5.5.1 Service refused, send QUIT\r\n"
                        "503 5.5.1 Service refused, send QUIT\r\n221 2.0.0 Bye\r\n");
  EXPECT_EQ(evs, (std::vector<std::string>{"quit"}));
}

TEST(Session, DriverReplyWith421Closes) {
  Driver d;
  d.hook = [](ServerSession& s, const Event& ev) {
    if (std::holds_alternative<EvMail>(ev)) {
      s.reply(Reply(421, "4.3.2", "Shutting down"));
      return true;
    }
    return false;
  };
  d.feed("EHLO a.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n");
  EXPECT_EQ(final_codes(d.out), (Codes{"250", "421"}));
  EXPECT_EQ(d.events.back(), "close");
}

TEST(Session, DataStartRejectedByDriver) {
  Driver d;
  d.hook = [](ServerSession& s, const Event& ev) {
    if (std::holds_alternative<EvDataStart>(ev)) {
      s.reply(Reply(451, "4.3.0", "Try later"));
      return true;
    }
    return false;
  };
  d.feed(std::string(kTransaction) + "NOOP\r\n");
  EXPECT_EQ(final_codes(d.out), (Codes{"250", "250", "250", "451", "250"}));
  EXPECT_EQ(d.s.phase(), ServerSession::Phase::kCommand);
}

SessionOptions submission_options() {
  SessionOptions o = default_options();
  o.auth_enabled = true;
  o.tls_active = true;
  o.auth_required_for_mail = true;
  return o;
}

TEST(Auth, AdvertisedOnlyOverTls) {
  SessionOptions plain = submission_options();
  plain.tls_active = false;
  Driver p(plain);
  p.feed("EHLO a.example\r\nAUTH PLAIN\r\n");
  EXPECT_EQ(p.out.find("AUTH PLAIN"), std::string::npos);
  EXPECT_NE(p.out.find("530 5.7.0 Must issue a STARTTLS command first"), std::string::npos);
  Driver t(submission_options());
  t.feed("EHLO a.example\r\n");
  EXPECT_NE(t.out.find("250-AUTH PLAIN LOGIN SCRAM-SHA-256\r\n"), std::string::npos);
  Driver off;
  off.feed("EHLO a.example\r\nAUTH PLAIN\r\n");
  EXPECT_NE(off.out.find("502 5.5.1"), std::string::npos);
}

TEST(Auth, PlainWithInitialResponseThenMail) {
  Driver d(submission_options());
  d.hook = [](ServerSession& s, const Event& ev) {
    if (auto* a = std::get_if<EvAuth>(&ev)) {
      EXPECT_EQ(a->mechanism, "PLAIN");
      EXPECT_EQ(a->initial_response, std::string("\0user\0pass", 10));
      s.auth_success();
      return true;
    }
    return false;
  };
  d.feed("EHLO a.example\r\nMAIL FROM:<a@b.example>\r\n");
  EXPECT_NE(d.take_output().find("530 5.7.0 Authentication required"), std::string::npos);
  d.feed("AUTH plain AHVzZXIAcGFzcw==\r\nMAIL FROM:<a@b.example>\r\nAUTH PLAIN\r\n");
  EXPECT_EQ(d.take_output(), "235 2.7.0 Authentication successful\r\n250 2.1.0 Ok\r\n"
                             "503 5.5.1 Already authenticated\r\n");
  EXPECT_TRUE(d.s.authenticated());
}

TEST(Auth, LoginWithChallenges) {
  Driver d(submission_options());
  int step = 0;
  d.hook = [&](ServerSession& s, const Event& ev) {
    if (std::holds_alternative<EvAuth>(ev)) {
      s.auth_challenge("Username:");
      return true;
    }
    if (auto* r = std::get_if<EvAuthResponse>(&ev)) {
      if (step++ == 0) {
        EXPECT_EQ(r->data, "user");
        s.auth_challenge("Password:");
      } else {
        EXPECT_EQ(r->data, "pass");
        s.auth_success();
      }
      return true;
    }
    return false;
  };
  d.feed("EHLO a.example\r\nAUTH LOGIN\r\n");
  EXPECT_EQ(d.s.phase(), ServerSession::Phase::kAuth);
  d.feed("dXNlcg==\r\ncGFzcw==\r\n");
  EXPECT_NE(d.out.find("334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0"), std::string::npos);
  EXPECT_EQ(d.s.phase(), ServerSession::Phase::kCommand);
}

TEST(Auth, CancelInvalidAndFailure) {
  Driver d(submission_options());
  d.hook = [](ServerSession& s, const Event& ev) {
    if (std::holds_alternative<EvAuth>(ev)) {
      s.auth_challenge("");
      return true;
    }
    return false;
  };
  d.feed("EHLO a.example\r\nAUTH LOGIN\r\n*\r\nAUTH LOGIN\r\n!!!\r\nAUTH LOGIN\r\nZm9v\r\n");
  std::string out = d.out;
  EXPECT_NE(out.find("334 \r\n501 5.0.0 Authentication cancelled\r\n"), std::string::npos);
  EXPECT_NE(out.find("334 \r\n501 5.5.2 Invalid base64 data\r\n"), std::string::npos);
  EXPECT_NE(out.find("334 \r\n535 5.7.8"), std::string::npos);  // default hook fails the response
  EXPECT_EQ(std::count(d.events.begin(), d.events.end(), "auth-cancelled"), 2);
  EXPECT_FALSE(d.s.authenticated());
}

TEST(Auth, InitialResponseEqualsIsEmptyAndErrors) {
  Driver d(submission_options());
  std::optional<std::string> ir;
  d.hook = [&](ServerSession& s, const Event& ev) {
    if (auto* a = std::get_if<EvAuth>(&ev)) {
      ir = a->initial_response;
      s.auth_failure(Reply(535, "5.7.8", "no"));
      return true;
    }
    return false;
  };
  d.feed("EHLO a.example\r\nAUTH PLAIN =\r\n");
  ASSERT_TRUE(ir.has_value());
  EXPECT_EQ(*ir, "");
  d.take_output();
  d.feed("AUTH CRAM-MD5\r\nAUTH PLAIN not*base64\r\nAUTH\r\n");
  EXPECT_EQ(final_codes(d.take_output()), (Codes{"504", "501", "501"}));
}

TEST(Auth, LongSaslLinesAreAllowedUpToRfcLimit) {
  Driver d(submission_options());
  size_t got = 0;
  d.hook = [&](ServerSession& s, const Event& ev) {
    if (auto* a = std::get_if<EvAuth>(&ev)) {
      got = a->initial_response->size();
      s.auth_success();
      return true;
    }
    return false;
  };
  std::string blob(6000, 'A');  // 8000 base64 chars, beyond the 2048 command limit
  d.feed("EHLO a.example\r\nAUTH PLAIN " + tern::base64_encode(blob) + "\r\n");
  EXPECT_EQ(got, 6000u);
}

TEST(Auth, NotDuringTransactionOrBeforeEhlo) {
  SessionOptions o = submission_options();
  o.auth_required_for_mail = false;
  Driver d(o);
  d.feed("AUTH PLAIN\r\nEHLO a.example\r\nMAIL FROM:<a@b.example>\r\nAUTH PLAIN\r\n");
  EXPECT_EQ(final_codes(d.out), (Codes{"503", "250", "250", "503"}));
}

}  // namespace
}  // namespace tern::smtp
