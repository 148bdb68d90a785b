// Interoperability of MilterSession with OpenDKIM (Debian package opendkim)
// configured as a signing milter: a message from an internal client with a
// From: in the signing domain comes back from end of message with a
// DKIM-Signature header to add, and the message with that header prepended
// verifies with the dkim Python module (RFC 6376) against the public key.
// Skipped when opendkim or python3-dkim is not installed.
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
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "milter/rewrite.h"
#include "milter/session.h"
#include "run_util.h"

namespace tern::milter {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;

using testing::run;
using testing::run_void;

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

class OpenDkimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access("/usr/sbin/opendkim", X_OK) != 0) GTEST_SKIP() << "opendkim is not installed";
    if (std::system("/usr/bin/python3 -c 'import dkim' >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "python3-dkim is not installed";
    }
    char tmpl[] = "/tmp/tern-opendkim-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    socket_ = dir_ + "/opendkim.sock";
    std::string key = dir_ + "/s1.private";
    std::string cmd = "openssl genrsa -out " + key + " 2048 2>/dev/null && openssl rsa -in " + key +
                      " -pubout -outform DER 2>/dev/null | base64 -w0 > " + dir_ + "/s1.public";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    std::ifstream pub(dir_ + "/s1.public");
    std::getline(pub, public_key_);
    ASSERT_FALSE(public_key_.empty());
    write_file(dir_ + "/opendkim.conf", "Mode s\nDomain example.test\nSelector s1\nKeyFile " + key +
                                            "\nSocket local:" + socket_ +
                                            "\nCanonicalization relaxed/relaxed\nSyslog no\nBackground no\n"
                                            "RequireSafeKeys no\nInternalHosts 127.0.0.1\nPidFile " +
                                            dir_ + "/opendkim.pid\n");
    std::string conf = dir_ + "/opendkim.conf";
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      ::execl("/usr/sbin/opendkim", "opendkim", "-f", "-x", conf.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 200; ++i) {
      struct stat st;
      if (::stat(socket_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) return;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL() << "opendkim exited at start (status " << status << ")";
      }
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "opendkim did not create " << socket_;
  }

  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  asio::io_context io;
  std::string dir_, socket_, public_key_;
  pid_t pid_ = -1;
};

TEST_F(OpenDkimTest, SignsAndTheSignatureVerifies) {
  MilterOptions options;
  options.address = "unix:" + socket_;
  MilterSession session(io.get_executor(), options);
  session.set_macro("j", "mx.example.test");
  session.set_macro("{daemon_name}", "tern");
  session.set_macro("i", "QIDDKIM1");
  session.set_macro("{client_addr}", "127.0.0.1");
  auto opened = run(io, session.open());
  ASSERT_TRUE(opened) << opened.error().to_string();
  ConnectInfo info{"localhost", Family::kInet, "127.0.0.1", 40002};
  ASSERT_TRUE(run(io, session.connect(info))->is_continue());
  ASSERT_TRUE(run(io, session.helo("localhost"))->is_continue());
  const std::vector<std::string> no_args;
  ASSERT_TRUE(run(io, session.mail_from("bob@example.test", no_args))->is_continue());
  ASSERT_TRUE(run(io, session.rcpt_to("alice@example.org", no_args))->is_continue());
  ASSERT_TRUE(run(io, session.data())->is_continue());

  const std::vector<std::pair<std::string, std::string>> headers = {
      {"From", " Bob <bob@example.test>"},
      {"To", " alice@example.org"},
      {"Subject", " signed by opendkim"},
      {"Date", " Thu, 26 Nov 2026 17:00:00 +0000"},
      {"Message-ID", " <dkim-test-1@example.test>"},
  };
  const std::string body = "Hello Alice,\r\n\r\nthis message is signed.\r\n";
  std::string message_headers;
  for (const auto& [name, value] : headers) {
    auto v = run(io, session.header(name, value));
    ASSERT_TRUE(v) << v.error().to_string();
    ASSERT_TRUE(v->is_continue());
    message_headers += name + ":" + value + "\r\n";
  }
  ASSERT_TRUE(run(io, session.end_of_headers())->is_continue());
  ASSERT_TRUE(run(io, session.body(body))->is_continue());
  auto eom = run(io, session.end_of_message());
  ASSERT_TRUE(eom) << eom.error().to_string();
  EXPECT_FALSE(eom->verdict.refuses());
  run_void(io, session.quit());

  const Modification* signature = nullptr;
  for (const auto& m : eom->modifications) {
    if ((m.kind == Modification::Kind::kInsertHeader || m.kind == Modification::Kind::kAddHeader) &&
        m.name == "DKIM-Signature") {
      signature = &m;
    }
  }
  ASSERT_NE(signature, nullptr) << "opendkim returned " << eom->modifications.size() << " modifications";
  EXPECT_NE(signature->value.find("d=example.test"), std::string::npos) << signature->value;
  EXPECT_NE(signature->value.find("s=s1"), std::string::npos);

  // The message as tern would spool it, the signature prepended (milter
  // values fold with bare LF; header_value_from_milter gives wire form).
  std::string signed_message =
      "DKIM-Signature:" + header_value_from_milter(signature->value) + "\r\n" + message_headers + "\r\n" + body;
  write_file(dir_ + "/signed.eml", signed_message);
  write_file(dir_ + "/verify.py",
             "import sys, dkim\n"
             "key = open(sys.argv[2]).read().strip()\n"
             "def dns(name, timeout=5):\n"
             "    assert name == b's1._domainkey.example.test.', name\n"
             "    return ('v=DKIM1; k=rsa; p=' + key).encode()\n"
             "sys.exit(0 if dkim.verify(open(sys.argv[1], 'rb').read(), dnsfunc=dns) else 1)\n");
  std::string verify = "/usr/bin/python3 " + dir_ + "/verify.py " + dir_ + "/signed.eml " + dir_ + "/s1.public";
  EXPECT_EQ(std::system(verify.c_str()), 0) << signed_message;
  // And the check has teeth: a changed body fails.
  write_file(dir_ + "/signed.eml", signed_message + "tampered\r\n");
  EXPECT_NE(std::system((verify + " 2>/dev/null").c_str()), 0);
}

}  // namespace
}  // namespace tern::milter
