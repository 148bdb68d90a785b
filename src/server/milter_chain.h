// MilterChain: the [[milter]] list of the config (issue 5 item 5) for one SMTP
// connection. The SMTP session calls it at each stage (connect, HELO, MAIL,
// RCPT, end of data); the chain asks every milter in the configured order,
// stops at the first refusal, applies `on_failure` when a milter cannot be
// reached or breaks the protocol, and at end of data runs each milter over
// the message as the previous one left it: header changes, body replacement,
// recipient and sender changes and quarantine are applied here, so the
// session only spools the result. Sendmail's and Postfix's semantics are the
// model: an accept ends a milter's part in the message (or connection), a
// recipient refusal refuses that recipient only, a discard drops the whole
// message with a 250 reply.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "milter/session.h"

namespace tern::server {

// What the chain answers for one stage.
struct MilterVerdict {
  enum class Kind { kContinue, kRefuse, kDiscard };
  Kind kind = Kind::kContinue;
  int code = 0;  // for kRefuse: the SMTP reply
  std::string enhanced;
  std::string text;
  std::string milter;  // address of the milter that decided (for the log)

  bool refused() const { return kind == Kind::kRefuse; }
  bool discarded() const { return kind == Kind::kDiscard; }
};

// The message at end of data, as the milters leave it.
struct MilterMessage {
  std::string content;  // header section + CRLF + body, as spooled
  bool content_changed = false;
  std::string mail_from;                  // without brackets; "" = null sender
  std::vector<std::string> add_rcpts;     // without brackets
  std::vector<std::string> delete_rcpts;  // without brackets, compared case-insensitively
  std::optional<std::string> quarantine;  // reason: the message is held in the queue
};

// Fixed facts about the SMTP connection, sent as connect info and macros.
struct MilterConnection {
  std::string our_hostname;  // macro j
  std::string daemon_name;   // {daemon_name}: the listener role
  std::string daemon_addr;   // {daemon_addr}: our address
  uint16_t daemon_port = 0;
  std::string client_addr;  // IP literal
  uint16_t client_port = 0;
  std::string client_name;  // reverse DNS, or "[addr]"
  bool ipv6 = false;
};

class MilterChain {
 public:
  MilterChain(boost::asio::any_io_executor executor, const std::vector<config::MilterConfig>& milters);
  ~MilterChain();
  MilterChain(const MilterChain&) = delete;
  MilterChain& operator=(const MilterChain&) = delete;

  // Opens every milter and sends the connect stage. A refusal here refuses
  // every later MAIL FROM of the connection (the greeting is still sent).
  boost::asio::awaitable<MilterVerdict> connect(const MilterConnection& connection);
  boost::asio::awaitable<MilterVerdict> helo(const std::string& name, const std::string& tls_version,
                                             const std::string& cipher, int cipher_bits);
  // `auth_user` is the SASL login ("" when none); `queue_id` the id the
  // message will get (macro i).
  boost::asio::awaitable<MilterVerdict> mail_from(const std::string& sender, const std::vector<std::string>& args,
                                                  const std::string& auth_user, const std::string& auth_type);
  // A refusal applies to this recipient only; kDiscard to the whole message.
  boost::asio::awaitable<MilterVerdict> rcpt_to(const std::string& recipient, const std::vector<std::string>& args,
                                                bool local);
  // Runs data, header, end-of-header, body and end-of-message with each
  // milter in turn, each seeing what the previous one made of the message.
  // `message.content` is the spooled content (our Received field first).
  boost::asio::awaitable<MilterVerdict> end_of_data(const std::string& queue_id, MilterMessage& message);
  // The transaction was abandoned (RSET, refused, client gone).
  boost::asio::awaitable<void> abort();
  boost::asio::awaitable<void> quit();

  // True while some milter is still interested in the current message (so
  // the session keeps a copy of the content for end_of_data).
  bool wants_message() const;

 private:
  struct Member;
  // Applies on_failure for a milter that failed at `stage`.
  MilterVerdict on_failure(Member& m, const Error& error, const char* stage);
  // The chain's answer for one milter's stage result; nullopt: ask the next.
  std::optional<MilterVerdict> absorb(Member& m, const Result<milter::Verdict>& result, const char* stage);

  boost::asio::any_io_executor executor_;
  std::vector<std::unique_ptr<Member>> members_;
  std::optional<MilterVerdict> connection_refusal_;  // from connect or a failed milter (tempfail/reject)
  bool in_message_ = false;
};

}  // namespace tern::server
