// The sans-I/O SMTP server protocol engine: a pure state machine for one
// RFC 5321 server session with the ESMTP extensions tern offers (PIPELINING
// RFC 2920, SIZE RFC 1870, 8BITMIME RFC 6152, CHUNKING/BINARYMIME RFC 3030,
// ENHANCEDSTATUSCODES RFC 2034, DSN RFC 3461, SMTPUTF8 RFC 6531, AUTH
// RFC 4954, STARTTLS RFC 3207, REQUIRETLS RFC 8689). The driver feeds the
// bytes it read, pulls events with next(), answers decision events, and
// writes output() to the peer. There are no sockets, clocks or threads here,
// so every behaviour can be unit-tested and fuzzed. See docs/smtp-engine.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/result.h"
#include "mail/address.h"
#include "smtp/params.h"
#include "smtp/reply.h"

namespace tern::smtp {

struct SessionOptions {
  std::string hostname = "localhost";              // banner and EHLO
  uint64_t max_message_size = 50 * 1024 * 1024;    // SIZE; 552 5.3.4 when exceeded; 0 = no limit (RFC 1870 §4)
  size_t max_recipients = 1000;                    // 452 4.5.3 beyond (RFC 5321 §4.5.3.1.8)
  size_t max_command_line = 2048;                  // 500 5.5.2 beyond (RFC 5321 §4.5.3.1.4: >= 512)
  size_t max_text_line = 1000 * 1000;              // DATA line limit; beyond: 554 5.6.0 at the end
  unsigned max_errors = 20;                        // then 421 4.7.0 and close
  bool tls_available = false;                      // advertise STARTTLS when !tls_active
  bool tls_active = false;
  bool auth_enabled = false;                       // advertise AUTH only when tls_active
  std::vector<std::string> auth_mechanisms = {"PLAIN", "LOGIN", "SCRAM-SHA-256"};
  bool auth_required_for_mail = false;             // MAIL before AUTH: 530 5.7.0
  // MAIL before HELO/EHLO: 503 5.5.1 (RFC 5321 §4.1.4: a client must greet
  // first). false accepts MAIL without a greeting (as a plain-SMTP session:
  // no ESMTP parameters, empty helo_name()).
  bool require_helo = true;
};

// Events. Those marked (decision) pause the engine until the driver calls one
// of the answer methods; until then next() returns nullopt and further input
// stays buffered (pipelining).

// (decision) accept_helo(): engine sends 250 / the EHLO capability list; or
// reply(r). A HELO/EHLO also ends any transaction (RFC 5321 §4.1.4).
struct EvHelo { std::string name; bool esmtp; };
// (decision) accept(): "250 2.1.0 Ok"; or reply(r).
struct EvMail { mail::Address from; MailParams params; };
// (decision) accept(): "250 2.1.5 Ok"; or reply(r).
struct EvRcpt { mail::Address to; RcptParams params; };
// (decision) accept(): 354 for DATA, or start reading the first BDAT chunk;
// reply(r) refuses (for BDAT the chunk is then read and discarded first).
struct EvDataStart { bool bdat; };
// Message content: dot-unstuffed (DATA) or raw (BDAT). Valid until the next
// call into the engine. Chunks are at most ~64 KiB.
struct EvData { std::string_view bytes; };
// (decision) End of message. `problem` is set when the engine refuses the
// content: 552 5.3.4 too big, 550 5.6.11 bare CR/LF, 554 5.6.0 line too long.
// Answer with reply(r): the queue result, or Reply::from_error(*problem).
struct EvDataEnd { std::optional<Error> problem; };
// The engine sent "220 2.0.0 Ready to start TLS" and discarded any pipelined
// input (RFC 3207 §5). The driver flushes output(), runs the handshake and
// calls tls_started(). Input fed meanwhile is ignored.
struct EvStartTls {};
// (decision) The driver runs SASL: auth_challenge(), auth_success() or
// auth_failure(). `initial_response` is base64-decoded ("=" gives "").
struct EvAuth { std::string mechanism; std::optional<std::string> initial_response; };
// (decision) A base64-decoded client response line; same answers as EvAuth.
struct EvAuthResponse { std::string data; };
// The client cancelled ("*") or sent invalid base64; the engine already
// replied 501 and the driver drops its SASL state.
struct EvAuthCancelled {};
// RSET: the engine already replied 250; drop transaction state.
struct EvRset {};
// QUIT: the engine queued 221; flush output and close.
struct EvQuit {};
// The engine wants the connection closed after output() is flushed (too many
// errors, a 421 reply).
struct EvClose {};

using Event = std::variant<EvHelo, EvMail, EvRcpt, EvDataStart, EvData, EvDataEnd, EvStartTls, EvAuth,
                           EvAuthResponse, EvAuthCancelled, EvRset, EvQuit, EvClose>;

class ServerSession {
 public:
  explicit ServerSession(SessionOptions opts);

  // Queues "220 <hostname> ESMTP tern".
  void greet();
  // Queues a refusal greeting (e.g. 554 5.7.1); afterwards every command but
  // QUIT gets 503 5.5.1 (RFC 5321 §3.1).
  void greet_reject(const Reply& r);

  // Appends received bytes. Ignored once closed or while a STARTTLS is pending.
  void feed(std::string_view bytes);
  // Advances; nullopt means "need more input" or "waiting for a decision".
  // Flush output() whenever this returns nullopt (batches pipelined replies).
  std::optional<Event> next();
  // Bytes to send to the client; the driver writes and clears them.
  std::string& output() { return out_; }

  // Answers to the pending decision event. reply() fits every decision; a
  // positive (<400) reply to EvHelo/EvMail/EvRcpt/EvDataStart counts as
  // acceptance with custom text. A 421 reply also closes the session.
  void accept();
  void accept_helo();
  void reply(const Reply& r);
  void auth_challenge(std::string_view raw);  // sends "334 " + base64(raw)
  void auth_success();                        // 235 2.7.0
  void auth_failure(const Reply& r);          // e.g. 535 5.7.8
  // After the TLS handshake: forget EHLO, transaction and buffered input
  // (RFC 3207 §4.2) and advertise as a TLS session.
  void tls_started();

  enum class Phase { kCommand, kData, kBdat, kAuth, kClosed };
  // For the driver's timeouts (RFC 5321 §4.5.3.2).
  Phase phase() const;
  bool in_transaction() const { return mail_accepted_; }
  bool authenticated() const { return authenticated_; }
  bool tls_active() const { return opts_.tls_active; }
  const std::string& helo_name() const { return helo_name_; }
  unsigned error_count() const { return errors_; }
  // Bytes fed but not yet consumed. The driver should stop reading while this
  // is large and a decision is pending.
  size_t buffered_input() const { return in_.size() - pos_; }

 private:
  enum class Pending { kNone, kHelo, kMail, kRcpt, kDataStart, kDataEnd, kAuth };
  // DATA content scanner state (RFC 5321 §4.5.2 dot-stuffing, §4.1.1.4 end).
  enum class DataState { kLineStart, kMidLine, kCr, kDot, kDotCr };

  // Command line handling.
  std::optional<std::string_view> take_line(bool& bare_lf, bool& too_long);
  void handle_command_line(std::string_view line, bool bare_lf, bool too_long);
  void handle_auth_line(std::string_view line, bool bare_lf, bool too_long);
  void cmd_helo(std::string_view args, bool esmtp);
  void cmd_mail(std::string_view args);
  void cmd_rcpt(std::string_view args);
  void cmd_data(std::string_view args);
  void cmd_bdat(std::string_view args);
  void cmd_rset(std::string_view args);
  void cmd_quit(std::string_view args);
  void cmd_starttls(std::string_view args);
  void cmd_auth(std::string_view args);

  // DATA and BDAT content. step_* return false when no progress is possible.
  void start_content();
  bool step_data();
  bool step_bdat();
  void scan_data();
  void data_mid_line(char c);
  void append_text(const char* p, size_t n);
  void append_content(const char* p, size_t n);
  void end_content_line();
  void bare_newline();
  void set_problem(Error e);
  void finish_bdat_chunk();

  // Replies and bookkeeping.
  void send(const Reply& r, bool counts_as_error = true);
  void send_error(int code, std::string enhanced, std::string text) { send(Reply(code, std::move(enhanced), std::move(text))); }
  void close_session();
  void reset_transaction();
  Reply ehlo_reply() const;
  bool auth_offered() const { return opts_.auth_enabled && opts_.tls_active; }
  uint64_t size_limit() const { return opts_.max_message_size ? opts_.max_message_size : UINT64_MAX; }

  SessionOptions opts_;
  std::string in_;
  size_t pos_ = 0;       // consumed prefix of in_
  size_t scanned_ = 0;   // bytes after pos_ already searched for LF
  bool discarding_long_line_ = false;
  std::string out_;
  std::deque<Event> ready_;
  Pending pending_ = Pending::kNone;
  Phase phase_ = Phase::kCommand;
  bool awaiting_tls_ = false;
  bool greeting_rejected_ = false;
  unsigned errors_ = 0;

  // Session state.
  bool helo_done_ = false;
  std::string pending_helo_name_;
  bool pending_helo_esmtp_ = false;
  MailParams pending_mail_params_;
  bool pending_data_bdat_ = false;
  bool esmtp_ = false;
  std::string helo_name_;
  bool authenticated_ = false;

  // Transaction state.
  bool mail_accepted_ = false;
  MailParams mail_params_;
  size_t rcpt_count_ = 0;
  bool used_bdat_ = false;      // BDAT seen in this transaction (DATA now 503)
  bool content_started_ = false;  // EvDataStart accepted for this transaction

  // Message content state (shared by DATA and BDAT).
  std::optional<Error> problem_;
  uint64_t message_bytes_ = 0;
  DataState data_state_ = DataState::kLineStart;
  size_t line_length_ = 0;
  std::string data_chunk_;  // unstuffed DATA bytes being collected
  std::string data_emit_;   // bytes behind the last EvData view
  bool data_end_seen_ = false;

  // BDAT chunk in progress.
  uint64_t bdat_chunk_size_ = 0;
  uint64_t bdat_remaining_ = 0;
  bool bdat_last_ = false;
  bool bdat_discard_ = false;          // read and drop the chunk
  std::optional<Reply> bdat_after_;    // reply to send once the chunk is consumed
};

}  // namespace tern::smtp
