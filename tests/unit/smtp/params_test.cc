// Tests for MAIL/RCPT parameter parsing (src/smtp/params.h): SIZE, BODY,
// SMTPUTF8, DSN (RFC 3461), AUTH= (RFC 4954 §5) and REQUIRETLS (RFC 8689).
#include "smtp/params.h"

#include <gtest/gtest.h>

namespace tern::smtp {
namespace {

ParamContext ctx(bool tls = false) { return ParamContext{true, tls, 1000}; }

TEST(MailParams, EmptyIsDefaults) {
  auto p = parse_mail_params("", ctx());
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->size.has_value());
  EXPECT_EQ(p->body, Body::k7Bit);
  EXPECT_FALSE(p->smtputf8);
  EXPECT_EQ(p->ret, Ret::kUnset);
}

TEST(MailParams, AllKnownParameters) {
  auto p = parse_mail_params(" size=900 BODY=8bitmime SMTPUTF8 RET=hdrs ENVID=QQ+2Bid+3D1 AUTH=joe+2Bx@y.org",
                             ctx());
  ASSERT_TRUE(p) << p.error().text;
  EXPECT_EQ(p->size, 900u);
  EXPECT_EQ(p->body, Body::k8BitMime);
  EXPECT_TRUE(p->smtputf8);
  EXPECT_EQ(p->ret, Ret::kHdrs);
  EXPECT_EQ(p->envid, "QQ+id=1");
  EXPECT_EQ(p->auth, "joe+x@y.org");
  auto b = parse_mail_params("BODY=BINARYMIME RET=FULL AUTH=<>", ctx());
  ASSERT_TRUE(b);
  EXPECT_EQ(b->body, Body::kBinaryMime);
  EXPECT_EQ(b->ret, Ret::kFull);
  EXPECT_EQ(b->auth, "<>");
}

TEST(MailParams, SizeLimit) {
  auto p = parse_mail_params("SIZE=1001", ctx());
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, 552);
  EXPECT_EQ(p.error().enhanced, "5.3.4");
  EXPECT_TRUE(parse_mail_params("SIZE=1000", ctx()));
  auto huge = parse_mail_params("SIZE=99999999999999999999999", ctx());
  ASSERT_FALSE(huge);
  EXPECT_EQ(huge.error().code, 501);
}

TEST(MailParams, UnknownAndDuplicateAre555) {
  for (const char* s : {"FOO=1", "SIZE=1 SIZE=2", "SMTPUTF8 smtputf8", "XFORWARD"}) {
    auto p = parse_mail_params(s, ctx());
    ASSERT_FALSE(p) << s;
    EXPECT_EQ(p.error().code, 555) << s;
    EXPECT_EQ(p.error().enhanced, "5.5.4") << s;
  }
}

TEST(MailParams, MalformedValuesAre501) {
  for (const char* s : {"SIZE=abc", "SIZE", "SIZE=", "BODY=9BIT", "BODY", "SMTPUTF8=yes", "RET=ALL",
                        "ENVID=bad+zz", "ENVID=a+4", "=x", "-A=1", "A_B=1"}) {
    auto p = parse_mail_params(s, ctx());
    ASSERT_FALSE(p) << s;
    EXPECT_EQ(p.error().code, 501) << s;
  }
  std::string long_envid = "ENVID=" + std::string(101, 'a');
  EXPECT_FALSE(parse_mail_params(long_envid, ctx()));
}

TEST(MailParams, RequireTlsOnlyOverTls) {
  auto plain = parse_mail_params("REQUIRETLS", ctx(false));
  ASSERT_FALSE(plain);
  EXPECT_EQ(plain.error().code, 555);
  auto tls = parse_mail_params("REQUIRETLS", ctx(true));
  ASSERT_TRUE(tls);
  EXPECT_TRUE(tls->requiretls);
}

TEST(MailParams, NoParametersAfterHelo) {
  ParamContext helo{false, false, 1000};
  EXPECT_TRUE(parse_mail_params("", helo));
  auto p = parse_mail_params("SIZE=10", helo);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, 555);
}

TEST(RcptParams, NotifyCombinations) {
  auto a = parse_rcpt_params("NOTIFY=SUCCESS,FAILURE,delay", ctx());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->notify, unsigned{kNotifySuccess | kNotifyFailure | kNotifyDelay});
  auto n = parse_rcpt_params("NOTIFY=NEVER", ctx());
  ASSERT_TRUE(n);
  EXPECT_EQ(n->notify, unsigned{kNotifyNever});
  auto none = parse_rcpt_params("", ctx());
  ASSERT_TRUE(none);
  EXPECT_EQ(none->notify, unsigned{kNotifyUnset});
  for (const char* s : {"NOTIFY=NEVER,SUCCESS", "NOTIFY=FAILURE,NEVER", "NOTIFY=", "NOTIFY=SOMETIMES",
                        "NOTIFY=SUCCESS,,FAILURE", "NOTIFY=SUCCESS,SUCCESS", "NOTIFY"}) {
    auto p = parse_rcpt_params(s, ctx());
    ASSERT_FALSE(p) << s;
    EXPECT_EQ(p.error().code, 501) << s;
  }
  auto dup = parse_rcpt_params("NOTIFY=NEVER NOTIFY=NEVER", ctx());
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, 555);
}

TEST(RcptParams, Orcpt) {
  auto p = parse_rcpt_params("ORCPT=RFC822;user+2Btag@example.org", ctx());
  ASSERT_TRUE(p);
  EXPECT_EQ(p->orcpt_type, "rfc822");
  EXPECT_EQ(p->orcpt, "user+tag@example.org");
  for (const char* s : {"ORCPT=rfc822", "ORCPT=;a@b", "ORCPT=rfc822;", "ORCPT=rfc822;a+ZZ", "ORCPT=r f;x"}) {
    EXPECT_FALSE(parse_rcpt_params(s, ctx())) << s;
  }
  auto unknown = parse_rcpt_params("SIZE=1", ctx());
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, 555);
}

}  // namespace
}  // namespace tern::smtp
