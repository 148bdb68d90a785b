// Forward-confirmed reverse DNS for Authentication-Results (see iprev.h).
#include "policy/iprev.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "policy/dnsbl.h"

namespace tern::policy {
namespace asio = boost::asio;

const char* iprev_code_name(IprevResult::Code code) {
  switch (code) {
    case IprevResult::Code::kPass:
      return "pass";
    case IprevResult::Code::kFail:
      return "fail";
    case IprevResult::Code::kTempError:
      return "temperror";
    case IprevResult::Code::kPermError:
      return "permerror";
  }
  return "permerror";
}

asio::awaitable<IprevResult> check_iprev(dns::Resolver& resolver, IpAddress address) {
  IpAddress ip = address.unmapped();
  IprevResult result;
  std::string ptr_name = reversed_address_labels(ip) + (ip.v6 ? ".ip6.arpa" : ".in-addr.arpa");
  dns::Answer ptr = co_await resolver.query(ptr_name, dns::RrType::kPtr);
  // RFC 8601 §3: "fail" when the PTR lookup gives no names, "temperror" when it cannot be completed.
  if (ptr.temporary_failure() || ptr.security == dns::Security::kBogus) {
    result.code = IprevResult::Code::kTempError;
    result.explanation = std::string("PTR lookup: ") + dns::rcode_name(ptr.rcode);
    co_return result;
  }
  if (ptr.nxdomain() || ptr.names.empty()) {
    result.code = IprevResult::Code::kFail;
    result.explanation = "no PTR record";
    co_return result;
  }
  const dns::RrType type = ip.v6 ? dns::RrType::kAaaa : dns::RrType::kA;
  size_t count = std::min(ptr.names.size(), kMaxIprevNames);
  auto executor = co_await asio::this_coro::executor;
  using Op = decltype(asio::co_spawn(executor, resolver.query(std::string(), type), asio::deferred));
  std::vector<Op> ops;
  for (size_t i = 0; i < count; ++i)
    ops.push_back(asio::co_spawn(executor, resolver.query(ptr.names[i], type), asio::deferred));
  auto [order, exceptions, answers] = co_await asio::experimental::make_parallel_group(std::move(ops))
                                          .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
  (void)order;
  bool temporary = false;
  for (size_t i = 0; i < count; ++i) {
    if (exceptions[i]) {
      temporary = true;
      continue;
    }
    const dns::Answer& forward = answers[i];
    if (forward.temporary_failure() || forward.security == dns::Security::kBogus) {
      temporary = true;
      continue;
    }
    for (const IpAddress& a : forward.addresses) {
      if (a.unmapped() == ip) {
        result.code = IprevResult::Code::kPass;
        result.name = ptr.names[i];
        result.explanation = ptr.names[i];
        co_return result;
      }
    }
  }
  result.code = temporary ? IprevResult::Code::kTempError : IprevResult::Code::kFail;
  result.explanation = temporary ? "forward lookup failed for " + ptr.names.front()
                                 : ptr.names.front() + " does not resolve back to " + ip.to_string();
  co_return result;
}

auth::MethodResult iprev_method_result(const IprevResult& result, const IpAddress& ip) {
  auth::MethodResult m;
  m.method = "iprev";
  m.result = iprev_code_name(result.code);
  m.comment = result.explanation;
  m.prop("policy", "iprev", ip.unmapped().to_string());
  return m;
}

}  // namespace tern::policy
