// ServerSession implementation (see session.h and docs/smtp-engine.md).
// Input is kept in one buffer with a consumed-prefix offset; command lines
// are cut at LF, DATA content is scanned byte by byte through a small state
// machine that undoes dot-stuffing and refuses bare CR/LF, and BDAT chunks
// are passed through by count. Work per call is bounded by the input given.
#include "smtp/session.h"

#include <algorithm>

#include "base/strings.h"

namespace tern::smtp {
namespace {

constexpr size_t kDataChunk = 64 * 1024;     // largest EvData
constexpr size_t kAuthLineLimit = 12288;     // RFC 4954 §4
constexpr size_t kMinCommandLine = 512;      // RFC 5321 §4.5.3.1.4

std::string_view rtrim_blanks(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string_view ltrim_spaces(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  return s;
}

// Splits "<path> params" at the '>' closing the path, honouring quoted local
// parts (which may contain '>'). False when there is no well-formed path.
bool split_path(std::string_view text, std::string_view& path, std::string_view& params) {
  if (text.empty() || text.front() != '<') return false;
  bool quoted = false;
  for (size_t i = 1; i < text.size(); ++i) {
    char c = text[i];
    if (quoted && c == '\\') {
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (c == '>' && !quoted) {
      path = text.substr(0, i + 1);
      params = text.substr(i + 1);
      return params.empty() || params.front() == ' ';
    }
  }
  return false;
}

// Commands RFC 5321 (and its predecessors) define but tern does not offer:
// 502 rather than 500, so the client knows they exist but are unavailable.
bool is_unimplemented_verb(std::string_view verb) {
  for (std::string_view v : {"EXPN", "TURN", "ETRN", "ATRN", "SEND", "SOML", "SAML", "VERB"}) {
    if (iequals(verb, v)) return true;
  }
  return false;
}

}  // namespace

ServerSession::ServerSession(SessionOptions opts) : opts_(std::move(opts)) {
  opts_.max_command_line = std::max(opts_.max_command_line, kMinCommandLine);
  opts_.max_text_line = std::max<size_t>(opts_.max_text_line, 3);
}

void ServerSession::greet() { send(Reply(220, "", opts_.hostname + " ESMTP tern"), false); }

void ServerSession::greet_reject(const Reply& r) {
  greeting_rejected_ = true;
  send(r, false);
}

void ServerSession::feed(std::string_view bytes) {
  if (phase_ == Phase::kClosed || awaiting_tls_) return;
  // Drop the consumed prefix when it is at least half the buffer (amortised).
  if (pos_ > 0 && pos_ * 2 >= in_.size()) {
    in_.erase(0, pos_);
    pos_ = 0;
  }
  in_.append(bytes);
}

ServerSession::Phase ServerSession::phase() const { return phase_; }

std::optional<Event> ServerSession::next() {
  for (;;) {
    if (!ready_.empty()) {
      Event e = std::move(ready_.front());
      ready_.pop_front();
      return e;
    }
    if (pending_ != Pending::kNone || phase_ == Phase::kClosed || awaiting_tls_) return std::nullopt;
    switch (phase_) {
      case Phase::kCommand:
      case Phase::kAuth: {
        bool bare_lf = false, too_long = false;
        auto line = take_line(bare_lf, too_long);
        if (!line) return std::nullopt;
        if (phase_ == Phase::kAuth) {
          handle_auth_line(*line, bare_lf, too_long);
        } else {
          handle_command_line(*line, bare_lf, too_long);
        }
        break;
      }
      case Phase::kData:
        if (!step_data()) return std::nullopt;
        break;
      case Phase::kBdat:
        if (!step_bdat()) return std::nullopt;
        break;
      case Phase::kClosed:
        return std::nullopt;
    }
  }
}

// ---------------------------------------------------------------------------
// Command lines

std::optional<std::string_view> ServerSession::take_line(bool& bare_lf, bool& too_long) {
  size_t limit = opts_.max_command_line;
  std::string_view rest(in_.data() + pos_, in_.size() - pos_);
  // RFC 4954 §4: SASL lines (and AUTH with an initial response) may be long.
  if (phase_ == Phase::kAuth || istarts_with(rest, "AUTH ")) limit = std::max(limit, kAuthLineLimit);
  size_t nl = in_.find('\n', pos_ + scanned_);
  if (nl == std::string::npos) {
    scanned_ = rest.size();
    if (discarding_long_line_ || rest.size() >= limit) {
      // RFC 5321 §4.5.3.1.4: never buffer an over-long line; drop it (keeping
      // a trailing CR so a CRLF split across feeds is still seen) and answer
      // once its end arrives.
      discarding_long_line_ = true;
      pos_ = in_.size();
      if (!rest.empty() && rest.back() == '\r') --pos_;
      scanned_ = in_.size() - pos_;
    }
    return std::nullopt;
  }
  std::string_view line(in_.data() + pos_, nl - pos_);
  pos_ = nl + 1;
  scanned_ = 0;
  if (discarding_long_line_) {
    discarding_long_line_ = false;
    too_long = true;
    return std::string_view();
  }
  if (line.size() + 1 > limit) too_long = true;  // limit counts the CRLF
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
  } else {
    bare_lf = true;
  }
  return line;
}

void ServerSession::handle_command_line(std::string_view line, bool bare_lf, bool too_long) {
  if (too_long) return send_error(500, "5.5.2", "Line too long");
  // SMTP smuggling defence: commands end with CRLF only (RFC 5321 §2.3.8).
  if (bare_lf || line.find('\r') != std::string_view::npos) {
    return send_error(500, "5.5.2", "Bare CR or LF not allowed");
  }
  line = rtrim_blanks(line);
  size_t sp = line.find(' ');
  std::string_view verb = line.substr(0, sp);
  std::string_view args = sp == std::string_view::npos ? std::string_view() : ltrim_spaces(line.substr(sp + 1));

  if (greeting_rejected_) {
    // RFC 5321 §3.1: after a 554 greeting, wait for QUIT and refuse the rest.
    if (iequals(verb, "QUIT")) return cmd_quit(args);
    return send_error(503, "5.5.1", "Service refused, send QUIT");
  }
  if (verb.empty()) return send_error(500, "5.5.2", "Empty command");
  if (iequals(verb, "EHLO")) return cmd_helo(args, true);
  if (iequals(verb, "HELO")) return cmd_helo(args, false);
  if (iequals(verb, "MAIL")) return cmd_mail(args);
  if (iequals(verb, "RCPT")) return cmd_rcpt(args);
  if (iequals(verb, "DATA")) return cmd_data(args);
  if (iequals(verb, "BDAT")) return cmd_bdat(args);
  if (iequals(verb, "RSET")) return cmd_rset(args);
  if (iequals(verb, "QUIT")) return cmd_quit(args);
  if (iequals(verb, "STARTTLS")) return cmd_starttls(args);
  if (iequals(verb, "AUTH")) return cmd_auth(args);
  if (iequals(verb, "NOOP")) return send(Reply(250, "2.0.0", "Ok"), false);  // RFC 5321 §4.1.1.9
  if (iequals(verb, "HELP")) return send(Reply(214, "2.0.0", "See RFC 5321"), false);
  if (iequals(verb, "VRFY")) {
    // RFC 5321 §3.5.3: 252 when the server will not verify.
    if (args.empty()) return send_error(501, "5.5.4", "Syntax: VRFY address");
    return send(Reply(252, "2.1.5", "Cannot VRFY user, but will accept message"), false);
  }
  if (is_unimplemented_verb(verb)) return send_error(502, "5.5.1", "Command not implemented");
  send_error(500, "5.5.1", "Command unrecognized");
}

void ServerSession::cmd_helo(std::string_view args, bool esmtp) {
  // RFC 5321 §4.1.1.1: "EHLO" SP ( Domain / address-literal ). We only check
  // that it is one printable ASCII word; the driver may apply policy.
  bool ok = !args.empty();
  for (unsigned char c : args) {
    if (c <= ' ' || c >= 127) ok = false;
  }
  if (!ok) return send_error(501, "5.5.4", esmtp ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
  reset_transaction();  // RFC 5321 §4.1.4: EHLO/HELO implies RSET
  pending_helo_name_ = std::string(args);
  pending_helo_esmtp_ = esmtp;
  pending_ = Pending::kHelo;
  ready_.push_back(EvHelo{pending_helo_name_, esmtp});
}

void ServerSession::cmd_mail(std::string_view args) {
  if (!helo_done_ && opts_.require_helo) return send_error(503, "5.5.1", "Send HELO/EHLO first");
  // RFC 4954 §6 / RFC 6409 §4.3: submission requires authentication.
  if (opts_.auth_required_for_mail && !authenticated_) {
    return send_error(530, "5.7.0", "Authentication required");
  }
  if (mail_accepted_) return send_error(503, "5.5.1", "Nested MAIL command");
  std::string_view path, params;
  if (!istarts_with(args, "FROM:") || !split_path(ltrim_spaces(args.substr(5)), path, params)) {
    return send_error(501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]");
  }
  ParamContext ctx{esmtp_, opts_.tls_active, opts_.max_message_size};
  auto mp = parse_mail_params(params, ctx);
  if (!mp) return send(Reply::from_error(mp.error()));
  auto from = mail::parse_path(path, /*allow_null=*/true, mp->smtputf8);
  if (!from) {
    Error e = from.error();
    if (e.enhanced == "5.1.3") e.enhanced = "5.1.7";  // RFC 3463: bad sender address syntax
    return send(Reply::from_error(e));
  }
  pending_mail_params_ = *mp;
  pending_ = Pending::kMail;
  ready_.push_back(EvMail{std::move(*from), std::move(*mp)});
}

void ServerSession::cmd_rcpt(std::string_view args) {
  if (!mail_accepted_) return send_error(503, "5.5.1", "Need MAIL before RCPT");
  if (used_bdat_) return send_error(503, "5.5.1", "RCPT not allowed after BDAT");
  std::string_view path, params;
  if (!istarts_with(args, "TO:") || !split_path(ltrim_spaces(args.substr(3)), path, params)) {
    return send_error(501, "5.5.4", "Syntax: RCPT TO:<address> [parameters]");
  }
  if (rcpt_count_ >= opts_.max_recipients) {
    // RFC 5321 §4.5.3.1.10: a transient 452 makes the client retry the rest
    // in a later transaction; this is flow control, not a client error.
    return send(Reply(452, "4.5.3", "Too many recipients"), false);
  }
  ParamContext ctx{esmtp_, opts_.tls_active, opts_.max_message_size};
  auto rp = parse_rcpt_params(params, ctx);
  if (!rp) return send(Reply::from_error(rp.error()));
  mail::Address to;
  std::string_view inner = path.substr(1, path.size() - 2);
  if (iequals(inner, "postmaster")) {
    to = mail::Address{"postmaster", ""};  // RFC 5321 §4.5.1: domain-less postmaster
  } else {
    auto parsed = mail::parse_path(path, /*allow_null=*/false, mail_params_.smtputf8);
    if (!parsed) return send(Reply::from_error(parsed.error()));
    to = std::move(*parsed);
  }
  pending_ = Pending::kRcpt;
  ready_.push_back(EvRcpt{std::move(to), std::move(*rp)});
}

void ServerSession::cmd_data(std::string_view args) {
  if (!args.empty()) return send_error(501, "5.5.4", "Syntax: DATA");
  if (!mail_accepted_) return send_error(503, "5.5.1", "Need MAIL command");
  // RFC 3030 §3: DATA after BDAT, or with BODY=BINARYMIME, is a bad sequence.
  if (used_bdat_) return send_error(503, "5.5.1", "DATA not allowed after BDAT");
  if (mail_params_.body == Body::kBinaryMime) return send_error(503, "5.5.1", "BINARYMIME requires BDAT");
  if (rcpt_count_ == 0) return send_error(554, "5.5.1", "No valid recipients");  // RFC 5321 §3.3
  pending_data_bdat_ = false;
  pending_ = Pending::kDataStart;
  ready_.push_back(EvDataStart{false});
}

void ServerSession::cmd_bdat(std::string_view args) {
  // RFC 3030 §2: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CR LF
  auto words = split(args, ' ');
  words.erase(std::remove(words.begin(), words.end(), std::string_view()), words.end());
  unsigned long long size = 0;
  bool ok = !words.empty() && words.size() <= 2 && words[0].size() <= 20 && is_digits(words[0]) &&
            parse_u64(words[0], size) && (words.size() == 1 || iequals(words[1], "LAST"));
  if (!ok) return send_error(501, "5.5.4", "Syntax: BDAT size [LAST]");
  bdat_chunk_size_ = size;
  bdat_remaining_ = size;
  bdat_last_ = words.size() == 2;
  bdat_discard_ = false;
  bdat_after_.reset();
  // RFC 3030 §2: a failed BDAT still consumes its chunk before the reply.
  auto refuse = [this](Reply r) {
    bdat_discard_ = true;
    bdat_after_ = std::move(r);
    phase_ = Phase::kBdat;
  };
  if (!mail_accepted_) return refuse(Reply(503, "5.5.1", "Need MAIL command"));
  if (rcpt_count_ == 0) return refuse(Reply(554, "5.5.1", "No valid recipients"));
  used_bdat_ = true;
  if (!content_started_) start_content();
  // RFC 1870 §6.3 style limit on the running total; the chunk is discarded.
  if (!problem_) {
    if (size > size_limit() - std::min(message_bytes_, size_limit())) {
      set_problem(Error{552, "5.3.4", "Message size exceeds fixed maximum message size"});
    } else {
      message_bytes_ += size;
    }
  }
  if (!content_started_) {
    pending_data_bdat_ = true;
    pending_ = Pending::kDataStart;
    ready_.push_back(EvDataStart{true});
    return;
  }
  phase_ = Phase::kBdat;
}

void ServerSession::cmd_rset(std::string_view args) {
  if (!args.empty()) return send_error(501, "5.5.4", "Syntax: RSET");
  reset_transaction();  // RFC 5321 §4.1.1.5
  ready_.push_back(EvRset{});
  send(Reply(250, "2.0.0", "Ok"), false);
}

void ServerSession::cmd_quit(std::string_view args) {
  if (!args.empty()) return send_error(501, "5.5.4", "Syntax: QUIT");
  send(Reply(221, "2.0.0", "Bye"), false);  // RFC 5321 §4.1.1.10
  phase_ = Phase::kClosed;
  in_.clear();
  pos_ = scanned_ = 0;
  ready_.push_back(EvQuit{});
}

void ServerSession::cmd_starttls(std::string_view args) {
  if (opts_.tls_active) return send_error(503, "5.5.1", "TLS already active");
  if (!opts_.tls_available) return send_error(502, "5.5.1", "STARTTLS not available");
  if (!args.empty()) return send_error(501, "5.5.4", "Syntax: STARTTLS");  // RFC 3207 §4
  send(Reply(220, "2.0.0", "Ready to start TLS"), false);
  // RFC 3207 §5/§6: anything pipelined after STARTTLS arrived in plaintext and
  // must not be executed inside the TLS session (command injection).
  in_.clear();
  pos_ = scanned_ = 0;
  awaiting_tls_ = true;
  ready_.push_back(EvStartTls{});
}

void ServerSession::cmd_auth(std::string_view args) {
  if (!opts_.auth_enabled) return send_error(502, "5.5.1", "AUTH not available");
  // RFC 3207 §4 / RFC 4954 §4: credentials only over TLS.
  if (!opts_.tls_active) return send_error(530, "5.7.0", "Must issue a STARTTLS command first");
  if (!helo_done_ || !esmtp_) return send_error(503, "5.5.1", "Send EHLO first");
  if (authenticated_) return send_error(503, "5.5.1", "Already authenticated");  // RFC 4954 §4
  if (mail_accepted_) return send_error(503, "5.5.1", "AUTH not allowed during a mail transaction");
  auto words = split(args, ' ');
  if (args.empty() || words.size() > 2 || words[0].empty() || (words.size() == 2 && words[1].empty())) {
    return send_error(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
  }
  std::string mechanism = to_upper(words[0]);
  bool known = std::any_of(opts_.auth_mechanisms.begin(), opts_.auth_mechanisms.end(),
                           [&](const std::string& m) { return iequals(m, mechanism); });
  if (!known) return send_error(504, "5.5.4", "Unrecognized authentication mechanism");
  std::optional<std::string> initial;
  if (words.size() == 2) {
    initial.emplace();
    // RFC 4954 §4: "=" is an empty initial response.
    if (words[1] != "=" && !base64_decode(words[1], *initial)) {
      return send_error(501, "5.5.2", "Invalid base64 data");
    }
  }
  phase_ = Phase::kAuth;
  pending_ = Pending::kAuth;
  ready_.push_back(EvAuth{std::move(mechanism), std::move(initial)});
}

void ServerSession::handle_auth_line(std::string_view line, bool bare_lf, bool too_long) {
  // RFC 4954 §4: every failure here ends the exchange; the driver forgets it.
  phase_ = Phase::kCommand;
  if (too_long) {
    ready_.push_back(EvAuthCancelled{});
    return send_error(500, "5.5.6", "Authentication exchange line too long");
  }
  if (bare_lf || line.find('\r') != std::string_view::npos) {
    ready_.push_back(EvAuthCancelled{});
    return send_error(500, "5.5.2", "Bare CR or LF not allowed");
  }
  if (line == "*") {
    ready_.push_back(EvAuthCancelled{});
    return send_error(501, "5.0.0", "Authentication cancelled");
  }
  std::string decoded;
  if (!base64_decode(line, decoded)) {
    ready_.push_back(EvAuthCancelled{});
    return send_error(501, "5.5.2", "Invalid base64 data");
  }
  phase_ = Phase::kAuth;
  pending_ = Pending::kAuth;
  ready_.push_back(EvAuthResponse{std::move(decoded)});
}

// ---------------------------------------------------------------------------
// Message content

void ServerSession::start_content() {
  problem_.reset();
  message_bytes_ = 0;
  data_state_ = DataState::kLineStart;
  line_length_ = 0;
  data_chunk_.clear();
  data_end_seen_ = false;
}

void ServerSession::set_problem(Error e) {
  // Content collected before the problem is still emitted (so what the driver
  // sees does not depend on how input was split); nothing after it is.
  if (!problem_) problem_ = std::move(e);
}

void ServerSession::append_content(const char* p, size_t n) {
  if (problem_) return;
  if (n > size_limit() - std::min(message_bytes_, size_limit())) {
    return set_problem(Error{552, "5.3.4", "Message size exceeds fixed maximum message size"});
  }
  message_bytes_ += n;
  data_chunk_.append(p, n);
}

void ServerSession::append_text(const char* p, size_t n) {
  line_length_ += n;
  // RFC 5321 §4.5.3.1.6 text line limit, counting the CRLF.
  if (line_length_ + 2 > opts_.max_text_line) {
    return set_problem(Error{554, "5.6.0", "Message contains a line that is too long"});
  }
  append_content(p, n);
}

void ServerSession::end_content_line() {
  append_content("\r\n", 2);
  line_length_ = 0;
  data_state_ = DataState::kLineStart;
}

void ServerSession::bare_newline() {
  // SMTP smuggling defence: a lone CR or LF never ends a line, so it can never
  // start the end-of-data sequence; the message is refused when it ends.
  set_problem(Error{550, "5.6.11", "Bare CR or LF not allowed in message content"});
}

// Handles one byte in the middle of a line.
void ServerSession::data_mid_line(char c) {
  if (c == '\r') {
    data_state_ = DataState::kCr;
  } else if (c == '\n') {
    bare_newline();
    data_state_ = DataState::kMidLine;
  } else {
    append_text(&c, 1);
    data_state_ = DataState::kMidLine;
  }
}

void ServerSession::scan_data() {
  // One allocation for the input at hand instead of a doubling series as
  // the lines are appended one by one.
  if (data_chunk_.empty()) data_chunk_.reserve(std::min(kDataChunk, in_.size() - pos_));
  while (pos_ < in_.size() && data_chunk_.size() < kDataChunk && !data_end_seen_) {
    if (data_state_ == DataState::kMidLine) {
      // Fast path: copy the run up to the next CR or LF in one go.
      size_t room = problem_ ? in_.size() : kDataChunk - data_chunk_.size();
      size_t end = std::min(in_.size(), pos_ + room);
      size_t j = pos_;
      while (j < end && in_[j] != '\r' && in_[j] != '\n') ++j;
      if (j > pos_) {
        append_text(in_.data() + pos_, j - pos_);
        pos_ = j;
        continue;
      }
    }
    char c = in_[pos_++];
    switch (data_state_) {
      case DataState::kLineStart:
        // RFC 5321 §4.5.2: a leading "." is removed; a line of just "." ends.
        if (c == '.') {
          data_state_ = DataState::kDot;
        } else {
          data_mid_line(c);
        }
        break;
      case DataState::kMidLine:
        data_mid_line(c);
        break;
      case DataState::kCr:
        if (c == '\n') {
          end_content_line();
        } else {
          bare_newline();
          data_mid_line(c);
        }
        break;
      case DataState::kDot:
        if (c == '\r') {
          data_state_ = DataState::kDotCr;
        } else {
          data_mid_line(c);  // the stuffed dot is dropped; "." LF is a bare LF
        }
        break;
      case DataState::kDotCr:
        if (c == '\n') {
          data_end_seen_ = true;  // CRLF "." CRLF (RFC 5321 §4.1.1.4)
        } else {
          bare_newline();
          data_mid_line(c);
        }
        break;
    }
  }
}

bool ServerSession::step_data() {
  size_t before = pos_;
  if (!data_end_seen_) scan_data();
  if (!data_chunk_.empty() && (data_end_seen_ || data_chunk_.size() >= kDataChunk || pos_ == in_.size())) {
    data_emit_.swap(data_chunk_);
    data_chunk_.clear();
    ready_.push_back(EvData{data_emit_});
    return true;
  }
  if (data_end_seen_) {
    pending_ = Pending::kDataEnd;
    ready_.push_back(EvDataEnd{problem_});
    return true;
  }
  return pos_ != before;
}

bool ServerSession::step_bdat() {
  if (bdat_remaining_ > 0) {
    size_t avail = in_.size() - pos_;
    if (avail == 0) return false;
    size_t take = static_cast<size_t>(std::min<uint64_t>({avail, bdat_remaining_, kDataChunk}));
    std::string_view bytes(in_.data() + pos_, take);
    pos_ += take;
    bdat_remaining_ -= take;
    // RFC 3030 §3: BDAT content is binary; no dot-stuffing, bare CR/LF allowed.
    if (!bdat_discard_ && !problem_) ready_.push_back(EvData{bytes});
    return true;
  }
  finish_bdat_chunk();
  return true;
}

void ServerSession::finish_bdat_chunk() {
  phase_ = Phase::kCommand;
  if (bdat_after_) {
    Reply r = std::move(*bdat_after_);
    bdat_after_.reset();
    bdat_discard_ = false;
    reset_transaction();
    return send(r);
  }
  if (bdat_last_) {
    pending_ = Pending::kDataEnd;
    ready_.push_back(EvDataEnd{problem_});
    return;
  }
  if (problem_) {
    // RFC 3030 §2: a failed chunk fails the transaction; later pipelined
    // chunks find no transaction and are consumed and refused.
    Reply r = Reply::from_error(*problem_);
    reset_transaction();
    return send(r);
  }
  send(Reply(250, "2.0.0", std::to_string(bdat_chunk_size_) + " octets received"), false);
}

// ---------------------------------------------------------------------------
// Decisions

void ServerSession::accept() {
  switch (pending_) {
    case Pending::kHelo:
      return accept_helo();
    case Pending::kMail:
      return reply(Reply(250, "2.1.0", "Ok"));
    case Pending::kRcpt:
      return reply(Reply(250, "2.1.5", "Ok"));
    case Pending::kDataStart:
      return reply(Reply(354, "", "End data with <CR><LF>.<CR><LF>"));
    case Pending::kDataEnd:
      return reply(Reply(250, "2.0.0", "Ok"));
    case Pending::kAuth:
    case Pending::kNone:
      return;
  }
}

void ServerSession::accept_helo() {
  if (pending_ != Pending::kHelo) return;
  reply(pending_helo_esmtp_ ? ehlo_reply() : Reply(250, "", opts_.hostname));
}

void ServerSession::reply(const Reply& r) {
  Pending p = pending_;
  pending_ = Pending::kNone;
  bool positive = r.code < 400;
  switch (p) {
    case Pending::kNone:
      // Outside a decision only an unsolicited 421 (shutdown) makes sense.
      if (r.code == 421 && phase_ != Phase::kClosed) send(r, false);
      return;
    case Pending::kHelo:
      if (positive) {
        helo_done_ = true;
        esmtp_ = pending_helo_esmtp_;
        helo_name_ = pending_helo_name_;
      }
      return send(r);
    case Pending::kMail:
      if (positive) {
        mail_accepted_ = true;
        mail_params_ = pending_mail_params_;
        rcpt_count_ = 0;
      }
      return send(r);
    case Pending::kRcpt:
      if (positive) ++rcpt_count_;
      return send(r);
    case Pending::kDataStart:
      if (pending_data_bdat_) {
        if (positive) {
          content_started_ = true;
          phase_ = Phase::kBdat;
        } else {
          // The chunk that follows is read and dropped, then `r` is sent.
          bdat_discard_ = true;
          bdat_after_ = r;
          phase_ = Phase::kBdat;
        }
        return;
      }
      if (positive) {
        content_started_ = true;
        start_content();
        phase_ = Phase::kData;
      }
      return send(r);
    case Pending::kDataEnd:
      reset_transaction();
      phase_ = Phase::kCommand;
      return send(r, /*counts_as_error=*/false);
    case Pending::kAuth:
      return auth_failure(r);
  }
}

void ServerSession::auth_challenge(std::string_view raw) {
  if (pending_ != Pending::kAuth) return;
  pending_ = Pending::kNone;
  phase_ = Phase::kAuth;
  send(Reply(334, "", base64_encode(raw)), false);  // RFC 4954 §4
}

void ServerSession::auth_success() {
  if (pending_ != Pending::kAuth) return;
  pending_ = Pending::kNone;
  phase_ = Phase::kCommand;
  authenticated_ = true;
  send(Reply(235, "2.7.0", "Authentication successful"), false);
}

void ServerSession::auth_failure(const Reply& r) {
  pending_ = Pending::kNone;
  if (phase_ == Phase::kAuth) phase_ = Phase::kCommand;
  send(r);
}

void ServerSession::tls_started() {
  // RFC 3207 §4.2: discard all knowledge obtained from the client.
  awaiting_tls_ = false;
  opts_.tls_active = true;
  helo_done_ = false;
  esmtp_ = false;
  helo_name_.clear();
  authenticated_ = false;
  reset_transaction();
  in_.clear();
  pos_ = scanned_ = 0;
  discarding_long_line_ = false;
  pending_ = Pending::kNone;
  if (phase_ != Phase::kClosed) phase_ = Phase::kCommand;
}

// ---------------------------------------------------------------------------
// Replies and state

void ServerSession::send(const Reply& r, bool counts_as_error) {
  if (phase_ == Phase::kClosed) return;
  out_ += r.render();
  if (r.code == 421) return close_session();  // RFC 5321 §3.8
  if (counts_as_error && r.code >= 400) {
    ++errors_;
    if (opts_.max_errors != 0 && errors_ >= opts_.max_errors) {
      out_ += Reply(421, "4.7.0", opts_.hostname + " Too many errors, closing connection").render();
      close_session();
    }
  }
}

void ServerSession::close_session() {
  phase_ = Phase::kClosed;
  pending_ = Pending::kNone;
  in_.clear();
  pos_ = scanned_ = 0;
  ready_.push_back(EvClose{});
}

void ServerSession::reset_transaction() {
  mail_accepted_ = false;
  mail_params_ = MailParams{};
  rcpt_count_ = 0;
  used_bdat_ = false;
  content_started_ = false;
  start_content();
}

Reply ServerSession::ehlo_reply() const {
  // RFC 5321 §4.1.1.1: greeting line, then one extension keyword per line.
  std::vector<std::string> lines = {
      opts_.hostname,
      "PIPELINING",                                          // RFC 2920
      "SIZE " + std::to_string(opts_.max_message_size),     // RFC 1870
      "8BITMIME",                                            // RFC 6152
      "SMTPUTF8",                                            // RFC 6531
      "ENHANCEDSTATUSCODES",                                 // RFC 2034
      "CHUNKING",                                            // RFC 3030
      "BINARYMIME",                                          // RFC 3030
      "DSN",                                                 // RFC 3461
  };
  if (opts_.tls_available && !opts_.tls_active) lines.push_back("STARTTLS");  // RFC 3207
  if (auth_offered()) {
    std::string auth = "AUTH";  // RFC 4954 §3
    for (const auto& m : opts_.auth_mechanisms) auth += " " + to_upper(m);
    lines.push_back(auth);
  }
  if (opts_.tls_active) lines.push_back("REQUIRETLS");  // RFC 8689 §2
  return Reply(250, "", std::move(lines));
}

}  // namespace tern::smtp
