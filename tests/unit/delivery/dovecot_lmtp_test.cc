// End-to-end LMTP test against a real Dovecot (Debian packages dovecot-core
// and dovecot-lmtpd). Starts a private Dovecot instance in a temporary
// directory (own base_dir, unix LMTP socket, passwd-file users, Maildir
// storage), delivers one message to a known and an unknown user, and checks
// the per-recipient outcome and the resulting Maildir. Fails loudly if
// Dovecot is missing: the LMTP client must be verified against the real thing.
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "base/fs.h"
#include "delivery/lmtp_client.h"
#include "delivery/local_transport.h"
#include "test_util.h"

namespace tern::delivery {
namespace {

using namespace std::chrono_literals;
using testing::list_files;
using testing::read_whole_file;
using testing::TempDir;

constexpr const char* kDovecot = "/usr/sbin/dovecot";

class DovecotInstance {
 public:
  explicit DovecotInstance(const TempDir& dir) : dir_(dir) {}
  ~DovecotInstance() { stop(); }

  std::string socket_path() const { return dir_ / "run/lmtp"; }
  std::string mail_root() const { return dir_ / "mail"; }
  std::string log() const { return read_whole_file(dir_ / "dovecot.log"); }

  // Writes the config and starts `dovecot -F`; returns "" or an explanation.
  std::string start() {
    // Dovecot refuses to deliver as uid 0; as root the mailboxes belong to
    // nobody, otherwise to the current user.
    uid_t uid = ::geteuid() == 0 ? 65534 : ::geteuid();
    gid_t gid = ::geteuid() == 0 ? 65534 : ::getegid();
    for (const char* sub : {"run", "state", "mail"}) std::filesystem::create_directories(dir_ / sub);
    if (::chown(mail_root().c_str(), uid, gid) != 0) return "chown mail dir failed";
    ::chmod(dir_.path().c_str(), 0755);  // the delivering uid must reach mail/

    std::ofstream users(dir_ / "users");
    users << "alice@example.org::" << uid << ":" << gid << "::" << (dir_ / "mail/example.org/alice") << "::\n";
    users.close();

    std::string internal_user = "dovecot", login_user = "dovenull";
    if (::geteuid() != 0) {
      passwd* pw = ::getpwuid(::geteuid());
      internal_user = login_user = pw ? pw->pw_name : "nobody";
    }
    std::ofstream conf(dir_ / "dovecot.conf");
    conf << "protocols = lmtp\n"
         << "ssl = no\n"
         << "listen = 127.0.0.1\n"
         << "base_dir = " << (dir_ / "run") << "\n"
         << "state_dir = " << (dir_ / "state") << "\n"
         << "instance_name = tern-test-" << ::getpid() << "\n"
         << "log_path = " << (dir_ / "dovecot.log") << "\n"
         << "info_log_path = " << (dir_ / "dovecot.log") << "\n"
         << "default_internal_user = " << internal_user << "\n"
         << "default_login_user = " << login_user << "\n"
         << "first_valid_uid = 1\n"
         << "mail_location = maildir:" << mail_root() << "/%d/%n\n"
         << "passdb {\n  driver = passwd-file\n  args = " << (dir_ / "users") << "\n}\n"
         << "userdb {\n  driver = passwd-file\n  args = " << (dir_ / "users") << "\n}\n"
         << "service lmtp {\n  unix_listener lmtp {\n    mode = 0666\n  }\n}\n"
         << "service anvil {\n  chroot =\n}\n";
    conf.close();

    std::string conf_path = dir_ / "dovecot.conf";
    pid_ = ::fork();
    if (pid_ < 0) return "fork failed";
    if (pid_ == 0) {
      ::execl(kDovecot, kDovecot, "-F", "-c", conf_path.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 100; ++i) {
      if (fs::exists(socket_path())) return "";
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return "dovecot exited early; log:\n" + log();
      }
      std::this_thread::sleep_for(50ms);
    }
    return "dovecot LMTP socket did not appear; log:\n" + log();
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(50ms);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  const TempDir& dir_;
  pid_t pid_ = -1;
};

TEST(DovecotLmtp, DeliversPerRecipient) {
  ASSERT_EQ(::access(kDovecot, X_OK), 0)
      << kDovecot << " not found: install the Debian packages dovecot-core and dovecot-lmtpd to run this test";
  ASSERT_TRUE(fs::exists("/usr/lib/dovecot/lmtp")) << "dovecot-lmtpd is not installed (/usr/lib/dovecot/lmtp missing)";

  TempDir dir;
  DovecotInstance dovecot(dir);
  std::string problem = dovecot.start();
  ASSERT_EQ(problem, "");

  LmtpOptions options;
  options.endpoint = "unix:" + dovecot.socket_path();
  options.hostname = "mx.example.org";
  options.command_timeout = 10s;
  options.data_timeout = 10s;
  LmtpTransport transport(options);

  const std::string content =
      "Received: from client.example.com by mx.example.org; Thu, 26 Nov 2026 14:30:00 +0000\r\n"
      "From: Bob <bob@example.com>\r\n"
      "To: Alice <alice@example.org>\r\n"
      "Subject: via LMTP\r\n"
      "Message-ID: <lmtp-test@example.com>\r\n"
      "\r\n"
      "Hello Alice.\r\n"
      ".A line starting with a dot.\r\n";
  std::vector<LocalDelivery> rcpts = {
      {"bob@example.com", "alice@example.org", "alice", "example.org", ""},
      {"bob@example.com", "nobody-here@example.org", "nobody-here", "example.org", ""},
  };
  auto results = transport.deliver("bob@example.com", rcpts, content, false);
  ASSERT_EQ(results.size(), 2u);

  EXPECT_EQ(results[0].recipient, "alice@example.org");
  EXPECT_EQ(results[0].code, 250) << results[0].text << "\n" << dovecot.log();
  EXPECT_TRUE(results[0].delivered());

  EXPECT_EQ(results[1].recipient, "nobody-here@example.org");
  EXPECT_GE(results[1].code, 500) << results[1].text;
  EXPECT_LT(results[1].code, 600);
  EXPECT_EQ(results[1].enhanced, "5.1.1");
  EXPECT_FALSE(results[1].transient);

  std::string new_dir = dovecot.mail_root() + "/example.org/alice/new";
  auto files = list_files(new_dir);
  ASSERT_EQ(files.size(), 1u) << dovecot.log();
  std::string stored = read_whole_file(new_dir + "/" + files[0]);
  EXPECT_NE(stored.find("Subject: via LMTP"), std::string::npos) << stored;
  EXPECT_NE(stored.find("Return-Path: <bob@example.com>"), std::string::npos) << stored;  // added by Dovecot
  // Dot-stuffing was undone by the server: exactly one leading dot.
  EXPECT_NE(stored.find("\n.A line starting with a dot."), std::string::npos) << stored;
  EXPECT_EQ(stored.find("..A line"), std::string::npos) << stored;
  EXPECT_FALSE(fs::exists(dovecot.mail_root() + "/example.org/nobody-here"));
}

}  // namespace
}  // namespace tern::delivery
