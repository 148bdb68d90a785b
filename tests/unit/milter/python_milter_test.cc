// Interoperability of MilterSession with a real libmilter-based milter:
// tests/integration/milters/policy_milter.py (python3-milter) is started
// with /usr/bin/python3 on a Unix socket, and tern's side is driven through
// whole SMTP transactions: reject and tempfail at RCPT, discard, added and
// changed headers, a replaced body, recipients removed and added, a changed
// sender, quarantine, and the macros and body bytes the milter received.
// Skipped when python3-milter is not installed (Debian package python3-milter).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <thread>

#include "milter/session.h"
#include "run_util.h"

namespace tern::milter {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;

using testing::run;
using testing::run_void;

class PythonMilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("/usr/bin/python3 -c 'import Milter' >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "python3-milter is not installed";
    }
    char tmpl[] = "/tmp/tern-pymilter-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    socket_ = dir_ + "/milter.sock";
    std::string script = std::string(TERN_SOURCE_DIR) + "/tests/integration/milters/policy_milter.py";
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      ::execl("/usr/bin/python3", "python3", script.c_str(), socket_.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // libmilter creates the socket once it listens.
    for (int i = 0; i < 200; ++i) {
      struct stat st;
      if (::stat(socket_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) return;
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "the python milter did not create " << socket_;
  }

  void TearDown() override {
    if (pid_ > 0) {
      // libmilter's SIGTERM handling waits for its worker threads; the test
      // milter keeps no state worth a clean stop.
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // A session through connect and HELO, with the macros an SMTP session sets.
  std::unique_ptr<MilterSession> open_session() {
    MilterOptions options;
    options.address = "unix:" + socket_;
    options.reply_timeout = 10s;
    auto session = std::make_unique<MilterSession>(io.get_executor(), options);
    session->set_macro("j", "mx.example.test");
    session->set_macro("{daemon_name}", "tern");
    session->set_macro("{client_addr}", "192.0.2.9");
    session->set_macro("{client_port}", "40001");
    session->set_macro("i", "QID0001");
    auto opened = run(io, session->open());
    EXPECT_TRUE(opened) << opened.error().to_string();
    ConnectInfo info{"client.example.org", Family::kInet, "192.0.2.9", 40001};
    auto connected = run(io, session->connect(info));
    EXPECT_TRUE(connected && connected->is_continue());
    auto greeted = run(io, session->helo("client.example.org"));
    EXPECT_TRUE(greeted && greeted->is_continue());
    return session;
  }

  // DATA, two headers, the body and the end of message.
  Result<EndOfMessage> send_message(MilterSession& session, const std::string& body) {
    auto data = run(io, session.data());
    if (!data) return data.error();
    EXPECT_TRUE(data->is_continue());
    EXPECT_TRUE(run(io, session.header("Subject", " hello"))->is_continue());
    EXPECT_TRUE(run(io, session.header("From", " <a@example.org>"))->is_continue());
    EXPECT_TRUE(run(io, session.end_of_headers())->is_continue());
    EXPECT_TRUE(run(io, session.body(body))->is_continue());
    return run(io, session.end_of_message());
  }

  const Modification* find(const EndOfMessage& eom, Modification::Kind kind, const std::string& name = "") {
    for (const auto& m : eom.modifications) {
      if (m.kind == kind && (name.empty() || m.name == name)) return &m;
    }
    return nullptr;
  }

  asio::io_context io;
  std::string dir_, socket_;
  pid_t pid_ = -1;
  const std::vector<std::string> no_args;
};

TEST_F(PythonMilterTest, RejectsAndTempfailsRecipients) {
  auto session = open_session();
  ASSERT_TRUE(run(io, session->mail_from("a@example.org", no_args))->is_continue());
  auto rejected = run(io, session->rcpt_to("reject-me@example.test", no_args));
  ASSERT_TRUE(rejected) << rejected.error().to_string();
  EXPECT_EQ(rejected->kind, Verdict::Kind::kReply);
  EXPECT_EQ(rejected->to_string(), "550 5.7.1 rejected by test milter");
  auto later = run(io, session->rcpt_to("tempfail@example.test", no_args));
  ASSERT_TRUE(later);
  EXPECT_EQ(later->kind, Verdict::Kind::kTempfail);
  EXPECT_EQ(later->code, 451);
  auto fine = run(io, session->rcpt_to("bob@example.test", no_args));
  ASSERT_TRUE(fine);
  EXPECT_TRUE(fine->is_continue());
  ASSERT_TRUE(run(io, session->abort_message()));
  run_void(io, session->quit());
}

TEST_F(PythonMilterTest, ModificationsAndWhatTheMilterSaw) {
  auto session = open_session();
  std::vector<std::string> args{"SIZE=2000"};
  ASSERT_TRUE(run(io, session->mail_from("a@example.org", args))->is_continue());
  for (const char* rcpt : {"addheader@example.test", "redirect@example.test", "chgfrom@example.test",
                           "rewrite@example.test", "quarantine@example.test"}) {
    auto v = run(io, session->rcpt_to(rcpt, no_args));
    ASSERT_TRUE(v) << v.error().to_string();
    ASSERT_TRUE(v->is_continue()) << rcpt;
  }
  std::string body;
  for (int i = 0; body.size() < 150000; ++i) body += "line " + std::to_string(i) + " of a long body\r\n";
  auto eom = send_message(*session, body);
  ASSERT_TRUE(eom) << eom.error().to_string();
  EXPECT_EQ(eom->verdict.kind, Verdict::Kind::kAccept);

  using K = Modification::Kind;
  const Modification* seen = find(*eom, K::kAddHeader, "X-Milter-Seen");
  ASSERT_NE(seen, nullptr);
  EXPECT_EQ(seen->value,
            "j=mx.example.test; client_addr=192.0.2.9; i=QID0001; mail_addr=a@example.org; headers=2; body=" +
                std::to_string(body.size()));
  const Modification* added = find(*eom, K::kAddHeader, "X-Test-Milter");
  ASSERT_NE(added, nullptr);
  EXPECT_EQ(added->value, "seen <addheader@example.test>");
  const Modification* deleted = find(*eom, K::kDeleteRecipient);
  ASSERT_NE(deleted, nullptr);
  EXPECT_EQ(deleted->address, "<redirect@example.test>");
  const Modification* rcpt = find(*eom, K::kAddRecipient);
  ASSERT_NE(rcpt, nullptr);
  EXPECT_EQ(rcpt->address, "<archive@example.test>");
  const Modification* sender = find(*eom, K::kChangeSender);
  ASSERT_NE(sender, nullptr);
  EXPECT_EQ(sender->address, "<bounces@example.test>");
  const Modification* subject = find(*eom, K::kChangeHeader, "Subject");
  ASSERT_NE(subject, nullptr);
  EXPECT_EQ(subject->index, 1u);
  EXPECT_EQ(subject->value, "[tagged] hello");
  const Modification* replaced = find(*eom, K::kReplaceBody);
  ASSERT_NE(replaced, nullptr);
  EXPECT_EQ(replaced->body, "replaced by the milter\r\n");
  const Modification* quarantine = find(*eom, K::kQuarantine);
  ASSERT_NE(quarantine, nullptr);
  EXPECT_EQ(quarantine->reason, "held for review");

  // A second message on the same milter connection.
  session->set_macro("i", "QID0002");
  ASSERT_TRUE(run(io, session->mail_from("c@example.org", no_args))->is_continue());
  ASSERT_TRUE(run(io, session->rcpt_to("bob@example.test", no_args))->is_continue());
  auto second = send_message(*session, "short\r\n");
  ASSERT_TRUE(second) << second.error().to_string();
  ASSERT_EQ(second->modifications.size(), 1u);
  EXPECT_EQ(second->modifications[0].value,
            "j=mx.example.test; client_addr=192.0.2.9; i=QID0002; mail_addr=c@example.org; headers=2; body=7");
  run_void(io, session->quit());
}

TEST_F(PythonMilterTest, Discards) {
  auto session = open_session();
  ASSERT_TRUE(run(io, session->mail_from("a@example.org", no_args))->is_continue());
  ASSERT_TRUE(run(io, session->rcpt_to("discard@example.test", no_args))->is_continue());
  auto eom = send_message(*session, "x\r\n");
  ASSERT_TRUE(eom) << eom.error().to_string();
  EXPECT_EQ(eom->verdict.kind, Verdict::Kind::kDiscard);
  EXPECT_TRUE(eom->modifications.empty());
  run_void(io, session->quit());
}

}  // namespace
}  // namespace tern::milter
