// Remote delivery: transport selection, grouping, MX fallthrough, connection
// cache, connection limits and destination backoff (see remote.h).
#include "scheduler/remote.h"

#include <algorithm>

#include "base/fs.h"
#include "base/log.h"
#include "base/strings.h"
#include "config/config.h"

namespace tern::scheduler {
namespace {

using delivery::TransportKind;
using Clock = std::chrono::steady_clock;

std::string domain_of(std::string_view address) {
  auto at = address.rfind('@');
  if (at == std::string_view::npos) return "";
  std::string d = to_lower(address.substr(at + 1));
  if (!d.empty() && d.back() == '.') d.pop_back();
  return d;
}

// RFC 3461 §4.1 NOTIFY value from the queue's bitmask.
std::string notify_text(unsigned notify) {
  if (notify == 0) return "";
  if ((notify & queue::kNotifyNever) != 0) return "NEVER";
  std::string out;
  auto add = [&](unsigned bit, const char* word) {
    if ((notify & bit) == 0) return;
    if (!out.empty()) out += ',';
    out += word;
  };
  add(queue::kNotifySuccess, "SUCCESS");
  add(queue::kNotifyFailure, "FAILURE");
  add(queue::kNotifyDelay, "DELAY");
  return out;
}

uint16_t transport_port(const delivery::Transport& t) {
  if (t.host && t.host->port != 0) return t.host->port;
  switch (t.kind) {
    case TransportKind::kSubmission:
      return 587;  // RFC 6409 §3.1
    case TransportKind::kSubmissions:
      return 465;  // RFC 8314 §7.3
    case TransportKind::kSocks5:
      return 1080;  // RFC 1928 §3
    default:
      return 25;
  }
}

bool is_direct(const delivery::Transport& t) {
  return t.kind == TransportKind::kDirect || t.kind == TransportKind::kSocks5;
}

// One server to try: the name it is known by and where to connect.
struct Candidate {
  std::string name;     // MX host name, smarthost name or address literal
  std::string address;  // IP literal (direct) or the configured host
  uint16_t port = 0;
  uint16_t preference = 0;
  std::string relay_text() const { return name + "[" + address + "]:" + std::to_string(port); }
};

std::string reply_text(const delivery::RecipientResult& r) {
  return std::to_string(r.code) + " " + r.enhanced + " " + r.text;
}

}  // namespace

Result<std::map<std::string, std::string>> load_transport_passwords(const delivery::RouteTable& routes) {
  std::map<std::string, std::string> out;
  for (const auto& t : routes.transports) {
    if (t.auth_password_file.empty()) continue;
    auto text = fs::read_file(t.auth_password_file, 4096);
    if (!text) {
      return Error::local("transport \"" + t.name + "\": cannot read auth_password_file " + t.auth_password_file +
                          ": " + text.error().text);
    }
    std::string password = std::move(*text);
    if (!password.empty() && password.back() == '\n') password.pop_back();
    if (!password.empty() && password.back() == '\r') password.pop_back();
    if (password.empty()) {
      return Error::local("transport \"" + t.name + "\": auth_password_file " + t.auth_password_file + " is empty");
    }
    out[t.name] = std::move(password);
  }
  return out;
}

Result<std::map<std::string, std::shared_ptr<SSL_CTX>>> load_transport_tls_contexts(
    const delivery::RouteTable& routes) {
  std::map<std::string, std::shared_ptr<SSL_CTX>> out;
  for (const auto& t : routes.transports) {
    if (t.tls_ca_file.empty()) continue;
    auto ctx = delivery::make_client_tls_context_only(t.tls_ca_file);
    if (!ctx) return Error::local("transport \"" + t.name + "\": tls_ca_file: " + ctx.error().text);
    out[t.name] = std::move(*ctx);
  }
  return out;
}

std::string strip_return_path(std::string_view content) {
  // RFC 5321 §4.4: "A message-originating SMTP system SHOULD NOT send a
  // message that already contains a Return-path header field"; only the
  // final delivery MTA adds one. Fields are separated per RFC 5322 §2.2:
  // a line starting with SP/HTAB continues the previous field.
  std::string out;
  out.reserve(content.size());
  size_t pos = 0;
  bool dropping = false;
  while (pos < content.size()) {
    size_t eol = content.find('\n', pos);
    size_t next = eol == std::string_view::npos ? content.size() : eol + 1;
    std::string_view line = content.substr(pos, next - pos);
    if (line == "\r\n" || line == "\n") break;  // end of the header section
    bool continuation = !line.empty() && (line[0] == ' ' || line[0] == '\t');
    if (!continuation) {
      size_t colon = line.find(':');
      dropping = colon != std::string_view::npos && iequals(trim(line.substr(0, colon)), "Return-Path");
    }
    if (!dropping) out.append(line);
    pos = next;
  }
  out.append(content.substr(pos));
  return out;
}

// A group of recipients of one message that share a transport and a
// destination, so that they can go in one mail transaction.
struct RemoteDelivery::Group {
  delivery::Transport transport;
  std::string domain;         // recipient domain (direct, socks5); "" for a smarthost
  std::string destination;    // key for backoff and limits: "<transport>:<domain or host:port>"
  std::vector<size_t> slots;  // positions in the result vector
};

RemoteDelivery::RemoteDelivery(RemoteOptions options, queue::Clock& clock)
    : options_(std::move(options)), clock_(clock) {
  options_.max_connections = std::max<size_t>(1, options_.max_connections);
  options_.max_connections_per_destination = std::max<size_t>(1, options_.max_connections_per_destination);
  options_.max_recipients_per_transaction = std::max<size_t>(1, options_.max_recipients_per_transaction);
  if (auto ctx = delivery::make_client_tls_context(options_.ca_file)) {
    tls_context_ = *ctx;
  } else {
    log::warn("tls_client_context").kv("error", ctx.error().text);
  }
  sweeper_ = std::thread([this] { sweeper(); });
}

RemoteDelivery::~RemoteDelivery() {
  shutdown();
}

void RemoteDelivery::shutdown() {
  std::vector<std::unique_ptr<delivery::SmtpConnection>> closing;
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    for (auto& [key, idle] : idle_) closing.push_back(std::move(idle.connection));
    open_ -= std::min(open_, idle_.size());
    for (auto& [key, idle] : idle_) {
      auto& n = open_per_dest_[idle.destination];
      if (n > 0) --n;
    }
    idle_.clear();
  }
  slot_cv_.notify_all();
  sweep_cv_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
  for (auto& c : closing) c->quit();
}

bool RemoteDelivery::stopping() const {
  std::lock_guard lk(mu_);
  return stopping_;
}

size_t RemoteDelivery::open_connections() const {
  std::lock_guard lk(mu_);
  return open_;
}

size_t RemoteDelivery::idle_connections() const {
  std::lock_guard lk(mu_);
  return idle_.size();
}

int64_t RemoteDelivery::backoff_until(const std::string& destination) const {
  std::lock_guard lk(mu_);
  auto it = backoff_.find(destination);
  return it == backoff_.end() ? 0 : it->second.until;
}

std::vector<RemoteRecipientResult> RemoteDelivery::deliver(const queue::Envelope& env,
                                                           const std::vector<size_t>& indices,
                                                           std::string_view content) {
  std::vector<RemoteRecipientResult> results(indices.size());
  std::string from_domain = domain_of(env.mail_from);
  std::string account = to_lower(env.auth_user);
  std::vector<Group> groups;
  for (size_t k = 0; k < indices.size(); ++k) {
    results[k].index = indices[k];
    const auto& r = env.recipients.at(indices[k]);
    std::string to_domain = domain_of(r.address);
    // Routes are evaluated on every attempt with the attempts made so far.
    auto transport = delivery::select_transport(options_.routes, account, from_domain, to_domain, r.attempts);
    if (transport.kind == TransportKind::kFail) {
      Error e = config::parse_fail_message(transport.message)
                    .value_or(Error::temp("4.3.5", "transport " + transport.name + " has no valid reply"));
      results[k].last_reply = e.to_string();
      results[k].state = e.permanent() ? queue::Recipient::State::kFailed : queue::Recipient::State::kPending;
      log::info("delivery")
          .kv("id", env.id)
          .kv("to", r.address)
          .kv("transport", transport.name)
          .kv("relay", "none")
          .kv("status", e.permanent() ? "bounced" : "deferred")
          .kv("attempt", r.attempts + 1)
          .kv("delay", clock_.now() - env.received_at)
          .kv("reply", results[k].last_reply);
      continue;
    }
    std::string destination = transport.name + ":" +
                              (is_direct(transport) ? to_domain
                                                    : (transport.host ? transport.host->host : std::string()) + ":" +
                                                          std::to_string(transport_port(transport)));
    auto it = std::find_if(groups.begin(), groups.end(), [&](const Group& g) { return g.destination == destination; });
    if (it == groups.end()) {
      Group g;
      g.transport = transport;
      g.domain = is_direct(transport) ? to_domain : "";
      g.destination = destination;
      groups.push_back(std::move(g));
      it = groups.end() - 1;
    }
    it->slots.push_back(k);
  }
  if (groups.empty()) return results;
  std::string outgoing = strip_return_path(content);
  for (auto& g : groups) deliver_group(env, g, outgoing, results);
  return results;
}

void RemoteDelivery::deliver_group(const queue::Envelope& env, Group& group, std::string_view content,
                                   std::vector<RemoteRecipientResult>& results) {
  const auto& transport = group.transport;
  int64_t now = clock_.now();
  auto log_result = [&](size_t slot, const std::string& relay, bool tls, const char* status) {
    const auto& r = env.recipients.at(results[slot].index);
    log::info("delivery")
        .kv("id", env.id)
        .kv("to", r.address)
        .kv("orig_to", r.original)
        .kv("transport", transport.name)
        .kv("relay", relay)
        .kv("tls", tls)
        .kv("status", status)
        .kv("attempt", r.attempts + 1)
        .kv("delay", now - env.received_at)
        .kv("reply", results[slot].last_reply);
  };
  auto fail_all = [&](const Error& e, const std::string& relay) {
    for (size_t slot : group.slots) {
      results[slot].last_reply = e.to_string();
      results[slot].state = e.permanent() ? queue::Recipient::State::kFailed : queue::Recipient::State::kPending;
      log_result(slot, relay, false, e.permanent() ? "bounced" : "deferred");
    }
  };

  // A destination that keeps failing is left alone until its backoff ends.
  std::optional<Error> backed_off;
  {
    std::lock_guard lk(mu_);
    auto it = backoff_.find(group.destination);
    if (it != backoff_.end() && it->second.until > now) {
      backed_off = Error::temp("4.4.1", "destination " + group.destination + " backed off for " +
                                            std::to_string(it->second.until - now) + "s after: " + it->second.reason);
    }
  }
  if (backed_off) {
    fail_all(*backed_off, "none");
    return;
  }
  if (stopping()) {
    fail_all(Error::temp("4.3.2", "delivery is shutting down"), "none");
    return;
  }

  // Where to connect, in order.
  std::vector<Candidate> candidates;
  if (is_direct(transport)) {
    Result<delivery::Destination> dest = options_.lookup
                                             ? options_.lookup(group.domain)
                                             : Result<delivery::Destination>(Error::temp("4.4.3", "no DNS resolver"));
    if (!dest) {
      // RFC 7505 §4.1 null MX, NXDOMAIN, no records: permanent; DNS trouble:
      // retry, and leave the domain alone meanwhile (every lookup may take
      // the full DNS timeout).
      if (dest.error().transient()) note_failure(group.destination, dest.error());
      fail_all(dest.error(), "none");
      return;
    }
    for (const auto& host : dest->hosts) {
      for (const auto& addr : host.addresses) {
        candidates.push_back(Candidate{host.name, addr.to_string(), options_.direct_port, host.preference});
      }
    }
    if (candidates.empty()) {
      fail_all(Error::temp("4.4.4", "no address for any mail server of " + group.domain), "none");
      return;
    }
  } else {
    std::string host = transport.host ? transport.host->host : std::string();
    candidates.push_back(Candidate{host, host, transport_port(transport), 0});
  }

  // Prefer a host with an idle connection among those of the best preference
  // (reuse without changing the RFC 5321 §5.1 order across preferences).
  {
    std::lock_guard lk(mu_);
    for (size_t i = 1; i < candidates.size() && candidates[i].preference == candidates[0].preference; ++i) {
      std::string key = group.destination + "|" + candidates[i].address + ":" + std::to_string(candidates[i].port);
      if (idle_.count(key) > 0) {
        std::rotate(candidates.begin(), candidates.begin() + static_cast<long>(i),
                    candidates.begin() + static_cast<long>(i) + 1);
        break;
      }
    }
  }

  // SMTP client options for this transport.
  delivery::SmtpClientOptions client;
  client.helo_name = options_.helo_name;
  client.timeouts = options_.timeouts;
  auto pw = options_.passwords.find(transport.name);
  std::string password = pw == options_.passwords.end() ? std::string() : pw->second;
  if (transport.kind == TransportKind::kSocks5) {
    delivery::Socks5Options socks;
    socks.proxy.host = transport.host ? transport.host->host : std::string();
    socks.proxy.port = transport_port(transport);
    socks.username = transport.auth_user;
    socks.password = password;
    socks.connect_timeout = options_.timeouts.connect;
    client.socks5 = socks;
  } else if (!transport.auth_user.empty()) {
    client.credentials = delivery::SmtpCredentials{transport.auth_user, password};
  }

  // The message, in transactions of at most max_recipients_per_transaction.
  std::vector<std::vector<size_t>> chunks;
  for (size_t i = 0; i < group.slots.size(); i += options_.max_recipients_per_transaction) {
    size_t end = std::min(group.slots.size(), i + options_.max_recipients_per_transaction);
    chunks.emplace_back(group.slots.begin() + static_cast<long>(i), group.slots.begin() + static_cast<long>(end));
  }
  auto make_message = [&](const std::vector<size_t>& chunk) {
    delivery::OutboundMessage m;
    m.sender = env.mail_from;
    m.content = content;
    m.size = content.size();
    m.eight_bit = env.body != 0;
    m.smtputf8 = env.smtputf8;
    m.dsn_ret = env.ret == 1 ? "FULL" : env.ret == 2 ? "HDRS" : "";
    m.dsn_envid = env.envid;
    for (size_t slot : chunk) {
      const auto& r = env.recipients.at(results[slot].index);
      delivery::OutboundRecipient o;
      o.address = r.address;
      o.notify = notify_text(r.notify);
      o.orcpt = r.orcpt;
      if (!r.orcpt_type.empty()) o.orcpt_type = r.orcpt_type;
      m.recipients.push_back(std::move(o));
    }
    return m;
  };

  // A new connection to `c` within the limits; `busy` when no slot came in time.
  std::optional<Error> busy;
  auto open_connection = [&](const Candidate& c,
                             const std::string& key) -> Result<std::unique_ptr<delivery::SmtpConnection>> {
    if (auto refused = acquire_slot(group.destination)) {
      busy = refused;
      return *refused;
    }
    delivery::SmtpClientOptions per_host = client;
    if (transport.kind == TransportKind::kSubmission) {
      per_host.tls.mode = delivery::TlsMode::kRequired;  // RFC 6409 with credentials: never in clear
    } else if (transport.kind == TransportKind::kSubmissions) {
      per_host.tls.implicit_tls = true;  // RFC 8314 §3.3
      per_host.tls.mode = delivery::TlsMode::kRequired;
    } else if (options_.tls_policy && is_direct(transport)) {
      per_host.tls = options_.tls_policy(group.domain, c.name);
    } else {
      // RFC 3207 opportunistic; credentials never go out in clear.
      per_host.tls.mode = client.credentials ? delivery::TlsMode::kRequired : delivery::TlsMode::kOpportunistic;
    }
    if (transport.tls_verify && !is_direct(transport)) {
      // The smarthost's certificate must chain to tls_ca_file (or the system
      // store) and match the configured host name or address (RFC 6125 §6;
      // SNI per RFC 6066 §3 for names). A failure is a transient 4.7.5 error
      // of this attempt, before any AUTH or mail is sent.
      per_host.tls.require_verified = true;
      per_host.tls.server_name = c.name;
      per_host.tls.verify_names = {c.name};
      auto ctx = options_.tls_contexts.find(transport.name);
      if (ctx != options_.tls_contexts.end()) per_host.tls.context = ctx->second;
    }
    if (per_host.tls.server_name.empty()) per_host.tls.server_name = c.name;
    if (!per_host.tls.context) per_host.tls.context = tls_context_;
    if (per_host.tls.ca_file.empty()) per_host.tls.ca_file = options_.ca_file;
    auto conn = std::make_unique<delivery::SmtpConnection>(per_host);
    delivery::Endpoint ep;
    ep.host = c.address;
    ep.port = c.port;
    if (auto s = conn->connect(ep); !s) {
      log::info("connect_failed")
          .kv("id", env.id)
          .kv("destination", group.destination)
          .kv("relay", c.relay_text())
          .kv("error", s.error().to_string());
      release(key, group.destination, std::move(conn));
      return s.error();
    }
    return conn;
  };
  // Records one transaction's per-recipient replies.
  auto record = [&](const std::vector<size_t>& chunk, const delivery::SendResult& sent, const Candidate& c, bool tls) {
    for (size_t j = 0; j < chunk.size() && j < sent.recipients.size(); ++j) {
      size_t slot = chunk[j];
      const auto& rr = sent.recipients[j];
      results[slot].last_reply = reply_text(rr.result);
      results[slot].remote_mta = c.name;
      results[slot].dsn_not_relayed = rr.dsn_not_relayed;
      const char* status = "deferred";
      results[slot].state = queue::Recipient::State::kPending;
      if (rr.result.delivered()) {
        results[slot].state = queue::Recipient::State::kDelivered;
        status = "sent";
      } else if (!rr.result.transient) {
        results[slot].state = queue::Recipient::State::kFailed;
        status = "bounced";
      }
      log_result(slot, c.relay_text(), tls, status);
    }
  };

  std::optional<Error> last_error;
  bool any_transient = false;
  for (const auto& c : candidates) {
    std::string key = group.destination + "|" + c.address + ":" + std::to_string(c.port);
    std::unique_ptr<delivery::SmtpConnection> conn = take_idle(key);
    bool reused = conn != nullptr;
    for (int round = 0; round < 2; ++round) {
      if (!conn) {
        auto opened = open_connection(c, key);
        if (busy) {
          fail_all(*busy, "none");  // no slot in time: not the destination's fault
          return;
        }
        if (!opened) {
          if (opened.error().transient()) any_transient = true;
          last_error = opened.error();
          break;
        }
        conn = std::move(*opened);
      }
      bool stale = false;
      for (size_t ci = 0; ci < chunks.size(); ++ci) {
        auto message = make_message(chunks[ci]);
        auto sent = conn->send(message);
        bool all_transient = !sent.recipients.empty();
        for (const auto& rr : sent.recipients) all_transient = all_transient && rr.result.transient;
        if (reused && ci == 0 && !sent.connection_usable && all_transient) {
          // The cached connection died while idle and nothing was accepted:
          // start over on a fresh connection to the same host.
          stale = true;
          break;
        }
        record(chunks[ci], sent, c, conn->session().tls);
        if (!conn->usable()) {
          // Lost mid-way: the remaining transactions stay pending.
          for (size_t rest = ci + 1; rest < chunks.size(); ++rest) {
            for (size_t slot : chunks[rest]) {
              results[slot].last_reply = "451 4.4.2 connection to " + c.relay_text() + " lost";
              log_result(slot, c.relay_text(), false, "deferred");
            }
          }
          break;
        }
      }
      if (stale) {
        release(key, group.destination, std::move(conn));
        reused = false;
        continue;
      }
      note_success(group.destination);
      release(key, group.destination, std::move(conn));
      return;
    }
    // RFC 5321 §5.1: a connection failure or a refused greeting moves on to
    // the next address / host (open_connection logged why).
  }

  // No host took the connection. A permanent verdict only when every host
  // gave one (e.g. 554 greetings everywhere); otherwise retry later and back
  // the destination off so that other messages do not hammer it.
  Error e = last_error.value_or(Error::temp("4.4.1", "no mail server of " + group.destination + " answered"));
  if (any_transient && e.permanent()) e = Error::temp("4.4.1", e.text);
  if (e.transient()) note_failure(group.destination, e);
  fail_all(e, candidates.size() == 1 ? candidates[0].relay_text() : "none");
}

std::optional<Error> RemoteDelivery::acquire_slot(const std::string& destination) {
  std::vector<std::unique_ptr<delivery::SmtpConnection>> closing;
  std::optional<Error> refused;
  {
    std::unique_lock lk(mu_);
    auto deadline = Clock::now() + options_.slot_wait;
    for (;;) {
      if (stopping_) {
        refused = Error::temp("4.3.2", "delivery is shutting down");
        break;
      }
      size_t& per = open_per_dest_[destination];
      if (open_ < options_.max_connections && per < options_.max_connections_per_destination) {
        ++open_;
        ++per;
        break;
      }
      // Free a slot by closing an idle connection: of this destination when
      // its own limit is the obstacle, else the one closest to expiry.
      auto victim = idle_.end();
      for (auto it = idle_.begin(); it != idle_.end(); ++it) {
        bool fits = per >= options_.max_connections_per_destination ? it->second.destination == destination : true;
        if (fits && (victim == idle_.end() || it->second.expires < victim->second.expires)) victim = it;
      }
      if (victim != idle_.end()) {
        closing.push_back(std::move(victim->second.connection));
        auto& n = open_per_dest_[victim->second.destination];
        if (n > 0) --n;
        --open_;
        idle_.erase(victim);
        continue;
      }
      if (slot_cv_.wait_until(lk, deadline) == std::cv_status::timeout) {
        size_t& p = open_per_dest_[destination];
        if (open_ < options_.max_connections && p < options_.max_connections_per_destination) continue;
        refused = Error::temp("4.4.5", "too many connections to " + destination + "; will retry");
        break;
      }
    }
  }
  for (auto& c : closing) c->quit();
  return refused;
}

std::unique_ptr<delivery::SmtpConnection> RemoteDelivery::take_idle(const std::string& key) {
  std::lock_guard lk(mu_);
  auto it = idle_.find(key);
  if (it == idle_.end()) return nullptr;
  auto conn = std::move(it->second.connection);
  idle_.erase(it);
  return conn;
}

void RemoteDelivery::release(const std::string& key, const std::string& destination,
                             std::unique_ptr<delivery::SmtpConnection> connection) {
  {
    std::lock_guard lk(mu_);
    if (connection && connection->usable() && !stopping_ && options_.idle_timeout.count() > 0) {
      idle_.emplace(key, Idle{destination, std::move(connection), Clock::now() + options_.idle_timeout});
      sweep_cv_.notify_all();
      return;
    }
  }
  // Closed before its slot is given back, so the limits hold as the peer sees them.
  if (connection) connection->quit();
  {
    std::lock_guard lk(mu_);
    auto& n = open_per_dest_[destination];
    if (n > 0) --n;
    if (open_ > 0) --open_;
  }
  slot_cv_.notify_all();
}

void RemoteDelivery::sweeper() {
  pthread_setname_np(pthread_self(), "tern-smtp-idle");
  std::unique_lock lk(mu_);
  while (!stopping_) {
    if (idle_.empty()) {
      sweep_cv_.wait(lk);
      continue;
    }
    auto earliest = Clock::time_point::max();
    for (const auto& [key, idle] : idle_) earliest = std::min(earliest, idle.expires);
    if (earliest > Clock::now()) {
      sweep_cv_.wait_until(lk, earliest);
      continue;
    }
    // Expired ones leave the cache now but give their slots back only once
    // closed (QUIT, RFC 5321 §4.1.1.10).
    std::vector<Idle> closing;
    auto now = Clock::now();
    for (auto it = idle_.begin(); it != idle_.end();) {
      if (it->second.expires <= now) {
        closing.push_back(std::move(it->second));
        it = idle_.erase(it);
      } else {
        ++it;
      }
    }
    lk.unlock();
    for (auto& c : closing) c.connection->quit();
    lk.lock();
    for (auto& c : closing) {
      auto& n = open_per_dest_[c.destination];
      if (n > 0) --n;
      if (open_ > 0) --open_;
    }
    slot_cv_.notify_all();
  }
}

void RemoteDelivery::note_failure(const std::string& destination, const Error& error) {
  std::lock_guard lk(mu_);
  auto& b = backoff_[destination];
  b.delay = b.delay == 0 ? options_.backoff_initial : std::min(b.delay * 2, options_.backoff_max);
  b.until = clock_.now() + b.delay;
  b.reason = error.to_string();
  log::info("destination_backoff").kv("destination", destination).kv("seconds", b.delay).kv("reason", b.reason);
}

void RemoteDelivery::note_success(const std::string& destination) {
  std::lock_guard lk(mu_);
  backoff_.erase(destination);
}

}  // namespace tern::scheduler
