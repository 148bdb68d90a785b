// SPF check_host() evaluation (RFC 7208 §4–§6); see spf.h. The record
// grammar and macro language are in spf_record.cc.
#include "auth/spf.h"

#include <boost/asio/use_awaitable.hpp>
#include <ctime>
#include <utility>
#include <vector>

#include "auth/spf_record.h"
#include "base/log.h"
#include "base/strings.h"

// GCC 12 reports -Wmismatched-new-delete for Asio's coroutine frame
// allocator (a known false positive: the frame's operator new and delete do
// match); silence it here rather than for the whole build.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace tern::auth {

namespace asio = boost::asio;
using Code = SpfResult::Code;

const char* spf_code_name(Code code) {
  switch (code) {
    case Code::kNone: return "none";
    case Code::kNeutral: return "neutral";
    case Code::kPass: return "pass";
    case Code::kFail: return "fail";
    case Code::kSoftFail: return "softfail";
    case Code::kTempError: return "temperror";
    case Code::kPermError: return "permerror";
  }
  return "none";
}

namespace {

// State shared by one check_host() evaluation and all its include/redirect levels.
struct Evaluation {
  Evaluation(dns::Resolver& r, SpfOptions o) : resolver(r), options(std::move(o)) {}
  dns::Resolver& resolver;
  SpfOptions options;
  SpfMacroContext macros;  // `domain` and `validated_name` are set per expansion
  std::chrono::steady_clock::time_point deadline;
  int dns_terms = 0;
  int void_lookups = 0;
  int queries = 0;
  bool all_secure = true;
  std::optional<std::vector<std::string>> validated_all;  // for %{p}, computed once
};

SpfResult make_result(Code code, std::string problem = {}) {
  SpfResult r;
  r.code = code;
  r.problem = std::move(problem);
  return r;
}

Code code_for(SpfQualifier q) {
  switch (q) {
    case SpfQualifier::kPass: return Code::kPass;
    case SpfQualifier::kFail: return Code::kFail;
    case SpfQualifier::kSoftFail: return Code::kSoftFail;
    case SpfQualifier::kNeutral: return Code::kNeutral;
  }
  return Code::kNeutral;
}

// A DNS failure that makes check_host() a temperror (§5, §4.4): SERVFAIL,
// timeout, other error rcodes, and DNSSEC-bogus answers.
bool dns_failed(const dns::Answer& a) { return a.temporary_failure() || a.security == dns::Security::kBogus; }
// A "void lookup" (§4.6.4): NXDOMAIN, or NOERROR with no answer records.
bool is_void(const dns::Answer& a) { return a.nxdomain() || a.nodata(); }

dns::RrType address_type(const IpAddress& ip) { return ip.v6 ? dns::RrType::kAaaa : dns::RrType::kA; }

bool prefix_match(const IpAddress& a, const IpAddress& b, int prefix) {
  if (a.v6 != b.v6) return false;
  int full = prefix / 8;
  for (int i = 0; i < full; ++i) {
    if (a.bytes[static_cast<size_t>(i)] != b.bytes[static_cast<size_t>(i)]) return false;
  }
  int rest = prefix % 8;
  if (rest == 0) return true;
  auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a.bytes[static_cast<size_t>(full)] & mask) == (b.bytes[static_cast<size_t>(full)] & mask);
}

bool is_under(std::string_view name, std::string_view domain) {
  return iequals(name, domain) ||
         (name.size() > domain.size() && iends_with(name, domain) && name[name.size() - domain.size() - 1] == '.');
}

// §4.3: the initial <domain> must be a syntactically valid multi-label
// host name; otherwise the result is "none" without any DNS query.
bool valid_initial_domain(std::string_view domain) {
  if (domain.empty() || domain.size() > 253) return false;
  size_t labels = 0, label = 0;
  for (char c : domain) {
    if (c == '.') {
      if (label == 0) return false;
      ++labels;
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok || ++label > 63) return false;
  }
  if (label == 0) return false;
  return labels + 1 >= 2;
}

asio::awaitable<dns::Answer> lookup(Evaluation& ev, const std::string& name, dns::RrType type) {
  if (std::chrono::steady_clock::now() > ev.deadline) {
    dns::Answer timeout;
    timeout.rcode = dns::Rcode::kTimeout;
    co_return timeout;
  }
  ++ev.queries;
  dns::Answer a = co_await ev.resolver.query(name, type);
  if (a.security != dns::Security::kSecure) ev.all_secure = false;
  co_return a;
}

struct Validated {
  bool ptr_void = false;
  std::vector<std::string> names;
};

// §5.5: the PTR names of <ip> (at most max_ptr_names) whose A/AAAA records
// include <ip>. With `under` set, only names equal to or below it are tried.
asio::awaitable<Validated> validated_names(Evaluation& ev, std::string under) {
  Validated out;
  dns::Answer ptr = co_await lookup(ev, reverse_name(ev.macros.ip), dns::RrType::kPtr);
  if (!ptr.ok()) co_return out;  // a DNS error: the mechanism does not match (§5.5)
  out.ptr_void = is_void(ptr);
  size_t limit = std::min(ptr.names.size(), static_cast<size_t>(std::max(ev.options.max_ptr_names, 0)));
  for (size_t i = 0; i < limit; ++i) {
    const std::string& name = ptr.names[i];
    if (!under.empty() && !is_under(name, under)) continue;
    auto qname = spf_query_name(name);
    if (!qname) continue;
    dns::Answer a = co_await lookup(ev, *qname, address_type(ev.macros.ip));
    if (!a.ok()) continue;  // errors skip the name (§5.5)
    for (const auto& addr : a.addresses) {
      if (addr == ev.macros.ip) {
        out.names.push_back(name);
        break;
      }
    }
  }
  co_return out;
}

// %{p} (§7.3): a validated name equal to or below <domain> if any, else any
// validated name, else "unknown".
asio::awaitable<std::string> validated_name_for(Evaluation& ev, std::string domain) {
  if (!ev.validated_all) {
    std::string any_name;  // a named argument: GCC 12 mishandles temporaries in co_await expressions
    ev.validated_all = (co_await validated_names(ev, any_name)).names;
  }
  const auto& names = *ev.validated_all;
  for (const auto& n : names) {
    if (iequals(n, domain)) co_return n;
  }
  for (const auto& n : names) {
    if (is_under(n, domain)) co_return n;
  }
  co_return names.empty() ? std::string("unknown") : names.front();
}

asio::awaitable<std::optional<std::string>> expand(Evaluation& ev, std::string spec, std::string domain,
                                                   bool explanation) {
  ev.macros.domain = domain;
  if (uses_p_macro(spec)) ev.macros.validated_name = co_await validated_name_for(ev, domain);
  auto out = expand_spf_macros(spec, ev.macros, explanation);
  if (!out) co_return std::nullopt;
  co_return std::move(*out);
}

std::optional<SpfResult> count_dns_term(Evaluation& ev) {
  if (++ev.dns_terms > ev.options.max_dns_terms) {
    return make_result(Code::kPermError, "more than " + std::to_string(ev.options.max_dns_terms) +
                                             " DNS-querying mechanisms and modifiers (RFC 7208 4.6.4)");
  }
  return std::nullopt;
}

std::optional<SpfResult> count_void(Evaluation& ev) {
  if (++ev.void_lookups > ev.options.max_void_lookups) {
    return make_result(Code::kPermError, "more than " + std::to_string(ev.options.max_void_lookups) +
                                             " void DNS lookups (RFC 7208 4.6.4)");
  }
  return std::nullopt;
}

// §6.2: the explanation of a fail, from this record's exp= if usable.
asio::awaitable<std::string> explain(Evaluation& ev, const SpfRecord& record, std::string domain) {
  std::string fallback = ev.options.default_explanation;
  if (!record.exp) co_return fallback;
  auto target = co_await expand(ev, *record.exp, domain, false);
  if (!target) co_return fallback;
  auto name = spf_query_name(*target);
  if (!name) co_return fallback;
  dns::Answer a = co_await lookup(ev, *name, dns::RrType::kTxt);  // not subject to the limits
  if (!a.ok() || a.txt.size() != 1) co_return fallback;
  auto text = co_await expand(ev, a.txt.front(), domain, true);
  if (!text) co_return fallback;
  co_return std::move(*text);
}

struct TermOutcome {
  enum Kind { kMatch, kNoMatch, kError } kind = kNoMatch;
  SpfResult error;
};

TermOutcome matched(bool yes) { return TermOutcome{yes ? TermOutcome::kMatch : TermOutcome::kNoMatch, {}}; }
TermOutcome failed(SpfResult r) { return TermOutcome{TermOutcome::kError, std::move(r)}; }

asio::awaitable<SpfResult> evaluate(Evaluation& ev, std::string domain, int depth, bool want_explanation);

asio::awaitable<TermOutcome> evaluate_mechanism(Evaluation& ev, const SpfMechanism& m, const std::string& domain,
                                                int depth) {
  const IpAddress& ip = ev.macros.ip;
  switch (m.kind) {
    case SpfMechanismKind::kAll: co_return matched(true);
    case SpfMechanismKind::kIp4:
    case SpfMechanismKind::kIp6: co_return matched(m.network.contains(ip));
    default: break;
  }
  if (auto over = count_dns_term(ev)) co_return failed(std::move(*over));

  std::string target = domain;
  if (!m.domain_spec.empty()) {
    auto expanded = co_await expand(ev, m.domain_spec, domain, false);
    if (!expanded) co_return failed(make_result(Code::kPermError, "bad macro in '" + m.text + "'"));
    target = std::move(*expanded);
  }
  // A target that cannot be a DNS name (empty or over-long label) is treated
  // as non-existent (openspf suite: invalid-domain-*; RFC 7208 §4.3 by analogy).
  auto name = spf_query_name(target);

  switch (m.kind) {
    case SpfMechanismKind::kInclude: {  // §5.2
      if (!name) co_return failed(make_result(Code::kPermError, "include of an invalid domain: " + target));
      SpfResult inner = co_await evaluate(ev, *name, depth + 1, false);
      switch (inner.code) {
        case Code::kPass: co_return matched(true);
        case Code::kFail:
        case Code::kSoftFail:
        case Code::kNeutral: co_return matched(false);
        case Code::kTempError: co_return failed(std::move(inner));
        case Code::kPermError: co_return failed(std::move(inner));
        case Code::kNone:
          co_return failed(make_result(Code::kPermError, "included domain " + *name + " has no SPF record"));
      }
      co_return matched(false);
    }
    case SpfMechanismKind::kA:
    case SpfMechanismKind::kExists: {  // §5.3, §5.7
      bool exists = m.kind == SpfMechanismKind::kExists;
      if (!name) {
        if (auto over = count_void(ev)) co_return failed(std::move(*over));
        co_return matched(false);
      }
      dns::Answer a = co_await lookup(ev, *name, exists ? dns::RrType::kA : address_type(ip));
      if (dns_failed(a)) {
        co_return failed(make_result(Code::kTempError, std::string("DNS ") + dns::rcode_name(a.rcode) +
                                                           " for " + *name));
      }
      if (is_void(a)) {
        if (auto over = count_void(ev)) co_return failed(std::move(*over));
        co_return matched(false);
      }
      if (exists) co_return matched(true);
      for (const auto& addr : a.addresses) {
        if (prefix_match(addr, ip, ip.v6 ? m.cidr6 : m.cidr4)) co_return matched(true);
      }
      co_return matched(false);
    }
    case SpfMechanismKind::kMx: {  // §5.4
      if (!name) {
        if (auto over = count_void(ev)) co_return failed(std::move(*over));
        co_return matched(false);
      }
      dns::Answer mx = co_await lookup(ev, *name, dns::RrType::kMx);
      if (dns_failed(mx)) {
        co_return failed(make_result(Code::kTempError, std::string("DNS ") + dns::rcode_name(mx.rcode) +
                                                           " for MX " + *name));
      }
      if (is_void(mx)) {
        if (auto over = count_void(ev)) co_return failed(std::move(*over));
        co_return matched(false);
      }
      if (mx.mx.size() > static_cast<size_t>(ev.options.max_mx_names)) {
        co_return failed(make_result(Code::kPermError, "more than " + std::to_string(ev.options.max_mx_names) +
                                                           " MX records for " + *name + " (RFC 7208 4.6.4)"));
      }
      for (const auto& rr : mx.mx) {
        auto host = spf_query_name(rr.host);
        if (!host) continue;  // null MX (RFC 7505) or unusable name
        dns::Answer a = co_await lookup(ev, *host, address_type(ip));
        if (dns_failed(a)) {
          co_return failed(make_result(Code::kTempError, std::string("DNS ") + dns::rcode_name(a.rcode) +
                                                             " for " + *host));
        }
        for (const auto& addr : a.addresses) {
          if (prefix_match(addr, ip, ip.v6 ? m.cidr6 : m.cidr4)) co_return matched(true);
        }
      }
      co_return matched(false);
    }
    case SpfMechanismKind::kPtr: {  // §5.5
      if (!name) co_return matched(false);
      Validated v = co_await validated_names(ev, *name);
      if (v.ptr_void) {
        if (auto over = count_void(ev)) co_return failed(std::move(*over));
      }
      co_return matched(!v.names.empty());
    }
    default: break;
  }
  co_return matched(false);
}

// check_host() for one domain (§4.4–§4.7), recursing for include/redirect.
asio::awaitable<SpfResult> evaluate(Evaluation& ev, std::string domain, int depth, bool want_explanation) {
  if (depth > ev.options.max_depth) {
    co_return make_result(Code::kPermError, "include/redirect nesting too deep");
  }
  // §4.4: TXT records only (type SPF is not looked up).
  dns::Answer txt = co_await lookup(ev, domain, dns::RrType::kTxt);
  if (dns_failed(txt)) {
    SpfResult r = make_result(Code::kTempError, std::string("DNS ") + dns::rcode_name(txt.rcode) +
                                                    " looking up the SPF record of " + domain);
    r.domain = domain;
    co_return r;
  }
  // §4.5: exactly one record starting with "v=spf1".
  const std::string* record_text = nullptr;
  int found = 0;
  for (const auto& t : txt.txt) {
    if (is_spf_record(t)) {
      record_text = &t;
      ++found;
    }
  }
  if (found == 0) {
    SpfResult r = make_result(Code::kNone, "no SPF record for " + domain);
    r.domain = domain;
    co_return r;
  }
  if (found > 1) {
    SpfResult r = make_result(Code::kPermError, "more than one SPF record for " + domain);
    r.domain = domain;
    co_return r;
  }
  auto record = parse_spf_record(*record_text);
  if (!record) {
    SpfResult r = make_result(Code::kPermError, record.error().text + " (" + domain + ")");
    r.domain = domain;
    co_return r;
  }

  for (const auto& m : record->mechanisms) {
    TermOutcome o = co_await evaluate_mechanism(ev, m, domain, depth);
    if (o.kind == TermOutcome::kError) {
      if (o.error.domain.empty()) o.error.domain = domain;
      co_return std::move(o.error);
    }
    if (o.kind == TermOutcome::kMatch) {
      SpfResult r = make_result(code_for(m.qualifier));
      r.mechanism = m.text;
      r.domain = domain;
      if (r.code == Code::kFail && want_explanation) r.explanation = co_await explain(ev, *record, domain);
      co_return r;
    }
  }

  if (record->redirect) {  // §6.1
    if (auto over = count_dns_term(ev)) {
      over->domain = domain;
      co_return std::move(*over);
    }
    auto target = co_await expand(ev, *record->redirect, domain, false);
    auto name = target ? spf_query_name(*target) : std::nullopt;
    if (!name) {
      SpfResult r = make_result(Code::kPermError, "redirect to an invalid domain");
      r.domain = domain;
      co_return r;
    }
    SpfResult r = co_await evaluate(ev, *name, depth + 1, want_explanation);
    if (r.code == Code::kNone) {
      r = make_result(Code::kPermError, "redirect target " + *name + " has no SPF record");
      r.domain = *name;
    }
    co_return r;
  }
  SpfResult r = make_result(Code::kNeutral);  // §4.7
  r.domain = domain;
  co_return r;
}

asio::awaitable<SpfResult> run_check_host(dns::Resolver& resolver, IpAddress ip, std::string domain,
                                          std::string sender, std::string helo, SpfOptions options) {
  Evaluation ev(resolver, std::move(options));
  ev.deadline = std::chrono::steady_clock::now() + ev.options.time_limit;
  if (!domain.empty() && domain.back() == '.') domain.pop_back();

  // §4.3: a sender without local-part gets "postmaster".
  size_t at = sender.rfind('@');
  std::string local = at == std::string::npos ? std::string() : sender.substr(0, at);
  std::string sender_domain = at == std::string::npos ? sender : sender.substr(at + 1);
  if (local.empty()) local = "postmaster";
  ev.macros.sender = local + "@" + sender_domain;
  ev.macros.local_part = std::move(local);
  ev.macros.sender_domain = std::move(sender_domain);
  ev.macros.ip = ip.unmapped();  // §5: IPv4-mapped addresses are IPv4
  ev.macros.helo = std::move(helo);
  ev.macros.receiver = ev.options.receiver;
  ev.macros.timestamp = ev.options.timestamp ? *ev.options.timestamp : static_cast<int64_t>(std::time(nullptr));

  SpfResult r;
  if (!valid_initial_domain(domain)) {
    r = make_result(Code::kNone, "not a valid domain: " + domain);
    r.domain = domain;
  } else {
    r = co_await evaluate(ev, domain, 0, true);
  }
  r.dns_terms = ev.dns_terms;
  r.void_lookups = ev.void_lookups;
  r.dns_queries = ev.queries;
  r.dnssec_secure = ev.all_secure && ev.queries > 0;
  if (r.code != Code::kFail) r.explanation.clear();
  log::debug("spf_result")
      .kv("result", spf_code_name(r.code))
      .kv("domain", r.domain)
      .kv("ip", ev.macros.ip.to_string())
      .kv("mechanism", r.mechanism)
      .kv("problem", r.problem)
      .kv("dns_terms", r.dns_terms);
  co_return r;
}

}  // namespace

asio::awaitable<SpfResult> check_host(dns::Resolver& resolver, const IpAddress& ip, std::string domain,
                                      std::string sender, std::string helo, const SpfOptions& options) {
  // Not a coroutine itself: arguments are copied into the coroutine frame
  // before the caller's references can dangle.
  return run_check_host(resolver, ip, std::move(domain), std::move(sender), std::move(helo), options);
}

asio::awaitable<SpfResult> check_mail_from(dns::Resolver& resolver, const IpAddress& ip, std::string mail_from,
                                           std::string helo, const SpfOptions& options) {
  if (mail_from.empty()) return check_helo(resolver, ip, std::move(helo), options);
  size_t at = mail_from.rfind('@');
  std::string domain = at == std::string::npos ? mail_from : mail_from.substr(at + 1);
  return run_check_host(resolver, ip, std::move(domain), std::move(mail_from), std::move(helo), options);
}

asio::awaitable<SpfResult> check_helo(dns::Resolver& resolver, const IpAddress& ip, std::string helo,
                                      const SpfOptions& options) {
  std::string sender = "postmaster@" + helo;
  std::string domain = helo;
  return run_check_host(resolver, ip, std::move(domain), std::move(sender), std::move(helo), options);
}

}  // namespace tern::auth
