// Sender identity, SPF and DMARC decisions (see decision.h). The order at end
// of data is: identity (our domains need our DKIM signature), DNS temporary
// errors, SPF fail, DMARC policy; trusted ARC sealers and trusted forwarders
// excuse SPF/DMARC failures, never the identity rule.
#include "policy/decision.h"

#include <algorithm>

#include "base/net.h"
#include "base/strings.h"

namespace tern::policy {
namespace {

using SpfCode = auth::SpfResult::Code;

Decision accepted(Stage stage) {
  Decision d;
  d.stage = stage;
  d.text = "accepted";
  return d;
}

void refuse(Decision& d, int code, std::string enhanced, std::string text) {
  d.accepted = false;
  d.code = code;
  d.enhanced = std::move(enhanced);
  d.text = std::move(text);
}

bool ends_with_label(std::string_view name, std::string_view domain) {
  if (name == domain) return true;
  return name.size() > domain.size() && name.substr(name.size() - domain.size()) == domain &&
         name[name.size() - domain.size() - 1] == '.';
}

// A valid (pass) DKIM signature whose d= covers `domain` within our domains.
const auth::dkim::DkimResult* our_signature(const MessageFacts& m, std::string_view domain,
                                            const std::vector<std::string>& local) {
  for (const auto& r : m.dkim) {
    if (r.status == auth::dkim::Outcome::kPass && dkim_domain_covers(r.domain, domain, local)) return &r;
  }
  return nullptr;
}

bool dkim_temperror_for(const MessageFacts& m, std::string_view domain, const std::vector<std::string>& local) {
  for (const auto& r : m.dkim) {
    if (r.status == auth::dkim::Outcome::kTempError && dkim_domain_covers(r.domain, domain, local)) return true;
  }
  return false;
}

// RFC 7489 §3.1.1 relaxed alignment of a passing signature with the MAIL FROM domain.
const auth::dkim::DkimResult* aligned_signature(const MessageFacts& m, std::string_view domain) {
  if (domain.empty()) return nullptr;
  for (const auto& r : m.dkim) {
    if (r.status == auth::dkim::Outcome::kPass &&
        auth::dmarc::aligned(domain, r.domain, auth::dmarc::AlignmentMode::kRelaxed)) {
      return &r;
    }
  }
  return nullptr;
}

bool trusted_arc(const MessageFacts& m, const config::PolicyConfig& policy) {
  if (m.arc.status != auth::arc::ChainStatus::kPass) return false;
  std::string sealer = to_lower(m.arc.domain);
  return std::find(policy.arc_trusted_sealers.begin(), policy.arc_trusted_sealers.end(), sealer) !=
         policy.arc_trusted_sealers.end();
}

bool all_recipients_forwarded(const MessageFacts& m, std::string* domain) {
  if (m.recipients.empty()) return false;
  for (const auto& r : m.recipients) {
    if (!forwarded_for(m, r, domain)) return false;
  }
  return true;
}

}  // namespace

const char* identity_mode_name(IdentityMode mode) {
  switch (mode) {
    case IdentityMode::kStrict:
      return "strict";
    case IdentityMode::kRelaxed:
      return "relaxed";
    case IdentityMode::kDisabled:
      return "disabled";
  }
  return "strict";
}

std::optional<IdentityMode> parse_identity_mode(std::string_view text) {
  if (text == "strict") return IdentityMode::kStrict;
  if (text == "relaxed") return IdentityMode::kRelaxed;
  if (text == "disabled") return IdentityMode::kDisabled;
  return std::nullopt;
}

const char* stage_name(Stage stage) {
  switch (stage) {
    case Stage::kMail:
      return "mail";
    case Stage::kRcpt:
      return "rcpt";
    case Stage::kData:
      return "data";
  }
  return "mail";
}

const char* identity_path_name(IdentityPath path) {
  switch (path) {
    case IdentityPath::kNotApplicable:
      return "n/a";
    case IdentityPath::kDisabled:
      return "disabled";
    case IdentityPath::kStrict:
      return "strict";
    case IdentityPath::kRelaxedClient:
      return "relaxed-client";
    case IdentityPath::kRelaxedMx:
      return "relaxed-mx";
    case IdentityPath::kHeaderFrom:
      return "header-from";
  }
  return "n/a";
}

const char* helo_class_name(HeloClass c) {
  switch (c) {
    case HeloClass::kMissing:
      return "missing";
    case HeloClass::kAddressLiteral:
      return "address-literal";
    case HeloClass::kBareWord:
      return "bare-word";
    case HeloClass::kInvalid:
      return "invalid";
    case HeloClass::kOurs:
      return "ours";
    case HeloClass::kNotInDns:
      return "not-in-dns";
    case HeloClass::kDnsError:
      return "dns-error";
    case HeloClass::kMx:
      return "fqdn";
  }
  return "invalid";
}

std::string Decision::reply_line() const {
  return std::to_string(code) + " " + enhanced + " " + text;
}

std::string domain_of(std::string_view address) {
  auto at = address.rfind('@');
  if (at == std::string_view::npos) return {};
  return to_lower(address.substr(at + 1));
}

bool is_our_domain(std::string_view domain, const std::vector<std::string>& local_domains) {
  if (domain.empty()) return false;
  std::string d = to_lower(domain);
  if (!d.empty() && d.back() == '.') d.pop_back();
  for (const auto& local : local_domains) {
    if (ends_with_label(d, local)) return true;
  }
  return false;
}

bool dkim_domain_covers(std::string_view d, std::string_view domain, const std::vector<std::string>& local_domains) {
  std::string signer = to_lower(d);
  std::string target = to_lower(domain);
  if (signer.empty() || target.empty() || !ends_with_label(target, signer)) return false;
  if (signer == target) return true;
  // A parent of the domain counts only while it is still ours (never a
  // public suffix or someone else's parent zone).
  for (const auto& local : local_domains) {
    if (ends_with_label(signer, local)) return true;
  }
  return false;
}

// Issue 5 §1 heuristic: an MX introduces itself with the FQDN of a real
// domain; a misconfigured local client sends a bare word, an address literal
// (RFC 5321 §4.1.3) or one of our own names.
HeloClass classify_helo(const SessionFacts& facts) {
  std::string helo = to_lower(facts.helo);
  if (helo.empty()) return HeloClass::kMissing;
  if (helo.front() == '[') return HeloClass::kAddressLiteral;
  if (IpAddress::parse(helo)) return HeloClass::kAddressLiteral;
  if (helo.back() == '.') helo.pop_back();
  if (helo.find('.') == std::string::npos) return HeloClass::kBareWord;
  for (char c : helo) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!ok) return HeloClass::kInvalid;
  }
  if (helo.find("..") != std::string::npos || helo.front() == '.' || helo.front() == '-') return HeloClass::kInvalid;
  if (helo == to_lower(facts.our_hostname)) return HeloClass::kOurs;
  for (const auto& local : facts.local_domains) {
    if (ends_with_label(helo, local)) return HeloClass::kOurs;
  }
  if (!facts.helo_resolves.has_value()) return HeloClass::kDnsError;
  if (!*facts.helo_resolves) return HeloClass::kNotInDns;
  return HeloClass::kMx;
}

bool identity_rule_applies(const SessionFacts& facts, std::string_view domain) {
  return facts.mx_listener && !facts.authenticated && !facts.trusted_network &&
         is_our_domain(domain, facts.local_domains);
}

IdentityPath mail_identity_path(const SessionFacts& facts) {
  if (!identity_rule_applies(facts, domain_of(facts.mail_from))) return IdentityPath::kNotApplicable;
  switch (facts.mode) {
    case IdentityMode::kDisabled:
      return IdentityPath::kDisabled;
    case IdentityMode::kStrict:
      return IdentityPath::kStrict;
    case IdentityMode::kRelaxed:
      return classify_helo(facts) == HeloClass::kMx ? IdentityPath::kRelaxedMx : IdentityPath::kRelaxedClient;
  }
  return IdentityPath::kStrict;
}

Decision decide_mail(const SessionFacts& facts) {
  Decision d = accepted(Stage::kMail);
  std::string domain = domain_of(facts.mail_from);
  if (!facts.mx_listener) {
    d.checks.push_back({"identity", "n/a", "not an mx listener (submission requires ownership)"});
    return d;
  }
  if (facts.authenticated || facts.trusted_network) {
    d.checks.push_back({"identity", "n/a", facts.authenticated ? "client authenticated" : "trusted network"});
    return d;
  }
  if (!is_our_domain(domain, facts.local_domains)) {
    d.checks.push_back(
        {"identity", "n/a", "MAIL FROM domain " + (domain.empty() ? std::string("<>") : domain) + " is not ours"});
    return d;
  }
  IdentityPath path = mail_identity_path(facts);
  switch (path) {
    case IdentityPath::kDisabled:
      d.checks.push_back({"identity", "disabled", "verify_sender_identity = disabled"});
      return d;
    case IdentityPath::kStrict:
      d.checks.push_back(
          {"identity", "strict", "MAIL FROM " + domain + " is ours and the client is not authenticated"});
      refuse(d, 530, "5.7.0", "Authentication required");
      return d;
    case IdentityPath::kRelaxedClient: {
      HeloClass c = classify_helo(facts);
      d.checks.push_back({"helo", helo_class_name(c), facts.helo.empty() ? "<none>" : facts.helo});
      d.checks.push_back({"identity", "relaxed-client", "EHLO does not look like an MX: treated as strict"});
      if (c == HeloClass::kDnsError) {
        refuse(d, 451, "4.7.0", "Temporary DNS failure checking EHLO " + facts.helo + ", try again later");
      } else {
        refuse(d, 530, "5.7.0", "Authentication required");
      }
      return d;
    }
    case IdentityPath::kRelaxedMx:
      d.checks.push_back({"helo", "fqdn", facts.helo + (facts.ptr_confirms_helo ? " (confirmed by PTR)" : "")});
      d.checks.push_back(
          {"identity", "relaxed-mx", "EHLO looks like an MX; a DKIM signature of " + domain + " is required"});
      return d;
    default:
      return d;
  }
}

Decision decide_rcpt(const SessionFacts& facts, std::string_view recipient, bool recipient_is_local) {
  Decision d = accepted(Stage::kRcpt);
  if (mail_identity_path(facts) == IdentityPath::kRelaxedMx && !recipient_is_local) {
    d.checks.push_back({"relay", "refused", "relaxed-mx path accepts local recipients only"});
    refuse(d, 550, "5.7.1", "<" + std::string(recipient) + ">: Relay access denied");
  }
  return d;
}

std::vector<std::string> forwarder_domains(const config::Config& cfg, std::string_view recipient) {
  std::string rcpt = to_lower(recipient);
  if (auto it = cfg.forwarders.find(rcpt); it != cfg.forwarders.end()) return it->second;
  std::string domain = domain_of(rcpt);
  if (domain.empty()) return {};
  if (auto it = cfg.forwarders.find("@" + domain); it != cfg.forwarders.end()) return it->second;
  return {};
}

bool forwarded_for(const MessageFacts& m, std::string_view recipient, std::string* domain) {
  if (m.spf.code == SpfCode::kPass) return false;
  std::string rcpt = to_lower(recipient);
  for (const auto& f : m.forwarders) {
    if (f.recipient == rcpt && f.code == SpfCode::kPass) {
      if (domain != nullptr) *domain = f.domain;
      return true;
    }
  }
  return false;
}

IdentityPath data_identity_path(const SessionFacts& facts, const MessageFacts& message) {
  IdentityPath path = mail_identity_path(facts);
  if (path != IdentityPath::kNotApplicable) return path;
  if (facts.mode == IdentityMode::kDisabled) return IdentityPath::kNotApplicable;
  for (const auto& from : message.header_from_domains) {
    if (identity_rule_applies(facts, from)) return IdentityPath::kHeaderFrom;
  }
  return IdentityPath::kNotApplicable;
}

Decision decide_data(const SessionFacts& facts, const MessageFacts& m, const config::PolicyConfig& policy,
                     const std::function<unsigned()>& random_percent) {
  Decision d = accepted(Stage::kData);
  const auto& local = facts.local_domains;

  // 1. Identity (issue 5 §1): our MAIL FROM under relaxed-mx, or our header
  // From from an unauthenticated, untrusted port-25 client, needs a valid
  // DKIM signature of that domain (or a parent within ours).
  IdentityPath path = data_identity_path(facts, m);
  if (path == IdentityPath::kRelaxedMx || path == IdentityPath::kHeaderFrom) {
    std::vector<std::string> domains;
    if (path == IdentityPath::kRelaxedMx) domains.push_back(domain_of(facts.mail_from));
    for (const auto& from : m.header_from_domains) {
      if (identity_rule_applies(facts, from) && std::find(domains.begin(), domains.end(), from) == domains.end()) {
        domains.push_back(from);
      }
    }
    for (const auto& domain : domains) {
      if (const auto* sig = our_signature(m, domain, local)) {
        d.checks.push_back({"identity", identity_path_name(path), domain + " proven by DKIM d=" + sig->domain});
        continue;
      }
      d.checks.push_back({"identity", "fail", "no valid DKIM signature of " + domain});
      if (dkim_temperror_for(m, domain, local)) {
        refuse(d, 451, "4.7.20", "DKIM key lookup for " + domain + " failed temporarily, try again later");
      } else {
        refuse(d, 550, "5.7.20",
               "No passing DKIM signature of " + domain + " found: sender " + domain +
                   " is a local domain and the client is not authenticated");
      }
      return d;
    }
  } else {
    d.checks.push_back({"identity", identity_path_name(path), ""});
  }

  // SPF and DMARC are enforced on untrusted port-25 peers only: our own
  // users (AUTH, trusted networks, submission) are not judged by the
  // published policy of the domains they write as (Postfix's
  // permit_mynetworks / permit_sasl_authenticated come first too).
  if (!facts.mx_listener || facts.authenticated || facts.trusted_network) {
    d.checks.push_back({"spf", "n/a", facts.mx_listener ? "client is trusted" : "submission listener"});
    d.checks.push_back({"dmarc", "n/a", facts.mx_listener ? "client is trusted" : "submission listener"});
    return d;
  }

  bool arc_ok = trusted_arc(m, policy);
  std::string forward_domain;
  bool forwarded = all_recipients_forwarded(m, &forward_domain);
  if (m.arc.status != auth::arc::ChainStatus::kNone) {
    d.checks.push_back({"arc", auth::arc::chain_status_name(m.arc.status),
                        "sealer " + m.arc.domain + (arc_ok ? " (trusted)" : " (not trusted)")});
  }
  if (forwarded) d.checks.push_back({"forwarder", "pass", "client passes SPF of forwarder domain " + forward_domain});

  const auto* aligned = aligned_signature(m, domain_of(facts.mail_from));
  bool dmarc_pass = m.dmarc.status == auth::dmarc::Status::kPass;
  bool excused = arc_ok || forwarded;

  // 2. SPF (RFC 7208 §8): fail is refused unless proven otherwise.
  std::string spf_name = auth::spf_code_name(m.spf.code);
  std::string spf_detail = (m.spf_is_helo ? "helo " : "mailfrom ") + m.spf.domain;
  if (m.spf.code == SpfCode::kFail && policy.spf_fail == "reject") {
    if (aligned != nullptr) {
      d.checks.push_back({"spf", "fail", spf_detail + "; excused by aligned DKIM d=" + aligned->domain});
    } else if (dmarc_pass) {
      d.checks.push_back({"spf", "fail", spf_detail + "; excused by DMARC pass"});
    } else if (excused) {
      d.checks.push_back({"spf", "fail", spf_detail + (arc_ok ? "; excused by trusted ARC sealer" : "; forwarded")});
    } else {
      d.checks.push_back({"spf", "fail", spf_detail + "; spf_fail = reject"});
      refuse(d, 550, "5.7.23",
             "SPF validation failed for " + m.spf.domain + " from " +
                 (m.spf.explanation.empty() ? std::string("this client") : m.spf.explanation));
      return d;
    }
  } else if (m.spf.code == SpfCode::kTempError && policy.spf_fail == "reject" && aligned == nullptr && !dmarc_pass &&
             !excused) {
    d.checks.push_back({"spf", "temperror", spf_detail + " " + m.spf.problem});
    refuse(d, 451, "4.7.24", "SPF validation error for " + m.spf.domain + ", try again later");
    return d;
  } else {
    d.checks.push_back({"spf", spf_name, spf_detail + (m.spf.code == SpfCode::kFail ? "; spf_fail = tag" : "")});
  }

  // 3. DMARC (RFC 7489 §6.6.4 pct sampling, §6.7 policy enforcement).
  const auto& dmarc = m.dmarc;
  std::string dmarc_detail = "header.from " + (dmarc.from_domain.empty() ? std::string("-") : dmarc.from_domain) +
                             " p=" + auth::dmarc::policy_name(dmarc.policy);
  if (dmarc.status == auth::dmarc::Status::kTempError) {
    if (excused) {
      d.checks.push_back({"dmarc", "temperror", dmarc_detail + "; excused"});
      return d;
    }
    d.checks.push_back({"dmarc", "temperror", dmarc_detail + " " + dmarc.error});
    refuse(d, 451, "4.7.1", "DMARC policy lookup for " + dmarc.from_domain + " failed temporarily, try again later");
    return d;
  }
  if (dmarc.status != auth::dmarc::Status::kFail || dmarc.policy == auth::dmarc::Policy::kNone) {
    d.checks.push_back({"dmarc", auth::dmarc::status_name(dmarc.status), dmarc_detail});
    return d;
  }
  auth::dmarc::Policy effective = dmarc.policy;
  unsigned pct = dmarc.record ? dmarc.record->pct : 100;
  if (pct < 100) {
    unsigned roll = random_percent ? random_percent() % 100 : 0;
    if (roll >= pct) {
      effective =
          effective == auth::dmarc::Policy::kReject ? auth::dmarc::Policy::kQuarantine : auth::dmarc::Policy::kNone;
      dmarc_detail += " pct=" + std::to_string(pct) + " sampled out";
    } else {
      dmarc_detail += " pct=" + std::to_string(pct) + " sampled in";
    }
  }
  if (excused) {
    d.checks.push_back({"dmarc", "fail", dmarc_detail + (arc_ok ? "; excused by trusted ARC sealer" : "; forwarded")});
    return d;
  }
  std::string action = effective == auth::dmarc::Policy::kReject       ? policy.dmarc_reject
                       : effective == auth::dmarc::Policy::kQuarantine ? policy.dmarc_quarantine
                                                                       : std::string("tag");
  d.checks.push_back({"dmarc", "fail", dmarc_detail + "; action " + action});
  if (action == "reject") {
    refuse(d, 550, "5.7.1",
           "Message rejected by the DMARC policy of " + dmarc.from_domain +
               " (p=" + auth::dmarc::policy_name(dmarc.policy) + ")");
  } else if (action == "quarantine") {
    d.junk = true;
    d.text = "accepted into quarantine (DMARC policy of " + dmarc.from_domain + ")";
  }
  return d;
}

}  // namespace tern::policy
