// Milter client sessions over Boost.Asio coroutines (see session.h).
#include "milter/session.h"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <utility>

#include "base/net.h"

namespace tern::milter {

namespace asio = boost::asio;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// Macros sent before each stage when the milter did not ask for its own
// list; the names Sendmail sends by default, plus the ones tern fills in.
const std::vector<std::string>& default_macros(Stage stage) {
  static const std::array<std::vector<std::string>, kStageCount> defaults = {{
      {"j", "_", "v", "{daemon_name}", "{daemon_addr}", "{if_name}", "{if_addr}", "{client_addr}", "{client_port}",
       "{client_name}", "{client_ptr}", "{client_resolve}"},                              // connect
      {"{tls_version}", "{cipher}", "{cipher_bits}", "{cert_subject}", "{cert_issuer}"},  // helo
      {"i", "{auth_type}", "{auth_authen}", "{auth_ssf}", "{auth_author}", "{mail_mailer}", "{mail_host}",
       "{mail_addr}"},                                  // mail from
      {"{rcpt_mailer}", "{rcpt_host}", "{rcpt_addr}"},  // rcpt to
      {"i"},                                            // data
      {"i", "{msg_id}"},                                // end of message
      {},                                               // end of headers
  }};
  return defaults[static_cast<size_t>(stage)];
}

Verdict refusal(Verdict::Kind kind) {
  Verdict v;
  v.kind = kind;
  if (kind == Verdict::Kind::kReject) {
    v.code = 550;
    v.enhanced = "5.7.1";
    v.text = "Command rejected";
  } else {
    v.code = 451;
    v.enhanced = "4.7.1";
    v.text = "Please try again later";
  }
  return v;
}

}  // namespace

// ---- MilterAddress ----

Result<MilterAddress> MilterAddress::parse(std::string_view text) {
  MilterAddress a;
  auto bad = [&]() { return Error::perm("5.3.5", "bad milter address \"" + std::string(text) + "\""); };
  std::string_view rest = text;
  if (rest.starts_with("unix:") || rest.starts_with("local:") || rest.starts_with("/")) {
    rest.remove_prefix(rest.starts_with("unix:") ? 5 : rest.starts_with("local:") ? 6 : 0);
    if (rest.empty() || rest.size() > 107) return bad();
    a.is_unix = true;
    a.path = std::string(rest);
    return a;
  }
  if (rest.starts_with("inet:") || rest.starts_with("inet6:")) {
    // Sendmail's "inet:port@host" spelling.
    rest.remove_prefix(rest.starts_with("inet:") ? 5 : 6);
    size_t at = rest.find('@');
    std::string_view port = rest.substr(0, at);
    std::string_view host = at == std::string_view::npos ? std::string_view("localhost") : rest.substr(at + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host.empty() || port.empty() || port.size() > 5) return bad();
    uint32_t value = 0;
    for (char c : port) {
      if (c < '0' || c > '9') return bad();
      value = value * 10 + static_cast<uint32_t>(c - '0');
    }
    if (value == 0 || value > 65535) return bad();
    a.host = std::string(host);
    a.port = static_cast<uint16_t>(value);
    return a;
  }
  auto hp = HostPort::parse(rest);
  if (!hp || hp->port == 0 || hp->host.empty()) return bad();
  a.host = hp->host;
  a.port = hp->port;
  return a;
}

std::string MilterAddress::to_string() const {
  if (is_unix) return "unix:" + path;
  return HostPort{host, port}.to_string();
}

std::string Verdict::to_string() const {
  if (!refuses()) return {};
  std::string first = text.substr(0, text.find('\n'));
  std::string out = std::to_string(code);
  if (!enhanced.empty()) out += " " + enhanced;
  if (!first.empty()) out += " " + first;
  return out;
}

// ---- MilterSession ----

MilterSession::MilterSession(asio::any_io_executor executor, MilterOptions options)
    : executor_(executor),
      options_(std::move(options)),
      socket_(executor),
      timer_(executor),
      reader_(options_.limits) {}

MilterSession::~MilterSession() {
  ++timer_generation_;
  boost::system::error_code ec;
  socket_.close(ec);
}

bool MilterSession::is_open() const {
  return opened_ && !failure_ && socket_.is_open();
}

void MilterSession::set_macro(std::string_view name, std::string value) {
  macros_[canonical_macro_name(name)] = std::move(value);
}

void MilterSession::clear_macro(std::string_view name) {
  macros_.erase(canonical_macro_name(name));
}

Error MilterSession::fail(Error error) {
  error.text = "milter " + options_.address + ": " + error.text;
  if (!failure_) failure_ = error;
  ++timer_generation_;
  timer_.cancel();
  boost::system::error_code ec;
  socket_.close(ec);
  return error;
}

void MilterSession::arm_timer(std::chrono::milliseconds timeout) {
  timed_out_ = false;
  uint64_t generation = ++timer_generation_;
  timer_.expires_after(timeout);
  // A stale expiry (of an earlier arm) must not cancel a later operation.
  timer_.async_wait([this, generation](boost::system::error_code ec) {
    if (ec || generation != timer_generation_) return;
    timed_out_ = true;
    boost::system::error_code ignored;
    socket_.cancel(ignored);
  });
}

void MilterSession::disarm_timer() {
  ++timer_generation_;
  timer_.cancel();
}

asio::awaitable<Status> MilterSession::open() {
  auto parsed = MilterAddress::parse(options_.address);
  if (!parsed) co_return fail(Error::temp("4.7.1", parsed.error().text));
  const MilterAddress& address = parsed.value();
  arm_timer(options_.connect_timeout);
  boost::system::error_code last_error;
  bool connected = false;
  if (address.is_unix) {
    asio::generic::stream_protocol::endpoint endpoint{asio::local::stream_protocol::endpoint(address.path)};
    auto [ec] = co_await socket_.async_connect(endpoint, kNoThrow);
    connected = !ec;
    last_error = ec;
  } else {
    asio::ip::tcp::resolver resolver(executor_);
    auto [rec, results] = co_await resolver.async_resolve(address.host, std::to_string(address.port), kNoThrow);
    if (rec) last_error = rec;
    for (const auto& entry : results) {
      if (timed_out_) break;
      boost::system::error_code ignored;
      socket_.close(ignored);
      asio::generic::stream_protocol::endpoint endpoint{entry.endpoint()};
      auto [ec] = co_await socket_.async_connect(endpoint, kNoThrow);
      if (!ec) {
        connected = true;
        break;
      }
      last_error = ec;
    }
  }
  if (!connected) {
    disarm_timer();
    if (timed_out_) co_return fail(Error::temp("4.7.1", "connect timed out"));
    co_return fail(Error::temp("4.7.1", "connect failed: " + last_error.message()));
  }
  disarm_timer();

  // Option negotiation: offer every action and protocol flag tern honours;
  // the milter answers with the subset it wants.
  Status sent = co_await send_packet(cmd::kOptionNegotiation,
                                     encode_negotiation(kProtocolVersion, action::kAll, proto::kOffered));
  if (!sent) co_return sent.error();
  Result<Packet> packet = co_await read_packet(options_.connect_timeout);
  if (!packet) co_return packet.error();
  if (packet->command != cmd::kOptionNegotiation) {
    co_return fail(Error::temp("4.7.0", "expected option negotiation, got another reply"));
  }
  auto negotiation = parse_negotiation(packet->data, options_.limits);
  if (!negotiation) co_return fail(negotiation.error());
  const Negotiation& n = negotiation.value();
  if (n.version < 2 || n.version > kProtocolVersion) {
    co_return fail(Error::temp("4.7.0", "unsupported milter protocol version " + std::to_string(n.version)));
  }
  if ((n.actions & ~action::kAll) != 0) co_return fail(Error::temp("4.7.0", "milter asks for unknown actions"));
  if ((n.protocol & ~proto::kOffered) != 0) {
    co_return fail(Error::temp("4.7.0", "milter asks for protocol flags tern does not offer"));
  }
  negotiated_ = n;
  opened_ = true;
  co_return ok();
}

asio::awaitable<Status> MilterSession::send_packet(char command, std::string_view data) {
  if (failure_) co_return *failure_;
  if (!socket_.is_open()) co_return fail(Error::temp("4.7.1", "not connected"));
  std::string packet = encode_packet(command, data);
  arm_timer(options_.send_timeout);
  auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(packet), kNoThrow);
  disarm_timer();
  if (ec) {
    if (timed_out_) co_return fail(Error::temp("4.7.1", "timed out sending"));
    co_return fail(Error::temp("4.7.1", "send failed: " + ec.message()));
  }
  co_return ok();
}

asio::awaitable<Result<Packet>> MilterSession::read_packet(std::chrono::milliseconds timeout) {
  if (failure_) co_return *failure_;
  std::array<char, 16384> buffer;
  for (;;) {
    auto next = reader_.next();
    if (!next) co_return fail(next.error());
    if (next.value()) co_return std::move(*next.value());
    arm_timer(timeout);
    auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buffer), kNoThrow);
    disarm_timer();
    if (ec) {
      if (timed_out_) co_return fail(Error::temp("4.7.1", "timed out waiting for a reply"));
      if (ec == asio::error::eof) co_return fail(Error::temp("4.7.1", "connection closed by the milter"));
      co_return fail(Error::temp("4.7.1", "read failed: " + ec.message()));
    }
    reader_.feed(std::string_view(buffer.data(), n));
  }
}

asio::awaitable<Result<MilterReply>> MilterSession::read_reply(std::chrono::milliseconds timeout) {
  for (;;) {
    Result<Packet> packet = co_await read_packet(timeout);
    if (!packet) co_return packet.error();
    auto reply = parse_reply(packet.value());
    if (!reply) co_return fail(reply.error());
    // SMFIR_PROGRESS: the milter is alive and working; wait again in full.
    if (reply->kind == MilterReply::Kind::kProgress) continue;
    co_return std::move(reply.value());
  }
}

asio::awaitable<Status> MilterSession::send_macros(Stage stage, char command) {
  auto listed = negotiated_.symbol_lists.find(stage);
  const std::vector<std::string>& names =
      listed != negotiated_.symbol_lists.end() ? listed->second : default_macros(stage);
  std::vector<std::pair<std::string, std::string>> values;
  for (const auto& name : names) {
    auto found = macros_.find(name);
    if (found != macros_.end()) values.emplace_back(found->first, found->second);
  }
  if (values.empty()) co_return ok();
  co_return co_await send_packet(cmd::kMacro, encode_macros(command, values));
}

std::optional<Verdict> MilterSession::finished_verdict() const {
  if (done_scope_ == Scope::kNone) return std::nullopt;
  return done_verdict_;
}

Result<Verdict> MilterSession::to_verdict(const MilterReply& reply, Scope accept_scope) {
  using K = MilterReply::Kind;
  Verdict v;
  switch (reply.kind) {
    case K::kContinue:
    case K::kSkip:  // outside the body, skip means "nothing more to say here"
      return v;
    case K::kAccept:
      v.kind = Verdict::Kind::kAccept;
      done_scope_ = accept_scope;
      done_verdict_ = v;
      return v;
    case K::kDiscard:
      v.kind = Verdict::Kind::kDiscard;
      done_scope_ = Scope::kMessage;
      done_verdict_ = v;
      return v;
    case K::kReject:
      return refusal(Verdict::Kind::kReject);
    case K::kTempfail:
      return refusal(Verdict::Kind::kTempfail);
    case K::kConnectionFail:
    case K::kShutdown:
      // The milter gives up on this connection: every later stage tempfails.
      v = refusal(Verdict::Kind::kTempfail);
      done_scope_ = Scope::kConnection;
      done_verdict_ = v;
      return v;
    case K::kReplyCode:
      v.kind = Verdict::Kind::kReply;
      v.code = reply.code;
      v.enhanced = reply.enhanced;
      v.text = reply.text;
      return v;
    default:
      return fail(Error::temp("4.7.0", "modification outside end of message"));
  }
}

asio::awaitable<Result<Verdict>> MilterSession::stage(std::optional<Stage> macro_stage, char command, std::string data,
                                                      uint32_t no_send, uint32_t no_reply, Scope accept_scope) {
  if (failure_) co_return *failure_;
  if (!opened_) co_return fail(Error::temp("4.7.1", "session not open"));
  if (auto done = finished_verdict()) co_return *done;
  if (no_send != 0 && (negotiated_.protocol & no_send) != 0) co_return Verdict::continue_();
  if (macro_stage) {
    Status macros = co_await send_macros(*macro_stage, command);
    if (!macros) co_return macros.error();
  }
  Status sent = co_await send_packet(command, data);
  if (!sent) co_return sent.error();
  if (no_reply != 0 && (negotiated_.protocol & no_reply) != 0) co_return Verdict::continue_();
  Result<MilterReply> reply = co_await read_reply(options_.reply_timeout);
  if (!reply) co_return reply.error();
  // SMFIR_SKIP answers a body chunk: send no more of the body.
  if (command == cmd::kBody && reply->kind == MilterReply::Kind::kSkip) skip_body_ = true;
  co_return to_verdict(reply.value(), accept_scope);
}

asio::awaitable<Result<Verdict>> MilterSession::connect(const ConnectInfo& info) {
  std::string data = encode_connect(info.hostname, info.family, info.port, info.address);
  Result<Verdict> verdict = co_await stage(Stage::kConnect, cmd::kConnect, std::move(data), proto::kNoConnect,
                                           proto::kNoReplyConnect, Scope::kConnection);
  // Refused at connect: the whole connection is refused (as Sendmail does);
  // later stages give the same verdict without asking the milter again.
  if (verdict && verdict->refuses()) {
    done_scope_ = Scope::kConnection;
    done_verdict_ = verdict.value();
  }
  co_return verdict;
}

asio::awaitable<Result<Verdict>> MilterSession::helo(const std::string& helo) {
  std::string data = encode_strings({helo});
  co_return co_await stage(Stage::kHelo, cmd::kHelo, std::move(data), proto::kNoHelo, proto::kNoReplyHelo,
                           Scope::kConnection);
}

asio::awaitable<Result<Verdict>> MilterSession::mail_from(const std::string& sender,
                                                          const std::vector<std::string>& esmtp_args) {
  // A new transaction: what the milter decided for the previous message no longer holds.
  if (done_scope_ == Scope::kMessage) done_scope_ = Scope::kNone;
  skip_body_ = false;
  set_macro("{mail_addr}", sender);
  std::string bracketed = "<" + sender + ">";
  std::vector<std::string_view> parts{bracketed};
  for (const auto& arg : esmtp_args) parts.push_back(arg);
  std::string data = encode_strings(parts);
  co_return co_await stage(Stage::kMailFrom, cmd::kMail, std::move(data), proto::kNoMail, proto::kNoReplyMail,
                           Scope::kMessage);
}

asio::awaitable<Result<Verdict>> MilterSession::rcpt_to(const std::string& recipient,
                                                        const std::vector<std::string>& esmtp_args) {
  set_macro("{rcpt_addr}", recipient);
  std::string bracketed = "<" + recipient + ">";
  std::vector<std::string_view> parts{bracketed};
  for (const auto& arg : esmtp_args) parts.push_back(arg);
  std::string data = encode_strings(parts);
  co_return co_await stage(Stage::kRcptTo, cmd::kRcpt, std::move(data), proto::kNoRcpt, proto::kNoReplyRcpt,
                           Scope::kMessage);
}

asio::awaitable<Result<Verdict>> MilterSession::data() {
  // SMFIC_DATA exists from protocol version 4 on.
  if (opened_ && negotiated_.version < 4) co_return Verdict::continue_();
  co_return co_await stage(Stage::kData, cmd::kData, std::string(), proto::kNoData, proto::kNoReplyData,
                           Scope::kMessage);
}

asio::awaitable<Result<Verdict>> MilterSession::header(const std::string& name, const std::string& value) {
  std::string_view sent_value = value;
  // Without SMFIP_HDR_LEADSPC the milter expects the value without the
  // whitespace that follows the colon.
  if ((negotiated_.protocol & proto::kHeaderLeadingSpace) == 0) {
    size_t start = sent_value.find_first_not_of(" \t");
    sent_value = start == std::string_view::npos ? std::string_view() : sent_value.substr(start);
  }
  std::string data = encode_strings({name, sent_value});
  // Header packets carry no macros of their own.
  co_return co_await stage(std::nullopt, cmd::kHeader, std::move(data), proto::kNoHeaders, proto::kNoReplyHeader,
                           Scope::kMessage);
}

asio::awaitable<Result<Verdict>> MilterSession::end_of_headers() {
  co_return co_await stage(Stage::kEndOfHeaders, cmd::kEndOfHeaders, std::string(), proto::kNoEndOfHeaders,
                           proto::kNoReplyEndOfHeaders, Scope::kMessage);
}

asio::awaitable<Result<Verdict>> MilterSession::body(const std::string& bytes) {
  std::string_view rest = bytes;
  while (!rest.empty() && !skip_body_) {
    std::string chunk(rest.substr(0, kMaxBodyChunk));
    rest.remove_prefix(chunk.size());
    Result<Verdict> verdict = co_await stage(std::nullopt, cmd::kBody, std::move(chunk), proto::kNoBody,
                                             proto::kNoReplyBody, Scope::kMessage);
    if (!verdict || !verdict->is_continue()) co_return verdict;
  }
  co_return Verdict::continue_();
}

asio::awaitable<Result<EndOfMessage>> MilterSession::end_of_message() {
  EndOfMessage result;
  if (failure_) co_return *failure_;
  if (!opened_) co_return fail(Error::temp("4.7.1", "session not open"));
  if (auto done = finished_verdict()) {
    if (done_scope_ == Scope::kMessage) done_scope_ = Scope::kNone;
    result.verdict = *done;
    co_return result;
  }
  Status macros = co_await send_macros(Stage::kEndOfMessage, cmd::kEndOfBody);
  if (!macros) co_return macros.error();
  Status sent = co_await send_packet(cmd::kEndOfBody, std::string_view());
  if (!sent) co_return sent.error();
  size_t replaced_body_bytes = 0;
  std::optional<size_t> replaced_body;  // index of the kReplaceBody modification
  for (;;) {
    Result<MilterReply> reply = co_await read_reply(options_.reply_timeout);
    if (!reply) co_return reply.error();
    MilterReply& r = reply.value();
    if (r.is_verdict()) {
      Result<Verdict> verdict = to_verdict(r, Scope::kMessage);
      if (!verdict) co_return verdict.error();
      result.verdict = verdict.value();
      break;
    }
    // Modifications: only those negotiated, bounded in number and size.
    if ((required_action(r.kind) & negotiated_.actions) == 0) {
      co_return fail(Error::temp("4.7.0", "modification the milter did not negotiate"));
    }
    if (r.kind == MilterReply::Kind::kReplaceBody) {
      replaced_body_bytes += r.body.size();
      if (replaced_body_bytes > options_.max_replaced_body) {
        co_return fail(Error::temp("4.7.0", "replacement body too large"));
      }
      if (!replaced_body) {
        replaced_body = result.modifications.size();
        Modification replace;
        replace.kind = Modification::Kind::kReplaceBody;
        result.modifications.push_back(std::move(replace));
      }
      // Successive SMFIR_REPLBODY packets are pieces of one new body.
      result.modifications[*replaced_body].body.append(r.body);
      continue;
    }
    if (result.modifications.size() >= options_.max_modifications) {
      co_return fail(Error::temp("4.7.0", "too many modifications"));
    }
    Modification m;
    switch (r.kind) {
      case MilterReply::Kind::kAddHeader:
        m.kind = Modification::Kind::kAddHeader;
        break;
      case MilterReply::Kind::kInsertHeader:
        m.kind = Modification::Kind::kInsertHeader;
        break;
      case MilterReply::Kind::kChangeHeader:
        m.kind = Modification::Kind::kChangeHeader;
        break;
      case MilterReply::Kind::kAddRecipient:
        m.kind = Modification::Kind::kAddRecipient;
        break;
      case MilterReply::Kind::kDeleteRecipient:
        m.kind = Modification::Kind::kDeleteRecipient;
        break;
      case MilterReply::Kind::kChangeSender:
        m.kind = Modification::Kind::kChangeSender;
        break;
      default:
        m.kind = Modification::Kind::kQuarantine;
        m.reason = r.text;
        break;
    }
    m.index = r.index;
    m.name = std::move(r.name);
    m.value = std::move(r.value);
    m.address = std::move(r.address);
    m.args = std::move(r.args);
    result.modifications.push_back(std::move(m));
  }
  if (done_scope_ == Scope::kMessage) done_scope_ = Scope::kNone;
  skip_body_ = false;
  co_return result;
}

asio::awaitable<Status> MilterSession::abort_message() {
  if (done_scope_ == Scope::kMessage) done_scope_ = Scope::kNone;
  skip_body_ = false;
  if (failure_) co_return *failure_;
  if (!opened_) co_return ok();
  // SMFIC_ABORT has no reply.
  co_return co_await send_packet(cmd::kAbort, std::string_view());
}

asio::awaitable<void> MilterSession::quit() {
  if (opened_ && !failure_ && socket_.is_open()) {
    Status sent = co_await send_packet(cmd::kQuit, std::string_view());
    (void)sent;
  }
  disarm_timer();
  boost::system::error_code ec;
  socket_.close(ec);
  opened_ = false;
}

}  // namespace tern::milter
