// Tests for the control socket protocol and queue listing format.
#include "admin/control.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "admin/queue_commands.h"

namespace tern::admin {
namespace {

TEST(Control, RequestAndErrorRoundTrip) {
  std::string path = "/tmp/tern-control-test-" + std::to_string(::getpid()) + ".sock";
  ControlServer server(path, [](const std::string& cmd, const std::string& arg) -> Result<std::string> {
    if (cmd == "echo") return "got " + arg + "\n";
    return Error::perm("5.5.1", "unknown command: " + cmd);
  });
  ASSERT_TRUE(server.start());
  auto ok = control_request(path, "echo", "abc");
  ASSERT_TRUE(ok) << ok.error().text;
  EXPECT_EQ(*ok, "got abc\n");
  auto bad = control_request(path, "nope", "");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().text, "unknown command: nope");
  server.stop();
  auto gone = control_request(path, "echo", "x");
  ASSERT_FALSE(gone);
  EXPECT_NE(gone.error().text.find("is tern running?"), std::string::npos);
}

TEST(Control, FormatsQueueList) {
  EXPECT_EQ(format_queue_list({}), "queue is empty\n");
  queue::Envelope e;
  e.id = "1k15v3zp0jc000";
  e.mail_from = "a@example.net";
  e.size = 100;
  e.received_at = 1795703411;
  queue::Recipient r;
  r.address = "bob@example.org";
  r.attempts = 2;
  r.next_attempt = 1795704000;
  r.last_reply = "451 4.4.0 later";
  e.recipients.push_back(r);
  e.held = true;
  std::string out = format_queue_list({e});
  EXPECT_NE(out.find("1k15v3zp0jc000  size=100  arrived=2026-11-26T14:30:11Z  from=<a@example.net>  HELD"),
            std::string::npos);
  EXPECT_NE(out.find("to=<bob@example.org> status=pending attempts=2 next=2026-11-26T14:40:00Z last=\"451 4.4.0 later\""),
            std::string::npos);
  EXPECT_NE(out.find("-- 1 message(s), 1 recipient(s), 100 bytes"), std::string::npos);
}

}  // namespace
}  // namespace tern::admin
