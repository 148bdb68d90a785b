// Tests for the Authentication-Results builder and parser
// (src/auth/auth_results.h): quoting, folding, DNSSEC comments, round trips,
// RFC 8601 Appendix B examples, ARC-Authentication-Results instance tags,
// authserv-id extraction for §5 removal, and hostile input.
#include "auth/auth_results.h"

#include <gtest/gtest.h>

namespace tern::auth {
namespace {

TEST(AuthResultsBuild, FullHeader) {
  AuthResults ar;
  ar.authserv_id = "mx.example.org";
  MethodResult spf{"spf", "pass"};
  spf.prop("smtp", "mailfrom", "sender@example.com");
  MethodResult dkim{"dkim", "pass"};
  dkim.prop("header", "d", "example.com").prop("header", "s", "sel1").prop("header", "b", "AbC+/x12");
  MethodResult dmarc{"dmarc", "pass"};
  dmarc.comment = "p=reject dis=none";
  dmarc.dnssec = true;
  dmarc.prop("header", "from", "example.com");
  MethodResult arc{"arc", "fail"};
  arc.reason = "AMS i=2 body hash mismatch";
  ar.results = {spf, dkim, dmarc, arc};
  EXPECT_EQ(format_value(ar),
            "mx.example.org; spf=pass smtp.mailfrom=sender@example.com; dkim=pass header.d=example.com "
            "header.s=sel1 header.b=\"AbC+/x12\"; dmarc=pass (p=reject dis=none) (dnssec=secure) "
            "header.from=example.com; arc=fail reason=\"AMS i=2 body hash mismatch\"");
  std::string h = format_header(ar);
  EXPECT_EQ(h.rfind("Authentication-Results: mx.example.org;", 0), 0u);
  ASSERT_GE(h.size(), 2u);
  EXPECT_EQ(h.substr(h.size() - 2), "\r\n");
  // Folded: every physical line within 78 columns, continuation lines start with WSP.
  size_t start = 0;
  int lines = 0;
  while (start < h.size()) {
    size_t end = h.find("\r\n", start);
    ASSERT_NE(end, std::string::npos);
    EXPECT_LE(end - start, 78u) << h.substr(start, end - start);
    if (lines > 0) EXPECT_EQ(h[start], ' ');
    ++lines;
    start = end + 2;
  }
  EXPECT_GT(lines, 1);
  // And it parses back to the same results.
  auto parsed = parse_auth_results(h.substr(h.find(':') + 1));
  ASSERT_TRUE(parsed) << parsed.error().text;
  EXPECT_EQ(parsed->authserv_id, "mx.example.org");
  ASSERT_EQ(parsed->results.size(), 4u);
  EXPECT_EQ(parsed->results[1].result.properties[2].value, "AbC+/x12");
  EXPECT_EQ(parsed->results[2].result.comment, "p=reject dis=none");
  EXPECT_EQ(parsed->results[3].result.reason, "AMS i=2 body hash mismatch");
}

TEST(AuthResultsBuild, NoneAndQuoting) {
  AuthResults ar;
  ar.authserv_id = "example.org";
  EXPECT_EQ(format_value(ar), "example.org; none");
  EXPECT_EQ(quote_value("simple"), "simple");
  EXPECT_EQ(quote_value("has space"), "\"has space\"");
  EXPECT_EQ(quote_value("a\"b\\c\r\nd"), "\"a\\\"b\\\\cd\"");
  EXPECT_EQ(quote_value(""), "\"\"");
  EXPECT_EQ(quote_pvalue("user@example.com"), "user@example.com");
  EXPECT_EQ(quote_pvalue("@example.com"), "@example.com");
  EXPECT_EQ(quote_pvalue("a b@example.com"), "\"a b@example.com\"");
  MethodResult m{"dkim", "pass"};
  m.comment = "nested (paren) \\ ok";
  ar.results = {m};
  EXPECT_EQ(format_value(ar), "example.org; dkim=pass (nested \\(paren\\) \\\\ ok)");
  auto back = parse_auth_results(format_value(ar));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->results[0].result.result, "pass");
}

TEST(AuthResultsParse, Rfc8601Examples) {
  // Appendix B.3-B.6 style values.
  auto r = parse_auth_results(" example.com;\r\n          spf=pass smtp.mailfrom=example.net");
  ASSERT_TRUE(r) << r.error().text;
  EXPECT_EQ(r->authserv_id, "example.com");
  ASSERT_EQ(r->results.size(), 1u);
  EXPECT_EQ(r->results[0].result.method, "spf");
  EXPECT_EQ(r->results[0].result.properties[0].property, "mailfrom");
  EXPECT_EQ(r->results[0].result.properties[0].value, "example.net");

  r = parse_auth_results(
      " example.com;\r\n   auth=pass (cram-md5) smtp.auth=sender@example.net;\r\n   spf=pass "
      "smtp.mailfrom=example.net");
  ASSERT_TRUE(r) << r.error().text;
  ASSERT_EQ(r->results.size(), 2u);
  EXPECT_EQ(r->results[0].result.comment, "cram-md5");
  EXPECT_EQ(r->results[0].text, "auth=pass (cram-md5) smtp.auth=sender@example.net");

  r = parse_auth_results(" example.com; none");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->none);
  EXPECT_TRUE(r->results.empty());

  r = parse_auth_results(" mail-router.example.net; dkim=pass (good signature)\r\n header.d=newyork.example.com");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->results[0].result.properties[0].value, "newyork.example.com");

  r = parse_auth_results(" \"quoted id\" 1; dkim/1 = fail reason = \"bad sig\" header.i=@x.example");
  ASSERT_TRUE(r) << r.error().text;
  EXPECT_EQ(r->authserv_id, "quoted id");
  EXPECT_EQ(r->version, 1u);
  EXPECT_EQ(r->results[0].result.reason, "bad sig");
}

TEST(AuthResultsParse, ArcInstance) {
  auto r = parse_auth_results(" i=2; lists.example.org; arc=pass; dkim=pass header.d=x.example", /*arc=*/true);
  ASSERT_TRUE(r) << r.error().text;
  EXPECT_EQ(r->instance, 2u);
  EXPECT_EQ(r->authserv_id, "lists.example.org");
  EXPECT_EQ(r->results.size(), 2u);
  EXPECT_FALSE(parse_auth_results(" lists.example.org; arc=pass", true));
  EXPECT_EQ(extract_authserv_id(" i=1; lists.example.org; spf=pass"), "lists.example.org");
}

TEST(AuthResultsParse, Malformed) {
  EXPECT_FALSE(parse_auth_results(""));
  EXPECT_FALSE(parse_auth_results(" ; spf=pass"));
  EXPECT_FALSE(parse_auth_results(" example.com; spf"));
  EXPECT_FALSE(parse_auth_results(" example.com; spf=pass (unterminated"));
  EXPECT_FALSE(parse_auth_results(" example.com; spf=pass smtp"));
  EXPECT_FALSE(parse_auth_results(" example.com; spf=pass smtp.mailfrom=\"open"));
  EXPECT_FALSE(parse_auth_results(std::string(70000, 'a')));
  // Deeply nested comments are refused, not recursed into.
  EXPECT_FALSE(parse_auth_results(" example.com " + std::string(1000, '(') + std::string(1000, ')') + "; none"));
  std::string many = " example.com";
  for (int i = 0; i < 300; ++i) many += "; x=pass";
  EXPECT_FALSE(parse_auth_results(many));
}

TEST(AuthResultsParse, AuthservIdForRemoval) {
  // RFC 8601 §5: a forged field claiming our id must be recognised even if the rest is junk.
  EXPECT_TRUE(claims_authserv_id(" MX.Example.ORG; spf=pass ((( junk", "mx.example.org"));
  EXPECT_TRUE(claims_authserv_id(" (comment) mx.example.org (c2);none", "mx.example.org"));
  EXPECT_FALSE(claims_authserv_id(" mx.example.org.evil; spf=pass", "mx.example.org"));
  EXPECT_FALSE(claims_authserv_id("", "mx.example.org"));
  EXPECT_EQ(extract_authserv_id(" \"mx.example.org\"; none"), "mx.example.org");
  EXPECT_EQ(extract_authserv_id("   "), std::nullopt);
}

}  // namespace
}  // namespace tern::auth
