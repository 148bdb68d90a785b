// Received header formatting (see received.h).
#include "server/received.h"

#include <ctime>

namespace tern::server {

std::string protocol_name(bool esmtp, bool tls, bool authenticated, bool smtputf8) {
  if (!esmtp) return tls ? "SMTPS" : "SMTP";
  std::string p = smtputf8 ? "UTF8SMTP" : "ESMTP";
  if (tls) p += 'S';
  if (authenticated) p += 'A';
  return p;
}

std::string rfc5322_date(int64_t unix_seconds) {
  static const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday], tm.tm_mday,
                kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

namespace {
// The HELO argument is client-controlled: keep only printable ASCII without
// parentheses or backslashes so it cannot break the header's comment syntax.
std::string sanitize(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c > 32 && c < 127 && c != '(' && c != ')' && c != '\\' && c != ';') out.push_back(static_cast<char>(c));
  }
  if (out.size() > 255) out.resize(255);
  return out.empty() ? "unknown" : out;
}
}  // namespace

std::string format_received(const ReceivedInfo& i) {
  std::string h = "Received: from " + sanitize(i.helo) + " (" + (i.client_host.empty() ? "unknown" : i.client_host) +
                  " [" + i.client_ip + "])\r\n";
  if (!i.tls_version.empty()) {
    h += "\t(using " + i.tls_version + " with cipher " + i.tls_cipher + " (" + std::to_string(i.tls_bits) + "/" +
         std::to_string(i.tls_bits) + " bits))\r\n";
  }
  h += "\tby " + i.by_host + " (tern) with " + i.protocol + " id " + i.queue_id;
  if (!i.for_recipient.empty()) h += "\r\n\tfor <" + i.for_recipient + ">";
  h += "; " + rfc5322_date(i.timestamp) + "\r\n";
  return h;
}

}  // namespace tern::server
