// AntiAbuse: the anti-abuse checks assembled from [policy] (see checks.h).
#include "policy/checks.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/fs.h"

namespace tern::policy {
namespace asio = boost::asio;

struct ConnectDns::State {
  explicit State(const asio::any_io_executor& executor)
      : done_signal(executor, asio::steady_timer::time_point::max()) {}
  bool done = false;
  ConnectDnsResult result;
  asio::steady_timer done_signal;  // cancelled when the lookups finish: wakes every waiter
};

asio::awaitable<ConnectDnsResult> ConnectDns::wait() {
  if (!state_) co_return ConnectDnsResult{};
  std::shared_ptr<State> state = state_;
  while (!state->done) {
    boost::system::error_code ec;
    co_await state->done_signal.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return state->result;
}

namespace {

asio::awaitable<void> run_connect_dns(std::shared_ptr<ConnectDns::State> state, dns::Resolver& resolver,
                                      IpAddress client, std::vector<std::string> zones) {
  auto executor = co_await asio::this_coro::executor;
  auto [order, dnsbl_error, dnsbl, iprev_error, iprev] =
      co_await asio::experimental::make_parallel_group(
          asio::co_spawn(executor, check_dnsbl(resolver, client, zones), asio::deferred),
          asio::co_spawn(executor, check_iprev(resolver, client), asio::deferred))
          .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
  (void)order;
  if (!dnsbl_error) state->result.dnsbl = std::move(dnsbl);
  if (!iprev_error) {
    state->result.iprev = std::move(iprev);
  } else {
    state->result.iprev.code = IprevResult::Code::kTempError;
    state->result.iprev.explanation = "lookup failed";
  }
  state->done = true;
  state->done_signal.cancel();
}

}  // namespace

AntiAbuse::AntiAbuse(config::PolicyConfig config)
    : config_(std::move(config)),
      rate_limiter_(RateLimitOptions{config_.rate_limit.connections_per_minute_per_ip,
                                     config_.rate_limit.messages_per_hour_per_ip}) {}

Result<ConfiguredAccessMaps> load_access_maps(const config::PolicyConfig& config) {
  ConfiguredAccessMaps maps;
  if (!config.sender_access.empty()) {
    auto map = AccessMap::load(config.sender_access, AccessMapKind::kSender);
    if (!map) return Error::perm("5.3.0", "policy.sender_access: " + map.error().text);
    maps.sender = std::move(*map);
  }
  if (!config.recipient_access.empty()) {
    auto map = AccessMap::load(config.recipient_access, AccessMapKind::kRecipient);
    if (!map) return Error::perm("5.3.0", "policy.recipient_access: " + map.error().text);
    maps.recipient = std::move(*map);
  }
  return maps;
}

Result<std::shared_ptr<AntiAbuse>> AntiAbuse::create(const config::PolicyConfig& config, const std::string& data_dir) {
  std::shared_ptr<AntiAbuse> checks(new AntiAbuse(config));
  if (!config.sender_access.empty()) {
    auto map = ReloadingAccessMap::open(config.sender_access, AccessMapKind::kSender);
    if (!map) return Error::perm("5.3.0", "policy.sender_access: " + map.error().text);
    checks->sender_access_ = std::move(*map);
  }
  if (!config.recipient_access.empty()) {
    auto map = ReloadingAccessMap::open(config.recipient_access, AccessMapKind::kRecipient);
    if (!map) return Error::perm("5.3.0", "policy.recipient_access: " + map.error().text);
    checks->recipient_access_ = std::move(*map);
  }
  if (config.greylist.enabled) {
    GreylistOptions options;
    options.delay = std::chrono::seconds(config.greylist.delay);
    options.expire = std::chrono::seconds(config.greylist.expire);
    options.retry_window = std::min(options.retry_window, options.expire);
    options.pass_after = config.greylist.pass_after;
    auto greylist = Greylist::open(data_dir.empty() ? std::string() : fs::join(data_dir, "greylist"), options);
    if (!greylist) return Error::local("policy.greylist: " + greylist.error().text);
    checks->greylist_ = std::move(*greylist);
  }
  return checks;
}

Verdict AntiAbuse::on_connect(const IpAddress& client) {
  return rate_limiter_.on_connect(client);
}

ConnectDns AntiAbuse::start_dns(const asio::any_io_executor& executor, dns::Resolver& resolver,
                                const IpAddress& client) const {
  ConnectDns handle;
  handle.state_ = std::make_shared<ConnectDns::State>(executor);
  asio::co_spawn(executor, run_connect_dns(handle.state_, resolver, client, config_.dnsbl), asio::detached);
  return handle;
}

Verdict AntiAbuse::on_helo(std::string_view helo) const {
  return check_helo_fqdn(helo, config_.reject_non_fqdn_helo);
}

Verdict AntiAbuse::on_mail_syntax(bool helo_seen, std::string_view mail_from, const IpAddress& client) {
  if (Verdict v = check_helo_required(helo_seen, config_.require_helo); v.refused()) return v;
  if (Verdict v = check_sender_fqdn(mail_from, config_.reject_non_fqdn_sender); v.refused()) return v;
  if (sender_access_) {
    Verdict v = sender_access_->current()->check(mail_from, client);
    if (v.action != Verdict::Action::kContinue) return v;
  }
  return rate_limiter_.on_message(client);
}

asio::awaitable<Verdict> AntiAbuse::on_mail_dns(dns::Resolver& resolver, std::string mail_from) const {
  if (!config_.reject_unknown_sender_domain) co_return Verdict::pass("sender domain: not checked");
  co_return co_await check_sender_domain(resolver, mail_from);
}

Verdict AntiAbuse::on_rcpt(const IpAddress& client, std::string_view mail_from, std::string_view rcpt, bool sender_ok) {
  if (recipient_access_) {
    Verdict v = recipient_access_->current()->check(rcpt);
    if (v.action != Verdict::Action::kContinue) return v;
  }
  if (sender_ok) return Verdict::accept("greylist: skipped (sender_access OK)");
  if (!greylist_) return Verdict::pass("greylist: off");
  return greylist_->check(client, mail_from, rcpt);
}

}  // namespace tern::policy
