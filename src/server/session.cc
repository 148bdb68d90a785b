// SMTP session driver (see session.h). The engine decides protocol matters;
// this file decides policy (who may relay, which recipients exist, who may
// send as whom) and does the I/O. Decisions that wait for something slow (the
// spool's group commit, an AUTH failure delay, a TLS handshake) suspend only
// this coroutine.
#include "server/session.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <set>

#include "base/log.h"
#include "auth/auth_results.h"
#include "auth/evaluate.h"
#include "base/strings.h"
#include "policy/decision.h"
#include "policy/decision_dns.h"
#include "policy/checks.h"
#include "server/milter_chain.h"
#include "server/received.h"
#include "server/server.h"
#include "smtp/session.h"
#include "tls/tls.h"
#include "users/sasl.h"

namespace tern::server {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// Completes with the spool's group-commit status on the caller's executor.
template <class Token>
auto async_spool_sync(queue::Spool& spool, Token&& token) {
  return asio::async_initiate<Token, void(Status)>(
      [&spool](auto handler) {
        auto work = asio::make_work_guard(asio::get_associated_executor(handler));
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        spool.sync_async([shared, work = std::move(work)](Status s) mutable {
          auto ex = work.get_executor();
          asio::post(ex, [shared, s = std::move(s)]() mutable { (*shared)(std::move(s)); });
          work.reset();
        });
      },
      token);
}

std::atomic<uint64_t> g_session_counter{0};

// The address a directory destination is queued under: a mailbox keeps the
// "+detail" the recipient named (delivered into that folder when it exists).
std::string queue_address(const users::Destination& d) {
  if (d.kind == users::Destination::kMailbox && !d.detail.empty()) return d.user + "+" + d.detail + "@" + d.domain;
  return d.address;
}

class Session;
// Sessions of the current event-loop thread, for graceful shutdown.
thread_local std::set<Session*> t_sessions;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Server& server, const config::Listener& listener, tcp::socket socket, const tcp::endpoint& peer,
          dns::Resolver* resolver)
      : server_(server),
        resolver_(resolver),
        listener_(listener),
        cfg_(server.config()),
        sock_(std::move(socket)),
        timer_(sock_.get_executor()),
        engine_(engine_options()),
        peer_port_(peer.port()),
        id_(++g_session_counter) {
    if (auto parsed = IpAddress::parse(peer.address().to_string())) peer_ip_ = parsed->unmapped();
    peer_ = peer_ip_.to_string();
    trusted_ = server_.is_trusted(peer_ip_);
    // Built once at start-up (src/app/serve.cc); a bad [policy] map stops start-up.
    anti_abuse_ = server_.deps().anti_abuse.get();
    t_sessions.insert(this);
  }

  ~Session() { t_sessions.erase(this); }

  static void shutdown_all_on_this_thread() {
    for (Session* s : t_sessions) s->on_shutdown();
  }

  asio::awaitable<void> run();

 private:
  smtp::SessionOptions engine_options() const {
    smtp::SessionOptions o;
    o.hostname = cfg_.server.hostname;
    o.max_message_size = cfg_.limits.max_message_size;
    o.max_recipients = cfg_.limits.max_recipients;
    o.max_command_line = cfg_.limits.max_command_line;
    o.max_errors = cfg_.limits.max_errors;
    o.tls_available = server_.tls() != nullptr;
    o.tls_active = false;
    bool submission = listener_.role != config::ListenerRole::kMx;
    o.auth_enabled = submission;
    o.auth_required_for_mail = submission;
    // [policy] require_helo (issue 5 item 4) is for mx listeners; submission
    // clients always greet with EHLO first (they need it for AUTH anyway).
    o.require_helo = submission || cfg_.policy.require_helo;
    o.auth_mechanisms = {"SCRAM-SHA-256", "PLAIN", "LOGIN"};
    return o;
  }

  std::chrono::seconds timeout_for_phase() const {
    switch (engine_.phase()) {
      case smtp::ServerSession::Phase::kData:
      case smtp::ServerSession::Phase::kBdat:
        return std::chrono::seconds(cfg_.limits.timeout_data_block);
      default:
        return std::chrono::seconds(cfg_.limits.timeout_command);
    }
  }

  tcp::socket& raw() { return tls_ ? tls_->next_layer() : sock_; }

  // SPF/DKIM/DMARC on the MX listener for mail that is not from our own
  // authenticated users (their mail is signed and checked on the way out).
  bool verify_inbound() const {
    return resolver_ != nullptr && cfg_.auth.verify_inbound && listener_.role == config::ListenerRole::kMx &&
           !engine_.authenticated();
  }
  void arm(std::chrono::seconds timeout) { deadline_ = Clock::now() + timeout; }

  // Issue 5 item 4: anti-abuse checks for unauthenticated, untrusted clients on the MX listener.
  bool anti_abuse_applies() const {
    return anti_abuse_ != nullptr && listener_.role == config::ListenerRole::kMx && !engine_.authenticated() &&
           !trusted_;
  }
  void log_verdict(const char* stage, const policy::Verdict& v) {
    if (v.action == policy::Verdict::Action::kContinue) return;
    log::info("anti_abuse")
        .kv("session", id_)
        .kv("client", peer_)
        .kv("stage", stage)
        .kv("action", policy::action_name(v.action))
        .kv("why", v.explanation);
  }

  void on_shutdown() {
    // Idle sessions (waiting for a command, no reply pending) are closed with
    // 421 at once; sessions receiving content finish their message first.
    if (waiting_for_command_) {
      shutdown_close_ = true;
      boost::system::error_code ec;
      raw().cancel(ec);
    }
  }

  static asio::awaitable<void> watchdog_main(std::shared_ptr<Session> self) { co_await self->watchdog(); }

  asio::awaitable<void> watchdog() {
    while (!done_) {
      timer_.expires_at(deadline_);
      co_await timer_.async_wait(kNoThrow);
      if (done_) break;
      if (Clock::now() >= deadline_) {
        timed_out_ = true;
        log::info("timeout").kv("session", id_).kv("client", peer_);
        if (!tls_) {
          std::string msg = "421 4.4.2 " + cfg_.server.hostname + " Error: timeout exceeded\r\n";
          ::send(sock_.native_handle(), msg.data(), msg.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        if (tls_ && !writing_) {
          // Over TLS the 421 must go through the TLS stream; give it a
          // short time, then close regardless.
          auto msg = std::make_shared<std::string>("421 4.4.2 " + cfg_.server.hostname +
                                                   " Error: timeout exceeded\r\n");
          deadline_ = Clock::now() + std::chrono::seconds(2);
          asio::async_write(*tls_, asio::buffer(*msg), [this, msg, self = shared_from_this()](auto, auto) {
            boost::system::error_code ignored;
            raw().close(ignored);
          });
          timer_.expires_at(deadline_);
          co_await timer_.async_wait(kNoThrow);
        }
        boost::system::error_code ec;
        raw().shutdown(tcp::socket::shutdown_both, ec);
        raw().close(ec);
        break;
      }
    }
  }

  asio::awaitable<bool> read_more() {
    arm(timeout_for_phase());
    if (tls_) {
      if (!tls_buf_) tls_buf_ = std::make_unique<std::array<char, 16384>>();
      auto [ec, n] = co_await tls_->async_read_some(asio::buffer(*tls_buf_), kNoThrow);
      if (ec) co_return false;
      engine_.feed(std::string_view(tls_buf_->data(), n));
      co_return true;
    }
    // Plain TCP: async_read_some into a buffer owned by the session, sized
    // for the phase: 1 KiB while waiting for a command (an idle connection
    // stays small), 16 KiB while content streams in. Asio's reactor reads
    // when epoll reports the socket (registered once, edge-triggered): no
    // epoll_ctl per wait, and after a read that drained the socket no
    // speculative recv either. (async_wait + read_some cost an
    // EPOLL_CTL_MOD for every command.)
    const bool content = engine_.phase() == smtp::ServerSession::Phase::kData ||
                         engine_.phase() == smtp::ServerSession::Phase::kBdat;
    const size_t want = content ? kContentReadBuffer : kCommandReadBuffer;
    if (read_buf_size_ != want) {
      read_buf_ = std::make_unique<char[]>(want);
      read_buf_size_ = want;
    }
    auto [ec, n] = co_await sock_.async_read_some(asio::buffer(read_buf_.get(), want), kNoThrow);
    if (ec) co_return false;
    engine_.feed(std::string_view(read_buf_.get(), n));
    co_return true;
  }

  asio::awaitable<bool> flush() {
    std::string& out = engine_.output();
    if (out.empty()) co_return true;
    arm(std::chrono::seconds(cfg_.limits.timeout_command));
    boost::system::error_code ec;
    writing_ = true;
    if (tls_) {
      std::tie(ec, std::ignore) = co_await asio::async_write(*tls_, asio::buffer(out), kNoThrow);
    } else {
      std::tie(ec, std::ignore) = co_await asio::async_write(sock_, asio::buffer(out), kNoThrow);
    }
    writing_ = false;
    out.clear();
    if (out.capacity() > 4096) out.shrink_to_fit();
    co_return !ec;
  }

  // The 221 after QUIT (RFC 5321 §4.1.1.10) on plain TCP: sent with
  // MSG_MORE, it waits in the socket and the close(2) that follows puts the
  // FIN on the same segment (one segment instead of two). Only when nothing
  // was pipelined after QUIT: close(2) with unread input resets the
  // connection, and a reply still held back would be lost. (Input that
  // arrives after QUIT, which RFC 5321 does not allow, can still cost that
  // client its 221.) What the socket does not take at once goes out the
  // usual way.
  asio::awaitable<void> send_last_reply() {
    std::string& out = engine_.output();
    ssize_t n = ::send(sock_.native_handle(), out.data(), out.size(), MSG_MORE | MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) out.erase(0, static_cast<size_t>(n));
    if (!out.empty()) co_await flush();
  }

  asio::awaitable<bool> start_tls() {
    if (server_.tls() == nullptr) co_return false;
    tls_ = std::make_unique<asio::ssl::stream<tcp::socket>>(std::move(sock_), *server_.tls());
    arm(std::chrono::seconds(cfg_.limits.timeout_command));
    auto [ec] = co_await tls_->async_handshake(asio::ssl::stream_base::server, kNoThrow);
    if (ec) {
      log::info("tls_failed").kv("session", id_).kv("client", peer_).kv("error", ec.message());
      co_return false;
    }
    auto info = tls::describe(tls_->native_handle());
    tls_info_ = info;
    log::info("tls").kv("session", id_).kv("client", peer_).kv("version", info.version).kv("cipher", info.cipher);
    co_return true;
  }

  void reset_transaction() {
    writer_.reset();
    mail_from_.clear();
    rcpts_.clear();
    originals_.clear();
    forwarder_spf_.clear();
    transaction_forwarded_ = false;
    sender_ok_ = false;
    discarded_by_.clear();
    write_failed_ = false;
  }

  void reply(int code, const char* enhanced, std::string text) { engine_.reply(smtp::Reply(code, enhanced, std::move(text))); }

  void reject(const char* stage, int code, const char* enhanced, std::string text) {
    log::info("reject")
        .kv("session", id_)
        .kv("client", peer_)
        .kv("stage", stage)
        .kv("from", mail_from_)
        .kv("reply", std::to_string(code) + " " + enhanced + " " + text);
    reply(code, enhanced, std::move(text));
  }

  // The facts the identity rule decides on. The EHLO name is looked up in DNS
  // only when the relaxed heuristic needs it (once per name and session).
  asio::awaitable<policy::SessionFacts> identity_facts(const std::string& from) {
    policy::SessionFacts f;
    f.mx_listener = listener_.role == config::ListenerRole::kMx;
    f.mode = policy::parse_identity_mode(listener_.verify_sender_identity).value_or(policy::IdentityMode::kStrict);
    f.authenticated = engine_.authenticated();
    f.trusted_network = trusted_;
    f.helo = engine_.helo_name();
    f.mail_from = from;
    f.our_hostname = cfg_.server.hostname;
    f.local_domains = cfg_.domains.local;
    if (f.mode != policy::IdentityMode::kRelaxed || !policy::identity_rule_applies(f, policy::domain_of(from))) {
      co_return f;
    }
    f.helo_resolves = true;  // first the syntax and our-name checks
    if (policy::classify_helo(f) != policy::HeloClass::kMx) co_return f;
    if (!verify_inbound()) {
      // Without inbound DKIM verification the relaxed path cannot be proven.
      f.helo_resolves = false;
      co_return f;
    }
    if (helo_checked_ != f.helo) {
      helo_resolves_ = co_await policy::helo_resolves(*resolver_, f.helo);
      helo_checked_ = f.helo;
    }
    f.helo_resolves = helo_resolves_;
    if (connect_dns_.started()) {
      // The optional confirmation (issue 5 §1): the client IP's
      // forward-confirmed reverse DNS name (iprev, looked up at connect) is
      // the EHLO name.
      policy::ConnectDnsResult connect = co_await connect_dns_.wait();
      f.ptr_confirms_helo =
          connect.iprev.code == policy::IprevResult::Code::kPass && iequals(connect.iprev.name, f.helo);
    }
    co_return f;
  }

  void log_decision(const policy::Decision& d, policy::IdentityPath path, const std::string& id = "") {
    std::string checks;
    for (const auto& c : d.checks) {
      if (!checks.empty()) checks += "; ";
      checks += c.name + "=" + c.result + (c.detail.empty() ? "" : " (" + c.detail + ")");
    }
    // An accepted MAIL FROM with nothing to verify (the sender is not ours,
    // or the client is trusted or authenticated) is routine: the queued line
    // records the transaction. Decisions that checked or refused something
    // stay at info.
    bool routine = d.accepted && !d.junk && d.stage == policy::Stage::kMail && path == policy::IdentityPath::kNotApplicable;
    auto line = routine ? log::debug("policy") : log::info("policy");
    if (!id.empty()) line.kv("id", id);
    line.kv("session", id_)
        .kv("client", peer_)
        .kv("stage", policy::stage_name(d.stage))
        .kv("identity", policy::identity_path_name(path))
        .kv("result", d.accepted ? (d.junk ? std::string("junk") : std::string("accept")) : d.reply_line())
        .kv("checks", checks);
  }

  // SPF at MAIL FROM (RFC 7208 §2.4; the HELO identity for "<>"): the
  // result and whether the HELO identity was used.
  asio::awaitable<std::pair<auth::SpfResult, bool>> mail_spf(std::string from) {
    auth::SessionFacts facts{peer_ip_, engine_.helo_name(), std::move(from)};
    bool helo = false;
    auth::SpfResult result = co_await auth::evaluate_spf(*resolver_, facts, cfg_.server.hostname, &helo);
    co_return std::pair{std::move(result), helo};
  }

  // The DNS checks of MAIL FROM: reject_unknown_sender_domain (issue 5 item 4,
  // step 6 in src/policy/checks.h) when `check_domain`, SPF (kept in spf_) when
  // `spf`; concurrently when both run. Returns the sender-domain verdict.
  asio::awaitable<policy::Verdict> mail_dns_checks(const std::string& from, bool check_domain, bool spf) {
    policy::Verdict domain = policy::Verdict::pass("sender domain: not checked");
    std::pair<auth::SpfResult, bool> spf_result;
    if (check_domain && spf) {
      auto executor = co_await asio::this_coro::executor;
      auto [order, domain_error, domain_verdict, spf_error, spf_value] =
          co_await asio::experimental::make_parallel_group(
              asio::co_spawn(executor, anti_abuse_->on_mail_dns(*resolver_, from), asio::deferred),
              asio::co_spawn(executor, mail_spf(from), asio::deferred))
              .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
      (void)order;
      if (!domain_error) domain = std::move(domain_verdict);
      if (!spf_error) {
        spf_result = std::move(spf_value);
      } else {
        spf_result.first.code = auth::SpfResult::Code::kTempError;  // RFC 7208 §2.6.6
        spf_result.first.problem = "evaluation failed";
      }
    } else if (check_domain) {
      domain = co_await anti_abuse_->on_mail_dns(*resolver_, from);
    } else if (spf) {
      spf_result = co_await mail_spf(from);
    }
    if (spf) {
      spf_ = std::move(spf_result.first);
      spf_is_helo_ = spf_result.second;
      log::info("spf")
          .kv("session", id_)
          .kv("client", peer_)
          .kv("identity", spf_is_helo_ ? "helo" : "mailfrom")
          .kv("result", auth::spf_code_name(spf_->code))
          .kv("domain", spf_->domain);
    }
    co_return domain;
  }

  asio::awaitable<void> on_mail(const smtp::EvMail& ev) {
    reset_transaction();
    users_ = server_.deps().users->get();
    std::string from = ev.from.empty() ? std::string() : ev.from.str();
    if (engine_.authenticated() && !from.empty() && !users_->directory->may_send_as(auth_user_, from)) {
      reject("mail", 553, "5.7.1", "<" + from + ">: Sender address rejected: not owned by user " + auth_user_);
      co_return;
    }
    mail_from_ = from;
    mail_params_ = ev.params;
    spf_.reset();
    // Issue 5 item 4 (src/policy/checks.h): cheap checks, then the DNSBL
    // verdict of the lookups started at connect.
    if (anti_abuse_applies()) {
      policy::Verdict v = anti_abuse_->on_mail_syntax(!engine_.helo_name().empty(), from, peer_ip_);
      log_verdict("mail", v);
      if (!v.refused() && v.action != policy::Verdict::Action::kAccept && connect_dns_.started()) {
        v = (co_await connect_dns_.wait()).dnsbl;
        log_verdict("mail", v);
      }
      if (v.refused()) {
        reject("mail", v.code, v.enhanced.c_str(), v.text);
        mail_from_.clear();
        co_return;
      }
      sender_ok_ = v.action == policy::Verdict::Action::kAccept;
      if (v.action == policy::Verdict::Action::kDiscard) discarded_by_ = "sender_access";
    }
    // Issue 5 §1: sender identity of our own domains from unauthenticated,
    // untrusted clients on the MX listener.
    identity_ = co_await identity_facts(from);
    policy::Decision identity = policy::decide_mail(identity_);
    log_decision(identity, policy::mail_identity_path(identity_));
    if (!identity.accepted) {
      reject("mail", identity.code, identity.enhanced.c_str(), identity.text);
      mail_from_.clear();
      co_return;
    }
    // reject_unknown_sender_domain (skipped after a sender_access OK) and
    // SPF, concurrently.
    bool check_domain = anti_abuse_applies() && !sender_ok_ && resolver_ != nullptr &&
                        anti_abuse_->config().reject_unknown_sender_domain;
    if (check_domain || verify_inbound()) {
      policy::Verdict domain = co_await mail_dns_checks(mail_from_, check_domain, verify_inbound());
      log_verdict("mail", domain);
      if (domain.refused()) {
        reject("mail", domain.code, domain.enhanced.c_str(), domain.text);
        mail_from_.clear();
        co_return;
      }
    }
    if (milters_) {
      std::vector<std::string> args = milter_mail_args();
      MilterVerdict v = co_await milters_->mail_from(from, args, auth_user_, mechanism_);
      if (v.refused()) {
        reject("mail", v.code, v.enhanced.c_str(), v.text);
        mail_from_.clear();
        co_return;
      }
      if (v.discarded()) discarded_by_ = "milter " + v.milter;
    }
    engine_.accept();
  }

  // The MAIL FROM parameters as the client sent them, for milters.
  std::vector<std::string> milter_mail_args() const {
    std::vector<std::string> args;
    if (mail_params_.size) args.push_back("SIZE=" + std::to_string(*mail_params_.size));
    if (mail_params_.body == smtp::Body::k8BitMime) args.push_back("BODY=8BITMIME");
    if (mail_params_.body == smtp::Body::kBinaryMime) args.push_back("BODY=BINARYMIME");
    if (mail_params_.smtputf8) args.push_back("SMTPUTF8");
    if (mail_params_.ret == smtp::Ret::kFull) args.push_back("RET=FULL");
    if (mail_params_.ret == smtp::Ret::kHdrs) args.push_back("RET=HDRS");
    if (mail_params_.requiretls) args.push_back("REQUIRETLS");
    return args;
  }

  asio::awaitable<void> on_rcpt(const smtp::EvRcpt& ev) {
    std::string addr = ev.to.domain.empty() ? ev.to.local : ev.to.str();
    const auto& dir = *users_->directory;
    auto lookup = dir.check(addr);
    if (lookup == users::Directory::Lookup::kUnknown) {
      reject("rcpt", 550, "5.1.1", "<" + addr + ">: Recipient address rejected: User unknown in local recipient table");
      co_return;
    }
    policy::Decision relay = policy::decide_rcpt(identity_, addr, lookup != users::Directory::Lookup::kNotLocal);
    if (!relay.accepted) {
      log_decision(relay, policy::mail_identity_path(identity_));
      reject("rcpt", relay.code, relay.enhanced.c_str(), relay.text);
      co_return;
    }
    // Issue 5 §3: SPF of this recipient's trusted forwarder domains, when the
    // MAIL FROM SPF did not pass. Forwarded and not-forwarded recipients go
    // in separate transactions, since only the former are excused.
    bool forwarded = false;
    std::vector<policy::ForwarderSpf> forwarder_results;
    if (verify_inbound() && spf_ && spf_->code != auth::SpfResult::Code::kPass && !cfg_.forwarders.empty() &&
        lookup != users::Directory::Lookup::kNotLocal) {
      forwarder_results = co_await policy::forwarder_spf(*resolver_, cfg_, peer_ip_, engine_.helo_name(), addr);
      for (const auto& f : forwarder_results) forwarded = forwarded || f.code == auth::SpfResult::Code::kPass;
    }
    if (!originals_.empty() && forwarded != transaction_forwarded_ && spf_ &&
        spf_->code == auth::SpfResult::Code::kFail) {
      reject("rcpt", 452, "4.5.3", "<" + addr + ">: send this recipient in a separate transaction");
      co_return;
    }
    std::vector<queue::Recipient> expanded;
    auto make = [&](std::string address) {
      queue::Recipient r;
      r.address = std::move(address);
      r.original = addr;
      r.notify = ev.params.notify;
      r.orcpt_type = ev.params.orcpt_type;
      r.orcpt = ev.params.orcpt;
      return r;
    };
    if (lookup == users::Directory::Lookup::kNotLocal) {
      if (!engine_.authenticated() && !trusted_) {
        reject("rcpt", 554, "5.7.1", "<" + addr + ">: Relay access denied");
        co_return;
      }
      expanded.push_back(make(addr));
    } else {
      auto dests = dir.expand(addr);
      if (!dests) {
        const Error& e = dests.error();
        reject("rcpt", e.code, e.enhanced.c_str(), "<" + addr + ">: " + e.text);
        co_return;
      }
      for (const auto& d : *dests) expanded.push_back(make(queue_address(d)));
    }
    if (anti_abuse_applies()) {
      // recipient_access, then greylisting (issue 5 item 4).
      policy::Verdict v = anti_abuse_->on_rcpt(peer_ip_, mail_from_, addr, sender_ok_);
      log_verdict("rcpt", v);
      if (v.refused()) {
        reject("rcpt", v.code, v.enhanced.c_str(), "<" + addr + ">: " + v.text);
        co_return;
      }
    }
    if (milters_) {
      std::vector<std::string> args;
      MilterVerdict v =
          co_await milters_->rcpt_to(addr, args, lookup != users::Directory::Lookup::kNotLocal);
      if (v.refused()) {
        reject("rcpt", v.code, v.enhanced.c_str(), "<" + addr + ">: " + v.text);
        co_return;
      }
      if (v.discarded()) discarded_by_ = "milter " + v.milter;
    }
    for (auto& r : expanded) {
      bool dup = false;
      for (const auto& have : rcpts_) dup = dup || have.address == r.address;
      if (!dup) rcpts_.push_back(std::move(r));
    }
    originals_.push_back(addr);
    transaction_forwarded_ = forwarded;
    for (auto& f : forwarder_results) forwarder_spf_.push_back(std::move(f));
    engine_.accept();
  }

  void on_data_start() {
    auto w = server_.deps().spool->create();
    if (!w) {
      log::error("spool_error").kv("session", id_).kv("error", w.error().text);
      reply(451, "4.3.0", "Local error: queue file write error");
      return;
    }
    writer_ = std::move(*w);
    ReceivedInfo info;
    info.helo = engine_.helo_name();
    info.client_ip = peer_;
    info.by_host = cfg_.server.hostname;
    info.protocol = protocol_name(esmtp_, tls_ != nullptr, engine_.authenticated(), mail_params_.smtputf8);
    info.queue_id = writer_->id();
    if (tls_info_) {
      info.tls_version = tls_info_->version;
      info.tls_cipher = tls_info_->cipher;
      info.tls_bits = tls_info_->bits;
    }
    if (originals_.size() == 1) info.for_recipient = originals_.front();
    info.timestamp = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    received_at_ = info.timestamp;
    protocol_ = info.protocol;
    received_header_ = format_received(info);
    header_buf_.clear();
    headers_done_ = false;
    // A copy of the message is kept for end-of-data checks (inbound
    // authentication) and for DKIM signing of mail from trusted origins.
    const auto* signer = server_.deps().signer;
    signing_ = signer != nullptr && signer->trusted_origin(auth_user_, config::role_name(listener_.role), peer_);
    keep_copy_ = verify_inbound() || signing_;
    auth_copy_.clear();
    milter_copy_ = milters_ != nullptr && milters_->wants_message() && discarded_by_.empty();
    milter_content_.clear();
    engine_.accept();
  }

  // RFC 8601: evaluate DKIM, DMARC (and the SPF result from MAIL FROM) and
  // have the Authentication-Results field prepended at delivery (it must sit
  // above our Received header, which is already spooled). Then the identity,
  // SPF and DMARC policy (issue 5) decides on the results.
  asio::awaitable<policy::Decision> authenticate(queue::Envelope& env) {
    auto message = mail::Message::parse(std::move(auth_copy_));
    auth_copy_.clear();
    auth::SessionFacts facts{peer_ip_, engine_.helo_name(), mail_from_};
    if (!spf_) spf_ = auth::SpfResult{};
    policy::MessageFacts checked;
    checked.spf = *spf_;
    checked.spf_is_helo = spf_is_helo_;
    for (const auto& r : originals_) checked.recipients.push_back(to_lower(r));
    checked.forwarders = forwarder_spf_;
    auth::AuthResults ar;
    if (!message) {
      // Not parseable as RFC 5322: record SPF only.
      ar.authserv_id = cfg_.auth.authserv_id;
      auth::MethodResult m;
      m.method = "spf";
      m.result = auth::spf_code_name(spf_->code);
      m.prop("smtp", spf_is_helo_ ? "helo" : "mailfrom", spf_is_helo_ ? facts.helo : facts.mail_from);
      ar.results.push_back(m);
      env.attributes["auth.problem"] = message.error().text;
    } else {
      auth::dkim::VerifyOptions dkim_options;
      auto ev = co_await auth::evaluate_message(*resolver_, facts, *spf_, spf_is_helo_, *message,
                                                cfg_.auth.authserv_id, dkim_options);
      for (auto& [k, v] : ev.attributes()) env.attributes[k] = v;
      checked.dkim = ev.dkim;
      checked.dmarc = ev.dmarc;
      checked.arc = ev.arc;
      if (auto from = message->from_addresses()) {
        for (const auto& mb : *from) {
          if (!mb.domain.empty()) checked.header_from_domains.push_back(to_lower(mb.domain));
        }
      }
      ar = ev.results;
      log::info("auth")
          .kv("id", env.id)
          .kv("session", id_)
          .kv("spf", auth::spf_code_name(ev.spf.code))
          .kv("dkim", env.attributes["auth.dkim.pass_domains"].empty() ? std::string("none-pass")
                                                                        : env.attributes["auth.dkim.pass_domains"])
          .kv("dmarc", auth::dmarc::status_name(ev.dmarc.status))
          .kv("from_domain", ev.dmarc.from_domain);
    }
    static thread_local std::mt19937 rng{std::random_device{}()};
    std::function<unsigned()> random_percent = [] { return static_cast<unsigned>(rng() % 100); };
    policy::Decision decision = policy::decide_data(identity_, checked, cfg_.policy, random_percent);
    policy::IdentityPath path = policy::data_identity_path(identity_, checked);
    log_decision(decision, path, env.id);
    // The path taken, as an extension method (RFC 8601 §2.7.6) with the
    // proof in a comment: "x-tern-identity=relaxed-mx (example.test proven by DKIM d=example.test)".
    auth::MethodResult identity;
    identity.method = "x-tern-identity";
    identity.result = policy::identity_path_name(path);
    for (const auto& c : decision.checks) {
      if (c.name == "identity" && !c.detail.empty()) identity.comment = c.detail;
    }
    ar.results.push_back(identity);
    if (connect_dns_.started()) {
      // RFC 8601 §3: iprev, looked up at connect.
      policy::ConnectDnsResult connect = co_await connect_dns_.wait();
      ar.results.push_back(policy::iprev_method_result(connect.iprev, peer_ip_));
    }
    std::string via;
    for (const auto& r : checked.recipients) {
      if (policy::forwarded_for(checked, r, &via)) {
        auth::MethodResult forwarded;
        forwarded.method = "x-tern-forwarder";
        forwarded.result = "pass";
        forwarded.comment = "client passes SPF of " + via + " for " + r;
        ar.results.push_back(forwarded);
        break;
      }
    }
    std::string prepend = auth::format_header(ar);
    if (decision.junk) {
      env.attributes["junk"] = "1";
      prepend += "X-Tern-Quarantine: " + decision.text + "\r\n";
    }
    env.attributes["header.prepend"] = prepend;
    env.attributes["policy.identity"] = policy::identity_path_name(path);
    co_return decision;
  }

  void spool_append(std::string_view bytes) {
    if (milter_copy_) milter_content_.append(bytes);
    if (!writer_ || write_failed_) return;
    if (auto s = writer_->append(bytes); !s) {
      write_failed_ = true;
      log::error("spool_error").kv("session", id_).kv("error", s.error().text);
    }
  }

  // Message content arrives in chunks. The header section is held back (up to
  // kMaxHeaderSection) so that it can be inspected and cleaned before it is
  // spooled below our Received header; the body streams straight through.
  void on_content(std::string_view bytes) {
    if (keep_copy_) auth_copy_.append(bytes);
    if (headers_done_) {
      spool_append(bytes);
      return;
    }
    size_t scan_from = header_buf_.size() >= 3 ? header_buf_.size() - 3 : 0;
    header_buf_.append(bytes);
    size_t header_end = std::string::npos;  // offset of the empty line ending the header section
    if (header_buf_.rfind("\r\n", 0) == 0) {
      header_end = 0;
    } else if (auto p = header_buf_.find("\r\n\r\n", scan_from); p != std::string::npos) {
      header_end = p + 2;
    }
    if (header_end != std::string::npos) {
      finish_headers(header_end);
    } else if (header_buf_.size() > kMaxHeaderSection) {
      // No end of headers in sight: treat what we have as the header section
      // (Postfix does the same past header_size_limit) and stream the rest.
      finish_headers(header_buf_.size());
    }
  }

  // Writes Received + the cleaned header section + everything after it.
  void finish_headers(size_t header_end) {
    headers_done_ = true;
    spool_append(received_header_);
    std::string_view block(header_buf_.data(), header_end);
    // RFC 8601 §5: Authentication-Results fields that claim our authserv-id
    // arriving from outside are forgeries; remove them.
    size_t pos = 0;
    while (pos < block.size()) {
      size_t end = pos;
      do {
        size_t nl = block.find("\r\n", end);
        end = nl == std::string_view::npos ? block.size() : nl + 2;
      } while (end < block.size() && (block[end] == ' ' || block[end] == '\t'));
      std::string_view field = block.substr(pos, end - pos);
      bool forged = false;
      if (istarts_with(field, "Authentication-Results:")) {
        std::string_view value = field.substr(std::string_view("Authentication-Results:").size());
        forged = auth::claims_authserv_id(value, cfg_.auth.authserv_id);
      }
      if (forged) {
        ++forged_ar_removed_;
        log::info("forged_auth_results_removed").kv("session", id_).kv("client", peer_);
      } else {
        spool_append(field);
      }
      pos = end;
    }
    spool_append(std::string_view(header_buf_).substr(header_end));
    header_buf_.clear();
    header_buf_.shrink_to_fit();
  }

  // End of data for a message that is accepted but not queued.
  void answer_discarded(const std::string& by) {
    log::info("discarded").kv("session", id_).kv("client", peer_).kv("from", mail_from_).kv("by", by);
    reply(250, "2.0.0", "Ok: discarded");
    reset_transaction();
  }

  // Runs the milters over the spooled content and applies what they decided
  // to `env` and the spool; when they changed the content, `signed_copy`
  // becomes the new content (what DKIM signing covers). Returns true when the
  // transaction is finished (refused, discarded, or a spool error was
  // answered).
  asio::awaitable<bool> run_milters(queue::Envelope& env, std::string& signed_copy) {
    MilterMessage message;
    message.content = std::move(milter_content_);
    milter_content_.clear();
    message.mail_from = env.mail_from;
    MilterVerdict v = co_await milters_->end_of_data(env.id, message);
    if (v.refused()) {
      reject("data", v.code, v.enhanced.c_str(), v.text);
      reset_transaction();
      co_return true;
    }
    if (v.discarded()) {
      answer_discarded("milter " + v.milter);
      co_return true;
    }
    // Envelope changes (SMFIR_CHGFROM, SMFIR_DELRCPT, SMFIR_ADDRCPT).
    env.mail_from = message.mail_from;
    for (const auto& gone : message.delete_rcpts) {
      std::erase_if(env.recipients, [&](const queue::Recipient& r) {
        return iequals(r.address, gone) || iequals(r.original, gone);
      });
    }
    // Added recipients go through the local directory like RCPT TO would
    // (aliases, unknown users); remote ones are relayed as given.
    const auto& dir = *users_->directory;
    for (const auto& added : message.add_rcpts) {
      std::vector<std::string> targets;
      auto lookup = dir.check(added);
      if (lookup == users::Directory::Lookup::kUnknown) {
        log::warn("milter_rcpt_unknown").kv("session", id_).kv("rcpt", added);
        continue;
      }
      if (lookup == users::Directory::Lookup::kNotLocal) {
        targets.push_back(added);
      } else if (auto dests = dir.expand(added)) {
        for (const auto& d : *dests) targets.push_back(queue_address(d));
      } else {
        log::warn("milter_rcpt_unknown").kv("session", id_).kv("rcpt", added).kv("error", dests.error().text);
        continue;
      }
      for (auto& target : targets) {
        bool dup = false;
        for (const auto& have : env.recipients) dup = dup || iequals(have.address, target);
        if (dup || target.empty()) continue;
        queue::Recipient r;
        r.address = std::move(target);
        r.original = added;
        env.recipients.push_back(std::move(r));
      }
    }
    if (message.quarantine) {
      // SMFIR_QUARANTINE: kept on hold until an administrator releases it.
      env.held = true;
      env.attributes["milter.quarantine"] = *message.quarantine;
      log::info("quarantined").kv("session", id_).kv("id", env.id).kv("reason", *message.quarantine);
    }
    if (env.recipients.empty()) {
      answer_discarded("milters removed every recipient");
      co_return true;
    }
    if (message.content_changed) {
      // Header or body changes: spool the new content under a new queue id
      // (the old writer is aborted) and fix the id in our Received field.
      auto w = server_.deps().spool->create();
      if (!w) {
        log::error("spool_error").kv("session", id_).kv("error", w.error().text);
        reject("data", 451, "4.3.0", "Local error: queue file write error");
        reset_transaction();
        co_return true;
      }
      std::string old_id = env.id;
      std::string new_id = (*w)->id();
      // Our Received field as spooled (a milter may have inserted fields
      // above it, as OpenDKIM does with its signature).
      if (size_t field = message.content.find(received_header_); field != std::string::npos) {
        size_t at = message.content.find("id " + old_id, field);
        if (at != std::string::npos && at < field + received_header_.size()) {
          message.content.replace(at + 3, old_id.size(), new_id);
        }
      }
      writer_ = std::move(*w);
      write_failed_ = false;
      spool_append(message.content);
      if (!writer_ || write_failed_) {
        reject("data", 451, "4.3.0", "Local error: queue file write error");
        reset_transaction();
        co_return true;
      }
      env.id = new_id;
      env.size = writer_->size();
      if (signing_) signed_copy = std::move(message.content);
      log::info("milter_rewrote").kv("session", id_).kv("old_id", old_id).kv("id", new_id);
    }
    co_return false;
  }

  asio::awaitable<void> on_data_end(const smtp::EvDataEnd& ev) {
    if (!ev.problem && !headers_done_) finish_headers(header_buf_.size());
    if (ev.problem) {
      reject("data", ev.problem->code, ev.problem->enhanced.c_str(), ev.problem->text);
      reset_transaction();
      co_return;
    }
    if (!writer_ || write_failed_) {
      reject("data", 451, "4.3.0", "Local error: queue file write error");
      reset_transaction();
      co_return;
    }
    if (!discarded_by_.empty()) {
      // sender_access DISCARD (issue 5 item 4) or a milter's discard at MAIL
      // or RCPT: accepted, not queued.
      answer_discarded(discarded_by_);
      co_return;
    }
    queue::Envelope env;
    env.id = writer_->id();
    env.mail_from = mail_from_;
    env.recipients = rcpts_;
    env.body = static_cast<int>(mail_params_.body);
    env.smtputf8 = mail_params_.smtputf8;
    env.ret = static_cast<int>(mail_params_.ret);
    env.envid = mail_params_.envid;
    env.requiretls = mail_params_.requiretls;
    env.received_at = received_at_;
    env.client_ip = peer_;
    env.client_helo = engine_.helo_name();
    env.auth_user = auth_user_;
    env.listener = config::role_name(listener_.role);
    env.protocol = protocol_;
    env.size = writer_->size();
    std::string copy;  // what DKIM signing covers
    if (keep_copy_) {
      keep_copy_ = false;
      copy = signing_ && verify_inbound() ? auth_copy_ : std::string();
      if (signing_ && !verify_inbound()) copy = std::move(auth_copy_);
      if (verify_inbound()) {
        policy::Decision decision = co_await authenticate(env);
        if (!decision.accepted) {
          // Refused after data: nothing is queued (the writer is aborted).
          reject("data", decision.code, decision.enhanced.c_str(), decision.text);
          reset_transaction();
          co_return;
        }
      }
    }
    if (milter_copy_) {
      // Issue 5 item 5: the milters see the message after tern's own checks
      // and before it is signed and queued (as with Postfix's smtpd_milters).
      milter_copy_ = false;
      bool finished = co_await run_milters(env, copy);
      if (finished) co_return;
    }
    // Signed once, before the message is queued, over what will leave the
    // queue (RFC 6376 §5); the fields are prepended at delivery.
    if (signing_) {
      if (auto n = server_.deps().signer->sign_into(env, copy); !n) {
        log::warn("dkim_sign_failed").kv("session", id_).kv("id", env.id).kv("error", n.error().text);
      }
    }
    if (auto s = writer_->finish(env); !s) {
      log::error("spool_error").kv("session", id_).kv("id", env.id).kv("error", s.error().text);
      reject("data", 451, "4.3.0", "Local error: queue file write error");
      reset_transaction();
      co_return;
    }
    writer_.reset();
    arm(std::chrono::seconds(cfg_.limits.timeout_data_end));
    Status synced = co_await async_spool_sync(*server_.deps().spool, asio::use_awaitable);
    if (!synced) {
      // Not durable: refuse so the client keeps its copy. The file may still
      // be recovered at restart, which at worst duplicates this message.
      log::error("spool_sync_error").kv("id", env.id).kv("error", synced.error().text);
      if (Status removed = server_.deps().spool->remove(env.id); !removed) {
        log::error("spool_remove_failed").kv("id", env.id).kv("error", removed.error().text);
      }
      reject("data", 451, "4.3.0", "Local error: queue file write error");
      reset_transaction();
      co_return;
    }
    ++messages_;
    log::info("queued")
        .kv("id", env.id)
        .kv("session", id_)
        .kv("client", peer_)
        .kv("from", env.mail_from)
        .kv("rcpts", static_cast<uint64_t>(env.recipients.size()))
        .kv("size", env.size)
        .kv("tls", tls_ != nullptr)
        .kv("auth", auth_user_.empty() ? std::string("-") : auth_user_);
    reply(250, "2.0.0", "Ok: queued as " + env.id);
    if (server_.deps().on_queued) server_.deps().on_queued(std::move(env));
    reset_transaction();
  }

  asio::awaitable<void> apply_sasl(users::SaslServer::Step step, const std::string& mechanism) {
    switch (step.kind) {
      case users::SaslServer::Step::kChallenge:
        engine_.auth_challenge(step.challenge);
        co_return;
      case users::SaslServer::Step::kSuccess:
        auth_user_ = step.user;
        sasl_.reset();
        engine_.auth_success();
        log::info("auth").kv("session", id_).kv("client", peer_).kv("user", auth_user_).kv("mechanism", mechanism_);
        co_return;
      case users::SaslServer::Step::kFailure:
        break;
    }
    sasl_.reset();
    ++auth_failures_;
    auto verdict = server_.auth_limiter().record_failure(peer_ip_, auth_failures_);
    log::info("auth_failed")
        .kv("session", id_)
        .kv("client", peer_)
        .kv("mechanism", mechanism)
        .kv("reason", step.reason)
        .kv("failures", auth_failures_);
    if (verdict.delay.count() > 0) {
      asio::steady_timer delay(timer_.get_executor());
      delay.expires_after(verdict.delay);
      co_await delay.async_wait(kNoThrow);
    }
    if (verdict.disconnect || auth_failures_ >= cfg_.limits.auth_failure_limit) {
      engine_.auth_failure(smtp::Reply(421, "4.7.0", cfg_.server.hostname + " Too many failed authentications"));
      closing_ = true;
      co_return;
    }
    engine_.auth_failure(smtp::Reply(535, "5.7.8", "Authentication credentials invalid"));
  }

  asio::awaitable<void> on_auth(const smtp::EvAuth& ev) {
    mechanism_ = to_upper(ev.mechanism);
    if (server_.auth_limiter().blocked(peer_ip_)) {
      engine_.auth_failure(smtp::Reply(454, "4.7.0", "Too many failed authentications, try again later"));
      co_return;
    }
    users_ = server_.deps().users->get();
    sasl_ = users::SaslServer::create(mechanism_, *users_->accounts);
    if (!sasl_) {
      engine_.auth_failure(smtp::Reply(504, "5.5.4", "Unrecognized authentication type"));
      co_return;
    }
    std::optional<std::string_view> initial;
    if (ev.initial_response) initial = *ev.initial_response;
    co_await apply_sasl(sasl_->start(initial), mechanism_);
  }

  // Returns false when the connection must close.
  asio::awaitable<bool> handle(smtp::Event& event) {
    if (auto* ev = std::get_if<smtp::EvData>(&event)) {
      on_content(ev->bytes);
      co_return true;
    }
    if (auto* ev = std::get_if<smtp::EvHelo>(&event)) {
      esmtp_ = ev->esmtp;
      reset_transaction();
      if (anti_abuse_applies()) {
        policy::Verdict v = anti_abuse_->on_helo(ev->name);
        log_verdict("helo", v);
        if (v.refused()) {
          reject("helo", v.code, v.enhanced.c_str(), v.text);
          co_return true;
        }
      }
      if (milters_) {
        // Named arguments: GCC 12 mishandles temporaries passed into a co_await.
        std::string tls_version = tls_info_ ? tls_info_->version : std::string();
        std::string cipher = tls_info_ ? tls_info_->cipher : std::string();
        int bits = tls_info_ ? tls_info_->bits : 0;
        MilterVerdict v = co_await milters_->helo(ev->name, tls_version, cipher, bits);
        if (v.refused()) {
          reject("helo", v.code, v.enhanced.c_str(), v.text);
          co_return true;
        }
      }
      engine_.accept_helo();
      co_return true;
    }
    if (auto* ev = std::get_if<smtp::EvMail>(&event)) {
      co_await on_mail(*ev);
      co_return true;
    }
    if (auto* ev = std::get_if<smtp::EvRcpt>(&event)) {
      co_await on_rcpt(*ev);
      co_return true;
    }
    if (std::holds_alternative<smtp::EvDataStart>(event)) {
      on_data_start();
      co_return true;
    }
    if (auto* ev = std::get_if<smtp::EvDataEnd>(&event)) {
      co_await on_data_end(*ev);
      co_return true;
    }
    if (std::holds_alternative<smtp::EvStartTls>(event)) {
      if (!co_await flush()) co_return false;
      if (!co_await start_tls()) co_return false;
      reset_transaction();
      auth_user_.clear();
      engine_.tls_started();
      co_return true;
    }
    if (auto* ev = std::get_if<smtp::EvAuth>(&event)) {
      co_await on_auth(*ev);
      co_return !closing_;
    }
    if (auto* ev = std::get_if<smtp::EvAuthResponse>(&event)) {
      if (!sasl_) {
        engine_.auth_failure(smtp::Reply(501, "5.5.2", "No authentication in progress"));
        co_return true;
      }
      co_await apply_sasl(sasl_->step(ev->data), mechanism_);
      co_return !closing_;
    }
    if (std::holds_alternative<smtp::EvAuthCancelled>(event)) {
      sasl_.reset();
      co_return true;
    }
    if (std::holds_alternative<smtp::EvRset>(event)) {
      reset_transaction();
      if (milters_) co_await milters_->abort();
      co_return true;
    }
    // EvQuit, EvClose: the engine queued its last reply.
    if (std::holds_alternative<smtp::EvQuit>(event)) quit_ = true;
    co_return false;
  }

  Server& server_;
  dns::Resolver* resolver_;  // this thread's; null when inbound verification is off
  const config::Listener& listener_;
  const config::Config& cfg_;
  tcp::socket sock_;
  std::unique_ptr<asio::ssl::stream<tcp::socket>> tls_;
  std::unique_ptr<std::array<char, 16384>> tls_buf_;
  std::optional<tls::SessionInfo> tls_info_;
  asio::steady_timer timer_;
  Clock::time_point deadline_ = Clock::now() + std::chrono::seconds(300);
  smtp::ServerSession engine_;
  uint16_t peer_port_;  // the client's, for milters
  uint64_t id_;
  IpAddress peer_ip_;
  std::string peer_;
  bool trusted_ = false;
  bool esmtp_ = false;
  bool done_ = false;
  bool closing_ = false;
  bool quit_ = false;  // the client sent QUIT; the 221 is the last reply
  bool timed_out_ = false;
  bool waiting_for_command_ = false;
  static constexpr size_t kCommandReadBuffer = 1024;
  static constexpr size_t kContentReadBuffer = 16384;
  std::unique_ptr<char[]> read_buf_;
  size_t read_buf_size_ = 0;
  bool writing_ = false;  // a write is in flight (only one at a time on a TLS stream)
  bool shutdown_close_ = false;
  std::shared_ptr<const UserDb::Snapshot> users_;
  std::string auth_user_;
  std::string mechanism_;
  std::unique_ptr<users::SaslServer> sasl_;
  unsigned auth_failures_ = 0;
  uint64_t messages_ = 0;

  // Transaction.
  std::string mail_from_;
  smtp::MailParams mail_params_;
  std::vector<queue::Recipient> rcpts_;
  std::vector<std::string> originals_;
  std::unique_ptr<queue::Spool::Writer> writer_;
  bool write_failed_ = false;
  int64_t received_at_ = 0;
  std::string protocol_;
  std::string received_header_;
  std::optional<auth::SpfResult> spf_;
  bool spf_is_helo_ = false;
  policy::SessionFacts identity_;                  // facts of the identity rule, from MAIL FROM
  std::vector<policy::ForwarderSpf> forwarder_spf_;  // SPF of the recipients' forwarder domains
  bool transaction_forwarded_ = false;
  policy::AntiAbuse* anti_abuse_ = nullptr;  // issue 5 item 4 checks (ServerDeps; null: none)
  policy::ConnectDns connect_dns_;           // DNSBL + iprev, started at connect
  bool sender_ok_ = false;                   // sender_access OK: no greylisting in this transaction
  std::string discarded_by_;  // sender_access DISCARD or a milter's discard: 250 at end of data, nothing queued
  std::string helo_checked_;                       // EHLO name already looked up in DNS
  std::optional<bool> helo_resolves_;
  bool keep_copy_ = false;
  std::unique_ptr<MilterChain> milters_;  // [[milter]] (issue 5 item 5); null: none configured
  bool milter_copy_ = false;              // milter_content_ collects what is spooled
  std::string milter_content_;
  bool signing_ = false;  // this message gets DKIM-signed at end of data
  std::string auth_copy_;  // the message as received, for end-of-data verification
  std::string header_buf_;  // header section held back until its end is seen
  bool headers_done_ = false;
  unsigned forged_ar_removed_ = 0;
  static constexpr size_t kMaxHeaderSection = 1024 * 1024;
};

asio::awaitable<void> Session::run() {
  auto started = Clock::now();
  std::string why;
  if (!server_.admit(peer_ip_, why)) {
    std::string msg = "421 4.7.0 " + cfg_.server.hostname + " " + why + "\r\n";
    co_await asio::async_write(sock_, asio::buffer(msg), kNoThrow);
    log::info("connect_refused").kv("client", peer_).kv("reason", why);
    boost::system::error_code ec;
    sock_.close(ec);
    co_return;
  }
  if (anti_abuse_applies()) {
    // Issue 5 item 4: connection rate per client; then DNSBL and iprev
    // lookups start now and are awaited at MAIL FROM / end of data.
    policy::Verdict v = anti_abuse_->on_connect(peer_ip_);
    if (v.refused()) {
      log_verdict("connect", v);
      std::string msg = std::to_string(v.code) + " " + v.enhanced + " " + cfg_.server.hostname + " " + v.text + "\r\n";
      co_await asio::async_write(sock_, asio::buffer(msg), kNoThrow);
      boost::system::error_code ignored;
      sock_.close(ignored);
      server_.release(peer_ip_);
      co_return;
    }
    if (resolver_ != nullptr) connect_dns_ = anti_abuse_->start_dns(sock_.get_executor(), *resolver_, peer_ip_);
  }
  boost::system::error_code ec;
  sock_.non_blocking(true, ec);  // TCP_NODELAY is inherited from the listening socket (Server::bind)
  // A new connection starts in quick-ack mode: the kernel would acknowledge
  // the client's first command in a segment of its own, just before our
  // reply. Delayed ACKs from the start let the reply carry it.
  const int off = 0;
  ::setsockopt(sock_.native_handle(), IPPROTO_TCP, TCP_QUICKACK, &off, sizeof off);
  log::info("connect")
      .kv("session", id_)
      .kv("client", peer_)
      .kv("listener", config::role_name(listener_.role))
      .kv("trusted", trusted_);
  arm(std::chrono::seconds(cfg_.limits.timeout_command));
  asio::co_spawn(sock_.get_executor(), watchdog_main(shared_from_this()), asio::detached);

  if (!cfg_.milters.empty()) {
    // Issue 5 item 5: the milters see the connection before the greeting.
    milters_ = std::make_unique<MilterChain>(sock_.get_executor(), cfg_.milters);
    MilterConnection c;
    c.our_hostname = cfg_.server.hostname;
    c.daemon_name = config::role_name(listener_.role);
    auto local = sock_.local_endpoint(ec);
    if (!ec) {
      c.daemon_addr = local.address().to_string();
      c.daemon_port = local.port();
    }
    c.client_port = peer_port_;
    c.client_addr = peer_;
    c.ipv6 = peer_ip_.v6;
    MilterVerdict v = co_await milters_->connect(c);
    if (v.refused()) {
      log::info("milter_connect_refused").kv("session", id_).kv("client", peer_).kv("milter", v.milter);
    }
  }

  bool ok_run = true;
  if (listener_.role == config::ListenerRole::kSubmissions) {
    ok_run = co_await start_tls();
    if (ok_run) engine_.tls_started();
  }
  if (ok_run) {
    engine_.greet();
    for (;;) {
      bool keep = true;
      while (auto ev = engine_.next()) {
        if (!co_await handle(*ev)) {
          keep = false;
          break;
        }
      }
      if (quit_ && !tls_ && engine_.buffered_input() == 0) {
        co_await send_last_reply();
        break;
      }
      if (!co_await flush() || !keep || closing_ || timed_out_) break;
      if (engine_.phase() == smtp::ServerSession::Phase::kClosed) break;
      if (server_.shutting_down() && engine_.phase() == smtp::ServerSession::Phase::kCommand) {
        shutdown_close_ = true;
      }
      if (shutdown_close_) {
        engine_.output() = "421 4.3.2 " + cfg_.server.hostname + " Service shutting down, try again later\r\n";
        co_await flush();
        break;
      }
      waiting_for_command_ = engine_.phase() == smtp::ServerSession::Phase::kCommand && engine_.buffered_input() == 0;
      bool got = co_await read_more();
      waiting_for_command_ = false;
      if (!got) {
        if (shutdown_close_ && !timed_out_) {
          engine_.output() = "421 4.3.2 " + cfg_.server.hostname + " Service shutting down, try again later\r\n";
          co_await flush();
        }
        break;
      }
    }
  }
  done_ = true;
  if (milters_) {
    co_await milters_->abort();
    co_await milters_->quit();
  }
  timer_.cancel();
  if (writer_) writer_.reset();
  // close(2) alone ends the connection (the descriptor is not shared); a
  // shutdown(2) first would only cost a call, failing with ENOTCONN when
  // the client has already closed.
  raw().close(ec);
  server_.release(peer_ip_);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  log::info("disconnect")
      .kv("session", id_)
      .kv("client", peer_)
      .kv("messages", messages_)
      .kv("errors", engine_.error_count())
      .kv("timeout", timed_out_)
      .kv("ms", static_cast<int64_t>(ms));
}

}  // namespace

asio::awaitable<void> run_session(Server& server, const config::Listener& listener, tcp::socket socket,
                                   tcp::endpoint peer, dns::Resolver* resolver) {
  // Shared with the watchdog coroutine, which may outlive run() briefly.
  auto session = std::make_shared<Session>(server, listener, std::move(socket), peer, resolver);
  co_await session->run();
}

void shutdown_sessions_on_this_thread() { Session::shutdown_all_on_this_thread(); }

}  // namespace tern::server
