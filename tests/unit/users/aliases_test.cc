// Tests for aliases-file parsing: entry forms, continuation lines, comments
// and error locations.
#include "users/aliases.h"

#include <gtest/gtest.h>

#include "base/fs.h"
#include "test_util.h"

namespace tern::users {
namespace {

using Targets = std::vector<std::string>;

TEST(Aliases, ParsesAllEntryForms) {
  auto a = Aliases::parse(
      "# site aliases\n"
      "postmaster: alice\n"
      "Sales@Example.test: alice, bob@example.test,\n"
      "    partner@elsewhere.example\n"
      "  # a comment inside an entry\n"
      "\tcarol\n"
      "\n"
      "@example.test: catchall\r\n"
      "team:alice,,bob\n",
      "aliases");
  ASSERT_TRUE(a) << a.error().text;
  EXPECT_EQ(a->size(), 4u);
  ASSERT_NE(a->find_unqualified("POSTMASTER"), nullptr);
  EXPECT_EQ(a->find_unqualified("postmaster")->targets, Targets{"alice"});
  const auto* sales = a->find_qualified("sales@EXAMPLE.test");
  ASSERT_NE(sales, nullptr);
  EXPECT_EQ(sales->targets, (Targets{"alice", "bob@example.test", "partner@elsewhere.example", "carol"}));
  EXPECT_EQ(sales->line, 3u);
  ASSERT_NE(a->find_catch_all("Example.Test"), nullptr);
  EXPECT_EQ(a->find_catch_all("example.test")->targets, Targets{"catchall"});
  EXPECT_EQ(a->find_unqualified("team")->targets, (Targets{"alice", "bob"}));
  EXPECT_EQ(a->find_qualified("postmaster@example.test"), nullptr);
  EXPECT_EQ(a->find_unqualified("sales"), nullptr);
  EXPECT_EQ(a->find_catch_all("other.test"), nullptr);
}

struct BadCase {
  const char* text;
  const char* prefix;  // expected start of the error text
};

TEST(Aliases, ErrorsNameOriginAndLine) {
  const BadCase cases[] = {
      {"  alice\n", "f:1: continuation line"},
      {"ok: a\nno colon here\n", "f:2: expected name: targets"},
      {"ok: a\n\nbad name: a\n", "f:3: invalid alias name"},
      {"a: b\nA: c\n", "f:2: duplicate alias 'a' (first at line 1)"},
      {"a: |/usr/bin/prog\n", "f:1: pipes, files and :include: are not supported"},
      {"a: /var/mail/a\n", "f:1: pipes"},
      {"a: :include:/etc/list\n", "f:1: pipes"},
      {"a: b,\n  c d\n", "f:2: invalid target 'c d'"},
      {"a: \"quoted\"\n", "f:1: quoted targets"},
      {"a: b\nempty:\n# end\n", "f:2: alias 'empty' has no targets"},
      {"@bad_domain: x\n", "f:1: invalid alias name"},
      {"a@: x\n", "f:1: invalid alias name"},
      {"a: b@\n", "f:1: invalid target"},
  };
  for (const auto& c : cases) {
    auto a = Aliases::parse(c.text, "f");
    ASSERT_FALSE(a) << c.text;
    EXPECT_EQ(a.error().text.rfind(c.prefix, 0), 0u) << c.text << " -> " << a.error().text;
  }
}

TEST(Aliases, TooManyTargetsIsAnError) {
  std::string text = "big: t0";
  for (size_t i = 1; i <= kMaxAliasTargets; ++i) text += ", t" + std::to_string(i);
  auto a = Aliases::parse(text, "f");
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().text.find("too many targets"), std::string::npos);
}

TEST(Aliases, LoadAndChangeDetection) {
  testing::TempDir dir;
  std::string path = dir.file("aliases");
  ASSERT_TRUE(fs::write_file_durable(path, "a: b\n"));
  auto a = Aliases::load(path);
  ASSERT_TRUE(a) << a.error().text;
  EXPECT_FALSE(a->changed_on_disk());
  ASSERT_TRUE(fs::write_file_durable(path, "a: b, c\n"));
  EXPECT_TRUE(a->changed_on_disk());
  auto missing = Aliases::load(dir.file("missing"));
  EXPECT_FALSE(missing);
}

}  // namespace
}  // namespace tern::users
