// Unit tests for access maps: parsing (every error names file:line), lookup
// order (address, @domain and parents, CIDR longest prefix, regex), the
// verdicts, and reloading when the file changes.
#include "policy/access_map.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "test_support.h"

namespace tern::policy {
namespace {

using testing::ip;
using Action = Verdict::Action;

AccessMap parse_ok(std::string_view text, AccessMapKind kind) {
  auto map = AccessMap::parse(text, kind, "test");
  EXPECT_TRUE(map.has_value()) << (map ? "" : map.error().text);
  return map ? std::move(*map) : AccessMap{};
}

std::string parse_error(std::string_view text, AccessMapKind kind) {
  auto map = AccessMap::parse(text, kind, "/etc/tern/map");
  return map ? "<parsed>" : map.error().text;
}

TEST(AccessMapParse, ErrorsNameFileAndLine) {
  auto s = AccessMapKind::kSender;
  auto r = AccessMapKind::kRecipient;
  EXPECT_EQ(parse_error("# c\n\na@b.test\n", s), "/etc/tern/map:3: missing action after 'a@b.test'");
  EXPECT_EQ(parse_error("a@b.test MAYBE\n", s),
            "/etc/tern/map:1: unknown action 'MAYBE' (expected OK, REJECT or DISCARD)");
  EXPECT_EQ(parse_error("a@b.test OK extra\n", s), "/etc/tern/map:1: unexpected text after OK");
  EXPECT_EQ(parse_error("ok@x.test OK\nnotakey REJECT\n", s),
            "/etc/tern/map:2: bad key 'notakey' (expected user@domain, @domain, IP or CIDR)");
  EXPECT_EQ(parse_error("/x/ OK\n", s), "/etc/tern/map:1: regex keys are only allowed in recipient_access");
  EXPECT_EQ(parse_error("10.0.0.0/8 OK\n", r), "/etc/tern/map:1: IP/CIDR keys are only allowed in sender_access");
  EXPECT_EQ(parse_error("a@b.test DISCARD\n", r), "/etc/tern/map:1: DISCARD is only allowed in sender_access");
  EXPECT_EQ(parse_error("/(/ OK\n", r).rfind("/etc/tern/map:1: bad regex /(/: ", 0), 0u);
  EXPECT_EQ(parse_error("// OK\n", r), "/etc/tern/map:1: regex key must be written /pattern/");
  EXPECT_EQ(parse_error("@ OK\n", r), "/etc/tern/map:1: bad domain key '@'");
  EXPECT_EQ(parse_error(std::string(2000, 'a') + " OK\n", r), "/etc/tern/map:1: line too long");
  EXPECT_EQ(parse_error("a@b.test REJECT bad\x01text\n", s), "/etc/tern/map:1: control characters in REJECT text");
}

TEST(AccessMapParse, CommentsCaseAndCrlf) {
  auto map = parse_ok("# comment\r\n  \r\nA@B.test   reject   Go away now\r\n@X.test ok\r\n", AccessMapKind::kSender);
  EXPECT_EQ(map.size(), 2u);
  auto e = map.lookup("a@b.TEST");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->action, AccessEntry::Action::kReject);
  EXPECT_EQ(e->text, "Go away now");
  EXPECT_EQ(e->line, 3);
}

TEST(AccessMapLookup, SenderOrder) {
  auto map = parse_ok(
      "boss@spam.test OK\n"
      "@spam.test REJECT No spam\n"
      "@example.org DISCARD\n"
      "192.0.2.0/24 REJECT net\n"
      "192.0.2.7 OK\n"
      "2001:db8::/32 REJECT v6\n",
      AccessMapKind::kSender);
  EXPECT_EQ(map.lookup("boss@spam.test")->action, AccessEntry::Action::kOk);
  EXPECT_EQ(map.lookup("other@spam.test")->text, "No spam");
  EXPECT_EQ(map.lookup("a@mx.eu.example.org")->action, AccessEntry::Action::kDiscard);  // parent domain
  EXPECT_FALSE(map.lookup("a@notexample.org"));
  EXPECT_FALSE(map.lookup("a@else.test", ip("198.51.100.1")));
  EXPECT_EQ(map.lookup("a@else.test", ip("192.0.2.8"))->text, "net");
  EXPECT_EQ(map.lookup("a@else.test", ip("192.0.2.7"))->action, AccessEntry::Action::kOk);  // longest prefix
  EXPECT_EQ(map.lookup("a@else.test", ip("::ffff:192.0.2.7"))->action, AccessEntry::Action::kOk);
  EXPECT_EQ(map.lookup("", ip("2001:db8::5"))->text, "v6");  // null sender: IP entries only
  // The address beats the client IP.
  EXPECT_EQ(map.lookup("boss@spam.test", ip("192.0.2.8"))->action, AccessEntry::Action::kOk);
}

TEST(AccessMapLookup, RecipientRegex) {
  auto map = parse_ok(
      "/^postmaster@/ OK\n"
      "/^[0-9]+@numbers\\.test$/ REJECT No numbers\n"
      "/ with space/ REJECT spaced\n"
      "@closed.test REJECT Mailbox closed\n",
      AccessMapKind::kRecipient);
  EXPECT_EQ(map.lookup("PostMaster@closed.test")->text, "Mailbox closed");  // domain before regex
  EXPECT_EQ(map.lookup("postmaster@any.test")->action, AccessEntry::Action::kOk);
  EXPECT_EQ(map.lookup("12345@numbers.test")->text, "No numbers");
  EXPECT_FALSE(map.lookup("a12345@numbers.test"));
  EXPECT_EQ(map.lookup("\"x with space\"@a.test")->text, "spaced");
}

TEST(AccessMapCheck, Verdicts) {
  auto senders = parse_ok("@bad.test REJECT\n@worse.test REJECT Go away\n@ok.test OK\n@drop.test DISCARD\n",
                          AccessMapKind::kSender);
  Verdict v = senders.check("a@bad.test");
  EXPECT_EQ(v.action, Action::kReject);
  EXPECT_EQ(v.error().to_string(), "550 5.7.1 Sender address rejected: Access denied");
  EXPECT_EQ(v.explanation, "sender_access: line 1 '@bad.test' REJECT");
  EXPECT_EQ(senders.check("a@worse.test").text, "Sender address rejected: Go away");
  EXPECT_EQ(senders.check("a@ok.test").action, Action::kAccept);
  EXPECT_EQ(senders.check("a@drop.test").action, Action::kDiscard);
  EXPECT_EQ(senders.check("a@else.test").action, Action::kContinue);
  auto recipients = parse_ok("a@b.test REJECT\n", AccessMapKind::kRecipient);
  EXPECT_EQ(recipients.check("a@b.test").text, "Recipient address rejected: Access denied");
}

class TempFile {
 public:
  TempFile() {
    char tmpl[] = "/tmp/tern-access-XXXXXX";
    int fd = ::mkstemp(tmpl);
    ::close(fd);
    path_ = tmpl;
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  void write(const std::string& text) {
    std::ofstream out(path_ + ".new", std::ios::trunc);
    out << text;
    out.close();
    ::rename((path_ + ".new").c_str(), path_.c_str());  // a new inode: always seen as a change
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ReloadingAccessMap, ReloadsOnChangeKeepsOldOnError) {
  TempFile file;
  file.write("@a.test REJECT first\n");
  auto map = ReloadingAccessMap::open(file.path(), AccessMapKind::kSender, std::chrono::milliseconds(0));
  ASSERT_TRUE(map) << map.error().text;
  EXPECT_EQ((*map)->current()->lookup("x@a.test")->text, "first");
  file.write("@a.test REJECT second\n");
  EXPECT_EQ((*map)->current()->lookup("x@a.test")->text, "second");
  file.write("@a.test BROKEN\n");  // bad file: the previous map stays
  EXPECT_EQ((*map)->current()->lookup("x@a.test")->text, "second");
  file.write("@b.test OK\n");
  EXPECT_FALSE((*map)->current()->lookup("x@a.test"));
  EXPECT_TRUE((*map)->current()->lookup("x@b.test"));
}

TEST(ReloadingAccessMap, OpenFailsOnBadFile) {
  TempFile file;
  file.write("\nnonsense\n");
  auto map = ReloadingAccessMap::open(file.path(), AccessMapKind::kSender);
  ASSERT_FALSE(map);
  EXPECT_EQ(map.error().text, file.path() + ":2: missing action after 'nonsense'");
  EXPECT_FALSE(ReloadingAccessMap::open("/nonexistent/map", AccessMapKind::kSender));
}

}  // namespace
}  // namespace tern::policy
