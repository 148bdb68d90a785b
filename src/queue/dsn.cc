// Delivery status notification builder (see dsn.h). The report is assembled
// as text: top-level header fields, then the three body parts of RFC 6522
// multipart/report. Everything copied from the envelope or from a remote
// reply is bounded and cleaned of line breaks and control characters before
// it goes into a header field or a DSN field, so a hostile reply cannot add
// fields or MIME boundaries.
#include "queue/dsn.h"

#include <time.h>

#include <algorithm>
#include <cstdio>

#include "base/strings.h"

namespace tern::queue {

namespace {

// Longest value copied into one DSN field or explanation line (addresses,
// replies). A folded field then stays far below the 998-octet line limit of
// RFC 5322 §2.1.1 even when the value has no space to fold at.
constexpr size_t kMaxFieldValue = 900;
// Longest sender address accepted (RFC 5321 §4.5.3.1.3 path limit).
constexpr size_t kMaxSenderLength = 256;
// Boundary candidates tried before giving up on returning the original.
constexpr int kBoundaryAttempts = 64;
// Fold header and DSN fields at spaces beyond this column (RFC 5322 §2.1.1 SHOULD 78).
constexpr size_t kFoldColumn = 78;

bool is_ascii_text(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629 §4), 0 if malformed.
size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  size_t len = 0;
  unsigned min = 0;
  unsigned cp = 0;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2, cp = c & 0x1F, min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3, cp = c & 0x0F, min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

bool is_utf8_text(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t len = utf8_sequence_length(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

// One line of printable text for a field value or an explanation line:
// control characters (CR and LF included) become spaces, runs of spaces
// collapse, non-ASCII is kept only when `allow_utf8` and well-formed (else
// '?'), and the result is cut to kMaxFieldValue octets on a character
// boundary.
std::string clean_text(std::string_view in, bool allow_utf8) {
  std::string out;
  out.reserve(std::min(in.size(), kMaxFieldValue));
  for (size_t i = 0; i < in.size();) {
    auto c = static_cast<unsigned char>(in[i]);
    std::string_view piece;
    char replacement = 0;
    size_t advance = 1;
    if (c < 0x20 || c == 0x7F) {
      replacement = ' ';
    } else if (c < 0x80) {
      piece = in.substr(i, 1);
    } else {
      size_t len = allow_utf8 ? utf8_sequence_length(in, i) : 0;
      if (len == 0) {
        replacement = '?';
      } else {
        piece = in.substr(i, len);
        advance = len;
      }
    }
    std::string_view add = replacement ? std::string_view(&replacement, 1) : piece;
    if (add == " " && (out.empty() || out.back() == ' ')) {
      i += advance;
      continue;
    }
    if (out.size() + add.size() > kMaxFieldValue) break;
    out += add;
    i += advance;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// A name for Reporting-MTA, the MAILER-DAEMON domain and the Message-ID:
// letters, digits, '-' and '.', never empty.
std::string clean_host(std::string_view host) {
  std::string out;
  for (char c : host.substr(0, 255)) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (ok) out += c;
  }
  return out.empty() ? std::string("localhost") : out;
}

// An RFC 5322 atom for the "*-type" sub-fields (RFC 3464 §2.1.2).
std::string clean_atom(std::string_view s, std::string_view fallback) {
  std::string out;
  for (char c : s.substr(0, 64)) {
    auto u = static_cast<unsigned char>(c);
    if (u > 0x20 && u < 0x7F && std::string_view("()<>[]:;@\\,.\"").find(c) == std::string_view::npos) out += c;
  }
  return out.empty() ? std::string(fallback) : out;
}

// RFC 5322 §3.3 date-time in UTC with a numeric zone, as RFC 3464 §2.2.5
// requires for the DSN date fields.
std::string format_date(int64_t unix_seconds) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday % 7], tm.tm_mday,
                kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

// Appends "Name: value" CRLF, folding at spaces so that lines stay near
// kFoldColumn (RFC 5322 §2.2.3); the value must already be one clean line.
void append_field(std::string& out, std::string_view name, std::string_view value) {
  size_t column = name.size() + 2;
  out.append(name).append(": ");
  size_t pos = 0;
  bool first = true;
  while (pos < value.size()) {
    size_t space = value.find(' ', pos);
    size_t end = space == std::string_view::npos ? value.size() : space;
    std::string_view word = value.substr(pos, end - pos);
    if (!first) {
      if (column + 1 + word.size() > kFoldColumn) {
        out += "\r\n";
        column = 0;
      }
      out += ' ';
      ++column;
    }
    out += word;
    column += word.size();
    first = false;
    pos = end == value.size() ? end : end + 1;
  }
  out += "\r\n";
}

uint64_t fnv1a(uint64_t h, std::string_view data) {
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Wraps one line of the human-readable part at spaces near kFoldColumn;
// continuation lines are indented. A word longer than a line stays whole
// (values are capped at kMaxFieldValue, far below the 998-octet limit).
std::string wrap_line(std::string_view line) {
  constexpr std::string_view kIndent = "    ";
  std::string out;
  size_t column = 0;
  size_t pos = 0;
  while (pos < line.size()) {
    size_t space = line.find(' ', pos);
    size_t end = space == std::string_view::npos ? line.size() : space;
    std::string_view word = line.substr(pos, end - pos);
    if (column > 0) {
      if (column + 1 + word.size() > kFoldColumn) {
        out.append("\r\n").append(kIndent);
        column = kIndent.size();
      } else {
        out += ' ';
        ++column;
      }
    }
    out += word;
    column += word.size();
    pos = end == line.size() ? end : end + 1;
  }
  return out + "\r\n";
}

// Bare LF (and bare CR) become CRLF, so the returned message fits the DSN's
// CRLF text (RFC 5322 §2.1); a missing final line end is added.
std::string crlf_text(std::string_view in) {
  std::string out = normalize_crlf(in);
  if (!out.empty() && out.back() != '\n') out += "\r\n";
  return out;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// RFC 3463 §2 status-code at s[pos]: class "." subject "." detail, 1-3
// digits each, ending at the end of `s` or before a space. Normalized
// without leading zeros (RFC 3464 §2.3.4); "" when there is none.
std::string enhanced_code_at(std::string_view s, size_t pos) {
  std::string out;
  for (int part = 0; part < 3; ++part) {
    size_t start = pos;
    while (pos < s.size() && is_digit(s[pos]) && pos - start < 4) ++pos;
    size_t len = pos - start;
    if (len == 0 || len > (part == 0 ? 1u : 3u)) return "";
    std::string_view digits = s.substr(start, len);
    while (digits.size() > 1 && digits.front() == '0') digits.remove_prefix(1);
    out.append(digits);
    if (part < 2) {
      if (pos >= s.size() || s[pos] != '.') return "";
      out += '.';
      ++pos;
    }
  }
  if (pos < s.size() && s[pos] != ' ') return "";
  if (out[0] != '2' && out[0] != '4' && out[0] != '5') return "";
  return out;
}

struct FoundReply {
  int code = 0;
  std::string enhanced;
};

// Finds an SMTP reply (RFC 5321 §4.2: three digits, then SP or "-") in
// `text`: at the very start, with or without an enhanced code (RFC 2034
// §3), or later at a word start when an enhanced code of the same class
// follows (a quoted reply such as "...; last error: 451 4.4.1 ...").
std::optional<FoundReply> find_reply(std::string_view text) {
  for (size_t p = 0; p + 4 <= text.size(); ++p) {
    if (p > 0 && text[p - 1] != ' ') continue;
    char cls = text[p];
    if ((cls != '2' && cls != '4' && cls != '5') || !is_digit(text[p + 1]) || !is_digit(text[p + 2])) continue;
    if (text[p + 3] != ' ' && text[p + 3] != '-') continue;
    FoundReply found;
    found.code = (cls - '0') * 100 + (text[p + 1] - '0') * 10 + (text[p + 2] - '0');
    std::string enhanced = enhanced_code_at(text, p + 4);
    if (!enhanced.empty() && enhanced[0] == cls) found.enhanced = std::move(enhanced);
    if (p == 0 || !found.enhanced.empty()) return found;
  }
  return std::nullopt;
}

// True when `text` is an SMTP reply itself (code first), as the "smtp"
// diagnostic-type requires (RFC 3461 §9.2), not our text quoting one.
bool starts_with_reply(std::string_view text) {
  return find_reply(text.substr(0, 4)).has_value();
}

DsnAction action_for(DsnKind kind, const DsnRecipient& r) {
  switch (kind) {
    case DsnKind::kFailure:
      return DsnAction::kFailed;
    case DsnKind::kDelay:
      return DsnAction::kDelayed;
    case DsnKind::kSuccess:
      if (r.success_action == DsnAction::kRelayed || r.success_action == DsnAction::kExpanded) {
        return r.success_action;
      }
      return DsnAction::kDelivered;
  }
  return DsnAction::kFailed;
}

const char* action_name(DsnAction action) {
  switch (action) {
    case DsnAction::kFailed:
      return "failed";
    case DsnAction::kDelayed:
      return "delayed";
    case DsnAction::kDelivered:
      return "delivered";
    case DsnAction::kRelayed:
      return "relayed";
    case DsnAction::kExpanded:
      return "expanded";
  }
  return "failed";
}

bool status_class_fits(char cls, DsnAction action) {
  switch (action) {
    case DsnAction::kFailed:
      return cls == '4' || cls == '5';
    case DsnAction::kDelayed:
      return cls == '4';
    default:
      return cls == '2';
  }
}

// A sender address we can put between angle brackets in To: and RCPT TO.
bool writable_sender(std::string_view sender) {
  if (sender.empty() || sender.size() > kMaxSenderLength) return false;
  for (unsigned char c : sender) {
    if (c < 0x20 || c == 0x7F || c == '<' || c == '>') return false;
  }
  return is_utf8_text(sender);
}

// What goes into the third body part.
enum class Returned { kFull, kHeaders, kNothing };

struct ReportedRecipient {
  const Recipient* recipient;
  const DsnRecipient* request;
  DsnAction action;
  std::string final_address;  // the address as the sender gave it (RFC 3464 §2.3.2)
};

}  // namespace

std::string_view header_section(std::string_view content) {
  // RFC 5322 §2.1: the header section ends at the first empty line.
  size_t line = 0;
  while (line < content.size()) {
    size_t lf = content.find('\n', line);
    if (lf == std::string_view::npos) return content;
    std::string_view text = content.substr(line, lf - line);
    if (text.empty() || text == "\r") return content.substr(0, line);
    line = lf + 1;
  }
  return content;
}

bool should_notify(const Envelope& env, const Recipient& recipient, DsnKind kind) {
  // RFC 3461 §6.1 / RFC 5321 §4.5.5: nothing is ever sent to the null reverse-path.
  if (env.mail_from.empty()) return false;
  const unsigned notify = recipient.notify;
  if (notify & kNotifyNever) return false;
  if (notify == 0) {
    // RFC 3461 §4.1: no NOTIFY may be read as FAILURE or FAILURE,DELAY; we
    // warn about delays too, as most MTAs do.
    return kind != DsnKind::kSuccess;
  }
  switch (kind) {
    case DsnKind::kFailure:
      return (notify & kNotifyFailure) != 0;
    case DsnKind::kDelay:
      return (notify & kNotifyDelay) != 0;
    case DsnKind::kSuccess:
      return (notify & kNotifySuccess) != 0;
  }
  return false;
}

std::string extract_enhanced_status(std::string_view reply) {
  auto found = find_reply(reply);
  return found ? found->enhanced : std::string();
}

std::string dsn_status_for(std::string_view reply, DsnAction action) {
  if (auto found = find_reply(reply)) {
    if (!found->enhanced.empty() && status_class_fits(found->enhanced[0], action)) return found->enhanced;
    char cls = static_cast<char>('0' + found->code / 100);
    if (status_class_fits(cls, action)) return std::string(1, cls) + ".0.0";
  }
  switch (action) {
    case DsnAction::kFailed:
      // RFC 3463 §3.5 X.4.7: the queue lifetime ran out (QueueManager's wording).
      if (istarts_with(trim(reply), "message expired")) return "4.4.7";
      return "5.0.0";  // RFC 3461 §6.3 (g)
    case DsnAction::kDelayed:
      return "4.0.0";
    default:
      return "2.0.0";
  }
}

std::optional<Dsn> build_dsn(const Envelope& env, std::string_view content, const DsnRequest& request) {
  if (!writable_sender(env.mail_from)) return std::nullopt;

  std::vector<ReportedRecipient> reported;
  std::vector<bool> seen(env.recipients.size(), false);
  for (const auto& r : request.recipients) {
    if (r.index >= env.recipients.size() || seen[r.index]) continue;
    const Recipient& rcpt = env.recipients[r.index];
    if (!should_notify(env, rcpt, request.kind)) continue;
    seen[r.index] = true;
    std::string final_address = rcpt.original.empty() ? rcpt.address : rcpt.original;
    reported.push_back({&rcpt, &r, action_for(request.kind, r), std::move(final_address)});
  }
  if (reported.empty()) return std::nullopt;

  const std::string host = clean_host(request.reporting_mta);
  const bool failure = request.kind == DsnKind::kFailure;

  // RFC 3461 §4.3 / §6.2: RET=FULL returns the whole message in a failure
  // report; without RET we may choose, and return it whole too (the sender
  // sees exactly what bounced, as Postfix does); delay and success
  // reports carry only the header section ("SHOULD return only the
  // headers"). An oversized message, or a BINARYMIME one (which may hold bare
  // CR/LF that an 8bit part cannot carry, RFC 3030 §3), falls back to headers.
  const std::string_view headers = header_section(content);
  Returned returned = Returned::kHeaders;
  std::string reason;
  if (failure && env.ret != 2) {
    if (env.body == 2) {
      reason = "The original message was sent as binary MIME, so only its header section is attached.";
    } else if (content.size() > request.max_returned_bytes) {
      reason = "The original message is larger than " + std::to_string(request.max_returned_bytes) +
               " bytes, so only its header section is attached.";
    } else {
      returned = Returned::kFull;
    }
  }
  if (returned == Returned::kHeaders && headers.size() > request.max_returned_bytes) {
    returned = Returned::kNothing;
    reason = "The original message is too large to be returned, even its header section.";
  }
  std::string original_part;
  if (returned == Returned::kFull) original_part = crlf_text(content);
  if (returned == Returned::kHeaders) original_part = crlf_text(headers);

  // RFC 6533: UTF-8 addresses need the internationalized report types, and
  // so does a returned header section with UTF-8 when the message came with
  // SMTPUTF8 (RFC 6532). Otherwise the classic ASCII types are used.
  bool global = !is_ascii_text(env.mail_from);
  for (const auto& r : reported) {
    if (!is_ascii_text(r.final_address) || !is_ascii_text(r.recipient->orcpt)) global = true;
  }
  if (env.smtputf8 && returned != Returned::kNothing && !is_ascii_text(headers)) global = true;

  // Part 2: message/delivery-status (RFC 3464 §2.1), per-message fields first.
  std::string status;
  if (!env.envid.empty()) {
    // RFC 3461 §6.3 (a): the xtext-decoded ENVID, not re-encoded.
    append_field(status, "Original-Envelope-Id", clean_text(env.envid, false));
  }
  // RFC 3461 §6.3 (b): "dns" only for a fully qualified name.
  append_field(status, "Reporting-MTA", (host.find('.') != std::string::npos ? "dns; " : "x-local-hostname; ") + host);
  if (!env.client_helo.empty()) {
    // RFC 3464 §2.2.4: the EHLO name, with the client's address as a comment.
    std::string from_mta = "dns; " + clean_text(env.client_helo, false);
    std::string ip = clean_text(env.client_ip, false);
    ip.erase(std::remove_if(ip.begin(), ip.end(), [](char c) { return c == '(' || c == ')' || c == '\\'; }), ip.end());
    if (!ip.empty()) from_mta += " (" + ip + ")";
    append_field(status, "Received-From-MTA", from_mta);
  }
  const int64_t arrival = request.arrival_date != 0 ? request.arrival_date : env.received_at;
  if (arrival != 0) append_field(status, "Arrival-Date", format_date(arrival));             // RFC 3464 §2.2.5
  if (!env.id.empty()) append_field(status, "X-Tern-Queue-ID", clean_text(env.id, false));  // RFC 3464 §2.4

  std::string explanation_lines;
  for (const auto& r : reported) {
    const Recipient& rcpt = *r.recipient;
    status += "\r\n";  // RFC 3464 §2.1: a blank line before each per-recipient group
    // RFC 3461 §6.3 (d) / RFC 3464 §2.3.1: only when ORCPT was given.
    if (!rcpt.orcpt.empty()) {
      std::string type = is_ascii_text(rcpt.orcpt) ? clean_atom(rcpt.orcpt_type, "rfc822") : "utf-8";
      append_field(status, "Original-Recipient", type + "; " + clean_text(rcpt.orcpt, global));
    }
    // RFC 3461 §6.3 (e); RFC 6533 §3: the "utf-8" type for a UTF-8 address.
    const std::string final_address = clean_text(r.final_address, global);
    append_field(status, "Final-Recipient",
                 std::string(is_ascii_text(final_address) ? "rfc822; " : "utf-8; ") + final_address);
    append_field(status, "Action", action_name(r.action));                      // RFC 3464 §2.3.3
    append_field(status, "Status", dsn_status_for(rcpt.last_reply, r.action));  // RFC 3464 §2.3.4
    const std::string reply = clean_text(rcpt.last_reply, global);
    const std::string remote = clean_host(r.request->remote_mta);
    if (!r.request->remote_mta.empty()) {
      append_field(status, "Remote-MTA", "dns; " + remote);  // RFC 3461 §6.3 (h)
    }
    if (!reply.empty()) {
      // RFC 3461 §6.3 (i) and §9.2 for a remote server's reply; our own
      // diagnostics use a private type (RFC 3464 §2.1.2: "X-" names).
      bool smtp = !r.request->remote_mta.empty() && starts_with_reply(reply);
      append_field(status, "Diagnostic-Code", (smtp ? "smtp; " : "X-tern; ") + reply);
    }
    int64_t last_attempt = r.request->last_attempt;
    if (last_attempt == 0 && rcpt.attempts > 0) last_attempt = request.now;
    if (last_attempt != 0) append_field(status, "Last-Attempt-Date", format_date(last_attempt));  // §2.3.7
    if (r.action == DsnAction::kDelayed && request.will_retry_until != 0) {
      append_field(status, "Will-Retry-Until", format_date(request.will_retry_until));  // RFC 3464 §2.3.9
    }

    // The same recipient in the human-readable part.
    std::string line = "<" + clean_text(r.final_address, true) + ">";
    switch (r.action) {
      case DsnAction::kDelivered:
        line += ": delivered";
        break;
      case DsnAction::kRelayed:
        line += ": relayed to " + (r.request->remote_mta.empty() ? std::string("another mail system") : remote) +
                ", which will not send further reports";
        break;
      case DsnAction::kExpanded:
        line += ": delivered and forwarded to further recipients";
        break;
      default:
        if (!r.request->remote_mta.empty()) line += ": host " + remote + " said";
        line +=
            ": " + (reply.empty() ? std::string("no further detail is available") : clean_text(rcpt.last_reply, true));
        break;
    }
    explanation_lines += wrap_line(line);
  }

  // Part 1: the human-readable explanation (RFC 6522 §3).
  std::string explanation = "This is the mail delivery system at " + host + ".\r\n\r\n";
  std::string subject;
  switch (request.kind) {
    case DsnKind::kFailure:
      subject = "Undelivered Mail Returned to Sender";
      explanation +=
          "Your message could not be delivered to the recipients listed below.\r\n"
          "Delivery has been given up; it will not be tried again.\r\n";
      break;
    case DsnKind::kDelay:
      subject = "Delayed Mail (still being retried)";
      explanation += "Your message has not been delivered yet to the recipients listed below.\r\n";
      if (request.will_retry_until != 0) {
        explanation += "Delivery will be retried until " + format_date(request.will_retry_until) + ".\r\n";
      } else {
        explanation += "Delivery will be retried.\r\n";
      }
      explanation += "You do not need to send it again; you will be told if delivery finally fails.\r\n";
      break;
    case DsnKind::kSuccess:
      subject = "Successful Mail Delivery Report";
      explanation += "This is the delivery report you asked for, about the recipients listed below.\r\n";
      break;
  }
  explanation += "\r\n" + explanation_lines + "\r\n";
  if (returned == Returned::kFull) {
    explanation += "The original message is attached.\r\n";
  } else if (!reason.empty()) {
    explanation += reason + "\r\n";
  } else {
    explanation += "The header section of the original message is attached.\r\n";
  }
  if (!env.id.empty()) explanation += "Queue ID: " + clean_text(env.id, false) + "\r\n";

  // A boundary that no line of the returned message starts with (RFC 2046
  // §5.1.1); every other part is text we wrote and has no "--" lines.
  std::string boundary;
  uint64_t seed = fnv1a(0xcbf29ce484222325ULL, env.id);
  seed = fnv1a(seed, std::to_string(request.now));
  for (int attempt = 0;; ++attempt) {
    boundary = "=_tern-dsn-" + hex64(fnv1a(seed, std::to_string(attempt)));
    if (original_part.find("--" + boundary) == std::string::npos) break;
    if (attempt + 1 == kBoundaryAttempts) {
      original_part.clear();
      returned = Returned::kNothing;
      break;
    }
  }

  uint64_t reported_hash = fnv1a(seed, std::to_string(static_cast<int>(request.kind)));
  for (const auto& r : reported) reported_hash = fnv1a(reported_hash, std::to_string(r.request->index) + ",");

  const bool text_8bit = !is_ascii_text(explanation);
  const bool status_8bit = !is_ascii_text(status);
  const bool original_8bit = !is_ascii_text(original_part);

  std::string out;
  out.reserve(original_part.size() + status.size() + explanation.size() + 2048);
  append_field(out, "From", "Mail Delivery System <MAILER-DAEMON@" + host + ">");
  // RFC 3464 §2: addressed to the original envelope sender.
  append_field(out, "To", "<" + env.mail_from + ">");
  append_field(out, "Subject", subject);
  append_field(out, "Date", format_date(request.now));
  append_field(out, "Message-ID",
               "<dsn." + std::to_string(request.now) + "." + hex64(reported_hash) + "@" + host + ">");
  append_field(out, "Auto-Submitted", "auto-replied");  // RFC 3834 §5
  append_field(out, "MIME-Version", "1.0");
  // RFC 6522 §3 (RFC 6533 §6 for the global variant).
  append_field(out, "Content-Type",
               std::string("multipart/report; report-type=") + (global ? "global-delivery-status" : "delivery-status") +
                   "; boundary=\"" + boundary + "\"");
  if (text_8bit || status_8bit || original_8bit) append_field(out, "Content-Transfer-Encoding", "8bit");
  out += "\r\nThis is a MIME-encapsulated delivery status notification.\r\n";

  out += "\r\n--" + boundary + "\r\n";
  append_field(out, "Content-Description", "Notification");
  append_field(out, "Content-Type", text_8bit ? "text/plain; charset=utf-8" : "text/plain; charset=us-ascii");
  append_field(out, "Content-Transfer-Encoding", text_8bit ? "8bit" : "7bit");
  out += "\r\n" + explanation;

  out += "\r\n--" + boundary + "\r\n";
  append_field(out, "Content-Description", "Delivery report");
  // RFC 3464 §2.1: 7bit MUST be used; RFC 6533 §6.1: the global form is 8bit.
  append_field(out, "Content-Type", global ? "message/global-delivery-status" : "message/delivery-status");
  append_field(out, "Content-Transfer-Encoding", status_8bit ? "8bit" : "7bit");
  out += "\r\n" + status;

  if (returned != Returned::kNothing) {
    out += "\r\n--" + boundary + "\r\n";
    const char* type = nullptr;
    if (returned == Returned::kFull) {
      append_field(out, "Content-Description", "Undelivered message");
      type = global ? "message/global" : "message/rfc822";  // RFC 6532 §3.7
    } else {
      append_field(out, "Content-Description", "Message headers");
      type = global ? "message/global-headers" : "text/rfc822-headers";  // RFC 6533 §6.3, RFC 6522 §4
    }
    append_field(out, "Content-Type", type);
    // RFC 2046 §5.2.1: message/rfc822 allows only 7bit, 8bit or binary.
    append_field(out, "Content-Transfer-Encoding", original_8bit ? "8bit" : "7bit");
    out += "\r\n" + original_part;
  }
  out += "\r\n--" + boundary + "--\r\n";

  Dsn dsn;
  dsn.mail_from = "";
  dsn.recipient = env.mail_from;
  dsn.needs_8bitmime = !is_ascii_text(out);
  dsn.needs_smtputf8 = !is_ascii_text(env.mail_from);
  dsn.reported = reported.size();
  dsn.returned_full = returned == Returned::kFull;
  dsn.content = std::move(out);
  return dsn;
}

}  // namespace tern::queue
