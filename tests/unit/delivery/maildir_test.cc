// Tests for Maildir delivery: file placement and content, unique names,
// folder creation, path template expansion and traversal rejection, error
// classification, batch delivery, +detail folders and the Maildir transport.
#include "delivery/maildir.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <set>

#include "base/fs.h"
#include "delivery/local_transport.h"
#include "test_util.h"

namespace tern::delivery {
namespace {

using testing::list_files;
using testing::read_whole_file;
using testing::TempDir;

const std::string kMessage =
    "Received: from client.example.com by mx.example.org; Thu, 26 Nov 2026 14:30:00 +0000\r\n"
    "From: Bob <bob@example.com>\r\n"
    "Subject: hello\r\n"
    "\r\n"
    "Hi Alice,\r\n"
    ".leading dot stays single in a Maildir\r\n";

LocalDelivery alice() { return {"bob@example.com", "Alice+News@Example.org", "Alice", "Example.org", "News"}; }

int mode_of(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

TEST(Maildir, DeliversIntoNewWithHeadersAndLfEndings) {
  TempDir tmp;
  MaildirDeliverer deliverer({tmp / "mail/{domain}/{user}", "mx.example.org"});
  auto path = deliverer.deliver(alice(), kMessage);
  ASSERT_TRUE(path) << path.error().to_string();

  std::string maildir = tmp / "mail/example.org/alice";
  EXPECT_EQ(fs::dirname(*path), maildir + "/new");
  auto files = list_files(maildir + "/new");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_TRUE(list_files(maildir + "/tmp").empty()) << "tmp entry must be removed";
  EXPECT_TRUE(list_files(maildir + "/cur").empty());

  std::string stored = read_whole_file(*path);
  EXPECT_EQ(stored.find('\r'), std::string::npos);
  EXPECT_EQ(stored.rfind("Return-Path: <bob@example.com>\nDelivered-To: Alice+News@Example.org\nReceived: ", 0), 0u)
      << stored;
  EXPECT_NE(stored.find("\n\nHi Alice,\n.leading dot"), std::string::npos);
  // Name: <sec>.M<usec>P<pid>Q<n>.<host>,S=<size>
  EXPECT_NE(files[0].find(".M"), std::string::npos);
  EXPECT_NE(files[0].find("P" + std::to_string(::getpid()) + "Q"), std::string::npos);
  EXPECT_NE(files[0].find(".mx.example.org,S=" + std::to_string(stored.size())), std::string::npos) << files[0];
}

TEST(Maildir, MaildirRemovedBetweenDeliveriesIsMadeAgain) {
  TempDir tmp;
  MaildirDeliverer deliverer({tmp / "{user}", "h"});
  ASSERT_TRUE(deliverer.deliver(alice(), kMessage));
  // The deliverer remembers the Maildir as ready; the mailbox goes away
  // (a user deleted, an administrator moving things), then mail comes.
  std::filesystem::remove_all(tmp / "alice");
  auto again = deliverer.deliver(alice(), kMessage);
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(list_files(tmp / "alice/new").size(), 1u);
  EXPECT_TRUE(list_files(tmp / "alice/tmp").empty());
  // Only new/ removed: the link fails, the Maildir is checked and repaired.
  std::filesystem::remove_all(tmp / "alice/new");
  auto third = deliverer.deliver(alice(), kMessage);
  ASSERT_TRUE(!third || list_files(tmp / "alice/new").size() == 1u);
  auto fourth = deliverer.deliver(alice(), kMessage);
  ASSERT_TRUE(fourth) << fourth.error().to_string();
  EXPECT_EQ(fs::dirname(*fourth), tmp / "alice/new");
  EXPECT_TRUE(list_files(tmp / "alice/tmp").empty());
}

TEST(Maildir, CreatesMissingFoldersWithModes) {
  TempDir tmp;
  MaildirDeliverer deliverer({tmp / "a/b/{domain}/{user}/Maildir", "h"});
  ASSERT_TRUE(deliverer.deliver(alice(), kMessage));
  std::string maildir = tmp / "a/b/example.org/alice/Maildir";
  EXPECT_EQ(mode_of(maildir) & 0777, 0700);
  for (const char* sub : {"/tmp", "/new", "/cur"}) EXPECT_EQ(mode_of(maildir + sub) & 0777, 0700) << sub;
  EXPECT_EQ(mode_of(tmp / "a/b/example.org") & 0700, 0700);
  EXPECT_EQ(mode_of(tmp / "a/b/example.org/alice") & 0755, 0755);  // parents 0755 (modulo umask)
}

// 1000 messages into one Maildir, mostly in batches (names generated within
// the same microsecond must still differ) and some one at a time; batches
// keep the test fast because the files share one syncfs.
TEST(Maildir, UniqueNamesAcrossThousandDeliveries) {
  TempDir tmp("/dev/shm");
  MaildirDeliverer deliverer({tmp / "{user}", "host/with:odd"});
  std::set<std::string> paths;
  const std::vector<LocalDelivery> batch(95, alice());
  for (int round = 0; round < 10; ++round) {
    for (auto& r : deliverer.deliver_batch(batch, "Subject: batch\r\n\r\nx\r\n")) {
      ASSERT_TRUE(r) << r.error().to_string();
      paths.insert(*r);
    }
    for (int i = 0; i < 5; ++i) {
      auto p = deliverer.deliver(alice(), "Subject: single\r\n\r\nx\r\n");
      ASSERT_TRUE(p) << p.error().to_string();
      paths.insert(*p);
    }
  }
  EXPECT_EQ(paths.size(), 1000u);
  auto files = list_files(tmp / "alice/new");
  EXPECT_EQ(files.size(), 1000u);
  EXPECT_TRUE(list_files(tmp / "alice/tmp").empty());
  // '/' and ':' in the host name are escaped (maildir(5)).
  EXPECT_NE(files[0].find(".host\\057with\\072odd,S="), std::string::npos) << files[0];
}

TEST(Maildir, UniqueNameFormat) {
  MaildirDeliverer deliverer({"/x/{user}", "mx"});
  std::string a = deliverer.unique_name();
  std::string b = deliverer.unique_name();
  EXPECT_NE(a, b);
  EXPECT_NE(a.find(".M"), std::string::npos);
  EXPECT_EQ(a.substr(a.size() - 3), ".mx");
}

TEST(Maildir, TemplateExpansion) {
  LocalDelivery d = alice();
  EXPECT_EQ(*expand_maildir_path("/var/mail/{domain}/{user}", d), "/var/mail/example.org/alice");
  EXPECT_EQ(*expand_maildir_path("/home/{user}/Maildir", d), "/home/alice/Maildir");
  EXPECT_EQ(*expand_maildir_path("/m/{local}@{domain}", d), "/m/Alice+News@example.org");
  d.detail.clear();
  EXPECT_EQ(*expand_maildir_path("/m/{local}", d), "/m/Alice");
}

TEST(Maildir, TemplateValidation) {
  EXPECT_TRUE(validate_maildir_template("/var/mail/{domain}/{user}"));
  for (const char* bad : {"var/mail/{user}", "", "/m/{usr}", "/m/{user", "/m/user}", "/m/../{user}"}) {
    auto st = validate_maildir_template(bad);
    ASSERT_FALSE(st) << bad;
    EXPECT_EQ(st.error().enhanced, "4.3.5") << bad;
    EXPECT_TRUE(st.error().transient());
  }
  TempDir tmp;
  MaildirDeliverer deliverer({tmp / "{nope}", "h"});
  auto r = deliverer.deliver(alice(), kMessage);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, 451);
}

TEST(Maildir, RejectsPathTraversalPermanently) {
  TempDir tmp;
  MaildirDeliverer deliverer({tmp / "mail/{domain}/{user}", "h"});
  struct Case {
    const char* user;
    const char* domain;
  } cases[] = {{"..", "example.org"},    {".", "example.org"},     {"../../etc", "example.org"},
               {"a/b", "example.org"},   {".hidden", "example.org"}, {"", "example.org"},
               {"alice", ".."},          {"alice", "example.org/../../x"}, {"al\nice", "example.org"},
               {"alice", ""}};
  for (const auto& c : cases) {
    LocalDelivery d{"s@x", "rcpt@x", c.user, c.domain, ""};
    auto r = deliverer.deliver(d, kMessage);
    ASSERT_FALSE(r) << c.user << "@" << c.domain;
    EXPECT_EQ(r.error().code, 550);
    EXPECT_EQ(r.error().enhanced, "5.1.1");
    EXPECT_TRUE(r.error().permanent());
  }
  // Nothing was created anywhere.
  EXPECT_FALSE(fs::exists(tmp / "mail"));
  // {local} is validated too: the detail cannot smuggle a slash in.
  MaildirDeliverer local_deliverer({tmp / "m/{local}", "h"});
  LocalDelivery d{"s@x", "r@x", "alice", "example.org", "x/../../y"};
  EXPECT_FALSE(local_deliverer.deliver(d, kMessage));
}

TEST(Maildir, ObstructedMaildirIsTransient) {
  TempDir tmp;
  MaildirDeliverer deliverer({tmp / "{user}", "h"});
  ASSERT_TRUE(fs::write_file_durable(tmp / "alice", "not a directory"));
  auto r = deliverer.deliver(alice(), kMessage);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, 451);
  EXPECT_EQ(r.error().enhanced, "4.3.0");
}

// EACCES must be transient. Root ignores permission bits, so when running as
// root the delivery happens in a child process that has dropped to nobody.
TEST(Maildir, UnwritableDirectoryIsTransient) {
  TempDir tmp;
  std::string root = tmp / "ro";
  ASSERT_EQ(::mkdir(root.c_str(), 0755), 0);
  MaildirDeliverer deliverer({root + "/{user}", "h"});
  if (::geteuid() != 0) {
    ASSERT_EQ(::chmod(root.c_str(), 0555), 0);
    auto r = deliverer.deliver(alice(), kMessage);
    ::chmod(root.c_str(), 0755);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, 451);
    EXPECT_EQ(r.error().enhanced, "4.3.0");
    EXPECT_NE(r.error().text.find("Permission denied"), std::string::npos) << r.error().text;
    return;
  }
  ASSERT_EQ(::chmod(tmp.path().c_str(), 0755), 0);  // mkdtemp makes it 0700
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
    auto r = deliverer.deliver(alice(), kMessage);
    if (r) ::_exit(11);
    bool expected = r.error().code == 451 && r.error().enhanced == "4.3.0" &&
                    r.error().text.find("Permission denied") != std::string::npos;
    ::_exit(expected ? 0 : 12);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: could not drop privileges, 11: delivery succeeded, 12: wrong error";
}

TEST(Maildir, BatchDeliversInOrderWithPerRecipientErrors) {
  TempDir tmp;
  MaildirDeliverer deliverer({tmp / "{domain}/{user}", "h"});
  std::vector<LocalDelivery> batch = {
      {"s@x", "alice@example.org", "alice", "example.org", ""},
      {"s@x", "evil@example.org", "../evil", "example.org", ""},
      {"s@x", "bob@example.net", "bob", "example.net", ""},
      {"s@x", "carol@example.org", "carol", "example.org", ""},
  };
  auto results = deliverer.deliver_batch(batch, kMessage);
  ASSERT_EQ(results.size(), 4u);
  ASSERT_TRUE(results[0]);
  ASSERT_FALSE(results[1]);
  EXPECT_EQ(results[1].error().code, 550);
  ASSERT_TRUE(results[2]);
  ASSERT_TRUE(results[3]);
  EXPECT_EQ(fs::dirname(*results[2]), tmp / "example.net/bob/new");
  EXPECT_EQ(list_files(tmp / "example.org/alice/new").size(), 1u);
  EXPECT_EQ(list_files(tmp / "example.org/carol/new").size(), 1u);
  EXPECT_TRUE(list_files(tmp / "example.org/carol/tmp").empty());
  // Each copy names its own recipient.
  EXPECT_NE(read_whole_file(*results[3]).find("Delivered-To: carol@example.org\n"), std::string::npos);
}

TEST(Maildir, LargeBatchBeyondOneChunk) {
  TempDir tmp;
  MaildirDeliverer deliverer({tmp / "{user}", "h"});
  std::vector<LocalDelivery> batch;
  for (int i = 0; i < 140; ++i) batch.push_back({"s@x", "u@x", "u" + std::to_string(i % 7), "x", ""});
  auto results = deliverer.deliver_batch(batch, kMessage);
  ASSERT_EQ(results.size(), 140u);
  size_t total = 0;
  for (int u = 0; u < 7; ++u) total += list_files(tmp / ("u" + std::to_string(u)) + "/new").size();
  EXPECT_EQ(total, 140u);
  for (const auto& r : results) EXPECT_TRUE(r);
}

TEST(Maildir, DetailFolderUsedOnlyWhenItExists) {
  TempDir tmp;
  MaildirOptions options{tmp / "{user}", "h", true};
  MaildirDeliverer deliverer(options);
  LocalDelivery d{"s@x", "alice+lists@x", "alice", "x", "lists"};
  // No .lists folder yet: INBOX.
  auto first = deliverer.deliver(d, kMessage);
  ASSERT_TRUE(first);
  EXPECT_EQ(fs::dirname(*first), tmp / "alice/new");
  for (const char* sub : {"", "/tmp", "/new", "/cur"}) {
    ASSERT_EQ(::mkdir((tmp / "alice/.lists" + std::string(sub)).c_str(), 0700), 0);
  }
  auto second = deliverer.deliver(d, kMessage);
  ASSERT_TRUE(second);
  EXPECT_EQ(fs::dirname(*second), tmp / "alice/.lists/new");
  // A detail that is not a safe folder name is ignored, not followed.
  d.detail = "../alice";
  auto third = deliverer.deliver(d, kMessage);
  ASSERT_TRUE(third);
  EXPECT_EQ(fs::dirname(*third), tmp / "alice/new");
  // With the option off the folder is ignored.
  MaildirDeliverer plain({tmp / "{user}", "h"});
  d.detail = "lists";
  EXPECT_EQ(fs::dirname(*plain.deliver(d, kMessage)), tmp / "alice/new");
}

TEST(Maildir, JunkGoesToJunkFolderCreatedOnDemand) {
  TempDir tmp;
  MaildirDeliverer deliverer({tmp / "{user}", "h"});
  LocalDelivery d{"s@x", "alice@x", "alice", "x", ""};
  d.junk = true;
  auto first = deliverer.deliver(d, kMessage);
  ASSERT_TRUE(first) << first.error().text;
  EXPECT_EQ(fs::dirname(*first), tmp / "alice/.Junk/new");
  EXPECT_TRUE(list_files(tmp / "alice/new").empty());
  struct stat st {};
  EXPECT_EQ(::stat((tmp / "alice/cur").c_str(), &st), 0);  // the INBOX exists too
  EXPECT_EQ(::stat((tmp / "alice/.Junk/maildirfolder").c_str(), &st), 0);
  auto second = deliverer.deliver(d, kMessage);
  ASSERT_TRUE(second);
  EXPECT_EQ(list_files(tmp / "alice/.Junk/new").size(), 2u);
  d.junk = false;
  EXPECT_EQ(fs::dirname(*deliverer.deliver(d, kMessage)), tmp / "alice/new");
}

TEST(MaildirTransport, ResultsPerRecipientAndDeduplication) {
  TempDir tmp;
  MaildirTransport transport({tmp / "{domain}/{user}", "h"});
  std::vector<LocalDelivery> rcpts = {
      {"", "postmaster@example.org", "alice", "example.org", ""},
      {"", "alice@example.org", "alice", "example.org", ""},
      {"", "bad@example.org", "a/b", "example.org", ""},
  };
  auto results = transport.deliver("bob@example.com", rcpts, kMessage, false);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].recipient, "postmaster@example.org");
  EXPECT_EQ(results[0].code, 250);
  EXPECT_EQ(results[0].enhanced, "2.0.0");
  EXPECT_TRUE(results[0].delivered());
  EXPECT_EQ(results[1].recipient, "alice@example.org");
  EXPECT_TRUE(results[1].delivered());
  EXPECT_EQ(results[2].code, 550);
  EXPECT_FALSE(results[2].transient);
  // Two aliases of one mailbox: stored once; sender comes from the call.
  auto files = list_files(tmp / "example.org/alice/new");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(read_whole_file(tmp / "example.org/alice/new/" + files[0]).rfind("Return-Path: <bob@example.com>\n", 0), 0u);
}

}  // namespace
}  // namespace tern::delivery
