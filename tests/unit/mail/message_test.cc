// Tests for the RFC 5322 message view (src/mail/message.h) and address-list
// parsing (src/mail/header.h): field spans with folding, body offset, limits,
// case-insensitive lookup, prepending, and From address extraction with
// groups, display names, comments and quoted local parts.
#include "mail/message.h"

#include <gtest/gtest.h>

namespace tern::mail {
namespace {

Message must_parse(std::string text, MessageLimits limits = {}) {
  auto m = Message::parse(std::move(text), limits);
  EXPECT_TRUE(m.has_value()) << (m ? "" : m.error().text);
  return m ? std::move(*m) : Message();
}

TEST(Message, FieldsWithFoldingAndBody) {
  Message m = must_parse("From: a@b.example\r\nSubject: one\r\n  two\r\n\tthree\r\nX-Empty:\r\n\r\nbody line\r\n");
  ASSERT_EQ(m.field_count(), 3u);
  EXPECT_EQ(m.field(0).name, "From");
  EXPECT_EQ(m.field(0).value, " a@b.example");
  EXPECT_EQ(m.field(0).raw, "From: a@b.example\r\n");
  EXPECT_EQ(m.field(1).value, " one\r\n  two\r\n\tthree");
  EXPECT_EQ(m.field(1).unfolded(), " one  two\tthree");
  EXPECT_EQ(m.field(1).raw, "Subject: one\r\n  two\r\n\tthree\r\n");
  EXPECT_EQ(m.field(2).name, "X-Empty");
  EXPECT_EQ(m.field(2).value, "");
  EXPECT_EQ(m.body(), "body line\r\n");
  EXPECT_EQ(m.header_section().size() + m.body().size(), m.text().size());
}

TEST(Message, ObsoleteWspBeforeColonAndBareLf) {
  Message m = must_parse("Subject : hi\nTo:\tx@y\n\nbody\n");
  ASSERT_EQ(m.field_count(), 2u);
  EXPECT_EQ(m.field(0).name, "Subject");
  EXPECT_EQ(m.field(0).value, " hi");
  EXPECT_EQ(m.body(), "body\n");
}

TEST(Message, NoBodySeparatorAndEmptyBody) {
  Message a = must_parse("From: a@b\r\nTo: c@d\r\n");
  EXPECT_EQ(a.field_count(), 2u);
  EXPECT_EQ(a.body(), "");
  Message b = must_parse("From: a@b");  // no line end at all
  ASSERT_EQ(b.field_count(), 1u);
  EXPECT_EQ(b.field(0).value, " a@b");
  EXPECT_EQ(b.body(), "");
  Message c = must_parse("\r\nonly body\r\n");
  EXPECT_EQ(c.field_count(), 0u);
  EXPECT_EQ(c.body(), "only body\r\n");
  Message d = must_parse("From: a@b\r\n\r\n");
  EXPECT_EQ(d.body(), "");
  EXPECT_EQ(d.body_offset(), d.text().size());
}

TEST(Message, Errors) {
  EXPECT_NE(Message::parse("  leading continuation\r\nFrom: a@b\r\n\r\n").error().text.find("bad continuation"),
            std::string::npos);
  EXPECT_FALSE(Message::parse("From: a@b\r\nno colon here\r\n\r\n").has_value());
  EXPECT_FALSE(Message::parse(": empty name\r\n\r\n").has_value());
  EXPECT_FALSE(Message::parse("Bad Name: x\r\n\r\n").has_value());
  EXPECT_EQ(Message::parse("X\r\n").error().code, 554);
}

TEST(Message, Limits) {
  std::string many;
  for (int i = 0; i < 11; ++i) many += "X-N: " + std::to_string(i) + "\r\n";
  MessageLimits l;
  l.max_fields = 10;
  EXPECT_FALSE(Message::parse(many + "\r\n", l).has_value());
  l.max_fields = 11;
  EXPECT_TRUE(Message::parse(many + "\r\n", l).has_value());

  MessageLimits small;
  small.max_header_bytes = 100;
  EXPECT_FALSE(Message::parse("Subject: " + std::string(200, 'x') + "\r\n\r\n", small).has_value());
  // One huge folded field counts too.
  std::string folded = "Subject: a";
  for (int i = 0; i < 50; ++i) folded += "\r\n b";
  EXPECT_FALSE(Message::parse(folded + "\r\n\r\n", small).has_value());
  // The body does not count.
  EXPECT_TRUE(Message::parse("Subject: x\r\n\r\n" + std::string(1000, 'b'), small).has_value());
}

TEST(Message, FindAllIsCaseInsensitiveInOrder) {
  Message m = must_parse("Received: 1\r\nreceived: 2\r\nFrom: a@b\r\nRECEIVED: 3\r\n\r\n");
  auto all = m.find_all("Received");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].value, " 1");
  EXPECT_EQ(all[2].value, " 3");
  EXPECT_EQ(m.find_indices("received"), (std::vector<size_t>{0, 1, 3}));
  EXPECT_TRUE(m.find_all("To").empty());
}

TEST(Message, PrependField) {
  Message m = must_parse("From: a@b\r\n\r\nbody\r\n");
  ASSERT_TRUE(m.prepend_field("X-Test: one\r\n two\r\n"));
  ASSERT_TRUE(m.prepend_field("X-Other", "v"));
  EXPECT_EQ(m.text(), "X-Other: v\r\nX-Test: one\r\n two\r\nFrom: a@b\r\n\r\nbody\r\n");
  ASSERT_EQ(m.field_count(), 3u);
  EXPECT_EQ(m.field(1).value, " one\r\n two");
  EXPECT_EQ(m.body(), "body\r\n");
  // Not exactly one field: refused, message unchanged.
  EXPECT_FALSE(m.prepend_field("A: 1\r\nB: 2\r\n"));
  EXPECT_FALSE(m.prepend_field("no colon"));
  EXPECT_EQ(m.field_count(), 3u);
}

TEST(Message, CopyAndMoveKeepViewsValid) {
  Message a = must_parse("Subject: short\r\n\r\nx");  // small enough for SSO
  Message b = a;
  Message c = std::move(a);
  EXPECT_EQ(b.field(0).value, " short");
  EXPECT_EQ(c.field(0).value, " short");
  EXPECT_EQ(c.body(), "x");
}

TEST(AddressList, FromVariants) {
  Message m = must_parse(
      "From: \"Doe, John\" <john.doe@Example.COM>, plain@x.org (comment (nested)),\r\n"
      " Team: a@t.example, \"quoted local\"@t.example;, <bare@y.org>,,\r\n\r\n");
  auto from = m.from_addresses();
  ASSERT_TRUE(from.has_value()) << from.error().text;
  ASSERT_EQ(from->size(), 5u);
  EXPECT_EQ((*from)[0].display_name, "Doe, John");
  EXPECT_EQ((*from)[0].local, "john.doe");
  EXPECT_EQ((*from)[0].domain, "example.com");
  EXPECT_EQ((*from)[1].addr_spec(), "plain@x.org");
  EXPECT_EQ((*from)[2].group, "Team");
  EXPECT_EQ((*from)[3].local, "quoted local");
  EXPECT_EQ((*from)[3].addr_spec(), "\"quoted local\"@t.example");
  EXPECT_EQ((*from)[4].addr_spec(), "bare@y.org");
}

TEST(AddressList, ObsoleteFormsAndLiterals) {
  auto r = parse_address_list("Joe Q. Public <@relay.example,@other:joe@pub.example>");
  ASSERT_TRUE(r.has_value()) << r.error().text;
  EXPECT_EQ((*r)[0].display_name, "Joe Q. Public");
  EXPECT_EQ((*r)[0].addr_spec(), "joe@pub.example");
  auto lit = parse_address_list("user@[192.0.2.1]");
  ASSERT_TRUE(lit.has_value());
  EXPECT_EQ((*lit)[0].domain, "[192.0.2.1]");
  auto empty_group = parse_address_list("Undisclosed recipients:;");
  ASSERT_TRUE(empty_group.has_value());
  EXPECT_TRUE(empty_group->empty());
  auto utf8 = parse_address_list("J\xc3\xb6rg <j\xc3\xb6rg@b\xc3\xbc\x63her.example>");
  ASSERT_TRUE(utf8.has_value());
  EXPECT_EQ((*utf8)[0].display_name, "J\xc3\xb6rg");
}

TEST(AddressList, Malformed) {
  for (const char* bad : {"<no-at>", "a@", "@b.example", "a@b.example <c@d>", "\"open@x", "(open comment a@b",
                          "Group: a@b", "<a@b", "a@b@c", "a@b..c", "x\x01@b"}) {
    EXPECT_FALSE(parse_address_list(bad).has_value()) << bad;
  }
  std::string deep(100, '(');
  EXPECT_FALSE(parse_address_list(deep + "a@b").has_value());
}

TEST(AddressList, NoFromOrTwoFroms) {
  Message none = must_parse("To: a@b\r\n\r\n");
  ASSERT_TRUE(none.from_addresses().has_value());
  EXPECT_TRUE(none.from_addresses()->empty());
  Message two = must_parse("From: a@one.example\r\nFrom: b@two.example\r\n\r\n");
  ASSERT_EQ(two.from_addresses()->size(), 2u);
  Message bad = must_parse("From: not an address\r\n\r\n");
  EXPECT_FALSE(bad.from_addresses().has_value());
}

}  // namespace
}  // namespace tern::mail
