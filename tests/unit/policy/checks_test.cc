// Unit tests for AntiAbuse, the assembled checks: built from a PolicyConfig
// (bad access maps fail creation), the per-stage calls in the order checks.h
// gives (sender_access OK skipping the greylist, DISCARD, recipient_access,
// require_helo, message rate), and the connect-time DNS lookups (DNSBL and
// iprev started without waiting, awaited later, awaited twice).
#include "policy/checks.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fstream>

#include "dns/fake_resolver.h"
#include "test_support.h"

namespace tern::policy {
namespace {

namespace asio = boost::asio;
using testing::ip;
using testing::run_sync;
using Action = Verdict::Action;

std::string write_temp(const std::string& text) {
  char tmpl[] = "/tmp/tern-checks-XXXXXX";
  int fd = ::mkstemp(tmpl);
  ::close(fd);
  std::ofstream(tmpl) << text;
  return tmpl;
}

TEST(AntiAbuse, CreateFailsOnBadMap) {
  config::PolicyConfig config;
  config.sender_access = write_temp("@x.test MAYBE\n");
  auto checks = AntiAbuse::create(config, "");
  ASSERT_FALSE(checks);
  EXPECT_EQ(checks.error().text, "policy.sender_access: " + config.sender_access +
                                     ":1: unknown action 'MAYBE' (expected OK, REJECT or DISCARD)");
  ::unlink(config.sender_access.c_str());
}

TEST(AntiAbuse, StagesInOrder) {
  config::PolicyConfig config;
  config.reject_non_fqdn_helo = true;
  config.reject_non_fqdn_sender = true;
  config.sender_access = write_temp("@friend.test OK\n@spam.test REJECT No thanks\n@drop.test DISCARD\n");
  config.recipient_access = write_temp("/^closed@/ REJECT Closed\n");
  config.greylist.enabled = true;
  config.rate_limit.messages_per_hour_per_ip = 100;
  auto created = AntiAbuse::create(config, "");
  ASSERT_TRUE(created) << created.error().text;
  AntiAbuse& checks = **created;
  IpAddress client = ip("192.0.2.1");

  EXPECT_EQ(checks.on_connect(client).action, Action::kContinue);
  EXPECT_EQ(checks.on_helo("localhost").code, 504);
  EXPECT_EQ(checks.on_helo("mx.example.org").action, Action::kContinue);
  EXPECT_EQ(checks.on_mail_syntax(false, "a@x.test", client).code, 503);
  EXPECT_EQ(checks.on_mail_syntax(true, "a@localhost", client).code, 504);
  EXPECT_EQ(checks.on_mail_syntax(true, "a@spam.test", client).error().to_string(),
            "550 5.7.1 Sender address rejected: No thanks");
  EXPECT_EQ(checks.on_mail_syntax(true, "a@drop.test", client).action, Action::kDiscard);
  EXPECT_EQ(checks.on_mail_syntax(true, "a@friend.test", client).action, Action::kAccept);
  EXPECT_EQ(checks.on_mail_syntax(true, "a@other.test", client).action, Action::kContinue);

  EXPECT_EQ(checks.on_rcpt(client, "a@other.test", "closed@me.test", false).text, "Recipient address rejected: Closed");
  EXPECT_EQ(checks.on_rcpt(client, "a@other.test", "b@me.test", false).code, 451);  // greylisted
  EXPECT_EQ(checks.on_rcpt(client, "a@friend.test", "b@me.test", true).action, Action::kAccept);
  ::unlink(config.sender_access.c_str());
  ::unlink(config.recipient_access.c_str());
}

TEST(AntiAbuse, SenderDomainCheckCanBeOff) {
  dns::FakeResolver dns;
  config::PolicyConfig config;
  auto on = AntiAbuse::create(config, "");
  ASSERT_TRUE(on);
  EXPECT_EQ(run_sync((*on)->on_mail_dns(dns, "a@nowhere.test")).code, 550);
  config.reject_unknown_sender_domain = false;
  auto off = AntiAbuse::create(config, "");
  ASSERT_TRUE(off);
  EXPECT_EQ(run_sync((*off)->on_mail_dns(dns, "a@nowhere.test")).action, Action::kContinue);
  EXPECT_EQ(dns.query_count(), 1u);
}

TEST(AntiAbuse, ConnectDnsStartedThenAwaited) {
  dns::FakeResolver dns;
  dns.add_address("2.0.0.127.zen.dnsbl.test", "127.0.0.2");
  dns.add_txt("2.0.0.127.zen.dnsbl.test", "listed for testing");
  dns.add_ptr("2.0.0.127.in-addr.arpa", "host.example.org");
  dns.add_address("host.example.org", "127.0.0.2");
  config::PolicyConfig config;
  config.dnsbl = {"zen.dnsbl.test"};
  auto created = AntiAbuse::create(config, "");
  ASSERT_TRUE(created);
  std::shared_ptr<AntiAbuse> checks = *created;

  auto session = [&]() -> asio::awaitable<std::pair<ConnectDnsResult, ConnectDnsResult>> {
    auto executor = co_await asio::this_coro::executor;
    ConnectDns lookups = checks->start_dns(executor, dns, ip("127.0.0.2"));
    EXPECT_TRUE(lookups.started());
    ConnectDnsResult first = co_await lookups.wait();
    ConnectDnsResult again = co_await lookups.wait();
    co_return std::make_pair(first, again);
  };
  auto [first, again] = run_sync(session());
  EXPECT_EQ(first.dnsbl.action, Action::kReject);
  EXPECT_EQ(first.dnsbl.error().to_string(),
            "554 5.7.1 Service unavailable; client [127.0.0.2] blocked using zen.dnsbl.test; listed for testing");
  EXPECT_EQ(first.iprev.code, IprevResult::Code::kPass);
  EXPECT_EQ(first.iprev.name, "host.example.org");
  EXPECT_EQ(again.dnsbl.text, first.dnsbl.text);
  // Never started: nothing checked.
  ConnectDns none;
  EXPECT_EQ(run_sync(none.wait()).dnsbl.action, Action::kContinue);
}

// Answers like FakeResolver, but only after a delay: the lookups are still
// running when the session first waits for them.
class SlowResolver : public dns::Resolver {
 public:
  explicit SlowResolver(dns::FakeResolver& inner) : inner_(inner) {}
  asio::awaitable<dns::Answer> query(std::string name, dns::RrType type) override {
    asio::steady_timer delay(co_await asio::this_coro::executor, std::chrono::milliseconds(20));
    co_await delay.async_wait(asio::use_awaitable);
    co_return inner_.lookup(name, type);
  }

 private:
  dns::FakeResolver& inner_;
};

TEST(AntiAbuse, ConnectDnsWaitersWakeWhenLookupsFinish) {
  dns::FakeResolver records;
  records.add_address("9.2.0.192.bl.test", "127.0.0.9");
  SlowResolver dns(records);
  config::PolicyConfig config;
  config.dnsbl = {"bl.test"};
  auto created = AntiAbuse::create(config, "");
  ASSERT_TRUE(created);
  std::shared_ptr<AntiAbuse> checks = *created;
  asio::io_context ctx;
  ConnectDns lookups = checks->start_dns(ctx.get_executor(), dns, ip("192.0.2.9"));
  int woken = 0;
  auto waiter = [&]() -> asio::awaitable<void> {
    ConnectDnsResult r = co_await lookups.wait();
    EXPECT_EQ(r.dnsbl.code, 554);
    EXPECT_EQ(r.iprev.code, IprevResult::Code::kFail);
    ++woken;
  };
  asio::co_spawn(ctx, waiter(), asio::detached);
  asio::co_spawn(ctx, waiter(), asio::detached);
  ctx.run();
  EXPECT_EQ(woken, 2);
}

}  // namespace
}  // namespace tern::policy
