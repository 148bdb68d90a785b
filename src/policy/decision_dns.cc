// DNS facts for the identity decisions (see decision_dns.h).
#include "policy/decision_dns.h"

#include "auth/spf.h"
#include "base/strings.h"

namespace tern::policy {

boost::asio::awaitable<std::optional<bool>> helo_resolves(dns::Resolver& resolver, std::string name) {
  name = to_lower(name);
  if (!name.empty() && name.back() == '.') name.pop_back();
  bool temporary = false;
  for (auto type : {dns::RrType::kA, dns::RrType::kAaaa, dns::RrType::kMx}) {
    dns::Answer answer = co_await resolver.query(name, type);
    if (answer.ok() && (!answer.addresses.empty() || !answer.mx.empty())) co_return true;
    if (answer.nxdomain()) co_return false;
    if (answer.temporary_failure()) temporary = true;
  }
  if (temporary) co_return std::nullopt;
  co_return false;
}

boost::asio::awaitable<std::vector<ForwarderSpf>> forwarder_spf(dns::Resolver& resolver, const config::Config& cfg,
                                                                IpAddress ip, std::string helo, std::string recipient) {
  std::vector<ForwarderSpf> out;
  recipient = to_lower(recipient);
  auto domains = forwarder_domains(cfg, recipient);
  if (domains.size() > kMaxForwarderDomains) domains.resize(kMaxForwarderDomains);
  auth::SpfOptions options;
  options.receiver = cfg.server.hostname;
  for (const auto& domain : domains) {
    // RFC 7208 §4: check_host(<ip>, <forwarder domain>, postmaster@<forwarder domain>).
    auth::SpfResult r = co_await auth::check_host(resolver, ip, domain, "postmaster@" + domain, helo, options);
    out.push_back({recipient, domain, r.code});
    if (r.code == auth::SpfResult::Code::kPass) break;
  }
  co_return out;
}

}  // namespace tern::policy
