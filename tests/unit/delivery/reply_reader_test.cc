// Tests for the SMTP/LMTP reply reader: single and multiline replies,
// enhanced status codes, incremental input, and rejection of garbage.
#include "delivery/reply_reader.h"

#include <gtest/gtest.h>

namespace tern::delivery {
namespace {

TEST(ReplyReader, SingleLineWithEnhancedCode) {
  auto r = parse_reply("250 2.1.5 <alice@example.org> OK\r\n");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->code, 250);
  EXPECT_EQ(r->enhanced, "2.1.5");
  ASSERT_EQ(r->lines.size(), 1u);
  EXPECT_EQ(r->lines[0], "<alice@example.org> OK");
  EXPECT_TRUE(r->positive());
  EXPECT_EQ(r->to_string(), "250 2.1.5 <alice@example.org> OK");
}

TEST(ReplyReader, MultilineLhloReply) {
  auto r = parse_reply("250-mx.example.org\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 250);
  EXPECT_EQ(r->enhanced, "");
  EXPECT_EQ(r->lines, (std::vector<std::string>{"mx.example.org", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"}));
}

TEST(ReplyReader, MultilineStripsRepeatedEnhancedCode) {
  auto r = parse_reply("452-4.2.2 mailbox full\r\n452 4.2.2 try later\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->enhanced, "4.2.2");
  EXPECT_EQ(r->text(), "mailbox full / try later");
  EXPECT_TRUE(r->transient());
}

TEST(ReplyReader, EnhancedCodeMustMatchClass) {
  auto r = parse_reply("250 5.1.1 odd\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->enhanced, "");
  EXPECT_EQ(r->text(), "5.1.1 odd");
  // Not a status code: too many digits, or no separator after it.
  EXPECT_EQ(parse_reply("550 5.1.1234 x\r\n")->enhanced, "");
  EXPECT_EQ(parse_reply("550 5.1.1x\r\n")->enhanced, "");
  EXPECT_EQ(parse_reply("550 5.1.1\r\n")->enhanced, "5.1.1");
}

TEST(ReplyReader, CodeOnlyAndBareLf) {
  auto r = parse_reply("354\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 354);
  EXPECT_EQ(r->lines, std::vector<std::string>{""});
  auto lf = parse_reply("221 bye\n");
  ASSERT_TRUE(lf);
  EXPECT_EQ(lf->code, 221);
}

TEST(ReplyReader, IncrementalFeedByteByByte) {
  std::string wire = "250-first\r\n250 second\r\n550 5.1.1 no\r\n";
  ReplyReader reader;
  std::vector<Reply> got;
  for (char c : wire) {
    reader.feed(std::string_view(&c, 1));
    for (;;) {
      auto r = reader.next();
      ASSERT_TRUE(r);
      if (!r.value()) break;
      got.push_back(std::move(*r.value()));
    }
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].lines.size(), 2u);
  EXPECT_EQ(got[1].code, 550);
  EXPECT_EQ(got[1].enhanced, "5.1.1");
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(ReplyReader, IncompleteReplyNeedsMore) {
  ReplyReader reader;
  reader.feed("250-one\r\n250 tw");
  auto r = reader.next();
  ASSERT_TRUE(r);
  EXPECT_FALSE(r.value().has_value());
  reader.feed("o\r\n");
  auto r2 = reader.next();
  ASSERT_TRUE(r2 && r2.value());
  EXPECT_EQ(r2.value()->text(), "one / two");
}

TEST(ReplyReader, RejectsGarbage) {
  for (const char* bad : {"hello\r\n", "600 no\r\n", "199 no\r\n", "260 bad second digit\r\n", "25\r\n",
                          "250x\r\n", "2a0 x\r\n", "250-a\r\n251 b\r\n", "\r\n"}) {
    auto r = parse_reply(bad);
    EXPECT_FALSE(r) << "accepted: " << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, 451);
      EXPECT_TRUE(r.error().transient());
    }
  }
  auto nul = parse_reply(std::string_view("250 a\0b\r\n", 9));
  EXPECT_FALSE(nul);
}

TEST(ReplyReader, TrailingDataIsNotOneReply) {
  EXPECT_FALSE(parse_reply("250 ok\r\n250 again\r\n"));
  EXPECT_FALSE(parse_reply("250 ok"));
}

TEST(ReplyReader, LineLengthBound) {
  ReplyLimits limits;
  limits.max_line_length = 64;
  std::string long_line = "250 " + std::string(100, 'x');
  ReplyReader reader(limits);
  reader.feed(long_line);  // no CRLF yet: must fail without waiting for one
  EXPECT_FALSE(reader.next());
  EXPECT_FALSE(parse_reply(long_line + "\r\n", limits));
  EXPECT_TRUE(parse_reply("250 " + std::string(50, 'x') + "\r\n", limits));
}

TEST(ReplyReader, LineCountBound) {
  ReplyLimits limits;
  limits.max_lines = 3;
  EXPECT_TRUE(parse_reply("250-a\r\n250-b\r\n250 c\r\n", limits));
  EXPECT_FALSE(parse_reply("250-a\r\n250-b\r\n250-c\r\n250 d\r\n", limits));
}

TEST(ReplyReader, ErrorIsSticky) {
  ReplyReader reader;
  reader.feed("bogus\r\n");
  EXPECT_FALSE(reader.next());
  reader.feed("250 ok\r\n");
  EXPECT_FALSE(reader.next());
}

}  // namespace
}  // namespace tern::delivery
