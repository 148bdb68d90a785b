// LMTP client (RFC 2033) for handing messages to a local delivery agent such
// as Dovecot's lmtp service. One connection per message: greeting, LHLO,
// MAIL FROM, RCPT TO per recipient (pipelined when offered, RFC 2920), DATA
// with dot-stuffed content, then one reply per accepted recipient (RFC 2033
// §4.2), QUIT. Every recipient gets its own result; connection trouble makes
// all not-yet-answered recipients transient failures, never permanent ones.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "delivery/local_delivery.h"
#include "delivery/reply_reader.h"

namespace tern::delivery {

struct LmtpOptions {
  // "unix:/run/dovecot/lmtp" or "127.0.0.1:24" (port defaults to 24).
  std::string endpoint;
  // Name sent in LHLO.
  std::string hostname = "localhost";
  std::chrono::milliseconds connect_timeout{10'000};
  // Greeting, LHLO, MAIL, RCPT, DATA and QUIT replies.
  std::chrono::milliseconds command_timeout{60'000};
  // Sending the content, and each per-recipient reply after the final "."
  // (RFC 5321 §4.5.3.2.6 suggests 10 minutes for the latter).
  std::chrono::milliseconds data_timeout{600'000};
  ReplyLimits reply_limits{};
};

// LHLO keywords tern cares about (RFC 2033 §4.1 / RFC 5321 §4.1.1.1).
struct LmtpExtensions {
  bool pipelining = false;            // RFC 2920
  bool eight_bit_mime = false;        // RFC 6152
  bool smtputf8 = false;              // RFC 6531
  bool enhanced_status_codes = false; // RFC 2034
};

// Reads the keywords out of an LHLO reply (first line is the server name).
LmtpExtensions parse_lhlo_reply(const Reply& reply);

class LmtpClient {
 public:
  explicit LmtpClient(LmtpOptions options) : options_(std::move(options)) {}

  // Delivers one message to `recipients` (addresses for RCPT TO). Returns one
  // result per recipient, in order; RecipientResult::recipient is the RCPT
  // address. `smtputf8` asks for the SMTPUTF8 MAIL parameter (RFC 6531).
  std::vector<RecipientResult> deliver(const std::string& sender, const std::vector<std::string>& recipients,
                                       std::string_view content, bool smtputf8);

 private:
  LmtpOptions options_;
};

}  // namespace tern::delivery
