// `tern serve`: start-up order matters for least privilege and durability:
//   1. create the data directory, TLS material (embedded default only)
//   2. bind every listener and load TLS keys (may need root)
//   3. drop root to [server] user (data directory handed to that user first),
//      then build the [policy] anti-abuse checks as that user (access maps,
//      <data_dir>/greylist)
//   4. open the spool and recover: every acknowledged message is re-queued
//   5. start the control socket, the delivery workers (local transport, and
//      remote delivery with its DNS resolver thread, routes, transport
//      passwords and tls_ca_file trust anchors read at start), then accept mail
// SIGTERM/SIGINT: stop accepting, let open transactions finish or 421 them,
// finish delivery attempts in progress, complete pending syncs, exit 0.
#include "app/serve.h"

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "admin/control.h"
#include "admin/queue_commands.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/strings.h"
#include "delivery/local_transport.h"
#include "delivery/mx.h"
#include "delivery/route.h"
#include "dns/unbound_resolver.h"
#include "policy/checks.h"
#include "queue/bounce.h"
#include "queue/manager.h"
#include "queue/spool.h"
#include "scheduler/agent.h"
#include "scheduler/remote.h"
#include "server/server.h"
#include "server/user_db.h"
#include "tls/tls.h"

namespace tern::app {
namespace {

std::string absolute(const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  std::error_code ec;
  auto abs = std::filesystem::absolute(path, ec);
  return ec ? path : abs.lexically_normal().string();
}

Status chown_tree(const std::string& dir, uid_t uid, gid_t gid) {
  std::error_code ec;
  if (::chown(dir.c_str(), uid, gid) != 0) return Error::local(fs::errno_text("chown " + dir, errno));
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (::lchown(it->path().c_str(), uid, gid) != 0) {
      return Error::local(fs::errno_text("chown " + it->path().string(), errno));
    }
  }
  return ok();
}

// Drops root to `user` (RFC-less, Postfix-style least privilege).
Status drop_privileges(const std::string& user, const std::string& data_dir) {
  if (user.empty()) return ok();
  if (::geteuid() != 0) {
    log::warn("privileges").kv("note", "not root; [server] user ignored").kv("user", user);
    return ok();
  }
  struct passwd* pw = ::getpwnam(user.c_str());
  if (pw == nullptr) return Error::local("server.user: no such user: " + user);
  if (auto s = chown_tree(data_dir, pw->pw_uid, pw->pw_gid); !s) return s;
  if (::setgroups(0, nullptr) != 0 || ::setgid(pw->pw_gid) != 0 || ::setuid(pw->pw_uid) != 0) {
    return Error::local(fs::errno_text("dropping privileges to " + user, errno));
  }
  if (::setuid(0) == 0) return Error::local("dropping privileges failed: could regain root");
  log::info("privileges").kv("user", user).kv("uid", static_cast<uint64_t>(pw->pw_uid));
  return ok();
}

}  // namespace

int serve(const config::Config& cfg_in) {
  config::Config cfg = cfg_in;
  // Block the signals we wait for before any thread starts, so that they are
  // delivered to sigwait() below and not to a worker.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  auto die = [](const std::string& what) {
    log::error("startup_failed").kv("error", what);
    return 1;
  };

  cfg.server.data_dir = absolute(cfg.server.data_dir);
  if (cfg.delivery.maildir.size() > 0) cfg.delivery.maildir = absolute(cfg.delivery.maildir);
  if (auto s = fs::make_dirs(cfg.server.data_dir, 0750); !s) return die(s.error().text);
  if (cfg.tls.enabled() && cfg.tls.generate_self_signed) {
    if (auto s = tls::ensure_self_signed(cfg.tls.cert, cfg.tls.key, cfg.server.hostname); !s) {
      return die(s.error().text);
    }
  }
  log::info("starting")
      .kv("config", cfg.path)
      .kv("hostname", cfg.server.hostname)
      .kv("data_dir", cfg.server.data_dir)
      .kv("pid", static_cast<int64_t>(::getpid()));

  server::Server server(cfg, {});
  if (auto s = server.bind(); !s) return die(s.error().text);
  // DKIM keys are read before dropping root: they are usually root-only.
  std::unique_ptr<delivery::DkimSigner> signer;
  if (!cfg.dkim.sign.empty()) {
    auto loaded = delivery::DkimSigner::load(cfg);
    if (!loaded) return die(loaded.error().text);
    signer = std::move(*loaded);
    log::info("dkim_signing").kv("keys", static_cast<uint64_t>(signer->key_count()));
  }
  if (auto s = drop_privileges(cfg.server.user, cfg.server.data_dir); !s) return die(s.error().text);

  // The anti-abuse checks of [policy] (issue 5 item 4), built after the drop:
  // the access maps are re-read by the service user when they change (so it
  // must be able to read them now), and <data_dir>/greylist is created by and
  // belongs to that user. A map that cannot be read or parsed, or a greylist
  // file that cannot be opened, stops start-up naming the file (and line).
  auto anti_abuse = policy::AntiAbuse::create(cfg.policy, cfg.server.data_dir);
  if (!anti_abuse) return die(anti_abuse.error().text);
  log::info("anti_abuse")
      .kv("sender_access", cfg.policy.sender_access.empty() ? std::string("-") : cfg.policy.sender_access)
      .kv("recipient_access", cfg.policy.recipient_access.empty() ? std::string("-") : cfg.policy.recipient_access)
      .kv("dnsbl", static_cast<uint64_t>(cfg.policy.dnsbl.size()))
      .kv("greylist", (*anti_abuse)->greylisting());
  if (!cfg.auth.verify_inbound && !cfg.policy.dnsbl.empty()) {
    // The inbound resolvers exist only with verify_inbound (server::Server::bind).
    log::warn("policy_dns_off")
        .kv("note",
            "[auth] verify_inbound = false: dnsbl, iprev and "
            "reject_unknown_sender_domain are not checked");
  }

  auto spool =
      queue::Spool::open(cfg.server.data_dir + "/queue", cfg.queue.sync == "fsync" ? queue::Spool::SyncMode::kFsyncEach
                                                                                   : queue::Spool::SyncMode::kSyncfs);
  if (!spool) return die(spool.error().text);
  auto recovered = (*spool)->recover();
  if (!recovered) return die(recovered.error().text);

  server::UserDb users(cfg.domains.local, cfg.accounts.file, cfg.aliases.file);
  if (auto s = users.load(); !s) return die(s.error().text);

  queue::SystemClock clock;
  queue::RetryPolicy retry;
  retry.schedule.assign(cfg.queue.retry_schedule.begin(), cfg.queue.retry_schedule.end());
  retry.max_age = cfg.queue.max_age;
  queue::QueueManager manager(**spool, clock, retry);
  for (auto& env : *recovered) manager.add(std::move(env));
  log::info("recovered").kv("messages", static_cast<uint64_t>(recovered->size()));

  std::unique_ptr<delivery::LocalTransport> transport;
  if (!cfg.delivery.lmtp.empty()) {
    delivery::LmtpOptions o;
    o.endpoint = cfg.delivery.lmtp;
    o.hostname = cfg.server.hostname;
    transport = std::make_unique<delivery::LmtpTransport>(o);
  } else {
    delivery::MaildirOptions o;
    o.path_template = cfg.delivery.maildir;
    o.hostname = cfg.server.hostname;
    o.detail_folder = cfg.delivery.detail_folder;
    transport = std::make_unique<delivery::MaildirTransport>(o);
  }
  // Remote delivery: routes and transport passwords are read now (an
  // unreadable password file stops start-up, naming the file); MX lookups run
  // on one resolver thread shared by the workers.
  scheduler::RemoteOptions remote_opts;
  remote_opts.helo_name = cfg.server.hostname;
  remote_opts.routes = delivery::RouteTable::from_config(cfg);
  auto passwords = scheduler::load_transport_passwords(remote_opts.routes);
  if (!passwords) return die(passwords.error().text);
  remote_opts.passwords = std::move(*passwords);
  auto tls_contexts = scheduler::load_transport_tls_contexts(remote_opts.routes);
  if (!tls_contexts) return die(tls_contexts.error().text);
  remote_opts.tls_contexts = std::move(*tls_contexts);
  for (const auto& t : remote_opts.routes.transports) {
    if (!t.auth_user.empty() && !t.tls_verify && t.kind != config::TransportKind::kSocks5) {
      log::warn("transport_tls_unverified")
          .kv("transport", t.name)
          .kv("note", "tls_verify = false: SMTP AUTH credentials go to a server whose certificate is not checked");
    }
  }
  remote_opts.max_connections = cfg.delivery.max_connections;
  remote_opts.max_connections_per_destination = cfg.delivery.max_connections_per_destination;
  // RFC 5321 §4.5.3.2 client timeouts from [delivery]; the DATA command's own
  // reply (§4.5.3.2.4, 2 minutes) and the TLS handshake keep their defaults.
  {
    using std::chrono::seconds;
    delivery::SmtpTimeouts& t = remote_opts.timeouts;
    t.connect = seconds(cfg.delivery.connect_timeout);
    t.greeting = seconds(cfg.delivery.helo_timeout);
    t.command = seconds(cfg.delivery.helo_timeout);
    t.mail = seconds(cfg.delivery.command_timeout);
    t.rcpt = seconds(cfg.delivery.command_timeout);
    t.data_block = seconds(cfg.delivery.data_timeout);
    t.data_final = seconds(cfg.delivery.data_done_timeout);
  }
  auto resolver = delivery::BlockingResolver::create([&cfg](boost::asio::any_io_executor executor) {
    auto r = dns::UnboundResolver::create(std::move(executor), server::unbound_config(cfg));
    if (!r) return Result<std::unique_ptr<dns::Resolver>>(r.error());
    return Result<std::unique_ptr<dns::Resolver>>(std::unique_ptr<dns::Resolver>(std::move(*r)));
  });
  if (!resolver) return die("dns: " + resolver.error().text);
  delivery::MxOptions mx_opts;
  mx_opts.local_hosts = {to_lower(cfg.server.hostname)};  // RFC 5321 §5.1: never loop back to ourselves
  remote_opts.lookup = [blocking = resolver->get(), mx_opts](const std::string& domain) {
    return blocking->resolve_destination(domain, mx_opts);
  };
  scheduler::RemoteDelivery remote(std::move(remote_opts), clock);

  scheduler::AgentOptions agent_opts;
  agent_opts.local_domains = cfg.domains.local;
  agent_opts.workers = cfg.delivery.workers;
  // Remote workers lease one message at a time on top of [delivery] workers,
  // so slow remote servers do not hold up local mail.
  agent_opts.remote_workers = cfg.delivery.remote_workers;
  scheduler::DeliveryAgent agent(agent_opts, **spool, manager, clock, std::move(transport));
  agent.set_remote(&remote);

  // DSNs for what each delivery attempt decided (RFC 3464).
  queue::Bouncer::Options bounce_opts;
  bounce_opts.hostname = cfg.server.hostname;
  bounce_opts.delay_warning_after = cfg.queue.delay_warning_after;
  bounce_opts.max_age = cfg.queue.max_age;
  queue::Bouncer bouncer(**spool, manager, clock, bounce_opts);
  agent.set_after_complete([&bouncer](const queue::Envelope& before, const queue::Envelope& after,
                                      const std::map<size_t, std::string>& remote_mta,
                                      const std::set<size_t>& relayed_without_dsn) {
    bouncer.after_complete(before, after, remote_mta, relayed_without_dsn);
  });

  admin::ControlServer control(cfg.server.control_socket, admin::make_queue_handler(manager, **spool));
  if (auto s = control.start(); !s) return die(s.error().text);

  server::ServerDeps deps;
  deps.spool = spool->get();
  deps.users = &users;
  deps.signer = signer.get();
  deps.anti_abuse = *anti_abuse;
  deps.on_queued = [&manager](queue::Envelope env) { manager.add(std::move(env)); };
  server.set_deps(std::move(deps));

  agent.start();
  server.start();
  log::info("ready");

  int sig = 0;
  for (;;) {
    if (sigwait(&sigs, &sig) != 0) continue;
    if (sig == SIGHUP) {
      log::info("sighup").kv("note", "accounts and aliases reload automatically when their files change");
      continue;
    }
    break;
  }
  log::info("signal").kv("signal", strsignal(sig));
  server.shutdown(std::chrono::seconds(30));
  server.join();
  remote.shutdown();  // attempts in progress finish; the rest of their batches is deferred at once
  agent.stop();
  control.stop();
  Status final_sync = (*spool)->sync();
  auto stats = (*spool)->stats();
  log::info("stopped")
      .kv("final_sync", final_sync.has_value())
      .kv("spool_syncs", stats.syncs)
      .kv("spool_synced_requests", stats.synced_requests)
      .kv("spool_segments", static_cast<uint64_t>(stats.segments))
      .kv("queued", static_cast<uint64_t>(stats.messages));
  return 0;
}

}  // namespace tern::app
