// Tests for the DSN builder (src/queue/dsn.h): NOTIFY decisions, status code
// extraction, and complete failure, delay and success reports. Every report
// built here is also read back by Python's `email` package through
// dsn_check.py, and the fields an independent parser sees are asserted.
#include "queue/dsn.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <string>

#include "base/strings.h"
#include "test_dir.h"

namespace tern::queue {
namespace {

constexpr int64_t kArrival = 1'700'000'000;  // Tue, 14 Nov 2023 22:13:20 +0000
constexpr int64_t kNow = kArrival + 3600;    // Tue, 14 Nov 2023 23:13:20 +0000

const std::string kMessage =
    "From: Alice <alice@example.com>\r\n"
    "To: bob@example.net, carol@example.org\r\n"
    "Subject: quarterly numbers\r\n"
    "Message-ID: <m1@example.com>\r\n"
    "\r\n"
    "Body line one.\r\n"
    "Body line two.\r\n";

Envelope two_recipient_envelope() {
  Envelope env;
  env.id = "Q1A2B3";
  env.mail_from = "alice@example.com";
  env.received_at = kArrival;
  env.client_helo = "client.example.com";
  env.client_ip = "192.0.2.7";
  Recipient bob;
  bob.address = "bob@example.net";
  bob.state = Recipient::State::kFailed;
  bob.attempts = 1;
  bob.last_reply = "550 5.1.1 <bob@example.net>: user unknown";
  Recipient carol;
  carol.address = "carol@example.org";
  carol.orcpt_type = "rfc822";
  carol.orcpt = "Carol@Example.org";
  carol.notify = kNotifyFailure | kNotifyDelay;
  carol.state = Recipient::State::kFailed;
  carol.attempts = 3;
  carol.last_reply = "554 transaction failed";
  env.recipients = {bob, carol};
  return env;
}

DsnRequest request_for(DsnKind kind, std::vector<size_t> indices) {
  DsnRequest req;
  req.kind = kind;
  req.reporting_mta = "mx.example.org";
  req.now = kNow;
  for (size_t i : indices) {
    DsnRecipient r;
    r.index = i;
    req.recipients.push_back(r);
  }
  return req;
}

bool have_python() {
  return ::access("/usr/bin/python3", X_OK) == 0;
}

// Runs dsn_check.py on `dsn` and returns its key=value output ("exit" holds
// the exit status, "error" the reason when the check failed).
std::map<std::string, std::string> python_view(const std::string& dsn) {
  testing::TempDir dir;
  const std::string path = dir.sub("dsn.eml");
  std::ofstream(path, std::ios::binary) << dsn;
  const std::string command =
      std::string("/usr/bin/python3 ") + TERN_SOURCE_DIR + "/tests/unit/queue/dsn_check.py " + path + " 2>&1";
  std::map<std::string, std::string> view;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return {{"exit", "popen failed"}};
  std::string output;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) output.append(buf, n);
  int status = ::pclose(pipe);
  view["exit"] = std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  for (std::string_view line : split(output, '\n')) {
    auto eq = line.find('=');
    if (eq == std::string_view::npos) {
      if (!line.empty()) view["stray"] += std::string(line) + "\n";
      continue;
    }
    std::string value;
    for (size_t i = eq + 1; i < line.size(); ++i) {
      if (line[i] == '\\' && i + 1 < line.size()) {
        char c = line[++i];
        value += c == 'n' ? '\n' : c == 'r' ? '\r' : c;
      } else {
        value += line[i];
      }
    }
    view[std::string(line.substr(0, eq))] = value;
  }
  // The explanation with its wrapped lines joined again.
  std::string prose;
  const std::string& text = view["text"];
  for (size_t i = 0; i < text.size(); ++i) {
    if (text.compare(i, 6, "\r\n    ") == 0) {
      prose += ' ';
      i += 5;
    } else {
      prose += text[i];
    }
  }
  view["prose"] = prose;
  return view;
}

#define REQUIRE_PYTHON() \
  if (!have_python()) GTEST_SKIP() << "/usr/bin/python3 not installed"

std::string part_of(const std::string& content, const std::string& marker) {
  auto at = content.find(marker);
  return at == std::string::npos ? std::string() : content.substr(at);
}

TEST(DsnNotify, HonoursNotifyFlags) {
  Envelope env;
  env.mail_from = "a@example.com";
  Recipient r;
  // No NOTIFY: failures and delays (RFC 3461 §4.1), no success.
  EXPECT_TRUE(should_notify(env, r, DsnKind::kFailure));
  EXPECT_TRUE(should_notify(env, r, DsnKind::kDelay));
  EXPECT_FALSE(should_notify(env, r, DsnKind::kSuccess));
  r.notify = kNotifyNever;
  EXPECT_FALSE(should_notify(env, r, DsnKind::kFailure));
  EXPECT_FALSE(should_notify(env, r, DsnKind::kDelay));
  EXPECT_FALSE(should_notify(env, r, DsnKind::kSuccess));
  r.notify = kNotifySuccess;
  EXPECT_FALSE(should_notify(env, r, DsnKind::kFailure));
  EXPECT_FALSE(should_notify(env, r, DsnKind::kDelay));
  EXPECT_TRUE(should_notify(env, r, DsnKind::kSuccess));
  r.notify = kNotifyFailure;
  EXPECT_TRUE(should_notify(env, r, DsnKind::kFailure));
  EXPECT_FALSE(should_notify(env, r, DsnKind::kDelay));
  r.notify = kNotifyFailure | kNotifyDelay | kNotifySuccess;
  EXPECT_TRUE(should_notify(env, r, DsnKind::kDelay));
  EXPECT_TRUE(should_notify(env, r, DsnKind::kSuccess));
  env.mail_from = "";  // null reverse-path: never
  EXPECT_FALSE(should_notify(env, r, DsnKind::kFailure));
}

TEST(DsnStatus, ExtractsEnhancedCodes) {
  EXPECT_EQ(extract_enhanced_status("550 5.1.1 <x@y>: user unknown"), "5.1.1");
  EXPECT_EQ(extract_enhanced_status("452-4.2.2 mailbox full"), "4.2.2");
  EXPECT_EQ(extract_enhanced_status("550 5.01.010 odd zeros"), "5.1.10");
  EXPECT_EQ(extract_enhanced_status("550 user unknown"), "");
  EXPECT_EQ(extract_enhanced_status("550 4.1.1 class mismatch"), "");
  EXPECT_EQ(extract_enhanced_status("550 5.1.1234 too long"), "");
  EXPECT_EQ(extract_enhanced_status("550 5.1.1: no space after"), "");
  EXPECT_EQ(extract_enhanced_status("message expired; last error: 451 4.4.1 no route"), "4.4.1");
  EXPECT_EQ(extract_enhanced_status("tried 250 times 2.0.0"), "");
  EXPECT_EQ(extract_enhanced_status(""), "");
}

TEST(DsnStatus, StatusFitsTheAction) {
  EXPECT_EQ(dsn_status_for("550 5.1.1 <x@y>: user unknown", DsnAction::kFailed), "5.1.1");
  EXPECT_EQ(dsn_status_for("550 user unknown", DsnAction::kFailed), "5.0.0");
  EXPECT_EQ(dsn_status_for("554 transaction failed", DsnAction::kFailed), "5.0.0");
  EXPECT_EQ(dsn_status_for("451 4.4.1 no answer", DsnAction::kFailed), "4.4.1");  // gave up on a 4xx
  EXPECT_EQ(dsn_status_for("421 try later", DsnAction::kFailed), "4.0.0");
  EXPECT_EQ(dsn_status_for("mailbox is a directory", DsnAction::kFailed), "5.0.0");
  EXPECT_EQ(dsn_status_for("message expired", DsnAction::kFailed), "4.4.7");
  EXPECT_EQ(dsn_status_for("message expired; last error: 451 4.4.1 x", DsnAction::kFailed), "4.4.1");
  EXPECT_EQ(dsn_status_for("451 4.7.1 greylisted", DsnAction::kDelayed), "4.7.1");
  EXPECT_EQ(dsn_status_for("", DsnAction::kDelayed), "4.0.0");
  EXPECT_EQ(dsn_status_for("550 5.1.1 odd", DsnAction::kDelayed), "4.0.0");
  EXPECT_EQ(dsn_status_for("250 2.1.5 Saved", DsnAction::kDelivered), "2.1.5");
  EXPECT_EQ(dsn_status_for("250 ok", DsnAction::kRelayed), "2.0.0");
  EXPECT_EQ(dsn_status_for("", DsnAction::kDelivered), "2.0.0");
}

TEST(DsnHeaderSection, CutsAtTheFirstEmptyLine) {
  EXPECT_EQ(header_section("A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore"), "A: 1\r\nB: 2\r\n");
  EXPECT_EQ(header_section("A: 1\nB: 2\n\nbody"), "A: 1\nB: 2\n");
  EXPECT_EQ(header_section("A: 1\r\n"), "A: 1\r\n");
  EXPECT_EQ(header_section("\r\nbody"), "");
  EXPECT_EQ(header_section(""), "");
}

TEST(Dsn, FailureWithTwoRecipients) {
  REQUIRE_PYTHON();
  Envelope env = two_recipient_envelope();
  DsnRequest req = request_for(DsnKind::kFailure, {0, 1});
  req.recipients[0].remote_mta = "mx1.example.net";
  req.recipients[0].last_attempt = kNow - 60;
  auto dsn = build_dsn(env, kMessage, req);
  ASSERT_TRUE(dsn.has_value());
  EXPECT_EQ(dsn->mail_from, "");
  EXPECT_EQ(dsn->recipient, "alice@example.com");
  EXPECT_FALSE(dsn->needs_8bitmime);
  EXPECT_FALSE(dsn->needs_smtputf8);
  EXPECT_EQ(dsn->reported, 2u);
  EXPECT_TRUE(dsn->returned_full);  // RET unset: the whole message for a failure

  auto v = python_view(dsn->content);
  ASSERT_EQ(v["exit"], "0") << v["error"] << v["stray"];
  EXPECT_EQ(v["defects"], "0");
  EXPECT_EQ(v["content_type"], "multipart/report");
  EXPECT_EQ(v["report_type"], "delivery-status");
  EXPECT_EQ(v["from"], "Mail Delivery System <MAILER-DAEMON@mx.example.org>");
  EXPECT_EQ(v["to"], "alice@example.com");
  EXPECT_EQ(v["subject"], "Undelivered Mail Returned to Sender");
  EXPECT_EQ(v["auto-submitted"], "auto-replied");
  EXPECT_EQ(v["mime-version"], "1.0");
  EXPECT_EQ(v["date_epoch"], std::to_string(kNow));
  EXPECT_TRUE(v["message-id"].ends_with("@mx.example.org>")) << v["message-id"];
  EXPECT_EQ(v["parts"], "3");
  EXPECT_EQ(v["part1.type"], "text/plain");
  EXPECT_EQ(v["part1.charset"], "us-ascii");
  EXPECT_EQ(v["part2.type"], "message/delivery-status");
  EXPECT_EQ(v["part2.cte"], "7bit");
  EXPECT_EQ(v["part3.type"], "message/rfc822");

  EXPECT_NE(v["prose"].find("<bob@example.net>: host mx1.example.net said: 550 5.1.1 <bob@example.net>: user unknown"),
            std::string::npos)
      << v["prose"];
  EXPECT_NE(v["prose"].find("<carol@example.org>: 554 transaction failed"), std::string::npos) << v["prose"];
  EXPECT_NE(v["prose"].find("The original message is attached."), std::string::npos);

  EXPECT_EQ(v["msg.Reporting-MTA"], "dns; mx.example.org");
  EXPECT_EQ(v["msg.Received-From-MTA"], "dns; client.example.com (192.0.2.7)");
  EXPECT_EQ(v["msg.Arrival-Date"], "Tue, 14 Nov 2023 22:13:20 +0000");
  EXPECT_EQ(v["msg.X-Tern-Queue-ID"], "Q1A2B3");
  EXPECT_EQ(v.count("msg.Original-Envelope-Id"), 0u);  // RFC 3461 §6.3 (a): only with ENVID
  EXPECT_EQ(v["recipients"], "2");

  EXPECT_EQ(v.count("rcpt0.Original-Recipient"), 0u);  // no ORCPT: MUST NOT appear
  EXPECT_EQ(v["rcpt0.Final-Recipient"], "rfc822; bob@example.net");
  EXPECT_EQ(v["rcpt0.Action"], "failed");
  EXPECT_EQ(v["rcpt0.Status"], "5.1.1");
  EXPECT_EQ(v["rcpt0.Remote-MTA"], "dns; mx1.example.net");
  EXPECT_EQ(v["rcpt0.Diagnostic-Code"], "smtp; 550 5.1.1 <bob@example.net>: user unknown");
  EXPECT_EQ(v["rcpt0.Last-Attempt-Date"], "Tue, 14 Nov 2023 23:12:20 +0000");
  EXPECT_EQ(v.count("rcpt0.Will-Retry-Until"), 0u);

  EXPECT_EQ(v["rcpt1.Original-Recipient"], "rfc822; Carol@Example.org");
  EXPECT_EQ(v["rcpt1.Final-Recipient"], "rfc822; carol@example.org");
  EXPECT_EQ(v["rcpt1.Action"], "failed");
  EXPECT_EQ(v["rcpt1.Status"], "5.0.0");
  EXPECT_EQ(v.count("rcpt1.Remote-MTA"), 0u);  // decided here, not by a remote server
  EXPECT_EQ(v["rcpt1.Diagnostic-Code"], "X-tern; 554 transaction failed");
  EXPECT_EQ(v["rcpt1.Last-Attempt-Date"], "Tue, 14 Nov 2023 23:13:20 +0000");

  EXPECT_EQ(v["returned.subject"], "quarterly numbers");
  EXPECT_EQ(v["returned.message_id"], "<m1@example.com>");
  EXPECT_EQ(v["returned.body"], "Body line one.\r\nBody line two.\r\n");
}

TEST(Dsn, DelayReport) {
  REQUIRE_PYTHON();
  Envelope env = two_recipient_envelope();
  env.recipients[0].state = Recipient::State::kPending;
  env.recipients[0].last_reply = "451 4.7.1 greylisted, come back later";
  env.recipients[1].notify = kNotifyFailure;  // did not ask for delay reports
  env.recipients[1].state = Recipient::State::kPending;
  DsnRequest req = request_for(DsnKind::kDelay, {0, 1});
  req.recipients[0].remote_mta = "mx1.example.net";
  req.will_retry_until = kArrival + 5 * 24 * 3600;
  auto dsn = build_dsn(env, kMessage, req);
  ASSERT_TRUE(dsn.has_value());
  EXPECT_EQ(dsn->reported, 1u);
  EXPECT_FALSE(dsn->returned_full);  // no failure in it: headers only (RFC 3461 §6.2)

  auto v = python_view(dsn->content);
  ASSERT_EQ(v["exit"], "0") << v["error"] << v["stray"];
  EXPECT_EQ(v["subject"], "Delayed Mail (still being retried)");
  EXPECT_EQ(v["report_type"], "delivery-status");
  EXPECT_EQ(v["recipients"], "1");
  EXPECT_EQ(v["rcpt0.Final-Recipient"], "rfc822; bob@example.net");
  EXPECT_EQ(v["rcpt0.Action"], "delayed");
  EXPECT_EQ(v["rcpt0.Status"], "4.7.1");
  EXPECT_EQ(v["rcpt0.Diagnostic-Code"], "smtp; 451 4.7.1 greylisted, come back later");
  EXPECT_EQ(v["rcpt0.Will-Retry-Until"], "Sun, 19 Nov 2023 22:13:20 +0000");
  EXPECT_EQ(v["part3.type"], "text/rfc822-headers");
  EXPECT_EQ(v["returned.subject"], "quarterly numbers");
  EXPECT_EQ(v["returned.body"], "");
  EXPECT_NE(v["prose"].find("Delivery will be retried until Sun, 19 Nov 2023 22:13:20 +0000."), std::string::npos);
  EXPECT_EQ(dsn->content.find("Body line one."), std::string::npos);
}

TEST(Dsn, SuccessReportOnlyForRecipientsWhoAsked) {
  REQUIRE_PYTHON();
  Envelope env = two_recipient_envelope();
  env.recipients[0].notify = kNotifySuccess | kNotifyFailure;
  env.recipients[0].state = Recipient::State::kDelivered;
  env.recipients[0].last_reply = "250 2.1.5 <bob@example.net> Saved";
  env.recipients[1].state = Recipient::State::kDelivered;  // NOTIFY=FAILURE,DELAY: no success report
  env.recipients[1].last_reply = "250 ok";
  env.ret = 1;  // RET=FULL applies to failure reports only (RFC 3461 §4.3)
  auto dsn = build_dsn(env, kMessage, request_for(DsnKind::kSuccess, {0, 1}));
  ASSERT_TRUE(dsn.has_value());
  EXPECT_EQ(dsn->reported, 1u);
  EXPECT_FALSE(dsn->returned_full);

  auto v = python_view(dsn->content);
  ASSERT_EQ(v["exit"], "0") << v["error"] << v["stray"];
  EXPECT_EQ(v["subject"], "Successful Mail Delivery Report");
  EXPECT_EQ(v["recipients"], "1");
  EXPECT_EQ(v["rcpt0.Final-Recipient"], "rfc822; bob@example.net");
  EXPECT_EQ(v["rcpt0.Action"], "delivered");
  EXPECT_EQ(v["rcpt0.Status"], "2.1.5");
  EXPECT_EQ(v["part3.type"], "text/rfc822-headers");
  EXPECT_NE(v["prose"].find("<bob@example.net>: delivered"), std::string::npos);

  // Handed to a server without DSN support: "relayed" (RFC 3461 §5.2.2).
  DsnRequest relayed = request_for(DsnKind::kSuccess, {0});
  relayed.recipients[0].success_action = DsnAction::kRelayed;
  relayed.recipients[0].remote_mta = "legacy.example.net";
  auto dsn2 = build_dsn(env, kMessage, relayed);
  ASSERT_TRUE(dsn2.has_value());
  auto v2 = python_view(dsn2->content);
  ASSERT_EQ(v2["exit"], "0") << v2["error"];
  EXPECT_EQ(v2["rcpt0.Action"], "relayed");
  EXPECT_EQ(v2["rcpt0.Remote-MTA"], "dns; legacy.example.net");
}

TEST(Dsn, NothingForNotifyNeverOrNullSender) {
  Envelope env = two_recipient_envelope();
  env.recipients[0].notify = kNotifyNever;
  env.recipients[1].notify = kNotifyNever;
  EXPECT_FALSE(build_dsn(env, kMessage, request_for(DsnKind::kFailure, {0, 1})).has_value());

  env = two_recipient_envelope();
  env.recipients[0].notify = kNotifyNever;
  auto only_carol = build_dsn(env, kMessage, request_for(DsnKind::kFailure, {0, 1}));
  ASSERT_TRUE(only_carol.has_value());
  EXPECT_EQ(only_carol->reported, 1u);
  EXPECT_EQ(only_carol->content.find("Final-Recipient: rfc822; bob@"), std::string::npos);

  env = two_recipient_envelope();
  env.mail_from = "";
  EXPECT_FALSE(build_dsn(env, kMessage, request_for(DsnKind::kFailure, {0, 1})).has_value());

  env = two_recipient_envelope();  // default NOTIFY: no success reports
  env.recipients[1].notify = 0;
  EXPECT_FALSE(build_dsn(env, kMessage, request_for(DsnKind::kSuccess, {0, 1})).has_value());
  EXPECT_FALSE(build_dsn(env, kMessage, request_for(DsnKind::kFailure, {7})).has_value());  // out of range

  env.mail_from = "evil@example.com>\r\nBcc: x@example.org";  // cannot be written safely
  EXPECT_FALSE(build_dsn(env, kMessage, request_for(DsnKind::kFailure, {0})).has_value());
}

TEST(Dsn, RetHdrsReturnsOnlyTheHeaderSection) {
  REQUIRE_PYTHON();
  Envelope env = two_recipient_envelope();
  env.ret = 2;
  auto dsn = build_dsn(env, kMessage, request_for(DsnKind::kFailure, {0}));
  ASSERT_TRUE(dsn.has_value());
  EXPECT_FALSE(dsn->returned_full);
  EXPECT_EQ(dsn->content.find("Body line"), std::string::npos);
  auto v = python_view(dsn->content);
  ASSERT_EQ(v["exit"], "0") << v["error"];
  EXPECT_EQ(v["part3.type"], "text/rfc822-headers");
  EXPECT_EQ(v["returned.subject"], "quarterly numbers");
  EXPECT_EQ(v["returned.message_id"], "<m1@example.com>");
  EXPECT_NE(v["prose"].find("The header section of the original message is attached."), std::string::npos);
  EXPECT_NE(part_of(dsn->content, "Content-Type: text/rfc822-headers")
                .find("From: Alice <alice@example.com>\r\nTo: bob@example.net, carol@example.org\r\n"
                      "Subject: quarterly numbers\r\nMessage-ID: <m1@example.com>\r\n\r\n--"),
            std::string::npos);

  env.ret = 1;  // RET=FULL
  auto full = build_dsn(env, kMessage, request_for(DsnKind::kFailure, {0}));
  ASSERT_TRUE(full.has_value());
  EXPECT_TRUE(full->returned_full);
  EXPECT_NE(full->content.find("Body line two."), std::string::npos);
}

TEST(Dsn, EnvidRoundTrip) {
  REQUIRE_PYTHON();
  // The client sent ENVID=QQ314159+2Bx+3Dy; the server stores it decoded.
  std::string decoded;
  ASSERT_TRUE(xtext_decode("QQ314159+2Bx+3Dy", decoded));
  Envelope env = two_recipient_envelope();
  env.envid = decoded;
  auto dsn = build_dsn(env, kMessage, request_for(DsnKind::kFailure, {0}));
  ASSERT_TRUE(dsn.has_value());
  auto v = python_view(dsn->content);
  ASSERT_EQ(v["exit"], "0") << v["error"];
  // RFC 3461 §6.3 (a): the field carries the decoded value, case preserved.
  EXPECT_EQ(v["msg.Original-Envelope-Id"], "QQ314159+x=y");
  EXPECT_EQ(xtext_encode(v["msg.Original-Envelope-Id"]), "QQ314159+2Bx+3Dy");
  EXPECT_NE(dsn->content.find("\r\n\r\n--=_tern"), std::string::npos);
  // Per-message field order of RFC 3464 §2.2.
  auto status = part_of(dsn->content, "Original-Envelope-Id:");
  EXPECT_LT(status.find("Original-Envelope-Id:"), status.find("Reporting-MTA:"));
  EXPECT_LT(status.find("Reporting-MTA:"), status.find("Received-From-MTA:"));
  EXPECT_LT(status.find("Received-From-MTA:"), status.find("Arrival-Date:"));
}

TEST(Dsn, OversizedOriginalIsTruncatedToHeaders) {
  REQUIRE_PYTHON();
  Envelope env = two_recipient_envelope();
  env.ret = 1;
  std::string big = kMessage;
  for (int i = 0; i < 2000; ++i) big += "filler line to make the message large enough 0123456789\r\n";
  DsnRequest req = request_for(DsnKind::kFailure, {0});
  req.max_returned_bytes = 64 * 1024;
  ASSERT_GT(big.size(), req.max_returned_bytes);
  auto dsn = build_dsn(env, big, req);
  ASSERT_TRUE(dsn.has_value());
  EXPECT_FALSE(dsn->returned_full);
  EXPECT_EQ(dsn->content.find("filler line"), std::string::npos);
  EXPECT_LT(dsn->content.size(), 8u * 1024);
  auto v = python_view(dsn->content);
  ASSERT_EQ(v["exit"], "0") << v["error"];
  EXPECT_EQ(v["part3.type"], "text/rfc822-headers");
  EXPECT_EQ(v["returned.subject"], "quarterly numbers");
  EXPECT_NE(v["prose"].find("The original message is larger than 65536 bytes, so only its header section is attached."),
            std::string::npos)
      << v["prose"];

  // Default cap is 1 MiB: the same message fits.
  auto whole = build_dsn(env, big, request_for(DsnKind::kFailure, {0}));
  ASSERT_TRUE(whole.has_value());
  EXPECT_TRUE(whole->returned_full);

  // A header section beyond the cap is not returned at all.
  req.max_returned_bytes = 16;
  auto none = build_dsn(env, big, req);
  ASSERT_TRUE(none.has_value());
  auto v3 = python_view(none->content);
  ASSERT_EQ(v3["exit"], "0") << v3["error"];
  EXPECT_EQ(v3["parts"], "2");
  EXPECT_NE(v3["prose"].find("too large to be returned, even its header section"), std::string::npos);
}

TEST(Dsn, BinaryMimeOriginalReturnsHeaders) {
  Envelope env = two_recipient_envelope();
  env.body = 2;
  auto dsn = build_dsn(env, kMessage, request_for(DsnKind::kFailure, {0}));
  ASSERT_TRUE(dsn.has_value());
  EXPECT_FALSE(dsn->returned_full);
  EXPECT_NE(dsn->content.find("sent as binary MIME"), std::string::npos);
}

TEST(Dsn, EightBitOriginalNeeds8BitMime) {
  REQUIRE_PYTHON();
  Envelope env = two_recipient_envelope();
  env.body = 1;
  const std::string message =
      "Subject: café\r\nContent-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: 8bit\r\n\r\ndéjà vu\r\n";
  auto dsn = build_dsn(env, message, request_for(DsnKind::kFailure, {0}));
  ASSERT_TRUE(dsn.has_value());
  EXPECT_TRUE(dsn->needs_8bitmime);
  EXPECT_FALSE(dsn->needs_smtputf8);
  auto v = python_view(dsn->content);
  ASSERT_EQ(v["exit"], "0") << v["error"];
  EXPECT_EQ(v["top_cte"], "8bit");
  EXPECT_EQ(v["part2.type"], "message/delivery-status");  // ASCII addresses, no SMTPUTF8: classic types
  EXPECT_EQ(v["part3.type"], "message/rfc822");
  EXPECT_EQ(v["part3.cte"], "8bit");
}

TEST(Dsn, InternationalizedReport) {
  REQUIRE_PYTHON();
  Envelope env;
  env.id = "Q9";
  env.mail_from = "jürgen@bücher.example";
  env.smtputf8 = true;
  env.received_at = kArrival;
  Recipient r;
  r.address = "用户@example.net";
  r.orcpt_type = "utf-8";
  r.orcpt = r.address;
  r.state = Recipient::State::kFailed;
  r.last_reply = "550 5.1.1 unknown user 用户";
  env.recipients = {r};
  const std::string message = "From: jürgen@bücher.example\r\nSubject: Grüße\r\n\r\nhi\r\n";
  DsnRequest req = request_for(DsnKind::kFailure, {0});
  req.recipients[0].remote_mta = "mx.example.net";
  auto dsn = build_dsn(env, message, req);
  ASSERT_TRUE(dsn.has_value());
  EXPECT_TRUE(dsn->needs_8bitmime);
  EXPECT_TRUE(dsn->needs_smtputf8);  // the To:/RCPT TO address is UTF-8
  EXPECT_EQ(dsn->recipient, env.mail_from);
  auto v = python_view(dsn->content);
  ASSERT_EQ(v["exit"], "0") << v["error"];
  EXPECT_EQ(v["report_type"], "global-delivery-status");
  EXPECT_EQ(v["part2.type"], "message/global-delivery-status");
  EXPECT_EQ(v["part2.cte"], "8bit");
  EXPECT_EQ(v["part3.type"], "message/global");
  EXPECT_EQ(v["part1.charset"], "utf-8");
  EXPECT_EQ(v["rcpt0.Final-Recipient"], "utf-8; 用户@example.net");
  EXPECT_EQ(v["rcpt0.Original-Recipient"], "utf-8; 用户@example.net");
  EXPECT_EQ(v["rcpt0.Diagnostic-Code"], "smtp; 550 5.1.1 unknown user 用户");
  EXPECT_EQ(v["returned.subject"], "Grüße");

  // Same addresses in ASCII, SMTPUTF8 set, ASCII headers: the classic types suffice.
  env.mail_from = "a@example.com";
  env.recipients[0].address = env.recipients[0].orcpt = "u@example.net";
  env.recipients[0].last_reply = "550 5.1.1 unknown";
  auto ascii = build_dsn(env, "Subject: hi\r\n\r\nx\r\n", req);
  ASSERT_TRUE(ascii.has_value());
  EXPECT_FALSE(ascii->needs_8bitmime);
  EXPECT_FALSE(ascii->needs_smtputf8);
  EXPECT_NE(ascii->content.find("report-type=delivery-status"), std::string::npos);
}

TEST(Dsn, HostileRepliesCannotInjectFieldsOrBoundaries) {
  REQUIRE_PYTHON();
  Envelope env = two_recipient_envelope();
  env.recipients[0].last_reply = "550 5.1.1 nope\r\nAction: delivered\r\n\r\nFinal-Recipient: rfc822; x@y\x01";
  env.recipients[0].last_reply += std::string(3000, 'A');
  auto first = build_dsn(env, kMessage, request_for(DsnKind::kFailure, {0}));
  ASSERT_TRUE(first.has_value());
  auto v = python_view(first->content);
  ASSERT_EQ(v["exit"], "0") << v["error"];
  EXPECT_EQ(v["recipients"], "1");
  EXPECT_EQ(v["rcpt0.Action"], "failed");
  EXPECT_TRUE(v["rcpt0.Diagnostic-Code"].starts_with("X-tern; 550 5.1.1 nope Action: delivered Final-Recipient"));
  EXPECT_LE(std::stoi(v["max_line"]), 998);

  // The original contains the boundary the report would use: another is chosen.
  auto ct = first->content.find("boundary=\"");
  ASSERT_NE(ct, std::string::npos);
  std::string boundary = first->content.substr(ct + 10, first->content.find('"', ct + 10) - ct - 10);
  std::string tricky = kMessage + "--" + boundary + "\r\nContent-Type: text/plain\r\n\r\nforged\r\n";
  auto second = build_dsn(env, tricky, request_for(DsnKind::kFailure, {0}));
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->content.find("boundary=\"" + boundary + "\""), std::string::npos);
  EXPECT_TRUE(second->returned_full);
  auto v2 = python_view(second->content);
  ASSERT_EQ(v2["exit"], "0") << v2["error"];
  EXPECT_EQ(v2["parts"], "3");
  EXPECT_NE(v2["returned.body"].find("forged"), std::string::npos);
}

TEST(Dsn, ExpiredRecipientQuotesTheLastReplyAsOurOwnDiagnostic) {
  Envelope env = two_recipient_envelope();
  env.recipients[0].last_reply = "message expired; last error: 451 4.4.1 connection timed out";
  env.recipients[1].last_reply = "message expired";
  DsnRequest req = request_for(DsnKind::kFailure, {0, 1});
  req.recipients[0].remote_mta = "mx1.example.net";
  auto dsn = build_dsn(env, kMessage, req);
  ASSERT_TRUE(dsn.has_value());
  // Our text quoting a reply is not an "smtp" diagnostic (RFC 3461 §9.2).
  EXPECT_NE(dsn->content.find("Status: 4.4.1\r\nRemote-MTA: dns; mx1.example.net\r\n"
                              "Diagnostic-Code: X-tern; message expired; last error: 451 4.4.1 connection\r\n"
                              " timed out\r\n"),
            std::string::npos)
      << dsn->content;
  EXPECT_NE(dsn->content.find("Action: failed\r\nStatus: 4.4.7\r\nDiagnostic-Code: X-tern; message expired\r\n"),
            std::string::npos);
}

TEST(Dsn, BareLineFeedsBecomeCrlf) {
  REQUIRE_PYTHON();
  Envelope env = two_recipient_envelope();
  auto dsn = build_dsn(env, "Subject: lf\n\nline\nlast", request_for(DsnKind::kFailure, {0}));
  ASSERT_TRUE(dsn.has_value());
  auto v = python_view(dsn->content);
  ASSERT_EQ(v["exit"], "0") << v["error"];  // the checker rejects bare LF
  EXPECT_EQ(v["returned.body"], "line\r\nlast\r\n");
}

}  // namespace
}  // namespace tern::queue
