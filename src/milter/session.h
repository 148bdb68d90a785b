// MilterSession: tern as the MTA side of one milter connection (Sendmail
// milter protocol version 6), for one SMTP connection. Runs as Boost.Asio
// coroutines on the session's executor, like the SMTP session itself. The
// caller drives it stage by stage: open (connect + option negotiation),
// connect, helo, mail_from, rcpt_to, data, header..., end_of_headers,
// body..., end_of_message (verdict + modifications), then either the next
// message (mail_from again), abort_message on RSET, or quit.
//
// Each stage returns a Verdict. Stages the milter asked not to receive
// (SMFIP_NO*) are not sent and give kContinue; stages it will not answer
// (SMFIP_NR_*) are sent without waiting. After kAccept at connect/helo the
// milter is done with the connection; after kAccept or kDiscard during a
// message it is done with that message (later stages give the same verdict
// without talking to it). A milter that fails (cannot connect, times out,
// closes, breaks the protocol) gives an Error (451 4.7.1 ... or 4.7.0) and
// the session is dead; the caller applies the configured on_failure.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "milter/protocol.h"

namespace tern::milter {

// Where a milter listens: "unix:/path", "local:/path", "/path" (Unix), or
// "host:port", "[v6]:port", "inet:port@host", "inet6:port@host" (TCP).
struct MilterAddress {
  bool is_unix = false;
  std::string path;
  std::string host;
  uint16_t port = 0;

  static Result<MilterAddress> parse(std::string_view text);
  std::string to_string() const;
};

struct MilterOptions {
  std::string address;                                // see MilterAddress
  std::chrono::milliseconds connect_timeout{10'000};  // connect + option negotiation
  std::chrono::milliseconds reply_timeout{30'000};    // each reply; SMFIR_PROGRESS restarts it
  std::chrono::milliseconds send_timeout{30'000};     // writing one command
  PacketLimits limits{};
  size_t max_modifications = 10'000;     // modifications in one end-of-message reply
  size_t max_replaced_body = 64u << 20;  // bytes of a replacement body
};

struct Verdict {
  enum class Kind { kContinue, kAccept, kReject, kTempfail, kDiscard, kReply };
  Kind kind = Kind::kContinue;
  // The SMTP reply for kReject / kTempfail / kReply: the milter's own for
  // kReply (SMFIR_REPLYCODE), tern's defaults otherwise (550 5.7.1 /
  // 451 4.7.1 "Command rejected" / "Try again later").
  int code = 0;
  std::string enhanced;
  std::string text;  // one entry per reply line, joined with "\n"

  bool is_continue() const { return kind == Kind::kContinue; }
  // The verdict refuses the command (reject, tempfail, or a 4xx/5xx reply).
  bool refuses() const { return kind == Kind::kReject || kind == Kind::kTempfail || kind == Kind::kReply; }
  // "550 5.7.1 text" for refusals (first line only), empty otherwise.
  std::string to_string() const;
  static Verdict continue_() { return Verdict{}; }
};

// One change the milter asked for at end of message, in the order received.
struct Modification {
  enum class Kind {
    kAddHeader,        // name, value: append at the end of the header section
    kInsertHeader,     // index, name, value: insert at position index (0 = first)
    kChangeHeader,     // index, name, value: the index-th (1-based) header named name; empty value deletes it
    kReplaceBody,      // body: the new body, all chunks joined (CRLF line ends as sent by the milter)
    kAddRecipient,     // address, args (ESMTP arguments, may be empty)
    kDeleteRecipient,  // address, as the milter gave it (usually "<a@b>")
    kChangeSender,     // address, args
    kQuarantine,       // reason
  };
  Kind kind = Kind::kAddHeader;
  uint32_t index = 0;
  std::string name;
  std::string value;
  std::string address;
  std::string args;
  std::string body;
  std::string reason;
};

struct EndOfMessage {
  Verdict verdict;
  std::vector<Modification> modifications;  // apply only if the verdict is kContinue or kAccept
};

// The SMTP client as SMFIC_CONNECT describes it.
struct ConnectInfo {
  std::string hostname;  // reverse DNS name, or "[1.2.3.4]" when unknown
  Family family = Family::kUnknown;
  std::string address;  // IP literal without brackets, or the Unix socket path
  uint16_t port = 0;
};

class MilterSession {
 public:
  MilterSession(boost::asio::any_io_executor executor, MilterOptions options);
  ~MilterSession();
  MilterSession(const MilterSession&) = delete;
  MilterSession& operator=(const MilterSession&) = delete;

  // Sets (or replaces) a macro value, e.g. set_macro("j", "mx.example.org"),
  // set_macro("{client_addr}", "192.0.2.1"). Names in either spelling.
  // Before each stage the macros of that stage (the milter's symbol list when
  // it sent one, tern's defaults otherwise) that have a value are sent.
  void set_macro(std::string_view name, std::string value);
  void clear_macro(std::string_view name);

  // Connects and negotiates (SMFIC_OPTNEG) within connect_timeout.
  boost::asio::awaitable<Status> open();

  // A refusal here refuses the whole connection: every later stage returns it.
  boost::asio::awaitable<Result<Verdict>> connect(const ConnectInfo& info);
  boost::asio::awaitable<Result<Verdict>> helo(const std::string& helo);
  // `sender` without angle brackets ("" for the null sender); `esmtp_args`
  // as received ("SIZE=1000", "BODY=8BITMIME").
  boost::asio::awaitable<Result<Verdict>> mail_from(const std::string& sender,
                                                    const std::vector<std::string>& esmtp_args);
  // A recipient verdict other than continue/accept applies to this recipient
  // only, except kDiscard (the whole message).
  boost::asio::awaitable<Result<Verdict>> rcpt_to(const std::string& recipient,
                                                  const std::vector<std::string>& esmtp_args);
  boost::asio::awaitable<Result<Verdict>> data();
  // One header field as received: name without the colon, value after it
  // (unfolded or folded as received, without the final CRLF).
  boost::asio::awaitable<Result<Verdict>> header(const std::string& name, const std::string& value);
  boost::asio::awaitable<Result<Verdict>> end_of_headers();
  // Body bytes (CRLF line ends, not dot-stuffed), any size: sent in chunks
  // of at most 65535 bytes. After SMFIR_SKIP the rest is not sent.
  boost::asio::awaitable<Result<Verdict>> body(const std::string& bytes);
  boost::asio::awaitable<Result<EndOfMessage>> end_of_message();
  // The message was abandoned (RSET, rejected, client gone): SMFIC_ABORT;
  // the connection stays usable for the next MAIL FROM.
  boost::asio::awaitable<Status> abort_message();
  // SMFIC_QUIT and close. Safe to call at any time.
  boost::asio::awaitable<void> quit();

  bool is_open() const;
  // What the milter asked for in negotiation (valid after open()).
  const Negotiation& negotiated() const { return negotiated_; }
  // Why the session failed (empty while healthy).
  const std::optional<Error>& failure() const { return failure_; }

 private:
  enum class Scope { kNone, kMessage, kConnection };

  boost::asio::awaitable<Status> send_packet(char command, std::string_view data);
  boost::asio::awaitable<Result<Packet>> read_packet(std::chrono::milliseconds timeout);
  // The next reply that is not SMFIR_PROGRESS (which restarts the wait).
  boost::asio::awaitable<Result<MilterReply>> read_reply(std::chrono::milliseconds timeout);
  boost::asio::awaitable<Status> send_macros(Stage stage, char command);
  // Sends one stage's command (its macros first, if it has a macro stage) and
  // waits for its verdict unless the milter opted out of receiving it
  // (`no_send`) or of replying (`no_reply`).
  boost::asio::awaitable<Result<Verdict>> stage(std::optional<Stage> macro_stage, char command, std::string data,
                                                uint32_t no_send, uint32_t no_reply, Scope accept_scope);
  Result<Verdict> to_verdict(const MilterReply& reply, Scope accept_scope);
  Error fail(Error error);
  std::optional<Verdict> finished_verdict() const;
  // The timer cancels the pending socket operation when it expires.
  void arm_timer(std::chrono::milliseconds timeout);
  void disarm_timer();

  boost::asio::any_io_executor executor_;
  MilterOptions options_;
  boost::asio::generic::stream_protocol::socket socket_;
  boost::asio::steady_timer timer_;
  bool timed_out_ = false;
  uint64_t timer_generation_ = 0;
  PacketReader reader_;
  Negotiation negotiated_;
  std::map<std::string, std::string> macros_;
  std::optional<Error> failure_;
  bool opened_ = false;
  // Set by accept/discard: the milter wants nothing more for the message or connection.
  Scope done_scope_ = Scope::kNone;
  Verdict done_verdict_;
  bool skip_body_ = false;
};

}  // namespace tern::milter
