// UnboundResolver: the production dns::Resolver, a validating stub or full
// recursive resolver built on libunbound and driven by the caller's Asio
// io_context. Queries go out with ub_resolve_async(); libunbound's worker
// thread signals finished queries on a pipe (ub_fd) that an
// asio::posix::stream_descriptor watches, and ub_process() then hands each
// result to its waiting coroutine on the io_context thread. Every query also
// has its own deadline (Rcode::kTimeout). Results are decoded from the
// per-record rdata with bounds (records per answer, bytes per answer), and
// carry the DNSSEC verdict (secure / insecure / bogus). Forwarders are
// optional ("127.0.0.1@5353"); without them libunbound recurses from the
// root. A trust anchor file turns on DNSSEC validation.
//
// Threading: one UnboundResolver belongs to one io_context, and query() must
// be called from the thread running it (use one resolver per thread if the
// server runs several). The resolver must outlive the queries it serves;
// destroying it cancels those still outstanding (their coroutines must not
// be resumed afterwards, so stop the io_context first).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "dns/resolver.h"

namespace tern::dns {

struct UnboundConfig {
  // Forwarders "IP" or "IP@port"; empty: full recursion from the root.
  std::vector<std::string> nameservers;
  // DNSSEC trust anchor file in zone-file format (ub_ctx_add_ta_file), or an
  // RFC 5011 auto-updated one (ub_ctx_add_ta_autr). Empty: no validation.
  std::string trust_anchor_file;
  bool trust_anchor_auto_update = false;
  // Extra libunbound options, e.g. {"do-ip6:", "no"} (ub_ctx_set_option).
  std::vector<std::pair<std::string, std::string>> options;
  std::chrono::milliseconds query_timeout{10000};
  size_t max_records = 100;            // records decoded per answer; the rest are dropped
  size_t max_answer_bytes = 64 * 1024; // larger answers are treated as SERVFAIL
};

class UnboundResolver : public Resolver {
 public:
  static Result<std::unique_ptr<UnboundResolver>> create(boost::asio::any_io_executor executor,
                                                         UnboundConfig config);
  ~UnboundResolver() override;
  UnboundResolver(const UnboundResolver&) = delete;
  UnboundResolver& operator=(const UnboundResolver&) = delete;

  boost::asio::awaitable<Answer> query(std::string name, RrType type) override;

  // Queries started and not yet finished (for tests and metrics).
  size_t outstanding() const;

  struct Impl;

 private:
  explicit UnboundResolver(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace tern::dns
