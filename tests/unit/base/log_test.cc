// Tests for the key=value log value quoting and batched writes.
#include "base/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

namespace tern::log {
namespace {

TEST(Log, QuotesWhenNeeded) {
  std::string out;
  append_value(out, "plain");
  EXPECT_EQ(out, "plain");
  out.clear();
  append_value(out, "two words");
  EXPECT_EQ(out, "\"two words\"");
  out.clear();
  append_value(out, "a\"b\r\n");
  EXPECT_EQ(out, "\"a\\\"b\\r\\n\"");
  out.clear();
  append_value(out, "");
  EXPECT_EQ(out, "\"\"");
}

// Reads what is available on a non-blocking pipe.
std::string drain(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

TEST(Log, BatchWritesItsLinesWhenItEnds) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_NONBLOCK), 0);
  int saved = ::dup(STDERR_FILENO);
  ASSERT_GE(saved, 0);
  ::dup2(p[1], STDERR_FILENO);
  std::string during, after, unbatched;
  {
    Batch outer;
    info("first").kv("n", 1);
    {
      Batch inner;  // joins the outer batch
      info("second").kv("n", 2);
    }
    during = drain(p[0]);
  }
  after = drain(p[0]);
  info("third");
  unbatched = drain(p[0]);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(p[0]);
  ::close(p[1]);
  EXPECT_EQ(during, "");
  EXPECT_NE(after.find("event=first n=1\n"), std::string::npos) << after;
  EXPECT_NE(after.find("event=second n=2\n"), std::string::npos) << after;
  EXPECT_LT(after.find("event=first"), after.find("event=second"));
  EXPECT_NE(unbatched.find("event=third\n"), std::string::npos) << unbatched;
}

}  // namespace
}  // namespace tern::log
