// The [[milter]] chain of one SMTP connection (see milter_chain.h).
#include "server/milter_chain.h"

#include <algorithm>
#include <utility>

#include "base/log.h"
#include "base/strings.h"
#include "milter/rewrite.h"

namespace tern::server {

namespace asio = boost::asio;

struct MilterChain::Member {
  config::MilterConfig config;
  std::unique_ptr<milter::MilterSession> session;
  bool dead = false;  // failed with on_failure = accept: left out for the rest of the connection
};

namespace {

MilterVerdict refusal(int code, std::string enhanced, std::string text, const std::string& milter) {
  MilterVerdict v;
  v.kind = MilterVerdict::Kind::kRefuse;
  v.code = code;
  v.enhanced = std::move(enhanced);
  v.text = std::move(text);
  v.milter = milter;
  return v;
}

}  // namespace

MilterChain::MilterChain(asio::any_io_executor executor, const std::vector<config::MilterConfig>& milters)
    : executor_(std::move(executor)) {
  for (const auto& c : milters) {
    auto m = std::make_unique<Member>();
    m->config = c;
    milter::MilterOptions options;
    options.address = c.address;
    options.connect_timeout = std::chrono::seconds(c.connect_timeout);
    options.reply_timeout = std::chrono::seconds(c.reply_timeout);
    options.send_timeout = std::chrono::seconds(c.reply_timeout);
    m->session = std::make_unique<milter::MilterSession>(executor_, options);
    members_.push_back(std::move(m));
  }
}

MilterChain::~MilterChain() = default;

bool MilterChain::wants_message() const {
  if (connection_refusal_) return false;
  return std::any_of(members_.begin(), members_.end(), [](const auto& m) { return !m->dead; });
}

MilterVerdict MilterChain::on_failure(Member& m, const Error& error, const char* stage) {
  auto line = log::warn("milter_failed");
  line.kv("milter", m.config.address)
      .kv("stage", stage)
      .kv("on_failure", config::milter_on_failure_name(m.config.on_failure))
      .kv("error", error.text);
  switch (m.config.on_failure) {
    case config::MilterOnFailure::kAccept:
      m.dead = true;
      return MilterVerdict{};
    case config::MilterOnFailure::kReject:
      connection_refusal_ = refusal(550, "5.7.1", "Service unavailable (content filter failure)", m.config.address);
      return *connection_refusal_;
    case config::MilterOnFailure::kTempfail:
      break;
  }
  connection_refusal_ = refusal(
      451, "4.7.1", "Service temporarily unavailable (content filter failure), try again later", m.config.address);
  return *connection_refusal_;
}

std::optional<MilterVerdict> MilterChain::absorb(Member& m, const Result<milter::Verdict>& result, const char* stage) {
  if (!result) {
    MilterVerdict v = on_failure(m, result.error(), stage);
    if (v.kind == MilterVerdict::Kind::kContinue) return std::nullopt;
    return v;
  }
  const milter::Verdict& verdict = result.value();
  using K = milter::Verdict::Kind;
  switch (verdict.kind) {
    case K::kContinue:
    case K::kAccept:
      return std::nullopt;
    case K::kDiscard: {
      MilterVerdict v;
      v.kind = MilterVerdict::Kind::kDiscard;
      v.milter = m.config.address;
      return v;
    }
    case K::kReject:
    case K::kTempfail:
    case K::kReply: {
      std::string text = verdict.text.substr(0, verdict.text.find('\n'));
      std::string enhanced = verdict.enhanced;
      if (enhanced.empty()) enhanced = verdict.code >= 500 ? "5.7.1" : "4.7.1";
      log::info("milter_refused")
          .kv("milter", m.config.address)
          .kv("stage", stage)
          .kv("reply", std::to_string(verdict.code) + " " + enhanced + " " + text);
      return refusal(verdict.code, enhanced, text, m.config.address);
    }
  }
  return std::nullopt;
}

asio::awaitable<MilterVerdict> MilterChain::connect(const MilterConnection& c) {
  std::string client_name = c.client_name.empty() ? "[" + c.client_addr + "]" : c.client_name;
  for (auto& m : members_) {
    if (connection_refusal_) co_return *connection_refusal_;
    if (m->dead) continue;
    auto& s = *m->session;
    // Sendmail's macro names (libmilter's smfi_getsymval).
    s.set_macro("j", c.our_hostname);
    s.set_macro("v", "tern");
    s.set_macro("{daemon_name}", c.daemon_name);
    s.set_macro("{daemon_addr}", c.daemon_addr);
    s.set_macro("{daemon_port}", std::to_string(c.daemon_port));
    s.set_macro("{if_name}", c.our_hostname);
    s.set_macro("{if_addr}", c.daemon_addr);
    s.set_macro("{client_addr}", c.client_addr);
    s.set_macro("{client_port}", std::to_string(c.client_port));
    s.set_macro("{client_name}", client_name);
    s.set_macro("{client_ptr}", client_name);
    s.set_macro("{client_resolve}", c.client_name.empty() ? "FAIL" : "OK");
    s.set_macro("_", client_name + " [" + c.client_addr + "]");
    Status opened = co_await s.open();
    if (!opened) {
      MilterVerdict v = on_failure(*m, opened.error(), "connect");
      if (v.kind != MilterVerdict::Kind::kContinue) co_return v;
      continue;
    }
    milter::ConnectInfo info;
    info.hostname = client_name;
    info.family = c.ipv6 ? milter::Family::kInet6 : milter::Family::kInet;
    info.address = c.client_addr;
    info.port = c.client_port;
    auto r = co_await s.connect(info);
    if (auto v = absorb(*m, r, "connect")) {
      if (v->refused()) connection_refusal_ = *v;
      if (v->kind != MilterVerdict::Kind::kContinue) co_return *v;
    }
  }
  co_return MilterVerdict{};
}

asio::awaitable<MilterVerdict> MilterChain::helo(const std::string& name, const std::string& tls_version,
                                                 const std::string& cipher, int cipher_bits) {
  for (auto& m : members_) {
    // A refusal of the connection (or a failed milter) is answered at MAIL
    // FROM: refusing EHLO would leave clients guessing.
    if (connection_refusal_) co_return MilterVerdict{};
    if (m->dead) continue;
    auto& s = *m->session;
    if (!tls_version.empty()) {
      s.set_macro("{tls_version}", tls_version);
      s.set_macro("{cipher}", cipher);
      s.set_macro("{cipher_bits}", std::to_string(cipher_bits));
    }
    auto r = co_await s.helo(name);
    if (auto v = absorb(*m, r, "helo"); v && v->refused()) co_return *v;
  }
  co_return MilterVerdict{};
}

asio::awaitable<MilterVerdict> MilterChain::mail_from(const std::string& sender, const std::vector<std::string>& args,
                                                      const std::string& auth_user, const std::string& auth_type) {
  if (in_message_) co_await abort();
  in_message_ = true;
  for (auto& m : members_) {
    if (connection_refusal_) co_return *connection_refusal_;
    if (m->dead) continue;
    auto& s = *m->session;
    if (!auth_user.empty()) {
      s.set_macro("{auth_authen}", auth_user);
      s.set_macro("{auth_type}", auth_type);
      s.set_macro("{auth_ssf}", "0");
    } else {
      s.clear_macro("{auth_authen}");
      s.clear_macro("{auth_type}");
      s.clear_macro("{auth_ssf}");
    }
    s.set_macro("{mail_addr}", sender);
    s.set_macro("{mail_mailer}", "esmtp");
    size_t at = sender.rfind('@');
    s.set_macro("{mail_host}", at == std::string::npos ? std::string() : sender.substr(at + 1));
    auto r = co_await s.mail_from(sender, args);
    if (auto v = absorb(*m, r, "mail")) {
      if (v->kind != MilterVerdict::Kind::kContinue) co_return *v;
    }
  }
  co_return MilterVerdict{};
}

asio::awaitable<MilterVerdict> MilterChain::rcpt_to(const std::string& recipient, const std::vector<std::string>& args,
                                                    bool local) {
  for (auto& m : members_) {
    if (connection_refusal_) co_return *connection_refusal_;
    if (m->dead) continue;
    auto& s = *m->session;
    s.set_macro("{rcpt_addr}", recipient);
    s.set_macro("{rcpt_mailer}", local ? "local" : "esmtp");
    size_t at = recipient.rfind('@');
    s.set_macro("{rcpt_host}", at == std::string::npos ? std::string() : recipient.substr(at + 1));
    auto r = co_await s.rcpt_to(recipient, args);
    if (auto v = absorb(*m, r, "rcpt")) {
      if (v->kind != MilterVerdict::Kind::kContinue) co_return *v;
    }
  }
  co_return MilterVerdict{};
}

asio::awaitable<MilterVerdict> MilterChain::end_of_data(const std::string& queue_id, MilterMessage& message) {
  for (auto& m : members_) {
    if (connection_refusal_) co_return *connection_refusal_;
    if (m->dead) continue;
    auto& s = *m->session;
    s.set_macro("i", queue_id);
    s.set_macro("{msg_id}", queue_id);

    // RFC 5322 §2.1: header section, empty line, body.
    const std::string& content = message.content;
    size_t blank = content.rfind("\r\n", 0) == 0 ? 0 : content.find("\r\n\r\n");
    std::string header_section;
    std::string body;
    if (blank == std::string::npos) {
      header_section = content;
    } else {
      size_t header_end = blank == 0 ? 0 : blank + 2;
      header_section = content.substr(0, header_end);
      body = content.substr(header_end + 2);
    }
    std::vector<milter::HeaderField> fields = milter::split_header_section(header_section);

    // A verdict other than continue from a stage before end of message: an
    // accept ends this milter's part in the message; anything else decides.
    bool done = false;
    auto stage_result = [&](const Result<milter::Verdict>& r, const char* stage) -> std::optional<MilterVerdict> {
      if (r && r.value().kind == milter::Verdict::Kind::kAccept) {
        done = true;
        return std::nullopt;
      }
      return absorb(*m, r, stage);
    };
    auto r = co_await s.data();
    if (auto v = stage_result(r, "data")) co_return *v;
    if (m->dead) continue;
    for (const auto& f : fields) {
      if (done || m->dead) break;
      if (f.name.empty()) continue;
      // Sendmail and Postfix hand header values to milters with LF line
      // ends (their internal form); libmilter-based milters (OpenDKIM among
      // them) rebuild the header from it. A named value: GCC 12 mishandles
      // temporaries passed into a co_await.
      std::string value = crlf_to_lf(f.value);
      auto hr = co_await s.header(f.name, value);
      if (auto v = stage_result(hr, "header")) co_return *v;
    }
    if (!done && !m->dead) {
      auto er = co_await s.end_of_headers();
      if (auto v = stage_result(er, "end_of_headers")) co_return *v;
    }
    if (!done && !m->dead) {
      auto br = co_await s.body(body);
      if (auto v = stage_result(br, "body")) co_return *v;
    }
    if (done || m->dead) continue;
    auto eom = co_await s.end_of_message();
    if (!eom) {
      MilterVerdict v = on_failure(*m, eom.error(), "end_of_message");
      if (v.kind != MilterVerdict::Kind::kContinue) co_return v;
      continue;
    }
    Result<milter::Verdict> verdict = eom.value().verdict;
    if (auto v = absorb(*m, verdict, "end_of_message")) co_return *v;

    // Modifications, in the order the milter sent them (Sendmail semantics).
    bool headers_changed = false;
    bool body_changed = false;
    for (const auto& mod : eom.value().modifications) {
      using K = milter::Modification::Kind;
      switch (mod.kind) {
        case K::kAddHeader:
        case K::kInsertHeader:
        case K::kChangeHeader:
          headers_changed = true;
          break;
        case K::kReplaceBody:
          // Wire form, so a milter cannot smuggle lone line ends into the queue.
          body = normalize_crlf(mod.body);
          body_changed = true;
          break;
        case K::kAddRecipient:
          message.add_rcpts.push_back(milter::unbracket_address(mod.address));
          break;
        case K::kDeleteRecipient:
          message.delete_rcpts.push_back(milter::unbracket_address(mod.address));
          break;
        case K::kChangeSender:
          message.mail_from = milter::unbracket_address(mod.address);
          break;
        case K::kQuarantine:
          message.quarantine = mod.reason.empty() ? std::string("quarantined by milter") : mod.reason;
          break;
      }
    }
    if (headers_changed) milter::apply_header_changes(fields, eom.value().modifications);
    if (headers_changed || body_changed) {
      message.content = milter::join_header_section(fields);
      message.content += "\r\n";
      message.content += body;
      message.content_changed = true;
    }
    if (!eom.value().modifications.empty()) {
      log::info("milter_modified")
          .kv("id", queue_id)
          .kv("milter", m->config.address)
          .kv("changes", static_cast<uint64_t>(eom.value().modifications.size()))
          .kv("headers", headers_changed)
          .kv("body", body_changed);
    }
  }
  in_message_ = false;
  co_return MilterVerdict{};
}

asio::awaitable<void> MilterChain::abort() {
  if (!in_message_) co_return;
  in_message_ = false;
  for (auto& m : members_) {
    if (m->dead || !m->session->is_open()) continue;
    // A failure shows at the next stage, where on_failure applies.
    Status s = co_await m->session->abort_message();
    (void)s;
  }
}

asio::awaitable<void> MilterChain::quit() {
  for (auto& m : members_) co_await m->session->quit();
}

}  // namespace tern::server
