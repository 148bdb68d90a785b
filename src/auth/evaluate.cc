// Inbound authentication orchestration (see evaluate.h).
#include "auth/evaluate.h"

#include "base/strings.h"

namespace tern::auth {
namespace {

dmarc::MechanismResult spf_for_dmarc(SpfResult::Code c) {
  using C = SpfResult::Code;
  using M = dmarc::MechanismResult;
  switch (c) {
    case C::kPass: return M::kPass;
    case C::kFail: return M::kFail;
    case C::kSoftFail: return M::kSoftFail;
    case C::kNeutral: return M::kNeutral;
    case C::kTempError: return M::kTempError;
    case C::kPermError: return M::kPermError;
    case C::kNone: return M::kNone;
  }
  return M::kNone;
}

dmarc::MechanismResult dkim_for_dmarc(dkim::Outcome o) {
  using O = dkim::Outcome;
  using M = dmarc::MechanismResult;
  switch (o) {
    case O::kPass: return M::kPass;
    case O::kFail: return M::kFail;
    case O::kNeutral: return M::kNeutral;
    case O::kPolicy: return M::kPolicy;
    case O::kTempError: return M::kTempError;
    case O::kPermError: return M::kPermError;
    case O::kNone: return M::kNone;
  }
  return M::kNone;
}

std::string domain_of(const std::string& address) {
  auto at = address.rfind('@');
  return at == std::string::npos ? std::string() : to_lower(address.substr(at + 1));
}

MethodResult spf_method(const SpfResult& spf, bool is_helo, const SessionFacts& facts) {
  MethodResult m;
  m.method = "spf";
  m.result = spf_code_name(spf.code);
  m.dnssec = spf.dnssec_secure;
  if (spf.code == SpfResult::Code::kPermError || spf.code == SpfResult::Code::kTempError ||
      spf.code == SpfResult::Code::kNone) {
    m.reason = spf.problem;
  } else if (!spf.mechanism.empty()) {
    m.comment = "matched " + spf.mechanism;
  }
  if (is_helo) {
    m.prop("smtp", "helo", facts.helo);
  } else {
    m.prop("smtp", "mailfrom", facts.mail_from);
  }
  return m;
}

}  // namespace

boost::asio::awaitable<SpfResult> evaluate_spf(dns::Resolver& resolver, const SessionFacts& facts,
                                               std::string receiver, bool* used_helo) {
  SpfOptions o;
  o.receiver = std::move(receiver);
  bool helo = facts.mail_from.empty();
  if (used_helo != nullptr) *used_helo = helo;
  if (helo) co_return co_await check_helo(resolver, facts.ip, facts.helo, o);
  co_return co_await check_mail_from(resolver, facts.ip, facts.mail_from, facts.helo, o);
}

boost::asio::awaitable<Evaluation> evaluate_message(dns::Resolver& resolver, const SessionFacts& facts,
                                                    const SpfResult& spf, bool spf_is_helo,
                                                    const mail::Message& message, const std::string& authserv_id,
                                                    const dkim::VerifyOptions& dkim_options) {
  Evaluation ev;
  ev.spf = spf;
  ev.spf_is_helo = spf_is_helo;
  ev.results.authserv_id = authserv_id;
  ev.results.results.push_back(spf_method(spf, spf_is_helo, facts));

  // DKIM: every signature (up to the verifier's bound).
  ev.dkim = co_await dkim::verify(resolver, message, dkim_options);
  if (ev.dkim.empty()) {
    MethodResult m;
    m.method = "dkim";
    m.result = "none";
    ev.results.results.push_back(m);
  }
  for (const auto& d : ev.dkim) {
    MethodResult m;
    m.method = "dkim";
    m.result = dkim::outcome_name(d.status);
    m.reason = d.reason;
    m.dnssec = d.status == dkim::Outcome::kPass || d.status == dkim::Outcome::kFail
                   ? std::optional<bool>(d.dnssec)
                   : std::nullopt;
    if (d.key_bits > 0) m.comment = std::to_string(d.key_bits) + "-bit key";
    if (!d.domain.empty()) m.prop("header", "d", d.domain);
    if (!d.selector.empty()) m.prop("header", "s", d.selector);
    if (!d.algorithm.empty()) m.prop("header", "a", d.algorithm);
    if (!d.b.empty()) m.prop("header", "b", d.b);
    ev.results.results.push_back(std::move(m));
  }

  // DMARC: needs exactly one author domain (RFC 7489 §6.6.1).
  dmarc::DmarcInput in;
  auto from = message.from_addresses();
  if (!from) {
    ev.from_problem = "unparseable From: " + from.error().text;
  } else {
    for (const auto& mb : *from) {
      std::string d = to_lower(mb.domain);
      bool dup = false;
      for (const auto& have : in.from_domains) dup = dup || have == d;
      if (!dup && !d.empty()) in.from_domains.push_back(d);
    }
    if (in.from_domains.empty()) ev.from_problem = "no From address";
  }
  MethodResult dm;
  dm.method = "dmarc";
  if (ev.from_problem.empty()) {
    in.spf = spf_for_dmarc(spf.code);
    in.spf_domain = spf_is_helo ? to_lower(facts.helo) : domain_of(facts.mail_from);
    for (const auto& d : ev.dkim) in.dkim.push_back({d.domain, dkim_for_dmarc(d.status), d.selector});
    dmarc::Options dmarc_options;
    ev.dmarc = co_await dmarc::evaluate(resolver, in, dmarc_options);
    dm.result = dmarc::status_name(ev.dmarc.status);
    if (ev.dmarc.record_found) {
      dm.comment = std::string("p=") + dmarc::policy_name(ev.dmarc.policy) +
                   " dis=" + dmarc::policy_name(ev.dmarc.disposition) + (ev.dmarc.sampled_out ? " pct-sampled-out" : "");
      dm.dnssec = ev.dmarc.dnssec_secure;
    }
    if (!ev.dmarc.error.empty() && ev.dmarc.status != dmarc::Status::kPass) dm.reason = ev.dmarc.error;
    if (!ev.dmarc.from_domain.empty()) dm.prop("header", "from", ev.dmarc.from_domain);
  } else {
    dm.result = "permerror";
    dm.reason = ev.from_problem;
    ev.dmarc.status = dmarc::Status::kPermError;
    ev.dmarc.error = ev.from_problem;
  }
  ev.results.results.push_back(std::move(dm));

  // ARC (RFC 8617 §5.2): the chain as it arrived; the policy layer decides
  // whether a trusted sealer's pass overrides SPF/DMARC failures.
  arc::VerifyOptions arc_options;
  ev.arc = co_await arc::verify(resolver, message, arc_options);
  ev.results.results.push_back(arc::to_method_result(ev.arc));
  co_return ev;
}

std::map<std::string, std::string> Evaluation::attributes() const {
  std::map<std::string, std::string> a;
  a["auth.spf"] = spf_code_name(spf.code);
  a["auth.spf.identity"] = spf_is_helo ? "helo" : "mailfrom";
  a["auth.spf.domain"] = spf.domain;
  std::string dkim_pass;
  for (const auto& d : dkim) {
    if (d.status == dkim::Outcome::kPass) dkim_pass += (dkim_pass.empty() ? "" : " ") + d.domain;
  }
  a["auth.dkim.pass_domains"] = dkim_pass;
  a["auth.dkim.signatures"] = std::to_string(dkim.size());
  a["auth.dmarc"] = dmarc::status_name(dmarc.status);
  a["auth.dmarc.policy"] = dmarc::policy_name(dmarc.policy);
  a["auth.dmarc.disposition"] = dmarc::policy_name(dmarc.disposition);
  a["auth.dmarc.from_domain"] = dmarc.from_domain;
  a["auth.arc"] = arc::chain_status_name(arc.status);
  a["auth.arc.domain"] = arc.domain;
  a["auth.arc.instances"] = std::to_string(arc.instances);
  a["auth.results"] = format_value(results);
  return a;
}

}  // namespace tern::auth
