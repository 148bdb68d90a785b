// Tests for base/strings: case folding, splitting, integer parsing, base64, xtext.
#include "base/strings.h"

#include <gtest/gtest.h>

namespace tern {
namespace {

TEST(Strings, CaseInsensitive) {
  EXPECT_TRUE(iequals("MAIL", "mail"));
  EXPECT_FALSE(iequals("MAIL", "mai"));
  EXPECT_TRUE(istarts_with("MAIL FROM:<a@b>", "mail from:"));
  EXPECT_TRUE(iends_with("host.EXAMPLE.test", ".example.TEST"));
}

TEST(Strings, TrimAndSplit) {
  EXPECT_EQ(trim("  a b \r\n"), "a b");
  auto parts = split("a,,b", ',');
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[1], "");
}

TEST(Strings, ParseU64) {
  unsigned long long v = 0;
  EXPECT_TRUE(parse_u64("18446744073709551615", v));
  EXPECT_EQ(v, 18446744073709551615ull);
  EXPECT_FALSE(parse_u64("18446744073709551616", v));
  EXPECT_FALSE(parse_u64("", v));
  EXPECT_FALSE(parse_u64("12a", v));
}

TEST(Strings, Base64RoundTrip) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    std::string dec;
    ASSERT_TRUE(base64_decode(base64_encode(s), dec));
    EXPECT_EQ(dec, s);
  }
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  std::string out;
  EXPECT_FALSE(base64_decode("Zm9v!mFy", out));
  EXPECT_FALSE(base64_decode("Zm9", out));
  EXPECT_FALSE(base64_decode("Zg==Zg==", out));
  EXPECT_TRUE(base64_decode("Zm9v\r\n YmFy", out, true));
  EXPECT_EQ(out, "foobar");
}

TEST(Strings, Xtext) {
  std::string out;
  EXPECT_TRUE(xtext_decode("a+2Bb", out));
  EXPECT_EQ(out, "a+b");
  EXPECT_FALSE(xtext_decode("a+2", out));
  EXPECT_FALSE(xtext_decode("a+2b", out));  // lower-case hex is not xtext
  EXPECT_EQ(xtext_encode("a+b=c d"), "a+2Bb+3Dc+20d");
}

TEST(Strings, CrlfToLf) {
  EXPECT_EQ(crlf_to_lf("a\r\nb\r\n"), "a\nb\n");
  EXPECT_EQ(crlf_to_lf("bare\rcr\n\r"), "bare\rcr\n\r");
  EXPECT_EQ(crlf_to_lf(""), "");
}

TEST(Strings, NormalizeCrlf) {
  EXPECT_EQ(normalize_crlf("a\r\nb\nc\rd"), "a\r\nb\r\nc\r\nd");
  EXPECT_EQ(normalize_crlf("end\r"), "end\r\n");
  EXPECT_EQ(normalize_crlf("\n\r\n"), "\r\n\r\n");
  EXPECT_EQ(normalize_crlf(""), "");
}

}  // namespace
}  // namespace tern
