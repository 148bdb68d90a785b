// `tern policy explain` (see policy_commands.h). The same decision functions
// and DNS helpers as the SMTP session, on a private io_context with the
// configured resolver. Recipients count as local when their domain is one of
// domains.local (the user directory is not consulted).
#include "app/policy_commands.h"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
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
#include "policy/decision.h"
#include "policy/decision_dns.h"
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
               "                           [--message FILE] [--listener mx|submission] [--authenticated yes]\n",
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

asio::awaitable<Report> explain(dns::Resolver& r, const config::Config& cfg, policy::SessionFacts facts, IpAddress ip,
                                std::vector<std::string> rcpts, const mail::Message* message) {
  Report report;
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
    std::string domain = policy::domain_of(rcpt);
    bool local = std::find(cfg.domains.local.begin(), cfg.domains.local.end(), domain) != cfg.domains.local.end();
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

}  // namespace

int policy_command(const std::vector<std::string>& p, const std::map<std::string, std::string>& o,
                   const config::Config& cfg) {
  if (p.size() != 2 || p[1] != "explain") return usage_error("expected: tern policy explain [options]");
  static const std::set<std::string> allowed = {"ip",       "helo",          "mail-from", "rcpt", "message",
                                                "listener", "authenticated", "config",    "dns"};
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

  std::optional<mail::Message> message;
  if (o.count("message")) {
    std::ifstream in(o.at("message"), std::ios::binary);
    if (!in) return usage_error(o.at("message") + ": cannot open");
    std::string text;
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (text.size() > kMaxMessageSize) return usage_error(o.at("message") + ": larger than 64 MiB");
    auto parsed = mail::Message::parse(mail::to_crlf(text));
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
  const mail::Message* msg = message ? &*message : nullptr;
  IpAddress client = ip->unmapped();
  auto future = asio::co_spawn(ctx, explain(**resolver, cfg, facts, client, rcpts, msg), asio::use_future);
  ctx.run();
  Report report = future.get();
  for (const auto& [label, d] : report.stages) print_decision(label, d);
  std::printf("final: %s\n", report.final_reply.c_str());
  return 0;
}

}  // namespace tern::app
