// Tests for SMTP reply rendering (src/smtp/reply.h): RFC 5321 §4.2.1
// multi-line format and RFC 2034 enhanced codes on every line.
#include "smtp/reply.h"

#include <gtest/gtest.h>

namespace tern::smtp {
namespace {

TEST(Reply, SingleLine) {
  EXPECT_EQ(Reply(250, "2.1.0", "Ok").render(), "250 2.1.0 Ok\r\n");
  EXPECT_EQ(Reply(220, "", "mx.example ESMTP tern").render(), "220 mx.example ESMTP tern\r\n");
}

TEST(Reply, MultiLineHasEnhancedCodeOnEveryLine) {
  Reply r(550, "5.7.1", std::vector<std::string>{"first", "second", "third"});
  EXPECT_EQ(r.render(), "550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 third\r\n");
}

TEST(Reply, EmptyTextAndNoLines) {
  EXPECT_EQ(Reply(334, "", "").render(), "334 \r\n");
  Reply r;
  r.code = 250;
  r.enhanced = "2.0.0";
  EXPECT_EQ(r.render(), "250 2.0.0\r\n");
}

TEST(Reply, ControlCharactersCannotInjectLines) {
  EXPECT_EQ(Reply(250, "2.0.0", "a\r\n250 b\x01").render(), "250 2.0.0 a  250 b \r\n");
}

TEST(Reply, InvalidCodeBecomesLocalError) {
  EXPECT_EQ(Reply(99, "", "x").render(), "451 x\r\n");
  EXPECT_EQ(Reply(1234, "", "x").render(), "451 x\r\n");
}

TEST(Reply, FromError) {
  Reply r = Reply::from_error(Error{552, "5.3.4", "too big"});
  EXPECT_EQ(r.render(), "552 5.3.4 too big\r\n");
  EXPECT_TRUE(r.permanent());
}

}  // namespace
}  // namespace tern::smtp
