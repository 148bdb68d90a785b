// Unit tests for applying milter header changes: splitting and joining a
// header section (folded fields, round trip), value normalisation (bare LF,
// leading space), and add / insert / change / delete with Sendmail's index
// semantics, and address unbracketing.
#include "milter/rewrite.h"

#include <gtest/gtest.h>

namespace tern::milter {
namespace {

const std::string kSection =
    "Received: from a\r\n\tby b; Thu, 26 Nov 2026 17:00:00 +0000\r\n"
    "From: Bob <bob@example.test>\r\n"
    "Subject: one\r\n"
    "X-Tag: first\r\n"
    "x-tag: second\r\n";

Modification change(Modification::Kind kind, uint32_t index, std::string name, std::string value) {
  Modification m;
  m.kind = kind;
  m.index = index;
  m.name = std::move(name);
  m.value = std::move(value);
  return m;
}

TEST(MilterRewrite, SplitJoinRoundTrip) {
  auto fields = split_header_section(kSection + "\r\n");
  ASSERT_EQ(fields.size(), 5u);
  EXPECT_EQ(fields[0].name, "Received");
  EXPECT_EQ(fields[0].value, " from a\r\n\tby b; Thu, 26 Nov 2026 17:00:00 +0000");
  EXPECT_EQ(fields[2].value, " one");
  EXPECT_EQ(join_header_section(fields), kSection);
}

TEST(MilterRewrite, ValuesFromMilter) {
  EXPECT_EQ(header_value_from_milter("v=1;\n\tb=abc"), " v=1;\r\n\tb=abc");
  EXPECT_EQ(header_value_from_milter(" kept"), " kept");
  EXPECT_EQ(header_value_from_milter("a\r\n b"), " a\r\n b");
  EXPECT_EQ(header_value_from_milter(""), " ");
}

TEST(MilterRewrite, AddInsertChangeDelete) {
  using K = Modification::Kind;
  auto fields = split_header_section(kSection);
  apply_header_changes(fields, {
                                   change(K::kAddHeader, 0, "X-Spam", "yes"),
                                   change(K::kInsertHeader, 0, "DKIM-Signature", "v=1;\n\td=example.test"),
                                   change(K::kChangeHeader, 1, "subject", "[tagged] one"),
                                   change(K::kChangeHeader, 2, "X-TAG", ""),         // deletes "x-tag: second"
                                   change(K::kChangeHeader, 1, "X-Missing", "new"),  // appended
                                   change(K::kChangeHeader, 3, "X-Tag", ""),         // no third: nothing
                                   change(K::kInsertHeader, 99, "X-Last", "end"),
                               });
  EXPECT_EQ(join_header_section(fields),
            "DKIM-Signature: v=1;\r\n\td=example.test\r\n"
            "Received: from a\r\n\tby b; Thu, 26 Nov 2026 17:00:00 +0000\r\n"
            "From: Bob <bob@example.test>\r\n"
            "Subject: [tagged] one\r\n"
            "X-Tag: first\r\n"
            "X-Spam: yes\r\n"
            "X-Missing: new\r\n"
            "X-Last: end\r\n");
}

TEST(MilterRewrite, Unbracket) {
  EXPECT_EQ(unbracket_address("<a@b.example>"), "a@b.example");
  EXPECT_EQ(unbracket_address("<>"), "");
  EXPECT_EQ(unbracket_address("a@b.example"), "a@b.example");
}

}  // namespace
}  // namespace tern::milter
