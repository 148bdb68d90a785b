// libunbound-backed resolver on an Asio io_context (see unbound_resolver.h).
#include "dns/unbound_resolver.h"

#include <unbound.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <unordered_map>

#include "base/log.h"
#include "base/strings.h"
#include "dns/wire.h"

namespace tern::dns {

namespace asio = boost::asio;

namespace {

// One outstanding query: filled by the libunbound callback, awaited by query().
struct Pending {
  Pending(asio::any_io_executor ex, UnboundResolver::Impl* owner) : timer(ex), owner(owner) {}
  asio::steady_timer timer;
  UnboundResolver::Impl* owner;
  int async_id = 0;
  bool done = false;
  Answer answer;
};

}  // namespace

struct UnboundResolver::Impl : std::enable_shared_from_this<UnboundResolver::Impl> {
  Impl(asio::any_io_executor ex, UnboundConfig cfg) : executor(ex), config(std::move(cfg)), watcher(ex) {}
  ~Impl() {
    for (auto& [id, p] : pending) ub_cancel(ctx, id);
    pending.clear();
    if (watcher.is_open()) watcher.release();  // the fd belongs to libunbound
    if (ctx) ub_ctx_delete(ctx);
  }

  asio::any_io_executor executor;
  UnboundConfig config;
  ub_ctx* ctx = nullptr;
  asio::posix::stream_descriptor watcher;
  bool watching = false;
  bool stopped = false;
  std::unordered_map<int, std::shared_ptr<Pending>> pending;

  // Arms one wait on libunbound's result pipe while queries are outstanding.
  void watch() {
    if (watching || pending.empty()) return;
    watching = true;
    watcher.async_wait(asio::posix::stream_descriptor::wait_read,
                       [self = shared_from_this()](const boost::system::error_code& ec) {
                         self->watching = false;
                         if (self->stopped) return;
                         if (!ec) {
                           int err = ub_process(self->ctx);
                           if (err != 0) log::warn("dns_process_failed").kv("error", ub_strerror(err));
                         }
                         self->watch();  // re-arms only while queries are outstanding
                       });
  }

  // Stops watching when nothing is outstanding, so that io_context::run()
  // can return once all queries are done.
  void unwatch_if_idle() {
    if (pending.empty() && watching) watcher.cancel();
  }

  void shutdown() {
    stopped = true;
    for (auto& [id, p] : pending) {
      ub_cancel(ctx, id);
      p->timer.cancel();  // its coroutine finishes with kTimeout
    }
    pending.clear();
    if (watching) watcher.cancel();
  }

  Answer decode(ub_result* r) const {
    Answer a;
    a.ttl = r->ttl > 0 ? static_cast<uint32_t>(r->ttl) : 0;
    if (r->secure) {
      a.security = Security::kSecure;
    } else if (r->bogus) {
      a.security = Security::kBogus;
    }
    if (r->bogus) {
      log::warn("dns_bogus").kv("name", r->qname ? r->qname : "").kv("why", r->why_bogus ? r->why_bogus : "");
      a.rcode = Rcode::kServFail;
      return a;
    }
    switch (r->rcode) {
      case 0: a.rcode = Rcode::kNoError; break;
      case 2: a.rcode = Rcode::kServFail; break;
      case 3: a.rcode = Rcode::kNxDomain; break;
      default: a.rcode = Rcode::kRefused; break;
    }
    if (r->nxdomain) a.rcode = Rcode::kNxDomain;
    if (a.rcode != Rcode::kNoError) return a;
    if (r->canonname && r->qname && !iequals(r->canonname, r->qname)) {
      std::string canon = to_lower(r->canonname);
      if (!canon.empty() && canon.back() == '.') canon.pop_back();
      a.canonical_name = std::move(canon);
    }
    if (!r->havedata || !r->data) return a;
    size_t total = 0;
    for (size_t i = 0; r->data[i] != nullptr; ++i) {
      if (r->len[i] < 0) continue;
      total += static_cast<size_t>(r->len[i]);
      if (total > config.max_answer_bytes) {
        log::warn("dns_answer_too_large").kv("name", r->qname ? r->qname : "").kv("bytes", total);
        Answer fail;
        fail.rcode = Rcode::kServFail;
        fail.security = a.security;
        return fail;
      }
      if (i >= config.max_records) continue;  // keep counting bytes, drop extra records
      std::string_view rdata(r->data[i], static_cast<size_t>(r->len[i]));
      if (!append_rdata(static_cast<RrType>(r->qtype), rdata, a)) {
        log::debug("dns_bad_rdata").kv("name", r->qname ? r->qname : "").kv("type", r->qtype);
      }
    }
    return a;
  }

  static void on_result(void* arg, int err, ub_result* result) {
    auto* p = static_cast<Pending*>(arg);
    Impl* self = p->owner;
    auto it = self->pending.find(p->async_id);
    std::shared_ptr<Pending> keep = it != self->pending.end() ? it->second : nullptr;
    if (err != 0 || result == nullptr) {
      p->answer.rcode = Rcode::kServFail;
      if (err != 0) log::warn("dns_query_failed").kv("error", ub_strerror(err));
    } else {
      p->answer = self->decode(result);
    }
    if (result) ub_resolve_free(result);
    p->done = true;
    p->timer.cancel();
    if (it != self->pending.end()) self->pending.erase(it);
  }
};

Result<std::unique_ptr<UnboundResolver>> UnboundResolver::create(asio::any_io_executor executor,
                                                                 UnboundConfig config) {
  auto impl = std::make_shared<Impl>(executor, std::move(config));
  impl->ctx = ub_ctx_create();
  if (!impl->ctx) return Error::local("dns: ub_ctx_create failed");
  auto fail = [](const char* what, int err) {
    return Error::local(std::string("dns: ") + what + ": " + ub_strerror(err));
  };
  // Worker thread rather than a forked process: the server is multi-threaded.
  if (int err = ub_ctx_async(impl->ctx, 1)) return fail("ub_ctx_async", err);
  for (const auto& [opt, val] : impl->config.options) {
    if (int err = ub_ctx_set_option(impl->ctx, opt.c_str(), val.c_str())) return fail(opt.c_str(), err);
  }
  for (const auto& ns : impl->config.nameservers) {
    if (int err = ub_ctx_set_fwd(impl->ctx, ns.c_str())) return fail(("forwarder " + ns).c_str(), err);
  }
  if (!impl->config.trust_anchor_file.empty()) {
    const char* f = impl->config.trust_anchor_file.c_str();
    int err = impl->config.trust_anchor_auto_update ? ub_ctx_add_ta_autr(impl->ctx, f) : ub_ctx_add_ta_file(impl->ctx, f);
    if (err) return fail("trust anchor", err);
  }
  int fd = ub_fd(impl->ctx);
  if (fd < 0) return Error::local("dns: ub_fd failed");
  boost::system::error_code ec;
  impl->watcher.assign(fd, ec);
  if (ec) return Error::local("dns: cannot watch libunbound fd: " + ec.message());
  return std::unique_ptr<UnboundResolver>(new UnboundResolver(std::move(impl)));
}

UnboundResolver::~UnboundResolver() { impl_->shutdown(); }

size_t UnboundResolver::outstanding() const { return impl_->pending.size(); }

asio::awaitable<Answer> UnboundResolver::query(std::string name, RrType type) {
  auto impl = impl_;  // keeps libunbound alive while this coroutine runs
  auto wire_name = presentation_name(name);
  if (!wire_name) {
    // A name that cannot be encoded cannot exist (RFC 1035 §2.3.4 limits).
    Answer a;
    a.rcode = Rcode::kNxDomain;
    co_return a;
  }
  auto p = std::make_shared<Pending>(impl->executor, impl.get());
  int id = 0;
  int err = ub_resolve_async(impl->ctx, wire_name->c_str(), static_cast<int>(type), 1 /* IN */, p.get(),
                             &Impl::on_result, &id);
  if (err != 0) {
    log::warn("dns_query_failed").kv("name", name).kv("error", ub_strerror(err));
    Answer a;
    a.rcode = Rcode::kServFail;
    co_return a;
  }
  p->async_id = id;
  impl->pending.emplace(id, p);
  impl->watch();
  p->timer.expires_after(impl->config.query_timeout);
  co_await p->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  if (!p->done) {
    if (!impl->stopped) {
      ub_cancel(impl->ctx, id);
      impl->pending.erase(id);
      impl->unwatch_if_idle();
    }
    Answer a;
    a.rcode = Rcode::kTimeout;
    co_return a;
  }
  co_return std::move(p->answer);
}

}  // namespace tern::dns
