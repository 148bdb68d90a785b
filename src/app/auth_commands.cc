// Authentication subcommands (see auth_commands.h). Each reads its input,
// runs the library coroutine to completion on a private io_context and
// prints a result; bad input is reported on stderr with exit status 1
// (usage errors: 2).
#include "app/auth_commands.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <set>
#include <sstream>

#include "auth/arc.h"
#include "auth/dkim.h"
#include "auth/evaluate.h"
#include "base/fs.h"
#include "base/net.h"
#include "base/strings.h"
#include "dns/unbound_resolver.h"
#include "mail/message.h"
#include "server/server.h"

namespace tern::app {
namespace {

namespace asio = boost::asio;

int fail(const std::string& msg) {
  std::fprintf(stderr, "tern: %s\n", msg.c_str());
  return 1;
}

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "tern: %s\n", msg.c_str());
  return 2;
}

std::string read_stdin() {
  std::string data((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  return data;
}

Result<mail::Message> read_message(const std::string& path) {
  std::string text;
  if (path.empty() || path == "-") {
    text = read_stdin();
  } else {
    auto t = fs::read_file(path);
    if (!t) return t.error();
    text = std::move(*t);
  }
  if (text.empty()) return Error::perm("5.6.0", "empty message");
  auto m = mail::Message::parse(mail::to_crlf(text));
  if (!m) return Error::perm("5.6.0", "not an RFC 5322 message: " + m.error().text);
  return m;
}

// Runs `make(resolver)` to completion with a resolver on a private context.
template <class T, class Make>
Result<T> run_with_dns(const config::Config& cfg, Make make) {
  asio::io_context ctx;
  auto resolver = dns::UnboundResolver::create(ctx.get_executor(), server::unbound_config(cfg));
  if (!resolver) return Error::local("dns: " + resolver.error().text);
  auto future = asio::co_spawn(ctx, make(**resolver), asio::use_future);
  ctx.run();
  return future.get();
}

// Checks that only known options were given, and the required ones.
bool check_options(const std::map<std::string, std::string>& options, const std::set<std::string>& allowed,
                   const std::set<std::string>& required, std::string& problem) {
  for (const auto& [k, v] : options) {
    if (k == "config" || k == "dns") continue;
    if (!allowed.count(k)) {
      problem = "unknown option --" + k;
      return false;
    }
  }
  for (const auto& k : required) {
    if (!options.count(k) || options.at(k).empty()) {
      problem = "missing --" + k;
      return false;
    }
  }
  return true;
}

std::string opt(const std::map<std::string, std::string>& o, const std::string& k, std::string def = {}) {
  auto it = o.find(k);
  return it == o.end() ? def : it->second;
}

// Zone-file form of a TXT record: strings of at most 255 octets.
std::string zone_txt(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); i += 255) {
    if (!out.empty()) out += ' ';
    out += '"';
    out += text.substr(i, 255);
    out += '"';
  }
  return out;
}

int dkim_keygen(const std::map<std::string, std::string>& o) {
  std::string problem;
  if (!check_options(o, {"algorithm", "bits", "selector", "domain", "key"}, {"selector", "domain"}, problem)) {
    return usage_error(problem);
  }
  std::string alg = opt(o, "algorithm", "rsa");
  auth::crypto::KeyType type;
  if (alg == "rsa") {
    type = auth::crypto::KeyType::kRsa;
  } else if (alg == "ed25519") {
    type = auth::crypto::KeyType::kEd25519;
  } else {
    return usage_error("--algorithm must be rsa or ed25519");
  }
  unsigned long long bits = 2048;
  if (o.count("bits") && (!parse_u64(o.at("bits"), bits) || bits < 1024 || bits > 8192)) {
    return usage_error("--bits must be between 1024 and 8192 (RFC 8301: at least 1024)");
  }
  std::string selector = to_lower(o.at("selector")), domain = to_lower(o.at("domain"));
  std::string key_path = opt(o, "key", selector + "." + domain + ".pem");
  auto key = auth::dkim::keygen(type, static_cast<int>(bits));
  if (!key) return fail(key.error().text);
  if (fs::exists(key_path)) return fail(key_path + ": exists; refusing to overwrite a key");
  if (auto s = fs::write_file_durable(key_path, key->private_pem, 0600); !s) return fail(s.error().text);
  std::fprintf(stderr, "private key written to %s\n", key_path.c_str());
  std::printf("%s._domainkey.%s. IN TXT %s\n", selector.c_str(), domain.c_str(), zone_txt(key->dns_txt).c_str());
  return 0;
}

// What `dkim sign` and `arc seal` both need: --key, --domain, --selector
// and the message (--message FILE or standard input).
struct SignerInput {
  auth::crypto::PrivateKey key;
  std::string domain, selector;
  mail::Message message;
};

Result<SignerInput> load_signer(const std::map<std::string, std::string>& o) {
  auto key = auth::dkim::load_private_key(o.at("key"));
  if (!key) return Error::perm("5.0.0", "--key " + o.at("key") + ": " + key.error().text);
  auto message = read_message(opt(o, "message"));
  if (!message) return message.error();
  return SignerInput{std::move(*key), to_lower(o.at("domain")), to_lower(o.at("selector")), std::move(*message)};
}

int dkim_sign(const std::map<std::string, std::string>& o) {
  std::string problem;
  if (!check_options(o, {"key", "domain", "selector", "headers", "message"}, {"key", "domain", "selector"},
                     problem)) {
    return usage_error(problem);
  }
  auto in = load_signer(o);
  if (!in) return fail(in.error().text);
  auto& message = in->message;
  auth::dkim::SignOptions so;
  so.domain = std::move(in->domain);
  so.selector = std::move(in->selector);
  so.key = std::move(in->key);
  if (o.count("headers")) {
    for (auto h : split(o.at("headers"), ':')) {
      for (auto h2 : split(h, ',')) {
        auto t = trim(h2);
        if (!t.empty()) so.headers.emplace_back(t);
      }
    }
  }
  auto field = auth::dkim::sign(message, so);
  if (!field) return fail(field.error().text);
  std::string out = *field + message.text();
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int dkim_verify(const std::map<std::string, std::string>& o, const config::Config& cfg) {
  std::string problem;
  if (!check_options(o, {"message"}, {}, problem)) return usage_error(problem);
  auto message = read_message(opt(o, "message"));
  if (!message) return fail(message.error().text);
  auth::dkim::VerifyOptions vo;
  auto results = run_with_dns<std::vector<auth::dkim::DkimResult>>(cfg, [&](dns::Resolver& r) {
    return auth::dkim::verify(r, *message, vo);
  });
  if (!results) return fail(results.error().text);
  if (results->empty()) {
    std::printf("no DKIM-Signature\n");
    return 1;
  }
  bool any_pass = false;
  for (const auto& d : *results) {
    any_pass = any_pass || d.status == auth::dkim::Outcome::kPass;
    std::string line = "domain=" + d.domain + " selector=" + d.selector + " result=" +
                       auth::dkim::outcome_name(d.status) + " algorithm=" + d.algorithm;
    if (d.key_bits > 0) line += " key_bits=" + std::to_string(d.key_bits);
    if (!d.reason.empty()) line += " reason=\"" + d.reason + "\"";
    std::printf("%s\n", line.c_str());
  }
  return any_pass ? 0 : 1;
}

int arc_verify(const std::map<std::string, std::string>& o, const config::Config& cfg) {
  std::string problem;
  if (!check_options(o, {"message"}, {}, problem)) return usage_error(problem);
  auto message = read_message(opt(o, "message"));
  if (!message) return fail(message.error().text);
  auth::arc::VerifyOptions vo;
  auto result = run_with_dns<auth::arc::ArcResult>(cfg, [&](dns::Resolver& r) { return auth::arc::verify(r, *message, vo); });
  if (!result) return fail(result.error().text);
  std::string line = std::string("cv=") + auth::arc::chain_status_name(result->status) +
                     " instances=" + std::to_string(result->instances) +
                     " oldest-pass=" + std::to_string(result->oldest_pass);
  if (!result->domain.empty()) line += " domain=" + result->domain + " selector=" + result->selector;
  if (!result->reason.empty()) line += " reason=\"" + result->reason + "\"";
  std::printf("%s\n", line.c_str());
  return result->status == auth::arc::ChainStatus::kPass ? 0 : 1;
}

int arc_seal(const std::map<std::string, std::string>& o, const config::Config& cfg) {
  std::string problem;
  if (!check_options(o, {"key", "domain", "selector", "authserv-id", "message"}, {"key", "domain", "selector"},
                     problem)) {
    return usage_error(problem);
  }
  auto in = load_signer(o);
  if (!in) return fail(in.error().text);
  auto& message = in->message;
  std::string authserv_id = opt(o, "authserv-id", cfg.auth.authserv_id);
  // The chain status we seal with is our own validation of what arrived.
  auth::arc::VerifyOptions vo;
  auto chain = run_with_dns<auth::arc::ArcResult>(cfg, [&](dns::Resolver& r) { return auth::arc::verify(r, message, vo); });
  if (!chain) return fail(chain.error().text);
  std::string payload = auth::arc::consolidate_auth_results(message, authserv_id);
  auth::arc::SealOptions so;
  so.domain = std::move(in->domain);
  so.selector = std::move(in->selector);
  so.key = std::move(in->key);
  auto fields = auth::arc::seal(message, chain->status, payload, so);
  if (!fields) return fail(fields.error().text);
  std::string out = *fields + message.text();
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int auth_check(const std::map<std::string, std::string>& o, const config::Config& cfg) {
  std::string problem;
  if (!check_options(o, {"message", "ip", "helo", "mail-from", "authserv-id"}, {"message", "ip", "helo"}, problem) ||
      !o.count("mail-from")) {
    return usage_error(problem.empty() ? "missing --mail-from (use --mail-from '' for the null sender)" : problem);
  }
  auto ip = IpAddress::parse(o.at("ip"));
  if (!ip) return usage_error("--ip " + o.at("ip") + ": not an IP address");
  auto message = read_message(o.at("message"));
  if (!message) return fail(o.at("message") + ": " + message.error().text);
  std::string mail_from = o.at("mail-from");
  if (mail_from.size() >= 2 && mail_from.front() == '<' && mail_from.back() == '>') {
    mail_from = mail_from.substr(1, mail_from.size() - 2);
  }
  if (!mail_from.empty() && mail_from.find('@') == std::string::npos) {
    return usage_error("--mail-from " + mail_from + ": not an address");
  }
  auth::SessionFacts facts{ip->unmapped(), o.at("helo"), mail_from};
  std::string authserv_id = opt(o, "authserv-id", cfg.auth.authserv_id);
  auto ev = run_with_dns<auth::Evaluation>(cfg, [&](dns::Resolver& r) -> asio::awaitable<auth::Evaluation> {
    bool helo = false;
    auto spf = co_await auth::evaluate_spf(r, facts, cfg.server.hostname, &helo);
    auth::dkim::VerifyOptions dkim_options;
    co_return co_await auth::evaluate_message(r, facts, spf, helo, *message, authserv_id, dkim_options);
  });
  if (!ev) return fail(ev.error().text);
  std::string header = ev->header();
  std::fwrite(header.data(), 1, header.size(), stdout);
  return 0;
}

}  // namespace

int auth_command(const std::vector<std::string>& p, const std::map<std::string, std::string>& options,
                 const config::Config& cfg) {
  if (p.size() != 2) return usage_error("expected: tern " + p[0] + " <subcommand> [options]");
  const std::string& group = p[0];
  const std::string& sub = p[1];
  if (group == "auth" && sub == "check") return auth_check(options, cfg);
  if (group == "dkim" && sub == "keygen") return dkim_keygen(options);
  if (group == "dkim" && sub == "sign") return dkim_sign(options);
  if (group == "dkim" && sub == "verify") return dkim_verify(options, cfg);
  if (group == "arc" && sub == "seal") return arc_seal(options, cfg);
  if (group == "arc" && sub == "verify") return arc_verify(options, cfg);
  return usage_error("unknown command: " + group + " " + sub);
}

}  // namespace tern::app
