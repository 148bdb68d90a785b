// Tests for the [[milter]] tables of the config loader: defaults, every key,
// order, and file:line errors for bad addresses, on_failure values and
// timeouts.
#include <gtest/gtest.h>

#include "config/config.h"

namespace tern::config {
namespace {

constexpr const char* kListener = "[[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:25\"\n";

TEST(MilterConfig, AbsentMeansNoMilter) {
  auto c = load_string(kListener, "m.toml");
  ASSERT_TRUE(c) << c.error().text;
  EXPECT_TRUE(c->milters.empty());
}

TEST(MilterConfig, KeysDefaultsAndOrder) {
  auto c = load_string(std::string(kListener) + R"(
[[milter]]
address = "unix:/run/rspamd/milter.sock"
on_failure = "accept"
connect_timeout = "5s"
reply_timeout = 120
[[milter]]
address = "127.0.0.1:8891"
[[milter]]
address = "inet:8892@localhost"
on_failure = "reject"
)",
                       "m.toml");
  ASSERT_TRUE(c) << c.error().text;
  ASSERT_EQ(c->milters.size(), 3u);
  EXPECT_EQ(c->milters[0].address, "unix:/run/rspamd/milter.sock");
  EXPECT_EQ(c->milters[0].on_failure, MilterOnFailure::kAccept);
  EXPECT_EQ(c->milters[0].connect_timeout, 5u);
  EXPECT_EQ(c->milters[0].reply_timeout, 120u);
  EXPECT_EQ(c->milters[1].address, "127.0.0.1:8891");
  EXPECT_EQ(c->milters[1].on_failure, MilterOnFailure::kTempfail);
  EXPECT_EQ(c->milters[1].connect_timeout, 10u);
  EXPECT_EQ(c->milters[1].reply_timeout, 30u);
  EXPECT_EQ(c->milters[2].on_failure, MilterOnFailure::kReject);
  EXPECT_STREQ(milter_on_failure_name(c->milters[2].on_failure), "reject");
}

TEST(MilterConfig, Errors) {
  auto expect_error = [](const std::string& milter, const std::string& needle) {
    auto c = load_string(std::string(kListener) + "[[milter]]\n" + milter, "m.toml");
    ASSERT_FALSE(c) << milter;
    EXPECT_NE(c.error().text.find(needle), std::string::npos) << c.error().text;
  };
  expect_error("on_failure = \"tempfail\"\n", "m.toml:4: milter.address: missing");
  expect_error("address = \"localhost\"\n", "milter.address: must be");
  expect_error("address = \"unix:\"\n", "milter.address: must be");
  expect_error("address = \"inet:0@h\"\n", "milter.address: must be");
  expect_error("address = \"/run/m.sock\"\non_failure = \"ignore\"\n", "m.toml:6: milter.on_failure: must be tempfail");
  expect_error("address = \"/run/m.sock\"\nreply_timeout = \"0s\"\n", "milter.reply_timeout: must be between");
  expect_error("address = \"/run/m.sock\"\ntimeout = 5\n", "milter.timeout: unknown key");
  auto not_array = load_string(std::string(kListener) + "[milter]\naddress = \"/x\"\n", "m.toml");
  ASSERT_FALSE(not_array);
  EXPECT_NE(not_array.error().text.find("[[milter]]"), std::string::npos);
}

}  // namespace
}  // namespace tern::config
