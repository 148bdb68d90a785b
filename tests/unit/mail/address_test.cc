// Tests for envelope address parsing (src/mail/address.h): RFC 5321 §4.1.2
// Mailbox and Path syntax, RFC 5321 §4.5.3.1 limits and RFC 6531 UTF-8.
#include "mail/address.h"

#include <gtest/gtest.h>

namespace tern::mail {
namespace {

Address must_parse(std::string_view text, bool utf8 = false) {
  auto r = parse_mailbox(text, utf8);
  EXPECT_TRUE(r.has_value()) << text << ": " << (r ? "" : r.error().text);
  return r ? *r : Address{};
}

TEST(ParseMailbox, SimpleAndLowercasesDomain) {
  Address a = must_parse("John.Doe@Example.COM");
  EXPECT_EQ(a.local, "John.Doe");
  EXPECT_EQ(a.domain, "example.com");
  EXPECT_EQ(a.str(), "John.Doe@example.com");
  EXPECT_FALSE(a.empty());
}

TEST(ParseMailbox, AtextSpecials) {
  Address a = must_parse("a!#$%&'*+-/=?^_`{|}~b@x.org");
  EXPECT_EQ(a.local, "a!#$%&'*+-/=?^_`{|}~b");
}

TEST(ParseMailbox, QuotedLocalPartIsUnquotedAndRequotedOnStr) {
  Address a = must_parse(R"("john doe"@example.com)");
  EXPECT_EQ(a.local, "john doe");
  EXPECT_EQ(a.str(), R"("john doe"@example.com)");
  Address b = must_parse(R"("a\"b\\c"@example.com)");
  EXPECT_EQ(b.local, R"(a"b\c)");
  EXPECT_EQ(b.str(), R"("a\"b\\c"@example.com)");
  // Quoting that was not needed disappears.
  EXPECT_EQ(must_parse(R"("plain"@example.com)").str(), "plain@example.com");
  // '@' and '>' may appear inside quotes.
  EXPECT_EQ(must_parse(R"("a@b>c"@example.com)").local, "a@b>c");
}

TEST(ParseMailbox, AddressLiterals) {
  EXPECT_EQ(must_parse("u@[192.0.2.1]").domain, "[192.0.2.1]");
  EXPECT_EQ(must_parse("u@[IPv6:2001:DB8::1]").domain, "[ipv6:2001:db8::1]");
  EXPECT_EQ(must_parse("u@[x-tag:abc]").domain, "[x-tag:abc]");
  EXPECT_FALSE(parse_mailbox("u@[192.0.2.256]", false));
  EXPECT_FALSE(parse_mailbox("u@[1.2.3]", false));
  EXPECT_FALSE(parse_mailbox("u@[IPv6:zz::1]", false));
  EXPECT_FALSE(parse_mailbox("u@[IPv6:192.0.2.1]", false));
  EXPECT_FALSE(parse_mailbox("u@[192.0.2.1", false));
  EXPECT_FALSE(parse_mailbox("u@[]", false));
}

TEST(ParseMailbox, RejectsMalformed) {
  for (const char* bad : {"", "@", "user", "user@", "@example.com", ".a@x.org", "a.@x.org", "a..b@x.org",
                          "a b@x.org", "a@b@x.org", "a@-x.org", "a@x-.org", "a@x..org", "a@.x.org", "a@x.org.",
                          "a@x_y.org", "\"unterminated@x.org", "\"\"@x.org", "\"a\"b@x.org", "a\x01@x.org",
                          "\"a\tb\"@x.org", "a@x.org\x7f", "(comment)a@x.org", "\"a\\\x01\"@x.org"}) {
    auto r = parse_mailbox(bad, false);
    EXPECT_FALSE(r.has_value()) << "accepted: " << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, 553);
      EXPECT_EQ(r.error().enhanced, "5.1.3");
    }
  }
}

TEST(ParseMailbox, LengthLimits) {
  std::string local64(64, 'a'), local65(65, 'a');
  EXPECT_TRUE(parse_mailbox(local64 + "@x.org", false));
  EXPECT_FALSE(parse_mailbox(local65 + "@x.org", false));
  std::string label63(63, 'b'), label64(64, 'b');
  EXPECT_TRUE(parse_mailbox("a@" + label63 + ".org", false));
  EXPECT_FALSE(parse_mailbox("a@" + label64 + ".org", false));
  // 4 labels of 63 plus dots = 255 octets: allowed; one more octet is not.
  std::string d255 = label63 + "." + label63 + "." + label63 + "." + label63;
  ASSERT_EQ(d255.size(), 255u);
  EXPECT_TRUE(is_valid_domain(d255));
  EXPECT_FALSE(is_valid_domain(d255 + "c"));
  EXPECT_TRUE(parse_mailbox("a@" + d255, false));
  EXPECT_FALSE(parse_mailbox("a@" + d255 + "c", false));
}

TEST(ParseMailbox, Utf8OnlyWithSmtputf8) {
  std::string addr = "j\xC3\xB8rn@b\xC3\xBC" "cher.example";  // jørn@bücher.example
  auto ascii_only = parse_mailbox(addr, false);
  ASSERT_FALSE(ascii_only);
  EXPECT_EQ(ascii_only.error().code, 553);
  EXPECT_EQ(ascii_only.error().enhanced, "5.6.7");  // RFC 6531 §3.7.4.1
  Address a = must_parse(addr, true);
  EXPECT_EQ(a.local, "j\xC3\xB8rn");
  EXPECT_EQ(a.domain, "b\xC3\xBC" "cher.example");
  // Quoted UTF-8 is allowed too; malformed UTF-8 never is.
  EXPECT_TRUE(parse_mailbox("\"\xC3\xB8 x\"@x.org", true));
  EXPECT_FALSE(parse_mailbox("a\xC3@x.org", true));
  EXPECT_FALSE(parse_mailbox("a\xC0\xAF@x.org", true));      // overlong
  EXPECT_FALSE(parse_mailbox("a\xED\xA0\x80@x.org", true));  // surrogate
}

TEST(ParsePath, BracketsNullAndRoute) {
  auto a = parse_path("<user@Example.org>", false, false);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->str(), "user@example.org");

  auto null_ok = parse_path("<>", true, false);
  ASSERT_TRUE(null_ok);
  EXPECT_TRUE(null_ok->empty());
  EXPECT_EQ(null_ok->str(), "");
  EXPECT_FALSE(parse_path("<>", false, false));

  auto routed = parse_path("<@relay1.example,@relay2.example:user@x.org>", false, false);
  ASSERT_TRUE(routed);
  EXPECT_EQ(routed->str(), "user@x.org");
  EXPECT_FALSE(parse_path("<@relay1.example:>", false, false));
  EXPECT_FALSE(parse_path("<@bad_domain:user@x.org>", false, false));
  EXPECT_FALSE(parse_path("<@relay1.example,user@x.org>", false, false));

  EXPECT_FALSE(parse_path("user@x.org", false, false));
  EXPECT_FALSE(parse_path("<user@x.org", false, false));
  EXPECT_FALSE(parse_path("user@x.org>", false, false));
  EXPECT_FALSE(parse_path("<", true, false));
  EXPECT_FALSE(parse_path("", true, false));
}

TEST(ParsePath, QuotedLocalWithAngleBracket) {
  auto a = parse_path(R"(<"a>b"@x.org>)", false, false);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->local, "a>b");
}

TEST(ParsePath, PathLimit) {
  // A 256-octet path is the maximum (RFC 5321 §4.5.3.1.3).
  std::string domain = std::string(63, 'd') + "." + std::string(63, 'd') + "." + std::string(63, 'd') + "." +
                       std::string(50, 'd');
  std::string local(64, 'l');
  std::string path = "<" + local + "@" + domain + ">";
  ASSERT_GT(path.size(), 256u);
  EXPECT_FALSE(parse_path(path, false, false));
}

TEST(Helpers, IsValidDomainAndAscii) {
  EXPECT_TRUE(is_valid_domain("a"));
  EXPECT_TRUE(is_valid_domain("xn--bcher-kva.example"));
  EXPECT_TRUE(is_valid_domain("1.2.3.4"));
  EXPECT_FALSE(is_valid_domain(""));
  EXPECT_FALSE(is_valid_domain("a..b"));
  EXPECT_FALSE(is_valid_domain("b\xC3\xBC" "cher.example"));
  EXPECT_TRUE(is_ascii("hello"));
  EXPECT_FALSE(is_ascii("h\x80llo"));
  EXPECT_TRUE(is_valid_utf8("\xF0\x9F\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // > U+10FFFF
}

TEST(AddressStr, PostmasterWithoutDomain) {
  Address pm{"postmaster", ""};
  EXPECT_EQ(pm.str(), "postmaster");
  EXPECT_FALSE(pm.empty());
}

}  // namespace
}  // namespace tern::mail
