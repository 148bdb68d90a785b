// Trace header for accepted mail (RFC 5321 §4.4, RFC 8314 §4.3 for TLS
// details, RFC 3848 / RFC 6531 §3.7.3 for the "with" protocol names). Pure
// formatting, unit-tested.
#pragma once

#include <cstdint>
#include <string>

namespace tern::server {

struct ReceivedInfo {
  std::string helo;         // client's EHLO/HELO argument
  std::string client_host;  // verified reverse DNS name or "" (shown as "unknown")
  std::string client_ip;
  std::string by_host;      // our hostname
  std::string protocol;     // SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTPS ...
  std::string queue_id;
  std::string tls_version;  // empty when not TLS
  std::string tls_cipher;
  int tls_bits = 0;
  std::string for_recipient;  // set only when there is exactly one recipient
  int64_t timestamp = 0;      // unix seconds
};

// "with" keyword for the session: RFC 3848 (ESMTP/ESMTPS/ESMTPA/ESMTPSA) and
// RFC 6531 §3.7.3 (UTF8SMTP...) when the transaction used SMTPUTF8.
std::string protocol_name(bool esmtp, bool tls, bool authenticated, bool smtputf8);

// The full header field, folded, ending with CRLF.
std::string format_received(const ReceivedInfo& info);

// RFC 5322 §3.3 date-time in UTC, e.g. "Thu, 26 Nov 2026 14:30:00 +0000".
std::string rfc5322_date(int64_t unix_seconds);

}  // namespace tern::server
