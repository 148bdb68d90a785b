// `tern policy explain` (see policy_commands.h). The same decision functions
// and DNS helpers as the SMTP session, on a private io_context with the
// configured resolver. Recipients count as local when their domain is one of
// domains.local (the user directory is not consulted). The anti-abuse checks
// of [policy] (src/policy/checks.h) are shown at the stage the session runs
// them: DNSBL and iprev looked up at connect, the HELO FQDN check, the sender
// checks and reject_unknown_sender_domain at MAIL FROM (the DNSBL verdict is
// applied there too), recipient_access at RCPT TO. Rate limits and
// greylisting depend on the running server's state and are shown as not
// evaluated; the access maps are read from their files without changing them.
// The [[milter]]s are asked only with --milters yes (they see a real
// transaction and may keep state of it, e.g. a milter's own greylisting):
// then each stage goes to them as the session would send it, after tern's
// own checks, and their verdicts and end-of-message changes are shown.
#include "app/policy_commands.h"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <set>

#include "auth/evaluate.h"
#include "base/net.h"
#include "base/strings.h"
#include "dns/unbound_resolver.h"
#include "mail/message.h"
#include "policy/access_map.h"
#include "policy/checks.h"
#include "policy/decision.h"
#include "policy/decision_dns.h"
#include "policy/dnsbl.h"
#include "policy/helo.h"
#include "policy/iprev.h"
#include "server/milter_chain.h"
#include "server/server.h"

namespace tern::app {
namespace {

namespace asio = boost::asio;

constexpr size_t kMaxMessageSize = 64ull * 1024 * 1024;
constexpr size_t kMaxRecipients = 100;

int usage_error(const std::string& problem) {
  std::fprintf(stderr,
               "tern policy explain: %s\n"
               "usage: tern policy explain --config FILE --ip IP --helo NAME --mail-from ADDR --rcpt ADDR[,ADDR...]\n"
               "                           [--message FILE] [--listener mx|submission] [--authenticated yes]\n"
               "                           [--milters yes]\n",
               problem.c_str());
  return 2;
}

struct Report {
  std::vector<std::pair<std::string, policy::Decision>> stages;  // label, decision
  std::string final_reply;
};

void print_decision(const std::string& label, const policy::Decision& d) {
  for (const auto& c : d.checks) {
    std::printf("%-18s %s=%s%s\n", label.c_str(), c.name.c_str(), c.result.c_str(),
                c.detail.empty() ? "" : ("  (" + c.detail + ")").c_str());
  }
  std::string reply = d.accepted ? (d.junk ? "accept into Junk: " + d.text : std::string("accept")) : d.reply_line();
  std::printf("%-18s reply: %s\n", label.c_str(), reply.c_str());
}

// The anti-abuse checks that apply to this client (issue 5 item 4): only
// unauthenticated clients outside the trusted networks on an mx listener.
struct AntiAbuseFacts {
  bool applies = false;
  std::optional<policy::AccessMap> sender_access;
  std::optional<policy::AccessMap> recipient_access;
};

// A verdict as one explain line: pass | ok | tempfail | reject | discard.
policy::Check verdict_check(const std::string& name, const policy::Verdict& v) {
  static const char* const kResults[] = {"pass", "ok", "tempfail", "reject", "discard"};
  std::string detail = v.explanation;
  if (v.refused()) detail += (detail.empty() ? "" : "; ") + std::string("reply ") + v.error().to_string();
  return {name, kResults[static_cast<int>(v.action)], detail};
}

// Recipients count as local when their domain is one of domains.local (the
// accounts and aliases are not consulted).
bool local_recipient(const config::Config& cfg, const std::string& rcpt) {
  std::string domain = policy::domain_of(rcpt);
  return std::find(cfg.domains.local.begin(), cfg.domains.local.end(), domain) != cfg.domains.local.end();
}

// Applies a refusing verdict to the stage's decision (the first refusal wins).
void refuse_with(policy::Decision& d, const policy::Verdict& v) {
  if (!d.accepted || !v.refused()) return;
  d.accepted = false;
  d.code = v.code;
  d.enhanced = v.enhanced;
  d.text = v.text;
}

asio::awaitable<Report> explain(dns::Resolver& r, const config::Config& cfg, policy::SessionFacts facts, IpAddress ip,
                                std::vector<std::string> rcpts, const mail::Message* message,
                                const AntiAbuseFacts& abuse) {
  Report report;
  const config::PolicyConfig& pc = cfg.policy;
  policy::Verdict dnsbl = policy::Verdict::pass("dnsbl: not checked");
  bool sender_ok = false;  // sender_access OK: the remaining sender checks and greylisting are skipped
  if (abuse.applies) {
    // Connect: rate limit (stateful), then DNSBL and iprev lookups, concurrently in the session.
    policy::Decision connect;
    connect.checks.push_back(
        {"rate_limit", "not evaluated (stateful)",
         pc.rate_limit.connections_per_minute_per_ip
             ? std::to_string(pc.rate_limit.connections_per_minute_per_ip) + " connections per minute per IP"
             : "unlimited"});
    dnsbl = co_await policy::check_dnsbl(r, ip, pc.dnsbl);
    // Refused at MAIL FROM (below), so that the refusal can be logged with the envelope.
    connect.checks.push_back({"dnsbl", dnsbl.refused() ? "listed" : "not listed", dnsbl.explanation});
    policy::IprevResult iprev = co_await policy::check_iprev(r, ip);
    connect.checks.push_back({"iprev", policy::iprev_code_name(iprev.code),
                              iprev.name.empty() ? iprev.explanation : iprev.name + "; " + iprev.explanation});
    report.stages.push_back({"connect", connect});

    // HELO/EHLO (RFC 5321 §4.1.1.1).
    policy::Decision helo;
    policy::Verdict fqdn = policy::check_helo_fqdn(facts.helo, pc.reject_non_fqdn_helo);
    helo.checks.push_back(verdict_check("helo_fqdn", fqdn));
    refuse_with(helo, fqdn);
    report.stages.push_back({"helo", helo});
    if (!helo.accepted) {
      report.final_reply = helo.reply_line();
      co_return report;
    }

    // MAIL FROM: the checks without DNS, the DNSBL verdict, the sender domain.
    policy::Decision mail;
    policy::Verdict v = policy::check_helo_required(true, pc.require_helo);
    mail.checks.push_back(verdict_check("require_helo", v));
    v = policy::check_sender_fqdn(facts.mail_from, pc.reject_non_fqdn_sender);
    mail.checks.push_back(verdict_check("sender_fqdn", v));
    refuse_with(mail, v);
    policy::Verdict::Action sender_action = policy::Verdict::Action::kContinue;
    if (abuse.sender_access && mail.accepted) {
      v = abuse.sender_access->check(facts.mail_from, ip);
      mail.checks.push_back(verdict_check("sender_access", v));
      refuse_with(mail, v);
      sender_action = v.action;
      sender_ok = v.action == policy::Verdict::Action::kAccept;
      if (v.action == policy::Verdict::Action::kDiscard) {
        mail.checks.push_back({"discard", "yes", "250 at end of data, the message is dropped"});
      }
    }
    if (mail.accepted && sender_action == policy::Verdict::Action::kContinue) {
      mail.checks.push_back({"message_rate", "not evaluated (stateful)",
                             pc.rate_limit.messages_per_hour_per_ip
                                 ? std::to_string(pc.rate_limit.messages_per_hour_per_ip) + " messages per hour per IP"
                                 : "unlimited"});
    }
    if (mail.accepted && !sender_ok) {
      mail.checks.push_back(verdict_check("dnsbl", dnsbl));
      refuse_with(mail, dnsbl);
    }
    if (mail.accepted && !sender_ok) {
      // (Not a conditional expression: GCC 12 destroys a co_await temporary there twice.)
      v = policy::Verdict::pass("sender domain: not checked (off)");
      if (pc.reject_unknown_sender_domain) v = co_await policy::check_sender_domain(r, facts.mail_from);
      mail.checks.push_back(verdict_check("sender_domain", v));
      refuse_with(mail, v);
    }
    report.stages.push_back({"mail anti-abuse", mail});
    if (!mail.accepted) {
      report.final_reply = mail.reply_line();
      co_return report;
    }
  } else {
    policy::Decision skipped;
    skipped.checks.push_back({"anti_abuse", "skipped",
                              !facts.mx_listener    ? "not an mx listener"
                              : facts.authenticated ? "authenticated client"
                                                    : "trusted network"});
    report.stages.push_back({"connect", skipped});
  }
  // MAIL FROM: the EHLO lookup only when the relaxed heuristic needs it.
  if (facts.mode == policy::IdentityMode::kRelaxed &&
      policy::identity_rule_applies(facts, policy::domain_of(facts.mail_from))) {
    facts.helo_resolves = true;
    if (policy::classify_helo(facts) == policy::HeloClass::kMx) {
      facts.helo_resolves = co_await policy::helo_resolves(r, facts.helo);
    }
  }
  auto mail = policy::decide_mail(facts);
  auth::SessionFacts auth_facts{ip, facts.helo, facts.mail_from};
  bool spf_helo = false;
  auth::SpfResult spf = co_await auth::evaluate_spf(r, auth_facts, cfg.server.hostname, &spf_helo);
  mail.checks.push_back({"spf", auth::spf_code_name(spf.code), (spf_helo ? "helo " : "mailfrom ") + spf.domain});
  report.stages.push_back({"mail", mail});
  if (!mail.accepted) {
    report.final_reply = mail.reply_line();
    co_return report;
  }
  policy::MessageFacts checked;
  checked.spf = spf;
  checked.spf_is_helo = spf_helo;
  for (const auto& rcpt : rcpts) {
    bool local = local_recipient(cfg, rcpt);
    auto d = policy::decide_rcpt(facts, rcpt, local);
    if (d.accepted && !local && !facts.authenticated && !facts.trusted_network) {
      d.checks.push_back({"relay", "refused", "not a local domain, client neither authenticated nor trusted"});
      d.accepted = false;
      d.code = 554;
      d.enhanced = "5.7.1";
      d.text = "<" + rcpt + ">: Relay access denied";
    }
    if (d.accepted && local && spf.code != auth::SpfResult::Code::kPass) {
      auto results = co_await policy::forwarder_spf(r, cfg, ip, facts.helo, rcpt);
      for (const auto& f : results) {
        d.checks.push_back({"forwarder", auth::spf_code_name(f.code), "SPF of " + f.domain + " for " + f.recipient});
        checked.forwarders.push_back(f);
      }
    }
    if (d.accepted && abuse.applies) {
      // After the session's own relay / unknown-user checks (checks.h step 7):
      // recipient_access, then greylisting unless an access map said OK.
      bool rcpt_ok = false;
      if (abuse.recipient_access) {
        policy::Verdict v = abuse.recipient_access->check(rcpt);
        d.checks.push_back(verdict_check("recipient_access", v));
        if (v.refused()) {
          refuse_with(d, v);
          d.text = "<" + rcpt + ">: " + v.text;
        }
        rcpt_ok = v.action == policy::Verdict::Action::kAccept;
      }
      if (d.accepted) {
        const char* greylist = !pc.greylist.enabled   ? "off"
                               : rcpt_ok || sender_ok ? "skipped"
                                                      : "not evaluated (stateful)";
        d.checks.push_back({"greylist", greylist,
                            !pc.greylist.enabled ? ""
                            : rcpt_ok            ? "recipient_access OK"
                            : sender_ok          ? "sender_access OK"
                                                 : "the first attempt of a new triplet gets 451 4.7.1"});
      }
    }
    report.stages.push_back({"rcpt " + rcpt, d});
    if (!d.accepted) {
      report.final_reply = d.reply_line();
      co_return report;
    }
    checked.recipients.push_back(to_lower(rcpt));
  }
  if (message == nullptr) {
    report.final_reply = "(end of data not evaluated: give --message FILE)";
    co_return report;
  }
  auth::dkim::VerifyOptions dkim_options;
  auto ev = co_await auth::evaluate_message(r, auth_facts, spf, spf_helo, *message, cfg.auth.authserv_id, dkim_options);
  checked.dkim = ev.dkim;
  checked.dmarc = ev.dmarc;
  checked.arc = ev.arc;
  if (auto from = message->from_addresses()) {
    for (const auto& mb : *from) {
      if (!mb.domain.empty()) checked.header_from_domains.push_back(to_lower(mb.domain));
    }
  }
  policy::Decision data = policy::decide_data(facts, checked, cfg.policy, std::function<unsigned()>());
  for (const auto& k : ev.dkim) {
    data.checks.insert(data.checks.begin(), {"dkim", auth::dkim::outcome_name(k.status),
                                             "d=" + k.domain + (k.reason.empty() ? "" : " " + k.reason)});
  }
  report.stages.push_back({"data", data});
  report.final_reply =
      data.accepted ? (data.junk ? "250 2.0.0 accepted into Junk" : "250 2.0.0 accepted") : data.reply_line();
  co_return report;
}

// A milter verdict as one explain line.
policy::Check milter_check(const server::MilterVerdict& v, const std::string& address) {
  if (v.refused()) {
    return {"milter", "reject", address + "; reply " + std::to_string(v.code) + " " + v.enhanced + " " + v.text};
  }
  if (v.discarded()) return {"milter", "discard", address + "; 250 at end of data, the message is dropped"};
  return {"milter", "continue", address};
}

// Records a milter stage; returns false when it ends the transaction.
bool milter_stage(Report& report, const std::string& label, const server::MilterVerdict& v,
                  const std::string& addresses) {
  policy::Decision d;
  d.checks.push_back(milter_check(v, v.milter.empty() ? addresses : v.milter));
  if (v.refused()) {
    d.accepted = false;
    d.code = v.code;
    d.enhanced = v.enhanced;
    d.text = v.text;
  }
  report.stages.push_back({label, d});
  if (v.refused()) report.final_reply = d.reply_line();
  if (v.discarded()) report.final_reply = "250 2.0.0 Ok: discarded (by a milter)";
  return !v.refused() && !v.discarded();
}

// The [[milter]] chain over the same transaction (issue 5 item 5), in the
// session's order, after tern's own checks accepted it.
asio::awaitable<void> explain_milters(const config::Config& cfg, const policy::SessionFacts& facts, IpAddress ip,
                                      std::vector<std::string> rcpts, std::string message_text, Report& report) {
  std::string addresses;
  for (const auto& m : cfg.milters) addresses += (addresses.empty() ? "" : ", ") + m.address;
  server::MilterChain chain(co_await asio::this_coro::executor, cfg.milters);
  server::MilterConnection c;
  c.our_hostname = cfg.server.hostname;
  c.daemon_name = facts.mx_listener ? "mx" : "submission";
  c.client_addr = ip.to_string();
  c.ipv6 = ip.v6;
  // Each co_await on a line of its own (GCC 12 mishandles temporaries that
  // share a full-expression with a co_await).
  server::MilterVerdict v = co_await chain.connect(c);
  bool go_on = milter_stage(report, "milter connect", v, addresses);
  std::string no_tls;
  std::vector<std::string> no_args;
  std::string auth_user = facts.authenticated ? std::string("(authenticated)") : std::string();
  std::string auth_type = facts.authenticated ? std::string("PLAIN") : std::string();
  if (go_on) {
    v = co_await chain.helo(facts.helo, no_tls, no_tls, 0);
    go_on = milter_stage(report, "milter helo", v, addresses);
  }
  if (go_on) {
    v = co_await chain.mail_from(facts.mail_from, no_args, auth_user, auth_type);
    go_on = milter_stage(report, "milter mail", v, addresses);
  }
  for (size_t i = 0; go_on && i < rcpts.size(); ++i) {
    bool local = local_recipient(cfg, rcpts[i]);
    v = co_await chain.rcpt_to(rcpts[i], no_args, local);
    std::string label = "milter rcpt " + rcpts[i];
    go_on = milter_stage(report, label, v, addresses);
  }
  if (go_on && !message_text.empty()) {
    server::MilterMessage message;
    message.content = std::move(message_text);
    message.mail_from = facts.mail_from;
    std::string queue_id = "EXPLAIN";
    v = co_await chain.end_of_data(queue_id, message);
    go_on = milter_stage(report, "milter data", v, addresses);
    if (go_on) {
      policy::Decision& d = report.stages.back().second;
      if (message.content_changed) d.checks.push_back({"milter_change", "content", "headers or body changed"});
      if (message.mail_from != facts.mail_from) {
        d.checks.push_back({"milter_change", "sender", "<" + message.mail_from + ">"});
      }
      for (const auto& r : message.add_rcpts) d.checks.push_back({"milter_change", "add recipient", "<" + r + ">"});
      for (const auto& r : message.delete_rcpts) {
        d.checks.push_back({"milter_change", "delete recipient", "<" + r + ">"});
      }
      if (message.quarantine) d.checks.push_back({"milter_change", "quarantine", *message.quarantine});
    }
  }
  co_await chain.abort();
  co_await chain.quit();
}

}  // namespace

int policy_command(const std::vector<std::string>& p, const std::map<std::string, std::string>& o,
                   const config::Config& cfg) {
  if (p.size() != 2 || p[1] != "explain") return usage_error("expected: tern policy explain [options]");
  static const std::set<std::string> allowed = {"ip",       "helo",          "mail-from", "rcpt", "message",
                                                "listener", "authenticated", "config",    "dns",  "milters"};
  for (const auto& [k, v] : o) {
    if (!allowed.count(k)) return usage_error("unknown option --" + k);
  }
  for (const char* required : {"ip", "helo", "mail-from", "rcpt"}) {
    if (!o.count(required)) return usage_error(std::string("missing --") + required);
  }
  auto ip = IpAddress::parse(o.at("ip"));
  if (!ip) return usage_error("--ip " + o.at("ip") + ": not an IP address");
  std::string mail_from = o.at("mail-from");
  if (mail_from.size() >= 2 && mail_from.front() == '<' && mail_from.back() == '>') {
    mail_from = mail_from.substr(1, mail_from.size() - 2);
  }
  std::vector<std::string> rcpts;
  for (auto part : split(o.at("rcpt"), ',')) {
    std::string r(trim(part));
    if (r.find('@') == std::string::npos) return usage_error("--rcpt " + r + ": not an address");
    rcpts.push_back(r);
  }
  if (rcpts.empty() || rcpts.size() > kMaxRecipients) return usage_error("--rcpt: 1 to 100 addresses");
  std::string role = o.count("listener") ? o.at("listener") : "mx";
  const config::Listener* listener = nullptr;
  for (const auto& l : cfg.listeners) {
    if (config::role_name(l.role) == role) {
      listener = &l;
      break;
    }
  }
  if (listener == nullptr) return usage_error("no " + role + " listener in the configuration");

  policy::SessionFacts facts;
  facts.mx_listener = listener->role == config::ListenerRole::kMx;
  facts.mode = policy::parse_identity_mode(listener->verify_sender_identity).value_or(policy::IdentityMode::kStrict);
  facts.authenticated = o.count("authenticated") && o.at("authenticated") == "yes";
  for (const auto& c : cfg.relay.trusted_networks) facts.trusted_network = facts.trusted_network || c.contains(*ip);
  facts.helo = o.at("helo");
  facts.mail_from = mail_from;
  facts.our_hostname = cfg.server.hostname;
  facts.local_domains = cfg.domains.local;

  bool ask_milters = o.count("milters") && o.at("milters") == "yes";
  if (o.count("milters") && !ask_milters && o.at("milters") != "no") return usage_error("--milters: yes or no");
  std::string message_text;
  std::optional<mail::Message> message;
  if (o.count("message")) {
    std::ifstream in(o.at("message"), std::ios::binary);
    if (!in) return usage_error(o.at("message") + ": cannot open");
    std::string text;
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (text.size() > kMaxMessageSize) return usage_error(o.at("message") + ": larger than 64 MiB");
    message_text = mail::to_crlf(text);
    auto parsed = mail::Message::parse(message_text);
    if (!parsed) return usage_error(o.at("message") + ": not an RFC 5322 message: " + parsed.error().text);
    message = std::move(*parsed);
  }

  std::printf("listener %s, verify_sender_identity = %s, client %s%s%s\n", role.c_str(),
              policy::identity_mode_name(facts.mode), ip->to_string().c_str(),
              facts.trusted_network ? " (trusted network)" : "", facts.authenticated ? " (authenticated)" : "");
  asio::io_context ctx;
  auto resolver = dns::UnboundResolver::create(ctx.get_executor(), server::unbound_config(cfg));
  if (!resolver) {
    std::fprintf(stderr, "tern policy explain: dns: %s\n", resolver.error().text.c_str());
    return 1;
  }
  AntiAbuseFacts abuse;
  abuse.applies = facts.mx_listener && !facts.authenticated && !facts.trusted_network;
  auto maps = policy::load_access_maps(cfg.policy);
  if (!maps) {
    std::fprintf(stderr, "tern policy explain: %s\n", maps.error().text.c_str());
    return 1;
  }
  abuse.sender_access = std::move(maps->sender);
  abuse.recipient_access = std::move(maps->recipient);
  const mail::Message* msg = message ? &*message : nullptr;
  IpAddress client = ip->unmapped();
  auto future = asio::co_spawn(ctx, explain(**resolver, cfg, facts, client, rcpts, msg, abuse), asio::use_future);
  ctx.run();
  Report report = future.get();
  bool accepted_so_far = report.final_reply.rfind("250", 0) == 0 || report.final_reply.rfind("(end of data", 0) == 0;
  if (!cfg.milters.empty() && accepted_so_far) {
    if (ask_milters) {
      ctx.restart();
      auto milters =
          asio::co_spawn(ctx, explain_milters(cfg, facts, client, rcpts, message_text, report), asio::use_future);
      ctx.run();
      milters.get();
    } else {
      policy::Decision d;
      for (const auto& m : cfg.milters) {
        d.checks.push_back({"milter", "not consulted",
                            m.address + "; give --milters yes to ask it (it sees a real "
                                        "transaction)"});
      }
      report.stages.push_back({"milters", d});
    }
  }
  for (const auto& [label, d] : report.stages) print_decision(label, d);
  std::printf("final: %s\n", report.final_reply.c_str());
  return 0;
}

}  // namespace tern::app
