// Tests for DATA-phase dot-stuffing (RFC 5321 §4.5.2) and its inverse.
#include "delivery/dot_stuff.h"

#include <gtest/gtest.h>

namespace tern::delivery {
namespace {

TEST(DotStuff, DoublesLeadingDotsOnly) {
  EXPECT_EQ(dot_stuff("a\r\n.b\r\n..c\r\nd.e\r\n"), "a\r\n..b\r\n...c\r\nd.e\r\n.\r\n");
  EXPECT_EQ(dot_stuff(".\r\n"), "..\r\n.\r\n");
  EXPECT_EQ(dot_stuff(".first"), "..first\r\n.\r\n");
}

TEST(DotStuff, TerminatesAndNormalises) {
  EXPECT_EQ(dot_stuff(""), ".\r\n");
  EXPECT_EQ(dot_stuff("no newline"), "no newline\r\n.\r\n");
  EXPECT_EQ(dot_stuff("bare\nlf\n.x\n"), "bare\r\nlf\r\n..x\r\n.\r\n");
  EXPECT_EQ(dot_stuff("cr\rstays\r\n"), "cr\rstays\r\n.\r\n");
  EXPECT_EQ(dot_stuff("trailing cr\r"), "trailing cr\r\n.\r\n");
}

TEST(DotStuff, ChunkBoundariesDoNotMatter) {
  std::string content = "Subject: x\r\n\r\n.line\r\n..two\r\nlf only\n.\r\nend";
  std::string whole = dot_stuff(content);
  for (size_t chunk = 1; chunk <= 5; ++chunk) {
    DotStuffer s;
    std::string out;
    for (size_t off = 0; off < content.size(); off += chunk) s.append(std::string_view(content).substr(off, chunk), out);
    s.finish(out);
    EXPECT_EQ(out, whole) << "chunk size " << chunk;
  }
}

TEST(DotStuff, UnstuffRoundTrip) {
  std::string content = "From: a@b\r\n\r\n.\r\n..\r\n.x\r\nbody\r\n";
  std::string back;
  ASSERT_TRUE(dot_unstuff(dot_stuff(content), back));
  EXPECT_EQ(back, content);
  EXPECT_FALSE(dot_unstuff("no terminator\r\n", back));
  EXPECT_FALSE(dot_unstuff("x\r\n.\r\nextra", back));
}

}  // namespace
}  // namespace tern::delivery
