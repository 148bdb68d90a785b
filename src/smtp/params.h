// ESMTP parameters of the MAIL and RCPT commands (RFC 5321 §4.1.2
// Mail-parameters / Rcpt-parameters) and their parsing: SIZE (RFC 1870),
// BODY (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531), RET/ENVID/NOTIFY/ORCPT
// (RFC 3461 DSN), AUTH (RFC 4954 §5) and REQUIRETLS (RFC 8689).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace tern::smtp {

enum class Body { k7Bit, k8BitMime, kBinaryMime };
enum class Ret { kUnset, kFull, kHdrs };

struct MailParams {
  std::optional<uint64_t> size;  // SIZE=, the client's estimate
  Body body = Body::k7Bit;
  bool smtputf8 = false;
  Ret ret = Ret::kUnset;
  std::string envid;  // ENVID=, xtext-decoded
  std::string auth;   // AUTH=, xtext-decoded ("<>" when unknown submitter)
  bool requiretls = false;
};

enum NotifyFlags : unsigned {
  kNotifyUnset = 0,
  kNotifyNever = 1,
  kNotifySuccess = 2,
  kNotifyFailure = 4,
  kNotifyDelay = 8,
};

struct RcptParams {
  unsigned notify = kNotifyUnset;  // NotifyFlags bits
  std::string orcpt_type;          // ORCPT address type, lower-cased, e.g. "rfc822"
  std::string orcpt;               // ORCPT address, xtext-decoded
};

// What the session knows when it parses parameters.
struct ParamContext {
  bool esmtp = true;              // session began with EHLO; with HELO any parameter is 555
  bool tls_active = false;        // REQUIRETLS is only offered (and accepted) over TLS
  uint64_t max_message_size = 0;  // SIZE= above this is 552 5.3.4 (0 = no limit)
};

// Parses the space-separated parameters after the MAIL reverse-path.
// Errors: 555 5.5.4 unknown, duplicate or not-offered parameter; 501 5.5.4
// malformed value; 552 5.3.4 declared SIZE above the limit (RFC 1870 §6.1).
Result<MailParams> parse_mail_params(std::string_view text, const ParamContext& ctx);

// Parses the space-separated parameters after the RCPT forward-path.
// Errors: 555 5.5.4 unknown or duplicate; 501 5.5.4 malformed (including
// NOTIFY=NEVER combined with other keywords, RFC 3461 §4.1).
Result<RcptParams> parse_rcpt_params(std::string_view text, const ParamContext& ctx);

}  // namespace tern::smtp
