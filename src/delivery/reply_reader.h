// Client-side reader for SMTP and LMTP server replies (RFC 5321 §4.2). Bytes
// received from a server are fed in as they arrive; complete replies come out
// one at a time, with multiline replies ("250-..." continued by "250 ...")
// joined and the RFC 3463 enhanced status code split off. Hostile or broken
// servers are handled with hard bounds (line length, lines per reply) and a
// sticky protocol error, so the caller can give up on the connection cleanly.
// Used by the LMTP client here and meant for the remote SMTP client as well.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace tern::delivery {

// One complete server reply.
struct Reply {
  int code = 0;          // three-digit reply code, 200..559
  std::string enhanced;  // "2.1.5" when the first line carries one (RFC 3463 §2 / RFC 2034), else ""
  // Text of each line after "NNN-" / "NNN ", with a leading enhanced status
  // code removed. May be empty strings (a bare "250" line has no text).
  std::vector<std::string> lines;

  bool positive() const { return code >= 200 && code < 300; }
  bool intermediate() const { return code >= 300 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
  bool permanent() const { return code >= 500; }
  // All lines joined with " / " (for logs and bounce texts).
  std::string text() const;
  // "250 2.1.5 text" (single line, for logs).
  std::string to_string() const;
};

struct ReplyLimits {
  // RFC 5321 §4.5.3.1.5 caps reply lines at 512 octets; real servers
  // sometimes exceed it, so allow more but still a fixed bound.
  size_t max_line_length = 4096;  // including CRLF
  size_t max_lines = 128;         // lines in one multiline reply
};

class ReplyReader {
 public:
  explicit ReplyReader(ReplyLimits limits = {}) : limits_(limits) {}

  // Appends bytes received from the server.
  void feed(std::string_view bytes);
  // Returns the next complete reply, std::nullopt when more bytes are needed,
  // or an Error (451 4.5.0) when the server sent something that is not a
  // valid reply. After an error every later call returns the same error.
  Result<std::optional<Reply>> next();
  // Bytes received but not yet consumed by a complete reply.
  size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  Result<std::optional<Reply>> fail(std::string text);

  ReplyLimits limits_;
  std::string buffer_;
  size_t consumed_ = 0;
  std::optional<Error> error_;
};

// Parses text that must consist of exactly one complete reply (tests, tools).
Result<Reply> parse_reply(std::string_view text, ReplyLimits limits = {});

// Splits an RFC 3463 status code ("4.2.2") off the front of a reply line's
// text when it is well formed and its class matches `code`'s first digit.
// Returns the code (empty when absent) and leaves the rest of the text in `rest`.
std::string split_enhanced_code(std::string_view text, int code, std::string_view& rest);

}  // namespace tern::delivery
