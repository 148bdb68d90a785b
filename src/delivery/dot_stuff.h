// Encoder for the SMTP/LMTP DATA phase (RFC 5321 §4.5.2 "transparency"): any
// line starting with "." gets one more "." and the content is terminated by
// CRLF "." CRLF. Bare LF line endings are turned into CRLF on the way (§2.3.8
// forbids bare LF on the wire); bare CR is passed through untouched. Works in
// chunks, so large messages can be streamed without a second full copy.
#pragma once

#include <string>
#include <string_view>

namespace tern::delivery {

class DotStuffer {
 public:
  // Appends the encoded form of the next `chunk` of message content to `out`.
  void append(std::string_view chunk, std::string& out);
  // Appends the end-of-data marker, adding a CRLF first if the content did
  // not end with a line break (an empty message becomes just ".\r\n").
  void finish(std::string& out);

 private:
  bool at_line_start_ = true;
  bool previous_was_cr_ = false;
};

// Whole-message convenience: encoded content including the final ".\r\n".
std::string dot_stuff(std::string_view content);

// Reverse of the above (for tests and fake servers): takes the bytes of a
// DATA phase up to and including the terminating ".\r\n" and returns the
// content; false when the terminator is missing.
bool dot_unstuff(std::string_view data, std::string& content);

}  // namespace tern::delivery
