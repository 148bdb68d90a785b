// Tests for Directory: local recipient checks, alias expansion (details,
// multiple targets, catch-all, loops, bounds, forwards), postmaster and
// may_send_as.
#include "users/directory.h"

#include <gtest/gtest.h>

namespace tern::users {
namespace {

std::shared_ptr<const AccountStore> accounts(std::initializer_list<const char*> names) {
  auto store = std::make_shared<AccountStore>();
  Credential c;  // keys are irrelevant for resolution
  for (const char* n : names) store->insert(n, c);
  return store;
}

std::shared_ptr<const Aliases> aliases(const char* text) {
  auto a = Aliases::parse(text, "aliases");
  EXPECT_TRUE(a) << a.error().text;
  return std::make_shared<const Aliases>(a ? std::move(a).value() : Aliases());
}

// Destinations as compact strings: "mbox:alice@example.test+news", "fwd:x@y".
std::vector<std::string> flat(const Result<std::vector<Destination>>& r) {
  std::vector<std::string> out;
  if (!r) {
    out.push_back("error:" + r.error().to_string());
    return out;
  }
  for (const auto& d : *r) {
    std::string s = d.kind == Destination::kMailbox ? "mbox:" : "fwd:";
    s += d.address;
    if (!d.detail.empty()) s += "+" + d.detail;
    out.push_back(s);
  }
  return out;
}

using V = std::vector<std::string>;

class DirectoryTest : public ::testing::Test {
 protected:
  DirectoryTest()
      : dir_({"Example.test", "other.test"},
             accounts({"alice@example.test", "bob@example.test", "carol@other.test", "catchall@other.test"}),
             aliases("sales: alice, bob\n"
                     "info@example.test: sales, partner@Elsewhere.example\n"
                     "fwd: Someone@Remote.example\n"
                     "self: self@example.test\n"
                     "alice+vip@example.test: bob\n"
                     "@other.test: catchall\n"
                     "loop1: loop2\n"
                     "loop2: loop1\n"
                     "keepcopy@example.test: bob, bob@backup.example\n"
                     "broken: nosuchuser\n"
                     "diamond: sales, alice\n")) {}
  Directory dir_;
};

TEST_F(DirectoryTest, LocalDomains) {
  EXPECT_TRUE(dir_.is_local_domain("example.test"));
  EXPECT_TRUE(dir_.is_local_domain("EXAMPLE.TEST"));
  EXPECT_TRUE(dir_.is_local_domain("other.test"));
  EXPECT_FALSE(dir_.is_local_domain("remote.example"));
}

TEST_F(DirectoryTest, Check) {
  using L = Directory::Lookup;
  EXPECT_EQ(dir_.check("alice@example.test"), L::kKnown);
  EXPECT_EQ(dir_.check("Alice@EXAMPLE.test"), L::kKnown);
  EXPECT_EQ(dir_.check("alice+news@example.test"), L::kKnown);
  EXPECT_EQ(dir_.check("sales@example.test"), L::kKnown);
  EXPECT_EQ(dir_.check("sales@other.test"), L::kKnown);  // unqualified alias
  EXPECT_EQ(dir_.check("info@other.test"), L::kKnown);   // via catch-all only
  EXPECT_EQ(dir_.check("anything@other.test"), L::kKnown);
  EXPECT_EQ(dir_.check("nobody@example.test"), L::kUnknown);
  EXPECT_EQ(dir_.check("info+x@example.test"), L::kKnown);
  EXPECT_EQ(dir_.check("+alice@example.test"), L::kUnknown);
  EXPECT_EQ(dir_.check("postmaster@example.test"), L::kKnown);
  EXPECT_EQ(dir_.check("PostMaster@example.test"), L::kKnown);
  EXPECT_EQ(dir_.check("Postmaster"), L::kKnown);
  EXPECT_EQ(dir_.check("alice@remote.example"), L::kNotLocal);
  EXPECT_EQ(dir_.check("garbage"), L::kUnknown);
}

TEST_F(DirectoryTest, ExpandAccountKeepsDetailSeparate) {
  auto r = dir_.expand("Alice+News@Example.TEST");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 1u);
  const Destination& d = (*r)[0];
  EXPECT_EQ(d.kind, Destination::kMailbox);
  EXPECT_EQ(d.address, "alice@example.test");
  EXPECT_EQ(d.user, "alice");
  EXPECT_EQ(d.domain, "example.test");
  EXPECT_EQ(d.detail, "news");
}

TEST_F(DirectoryTest, ExpandAliases) {
  EXPECT_EQ(flat(dir_.expand("sales@example.test")), (V{"mbox:alice@example.test", "mbox:bob@example.test"}));
  EXPECT_EQ(flat(dir_.expand("info@example.test")),
            (V{"mbox:alice@example.test", "mbox:bob@example.test", "fwd:partner@Elsewhere.example"}));
  EXPECT_EQ(flat(dir_.expand("fwd@other.test")), V{"fwd:Someone@Remote.example"});
  // An exact alias with detail wins over the account.
  EXPECT_EQ(flat(dir_.expand("alice+vip@example.test")), V{"mbox:bob@example.test"});
  // Details are not carried through aliases.
  EXPECT_EQ(flat(dir_.expand("sales+q3@example.test")), (V{"mbox:alice@example.test", "mbox:bob@example.test"}));
  // Diamond: alice reached twice, delivered once.
  EXPECT_EQ(flat(dir_.expand("diamond@example.test")), (V{"mbox:alice@example.test", "mbox:bob@example.test"}));
  // External addresses expand to themselves.
  EXPECT_EQ(flat(dir_.expand("x@remote.example")), V{"fwd:x@remote.example"});
}

TEST_F(DirectoryTest, ExpandKeepCopyAndForward) {
  EXPECT_EQ(flat(dir_.expand("keepcopy@example.test")), (V{"mbox:bob@example.test", "fwd:bob@backup.example"}));
}

TEST(Directory, AliasNamingItsOwnAccountKeepsLocalCopy) {
  Directory d({"example.test"}, accounts({"bob@example.test"}),
              aliases("bob@example.test: bob, bob@backup.example\nteam: bob\n"));
  EXPECT_EQ(flat(d.expand("bob@example.test")), (V{"mbox:bob@example.test", "fwd:bob@backup.example"}));
  EXPECT_EQ(flat(d.expand("team@example.test")), (V{"mbox:bob@example.test", "fwd:bob@backup.example"}));
  EXPECT_TRUE(d.may_send_as("bob@example.test", "team@example.test"));
}

TEST_F(DirectoryTest, ExpandCatchAll) {
  EXPECT_EQ(flat(dir_.expand("whatever@other.test")), V{"mbox:catchall@other.test"});
  EXPECT_EQ(flat(dir_.expand("carol@other.test")), V{"mbox:carol@other.test"});
  EXPECT_EQ(flat(dir_.expand("catchall+x@other.test")), V{"mbox:catchall@other.test+x"});
}

TEST_F(DirectoryTest, ExpandErrors) {
  auto unknown = dir_.expand("nobody@example.test");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, 550);
  EXPECT_EQ(unknown.error().enhanced, "5.1.1");

  auto loop = dir_.expand("loop1@example.test");
  ASSERT_FALSE(loop);
  EXPECT_EQ(loop.error().enhanced, "5.4.6");
  EXPECT_NE(loop.error().text.find("loop"), std::string::npos);

  auto self_loop = dir_.expand("self@example.test");
  ASSERT_FALSE(self_loop);
  EXPECT_EQ(self_loop.error().enhanced, "5.4.6");

  auto broken = dir_.expand("broken@example.test");
  ASSERT_FALSE(broken);
  EXPECT_TRUE(broken.error().transient());
  EXPECT_NE(broken.error().text.find("nosuchuser@example.test"), std::string::npos);
}

TEST(Directory, DepthAndFanOutBounds) {
  std::string chain;
  for (int i = 0; i < 15; ++i) chain += "a" + std::to_string(i) + ": a" + std::to_string(i + 1) + "\n";
  Directory deep({"x.test"}, accounts({"a15@x.test"}), aliases(chain.c_str()));
  EXPECT_EQ(flat(deep.expand("a8@x.test")), V{"mbox:a15@x.test"});  // 7 levels: fine
  auto too_deep = deep.expand("a0@x.test");
  ASSERT_FALSE(too_deep);
  EXPECT_EQ(too_deep.error().enhanced, "5.4.6");

  // 40 x 40 = 1600 targets via two levels: over the bound.
  std::string wide = "top:";
  for (int i = 0; i < 40; ++i) wide += std::string(i ? "," : "") + " m" + std::to_string(i);
  wide += "\n";
  for (int i = 0; i < 40; ++i) {
    wide += "m" + std::to_string(i) + ":";
    for (int j = 0; j < 40; ++j) wide += std::string(j ? "," : "") + " u" + std::to_string(j) + "@remote.example";
    wide += "\n";
  }
  Directory fan({"x.test"}, accounts({}), aliases(wide.c_str()));
  auto too_many = fan.expand("top@x.test");
  ASSERT_FALSE(too_many);
  EXPECT_EQ(too_many.error().enhanced, "5.5.3");
  EXPECT_EQ(flat(fan.expand("m3@x.test")).size(), 40u);
}

TEST(Directory, Postmaster) {
  // No postmaster alias or account: falls back to the configured address.
  Directory configured({"a.test", "b.test"}, accounts({"root@a.test"}), aliases(""), "root");
  EXPECT_EQ(configured.check("postmaster@b.test"), Directory::Lookup::kKnown);
  EXPECT_EQ(flat(configured.expand("postmaster@b.test")), V{"mbox:root@a.test"});
  EXPECT_EQ(flat(configured.expand("Postmaster")), V{"mbox:root@a.test"});

  // An explicit alias wins.
  Directory aliased({"a.test"}, accounts({"root@a.test", "pm@a.test"}), aliases("postmaster: pm\n"), "root");
  EXPECT_EQ(flat(aliased.expand("postmaster@a.test")), V{"mbox:pm@a.test"});

  // Nothing configured at all: known, but delivery is deferred, not lost.
  Directory none({"a.test"}, accounts({}), aliases(""));
  EXPECT_EQ(none.check("postmaster@a.test"), Directory::Lookup::kKnown);
  auto r = none.expand("postmaster@a.test");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().transient());
}

TEST_F(DirectoryTest, MaySendAs) {
  EXPECT_TRUE(dir_.may_send_as("alice@example.test", "alice@example.test"));
  EXPECT_TRUE(dir_.may_send_as("alice@example.test", "Alice@Example.Test"));
  EXPECT_TRUE(dir_.may_send_as("alice@example.test", "alice+lists@example.test"));
  EXPECT_TRUE(dir_.may_send_as("alice@example.test", "sales@example.test"));  // sales: alice, bob
  EXPECT_TRUE(dir_.may_send_as("bob@example.test", "sales@example.test"));
  // sales@other.test expands to alice@other.test and bob@other.test, which
  // fall to the other.test catch-all: not bob's mailbox.
  EXPECT_FALSE(dir_.may_send_as("bob@example.test", "sales@other.test"));
  EXPECT_TRUE(dir_.may_send_as("alice@example.test", "info@example.test"));  // via sales
  EXPECT_TRUE(dir_.may_send_as("alice@example.test", ""));                    // null reverse-path
  EXPECT_FALSE(dir_.may_send_as("alice@example.test", "bob@example.test"));
  EXPECT_FALSE(dir_.may_send_as("alice@example.test", "fwd@example.test"));
  EXPECT_FALSE(dir_.may_send_as("alice@example.test", "someone@remote.example"));
  EXPECT_FALSE(dir_.may_send_as("alice@example.test", "nobody@example.test"));
  EXPECT_FALSE(dir_.may_send_as("alice@example.test", "loop1@example.test"));
  // Catch-all coverage grants nothing, even to the catch-all's owner.
  EXPECT_FALSE(dir_.may_send_as("catchall@other.test", "random@other.test"));
  EXPECT_FALSE(dir_.may_send_as("alice@example.test", "garbage"));
}

}  // namespace
}  // namespace tern::users
