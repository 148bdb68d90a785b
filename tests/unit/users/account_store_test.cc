// Tests for the accounts file: parsing, error locations, lookups, change
// detection and the durable add/remove/list admin operations.
#include "users/account_store.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "base/fs.h"
#include "test_util.h"

namespace tern::users {
namespace {

using testing::TempDir;

std::string line_for(const std::string& address, const std::string& password) {
  return address + ":" + format_credential(derive_credential(password, 4096, "fixed-salt")) + "\n";
}

TEST(AccountStore, ParsesCommentsBlankLinesAndAccounts) {
  std::string text = "# accounts\n\n" + line_for("alice@example.test", "pw1") + "   # indented comment\n" +
                     line_for("Bob@Example.TEST", "pw2");
  auto store = AccountStore::parse(text, "accounts");
  ASSERT_TRUE(store) << store.error().text;
  EXPECT_EQ(store->size(), 2u);
  EXPECT_TRUE(store->exists("alice@example.test"));
  EXPECT_TRUE(store->exists("ALICE@example.test"));
  EXPECT_TRUE(store->exists("bob@example.test"));
  EXPECT_FALSE(store->exists("carol@example.test"));
  auto bob = store->find("BOB@EXAMPLE.TEST");
  ASSERT_TRUE(bob.has_value());
  EXPECT_TRUE(verify_password(*bob, "pw2"));
  EXPECT_EQ(store->addresses(), (std::vector<std::string>{"alice@example.test", "bob@example.test"}));
}

TEST(AccountStore, ErrorsNameOriginAndLine) {
  auto no_colon = AccountStore::parse("# c\n" + line_for("a@x.test", "p") + "garbage\n", "/etc/tern/accounts");
  ASSERT_FALSE(no_colon);
  EXPECT_EQ(no_colon.error().text.rfind("/etc/tern/accounts:3: ", 0), 0u) << no_colon.error().text;

  auto bad_address = AccountStore::parse("\n" + line_for("not an address", "p"), "f");
  ASSERT_FALSE(bad_address);
  EXPECT_EQ(bad_address.error().text.rfind("f:2: invalid address", 0), 0u) << bad_address.error().text;

  auto plaintext = AccountStore::parse("a@x.test:{PLAIN}secret\n", "f");
  ASSERT_FALSE(plaintext);
  EXPECT_EQ(plaintext.error().text.rfind("f:1: ", 0), 0u);
  EXPECT_NE(plaintext.error().text.find("plaintext"), std::string::npos);

  auto duplicate = AccountStore::parse(line_for("a@x.test", "p") + line_for("A@X.test", "q"), "f");
  ASSERT_FALSE(duplicate);
  EXPECT_EQ(duplicate.error().text.rfind("f:2: duplicate", 0), 0u) << duplicate.error().text;
}

TEST(AccountStore, LoadMissingFileFails) {
  TempDir dir;
  auto store = AccountStore::load(dir.file("nope"));
  ASSERT_FALSE(store);
  EXPECT_NE(store.error().text.find("nope"), std::string::npos);
}

TEST(AccountStore, AddRemoveListRoundTrip) {
  TempDir dir;
  std::string path = dir.file("accounts");
  ASSERT_TRUE(fs::write_file_durable(path, "# managed by tern-admin\n", 0600));

  ASSERT_TRUE(AccountStore::add(path, "alice@example.test", "alice pw", kMinIterations));
  ASSERT_TRUE(AccountStore::add(path, "Bob@Example.test", "bob pw", kMinIterations));

  auto dup = AccountStore::add(path, "ALICE@example.test", "other", kMinIterations);
  ASSERT_FALSE(dup);
  EXPECT_NE(dup.error().text.find("already exists"), std::string::npos);
  EXPECT_FALSE(AccountStore::add(path, "no-at-sign", "pw", kMinIterations));
  EXPECT_FALSE(AccountStore::add(path, "carol@example.test", "bad\npassword", kMinIterations));

  auto listed = AccountStore::list(path);
  ASSERT_TRUE(listed) << listed.error().text;
  EXPECT_EQ(*listed, (std::vector<std::string>{"alice@example.test", "bob@example.test"}));

  // The file keeps the comment, holds no password, and is private.
  auto text = fs::read_file(path);
  ASSERT_TRUE(text);
  EXPECT_EQ(text->rfind("# managed by tern-admin\n", 0), 0u);
  EXPECT_EQ(text->find("alice pw"), std::string::npos);
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto store = AccountStore::load(path);
  ASSERT_TRUE(store);
  EXPECT_TRUE(verify_password(*store->find("alice@example.test"), "alice pw"));
  EXPECT_FALSE(verify_password(*store->find("alice@example.test"), "bob pw"));

  ASSERT_TRUE(AccountStore::remove(path, "ALICE@EXAMPLE.TEST"));
  EXPECT_FALSE(AccountStore::remove(path, "alice@example.test"));
  listed = AccountStore::list(path);
  ASSERT_TRUE(listed);
  EXPECT_EQ(*listed, (std::vector<std::string>{"bob@example.test"}));
  text = fs::read_file(path);
  ASSERT_TRUE(text);
  EXPECT_EQ(text->rfind("# managed by tern-admin\n", 0), 0u);
}

TEST(AccountStore, AddCreatesMissingFile) {
  TempDir dir;
  std::string path = dir.file("accounts");
  ASSERT_TRUE(AccountStore::add(path, "a@x.test", "pw", kMinIterations));
  auto listed = AccountStore::list(path);
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->size(), 1u);
}

TEST(AccountStore, AddRefusesToRewriteABrokenFile) {
  TempDir dir;
  std::string path = dir.file("accounts");
  ASSERT_TRUE(fs::write_file_durable(path, "broken line\n"));
  auto st = AccountStore::add(path, "a@x.test", "pw", kMinIterations);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().text.find(":1:"), std::string::npos);
  auto text = fs::read_file(path);
  EXPECT_EQ(*text, "broken line\n");
}

TEST(AccountStore, ChangedOnDisk) {
  TempDir dir;
  std::string path = dir.file("accounts");
  ASSERT_TRUE(AccountStore::add(path, "a@x.test", "pw", kMinIterations));
  auto store = AccountStore::load(path);
  ASSERT_TRUE(store);
  EXPECT_FALSE(store->changed_on_disk());
  ASSERT_TRUE(AccountStore::add(path, "b@x.test", "pw", kMinIterations));  // replaces the file
  EXPECT_TRUE(store->changed_on_disk());
  EXPECT_FALSE(AccountStore().changed_on_disk());
}

TEST(AccountStore, DecoyCredentialIsStablePerAddress) {
  AccountStore store;
  Credential a = store.decoy_credential("ghost@x.test");
  EXPECT_EQ(a, store.decoy_credential("GHOST@x.test"));
  EXPECT_NE(a.salt, store.decoy_credential("other@x.test").salt);
  EXPECT_EQ(a.salt.size(), kDefaultSaltSize);
  EXPECT_EQ(a.iterations, kDefaultIterations);
}

}  // namespace
}  // namespace tern::users
