// Tests for the key=value log value quoting.
#include "base/log.h"

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

}  // namespace
}  // namespace tern::log
