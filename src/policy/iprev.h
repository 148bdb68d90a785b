// The iprev authentication method (RFC 8601 §3): the client IP's PTR names are
// looked up, and each name's A/AAAA records must include the IP again
// ("forward-confirmed reverse DNS"). pass: some name confirms; fail: no PTR
// (NXDOMAIN or NODATA) or no name confirms; temperror: a DNS failure prevented
// a decision. The result is recorded, not enforced: the session puts it in
// Authentication-Results as "iprev=pass policy.iprev=192.0.2.1 (mx.example.org)"
// (RFC 8601 §2.7.3) and item 1's relaxed identity check may consult it.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <string>

#include "auth/auth_results.h"
#include "base/net.h"
#include "dns/resolver.h"

namespace tern::policy {

struct IprevResult {
  enum class Code { kPass, kFail, kTempError, kPermError };
  Code code = Code::kFail;
  std::string name;         // kPass: the confirmed host name
  std::string explanation;  // what was found, for the log and the header comment
};

// "pass", "fail", "temperror", "permerror" (RFC 8601 §2.7.3).
const char* iprev_code_name(IprevResult::Code code);

// At most this many PTR names are forward-checked (as RFC 7208 §4.6.4 bounds the SPF ptr mechanism).
inline constexpr size_t kMaxIprevNames = 10;

// The resolver must outlive the coroutine. Start it at connect, concurrently with the DNSBL check.
boost::asio::awaitable<IprevResult> check_iprev(dns::Resolver& resolver, IpAddress ip);

// The Authentication-Results resinfo: method "iprev", property policy.iprev=<ip>,
// the confirmed name (or the explanation) as a comment.
auth::MethodResult iprev_method_result(const IprevResult& result, const IpAddress& ip);

}  // namespace tern::policy
