// The SMTP listeners: Boost.Asio with C++20 coroutines, one io_context per
// thread (a session lives on one thread for its whole life, so session state
// needs no locks). Each connection runs the sans-I/O smtp::ServerSession
// engine; this layer adds sockets, TLS (STARTTLS and implicit TLS),
// timeouts (RFC 5321 §4.5.3.2), connection limits, recipient and sender
// checks, SASL, and streaming of DATA into the durable spool. A message is
// acknowledged only from the spool's group-commit callback.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/net.h"
#include "base/result.h"
#include "config/config.h"
#include "delivery/dkim_signer.h"
#include "dns/resolver.h"
#include "dns/unbound_resolver.h"
#include "policy/checks.h"
#include "queue/envelope.h"
#include "queue/spool.h"
#include "server/user_db.h"
#include "users/auth_limiter.h"

namespace tern::server {

// What the listeners need from the rest of tern.
struct ServerDeps {
  queue::Spool* spool = nullptr;
  UserDb* users = nullptr;
  // DKIM signing of outgoing mail ([dkim.sign]); nullptr when no keys.
  const delivery::DkimSigner* signer = nullptr;
  // The anti-abuse checks of [policy] (issue 5 item 4), built once at
  // start-up (src/app/serve.cc) and shared by every session; nullptr: none
  // (the sessions then skip them).
  std::shared_ptr<policy::AntiAbuse> anti_abuse;
  // Called (on a session thread) once a message is durably queued.
  std::function<void(queue::Envelope)> on_queued;
};

// libunbound settings from [dns]. With forwarders configured, every name
// goes to them, including the special-use zones libunbound otherwise answers
// itself (RFC 6761 "test.", and 127.in-addr.arpa.): the operator chose the
// forwarder, and test networks serve such zones.
dns::UnboundConfig unbound_config(const config::Config& cfg);

class Server {
 public:
  Server(const config::Config& cfg, ServerDeps deps);
  ~Server();

  // Dependencies may be supplied after bind() (they are opened after the
  // privilege drop); must be called before start().
  void set_deps(ServerDeps deps) { deps_ = std::move(deps); }
  // Loads TLS and binds every listener (call before dropping privileges).
  Status bind();
  // Starts the event-loop threads and accepting. Returns immediately.
  void start();
  // Graceful stop: stop accepting, close idle sessions with 421, let
  // sessions in DATA finish (up to `grace`), then stop the threads.
  void shutdown(std::chrono::seconds grace);
  // Blocks until the event-loop threads have ended.
  void join();

  size_t active_sessions() const { return active_.load(); }

  // Connection accounting shared by all threads.
  bool admit(const IpAddress& ip, std::string& why);
  void release(const IpAddress& ip);

  const config::Config& config() const { return cfg_; }
  const ServerDeps& deps() const { return deps_; }
  boost::asio::ssl::context* tls() const { return tls_.get(); }
  users::AuthLimiter& auth_limiter() { return auth_limiter_; }
  bool shutting_down() const { return shutting_down_.load(); }
  bool is_trusted(const IpAddress& ip) const;
  // The resolver of event-loop thread `index` (nullptr when inbound
  // verification is off).
  dns::Resolver* resolver(size_t index) const { return index < resolvers_.size() ? resolvers_[index].get() : nullptr; }

 private:
  // One listening socket per event-loop thread, all bound to the listener's
  // address with SO_REUSEPORT: the kernel spreads new connections over the
  // threads, and a session lives on the thread whose socket accepted it
  // (no hand-off of the connection to another thread's epoll set).
  struct Listener {
    config::Listener cfg;
    size_t context = 0;  // index into contexts_
    std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor;
  };
  void accept_loop(Listener& l);

  config::Config cfg_;
  ServerDeps deps_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
  std::vector<std::unique_ptr<dns::Resolver>> resolvers_;  // one per context
  std::vector<Listener> listeners_;
  std::atomic<size_t> active_{0};
  std::atomic<bool> shutting_down_{false};
  std::mutex conn_mu_;
  std::map<std::string, uint32_t> per_ip_;
  users::AuthLimiter auth_limiter_;
};

}  // namespace tern::server
