// Listener set-up, the accept loops and the event-loop threads (see server.h).
#include "server/server.h"

#include <pthread.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/log.h"
#include "server/session.h"
#include "dns/unbound_resolver.h"
#include "tls/tls.h"

namespace tern::server {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {
users::AuthLimiter::Options limiter_options(const config::Config& cfg) {
  users::AuthLimiter::Options o;
  o.max_failures_per_session = cfg.limits.auth_failure_limit;
  return o;
}
// A socket bound to `ep`: SO_REUSEADDR, IPv6-only for an IPv6 address,
// SO_REUSEPORT when several event loops share the port, and TCP_NODELAY
// (replies go out at once, not behind the previous one; on Linux accepted
// sockets inherit it, which saves a call per session).
std::unique_ptr<tcp::acceptor> bound_acceptor(asio::io_context& ctx, const tcp::endpoint& ep, bool reuse_port,
                                              boost::system::error_code& ec) {
  auto acc = std::make_unique<tcp::acceptor>(ctx);
  acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && reuse_port) acc->set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true), ec);
  if (!ec && ep.address().is_v6()) acc->set_option(asio::ip::v6_only(true), ec);
  if (!ec) acc->set_option(tcp::no_delay(true), ec);
  if (!ec) acc->bind(ep, ec);
  return acc;
}
}  // namespace

Server::Server(const config::Config& cfg, ServerDeps deps)
    : cfg_(cfg), deps_(std::move(deps)), auth_limiter_(limiter_options(cfg_)) {
  size_t n = cfg_.server.threads != 0 ? cfg_.server.threads : std::max(1u, std::thread::hardware_concurrency());
  for (size_t i = 0; i < n; ++i) {
    contexts_.push_back(std::make_unique<asio::io_context>(1));
    guards_.push_back(asio::make_work_guard(*contexts_.back()));
  }
}

Server::~Server() {
  for (auto& c : contexts_) c->stop();
  join();
}

bool Server::is_trusted(const IpAddress& ip) const {
  for (const auto& c : cfg_.relay.trusted_networks) {
    if (c.contains(ip)) return true;
  }
  return false;
}

bool Server::admit(const IpAddress& ip, std::string& why) {
  std::lock_guard lock(conn_mu_);
  if (active_.load() >= cfg_.limits.max_connections) {
    why = "Too many connections, try again later";
    return false;
  }
  auto& count = per_ip_[ip.to_string()];
  if (count >= cfg_.limits.max_connections_per_ip) {
    if (count == 0) per_ip_.erase(ip.to_string());
    why = "Too many connections from your address, try again later";
    return false;
  }
  ++count;
  ++active_;
  return true;
}

void Server::release(const IpAddress& ip) {
  std::lock_guard lock(conn_mu_);
  auto it = per_ip_.find(ip.to_string());
  if (it == per_ip_.end()) return;
  if (--it->second == 0) per_ip_.erase(it);
  --active_;
}

dns::UnboundConfig unbound_config(const config::Config& cfg) {
  dns::UnboundConfig uc;
  uc.nameservers = cfg.dns.nameservers;
  uc.trust_anchor_file = cfg.dns.trust_anchor_file;
  uc.query_timeout = std::chrono::seconds(cfg.dns.timeout);
  if (!uc.nameservers.empty()) {
    for (const char* zone : {"test.", "invalid.", "127.in-addr.arpa.", "localhost."}) {
      uc.options.emplace_back("local-zone:", std::string(zone) + " transparent");
    }
  }
  return uc;
}

Status Server::bind() {
  if (cfg_.auth.verify_inbound) {
    for (auto& ctx : contexts_) {
      auto r = dns::UnboundResolver::create(ctx->get_executor(), unbound_config(cfg_));
      if (!r) return Error::local("dns: " + r.error().text);
      resolvers_.push_back(std::move(*r));
    }
  }
  if (cfg_.tls.enabled()) {
    auto ctx = tls::make_server_context(cfg_.tls.cert, cfg_.tls.key);
    if (!ctx) return ctx.error();
    tls_ = *ctx;
  }
  for (const auto& l : cfg_.listeners) {
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(l.address.host, ec);
    if (ec) return Error::local("listener " + l.address.to_string() + ": " + ec.message());
    tcp::endpoint ep(addr, l.address.port);
    const bool shared = contexts_.size() > 1;
    if (shared) {
      // SO_REUSEPORT would also let a second server (same user) join the
      // port and silently take half the connections. A plain bind first
      // fails with "address in use" if any socket holds the port.
      auto probe = bound_acceptor(*contexts_[0], ep, /*reuse_port=*/false, ec);
      if (ec) return Error::local("listener " + l.address.to_string() + ": " + ec.message());
      ep.port(probe->local_endpoint().port());  // the port chosen for port 0
      probe->close(ec);
    }
    for (size_t i = 0; i < (shared ? contexts_.size() : 1); ++i) {
      auto acc = bound_acceptor(*contexts_[i], ep, shared, ec);
      if (!ec) acc->listen(1024, ec);
      if (ec) return Error::local("listener " + l.address.to_string() + ": " + ec.message());
      listeners_.push_back(Listener{l, i, std::move(acc)});
    }
    log::info("listening").kv("role", config::role_name(l.role)).kv("address", l.address.to_string());
  }
  return ok();
}

void Server::accept_loop(Listener& l) {
  auto& ctx = *contexts_[l.context];
  asio::co_spawn(
      ctx,
      [this, &l, &ctx]() -> asio::awaitable<void> {
        constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
        for (;;) {
          tcp::endpoint peer;
          auto [ec, sock] = co_await l.acceptor->async_accept(peer, kNoThrow);
          if (shutting_down_) co_return;
          if (ec) {
            if (ec == asio::error::operation_aborted) co_return;
            log::warn("accept_error").kv("error", ec.message());
            asio::steady_timer pause(ctx, std::chrono::milliseconds(100));
            co_await pause.async_wait(kNoThrow);
            continue;
          }
          asio::co_spawn(ctx, run_session(*this, l.cfg, std::move(sock), peer, resolver(l.context)), asio::detached);
        }
      },
      asio::detached);
}

void Server::start() {
  for (auto& l : listeners_) accept_loop(l);
  for (auto& c : contexts_) {
    threads_.emplace_back([ctx = c.get()] {
      pthread_setname_np(pthread_self(), "tern-smtp");
      ctx->run();
    });
  }
}

void Server::shutdown(std::chrono::seconds grace) {
  if (shutting_down_.exchange(true)) return;
  log::info("shutdown").kv("sessions", static_cast<uint64_t>(active_.load()));
  for (auto& l : listeners_) {
    asio::post(*contexts_[l.context], [&l] {
      boost::system::error_code ec;
      l.acceptor->close(ec);
    });
  }
  for (auto& c : contexts_) asio::post(*c, [] { shutdown_sessions_on_this_thread(); });
  auto until = std::chrono::steady_clock::now() + grace;
  while (active_.load() > 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (active_.load() > 0) log::warn("shutdown_forced").kv("sessions", static_cast<uint64_t>(active_.load()));
  for (auto& g : guards_) g.reset();
  for (auto& c : contexts_) c->stop();
}

void Server::join() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

}  // namespace tern::server
