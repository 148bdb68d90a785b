// Remote delivery for the scheduler's workers (issue 4): takes the non-local
// recipients of one leased message, picks a transport for each on this
// attempt (route table: direct MX delivery, smarthost, submission(s), SOCKS5
// or a configured failure), groups recipients that can share a mail
// transaction, and runs the SMTP client. Direct delivery follows RFC 5321 §5:
// MX hosts in preference order (the resolver shuffles equal preferences),
// implicit MX, null MX as a permanent failure, every address of a host
// before the next host, next host on a connection failure or a refused
// greeting. Shared state across workers, all behind one mutex:
//   * a connection cache: an idle, still usable SmtpConnection per
//     (transport, destination, address, port) is kept for a few seconds and
//     reused by the next message going there; a small sweeper thread QUITs
//     the ones that stay idle (it sleeps until the next expiry, no polling);
//   * connection limits: at most max_connections open (idle cached ones
//     included) and max_connections_per_destination per destination; a
//     worker waits on a condition variable for a slot (bounded), closing
//     idle connections of other destinations first;
//   * a backoff table: a destination whose every host failed to connect or
//     greet (or whose MX lookup failed transiently) is not tried again until
//     its backoff ends (doubling per consecutive failure); messages to it
//     meanwhile are deferred untried.
// The Return-Path header field (RFC 5321 §4.4: added by the final delivery
// MTA only) is removed from the header section before content leaves.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/result.h"
#include "delivery/mx.h"
#include "delivery/route.h"
#include "delivery/smtp_client.h"
#include "queue/envelope.h"
#include "queue/manager.h"

namespace tern::scheduler {

// The TLS policy hook for one destination host (MTA-STS, DANE later).
// `domain` is the recipient domain (for smarthost transports: the
// transport's host), `host` the server about to be contacted. The default
// (no hook) is opportunistic STARTTLS with the host name as SNI.
using TlsPolicyHook = std::function<delivery::TlsPolicy(const std::string& domain, const std::string& host)>;

// Looks up where direct delivery to a domain goes (BlockingResolver in
// production; tests may script it).
using DestinationLookup = std::function<Result<delivery::Destination>(const std::string& domain)>;

struct RemoteOptions {
  std::string helo_name = "localhost";
  delivery::RouteTable routes;
  // Passwords per transport name (load_transport_passwords).
  std::map<std::string, std::string> passwords;
  DestinationLookup lookup;
  TlsPolicyHook tls_policy;
  // Port for direct (MX) delivery: 25, the SMTP port (RFC 5321 §4.5.4.2); tests change it.
  uint16_t direct_port = 25;
  size_t max_connections = 100;
  size_t max_connections_per_destination = 10;
  // Longest a worker waits for a free connection slot before deferring.
  std::chrono::milliseconds slot_wait{30'000};
  // Idle connections are kept this long for the next message.
  std::chrono::milliseconds idle_timeout{5'000};
  // Destination backoff after a failure of every host: first, then doubling up to max (seconds).
  int64_t backoff_initial = 60;
  int64_t backoff_max = 3600;
  // RFC 5321 §4.5.3.1.8: servers must accept at least 100 recipients per transaction.
  size_t max_recipients_per_transaction = 100;
  delivery::SmtpTimeouts timeouts;
  std::string ca_file;  // extra trust anchors for verifying peers (logged only in opportunistic mode)
  // Client TLS contexts of transports with tls_ca_file, by transport name
  // (load_transport_tls_contexts); other verifying transports use the system store.
  std::map<std::string, std::shared_ptr<SSL_CTX>> tls_contexts;
};

// Outcome for one recipient, in the form the queue records it.
struct RemoteRecipientResult {
  size_t index = 0;  // position in Envelope::recipients
  queue::Recipient::State state = queue::Recipient::State::kPending;
  std::string last_reply;        // "250 2.0.0 ok", "451 4.4.1 ..." (what the queue keeps)
  std::string remote_mta;        // the server that answered (DSN Remote-MTA, RFC 3464 §2.3.5), "" if none
  bool dsn_not_relayed = false;  // delivered to a server without DSN (RFC 3461 §5.2.2: we issue "relayed")
};

// Reads each transport's auth_password_file (trailing newline removed).
// The error names the transport and the file.
Result<std::map<std::string, std::string>> load_transport_passwords(const delivery::RouteTable& routes);

// Builds a client TLS context per transport with tls_ca_file, trusting only
// the certificates in that file. The error names the transport and the file.
Result<std::map<std::string, std::shared_ptr<SSL_CTX>>> load_transport_tls_contexts(const delivery::RouteTable& routes);

// Removes every Return-Path field from the header section of `content`
// (CRLF or LF line ends); the body and all other fields are kept as they are.
std::string strip_return_path(std::string_view content);

class RemoteDelivery {
 public:
  RemoteDelivery(RemoteOptions options, queue::Clock& clock);
  ~RemoteDelivery();
  RemoteDelivery(const RemoteDelivery&) = delete;
  RemoteDelivery& operator=(const RemoteDelivery&) = delete;

  // Delivers `content` (the message as it leaves the queue) to the
  // recipients of `env` at `indices`. Thread-safe; blocks for the SMTP
  // exchanges. Returns one result per index, in the same order.
  std::vector<RemoteRecipientResult> deliver(const queue::Envelope& env, const std::vector<size_t>& indices,
                                             std::string_view content);

  // QUITs every idle connection and stops the sweeper. Deliveries still
  // running finish their current exchange; later ones are deferred at once
  // (451 4.3.2), so call this before stopping the workers.
  void shutdown();
  bool stopping() const;

  // For tests and metrics.
  size_t open_connections() const;
  size_t idle_connections() const;
  // Unix time until which `destination` ("direct:example.test") is backed off, 0 if not.
  int64_t backoff_until(const std::string& destination) const;

 private:
  struct Group;
  struct Idle {
    std::string destination;
    std::unique_ptr<delivery::SmtpConnection> connection;
    std::chrono::steady_clock::time_point expires;
  };
  struct Backoff {
    int64_t until = 0;
    int64_t delay = 0;
    std::string reason;
  };
  // A connection in use (from the cache or new); returns it to the cache or closes it.
  struct Lease;

  void deliver_group(const queue::Envelope& env, Group& group, std::string_view content,
                     std::vector<RemoteRecipientResult>& results);
  // Waits for a slot; nullopt (with the reason) when none came in time.
  std::optional<Error> acquire_slot(const std::string& destination);
  std::unique_ptr<delivery::SmtpConnection> take_idle(const std::string& key);
  void release(const std::string& key, const std::string& destination,
               std::unique_ptr<delivery::SmtpConnection> connection);
  void close_one_idle_locked(std::vector<std::unique_ptr<delivery::SmtpConnection>>& closing);
  void sweeper();
  void note_failure(const std::string& destination, const Error& error);
  void note_success(const std::string& destination);

  RemoteOptions options_;
  queue::Clock& clock_;
  std::shared_ptr<SSL_CTX> tls_context_;

  mutable std::mutex mu_;
  std::condition_variable slot_cv_;
  std::condition_variable sweep_cv_;
  size_t open_ = 0;                              // connections open (in use or idle)
  std::map<std::string, size_t> open_per_dest_;  // destination -> open connections
  std::multimap<std::string, Idle> idle_;        // connection key -> idle connection
  std::map<std::string, Backoff> backoff_;
  bool stopping_ = false;
  std::thread sweeper_;
};

}  // namespace tern::scheduler
