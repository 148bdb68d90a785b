// LMTP client session (see lmtp_client.h). The conversation is linear and
// blocking on a worker thread; replies are matched to commands by order, as
// pipelining requires (RFC 2920 §3.1).
#include "delivery/lmtp_client.h"

#include <optional>
#include <utility>

#include "base/log.h"
#include "base/strings.h"
#include "delivery/client_socket.h"
#include "delivery/dot_stuff.h"

namespace tern::delivery {

namespace {

constexpr size_t kContentChunk = 64 * 1024;
constexpr std::chrono::milliseconds kQuitTimeout{2000};

bool has_8bit(std::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80) return true;
  }
  return false;
}

// Result for one recipient from the server's reply to RCPT or to the final ".".
RecipientResult from_reply(const std::string& recipient, const Reply& reply) {
  RecipientResult r;
  r.recipient = recipient;
  r.code = reply.code;
  r.enhanced = reply.enhanced;
  if (r.enhanced.empty()) r.enhanced = std::to_string(reply.code / 100) + ".0.0";
  r.text = reply.text();
  r.transient = !reply.positive() && !reply.permanent();
  return r;
}

// A reply that does not fit the protocol step is the server's problem and
// must not bounce mail: it becomes a transient failure quoting the reply.
Error unexpected(std::string_view step, const Reply& reply) {
  std::string text = "LMTP server rejected " + std::string(step) + ": " + reply.to_string();
  if (reply.code == 421 || reply.transient()) return Error::temp("4.4.2", text);
  return Error::temp("4.3.0", text);
}

// Addresses go between angle brackets on one line; anything else would let
// an address inject commands.
bool safe_address(std::string_view address) {
  for (unsigned char c : address) {
    if (c == '\r' || c == '\n' || c == '<' || c == '>' || c == 0) return false;
  }
  return true;
}

}  // namespace

LmtpExtensions parse_lhlo_reply(const Reply& reply) {
  LmtpExtensions ext;
  for (size_t i = 1; i < reply.lines.size(); ++i) {
    std::string_view line = trim(reply.lines[i]);
    std::string keyword = to_upper(line.substr(0, line.find(' ')));
    if (keyword == "PIPELINING") ext.pipelining = true;
    else if (keyword == "8BITMIME") ext.eight_bit_mime = true;
    else if (keyword == "SMTPUTF8") ext.smtputf8 = true;
    else if (keyword == "ENHANCEDSTATUSCODES") ext.enhanced_status_codes = true;
  }
  return ext;
}

std::vector<RecipientResult> LmtpClient::deliver(const std::string& sender,
                                                 const std::vector<std::string>& recipients,
                                                 std::string_view content, bool smtputf8) {
  std::vector<std::optional<RecipientResult>> results(recipients.size());
  auto finish = [&](const std::optional<Error>& error) {
    std::vector<RecipientResult> out;
    out.reserve(recipients.size());
    for (size_t i = 0; i < recipients.size(); ++i) {
      if (results[i]) out.push_back(std::move(*results[i]));
      else out.push_back(RecipientResult::from_error(recipients[i], error.value_or(Error::local("not attempted"))));
    }
    return out;
  };
  auto fail_rest = [&](const Error& error) {
    log::warn("lmtp_failed").kv("endpoint", options_.endpoint).kv("error", error.to_string());
    return finish(error);
  };

  if (recipients.empty()) return {};
  if (!safe_address(sender)) return fail_rest(Error::perm("5.1.7", "invalid sender address", 553));
  for (size_t i = 0; i < recipients.size(); ++i) {
    if (!safe_address(recipients[i])) {
      results[i] = RecipientResult::from_error(recipients[i], Error::perm("5.1.3", "invalid recipient address", 553));
    }
  }

  auto endpoint = Endpoint::parse(options_.endpoint, 24);
  if (!endpoint) return fail_rest(endpoint.error());
  auto connected = ClientSocket::connect(*endpoint, options_.connect_timeout, options_.reply_limits);
  if (!connected) return fail_rest(connected.error());
  ClientSocket sock = std::move(*connected);
  const auto cmd_timeout = options_.command_timeout;

  // Greeting (RFC 5321 §4.3.2: 220, or 554/421 refusing service). Any
  // refusal by our own delivery agent is an operational problem: retry.
  auto greeting = sock.read_reply(cmd_timeout);
  if (!greeting) return fail_rest(greeting.error());
  if (greeting->code != 220) return fail_rest(unexpected("connection", *greeting));

  if (auto st = sock.send("LHLO " + options_.hostname + "\r\n", cmd_timeout); !st) return fail_rest(st.error());
  auto lhlo = sock.read_reply(cmd_timeout);
  if (!lhlo) return fail_rest(lhlo.error());
  if (lhlo->code != 250) return fail_rest(unexpected("LHLO", *lhlo));
  LmtpExtensions ext = parse_lhlo_reply(*lhlo);

  // RFC 6531 §3.2: a message needing SMTPUTF8 must not go to a server that
  // lacks it. The envelope is what the server parses, so only a non-ASCII
  // envelope makes that fatal; otherwise the content is passed as 8-bit.
  bool send_smtputf8 = smtputf8 && ext.smtputf8;
  if (smtputf8 && !ext.smtputf8) {
    bool ascii_envelope = !has_8bit(sender);
    for (const auto& r : recipients) ascii_envelope = ascii_envelope && !has_8bit(r);
    if (!ascii_envelope) {
      return fail_rest(Error::perm("5.6.7", "LMTP server does not support SMTPUTF8 (RFC 6531)", 553));
    }
  }

  std::string mail = "MAIL FROM:<" + sender + ">";
  // RFC 6152: declare 8-bit content when the server understands it.
  if (ext.eight_bit_mime && has_8bit(content)) mail += " BODY=8BITMIME";
  if (send_smtputf8) mail += " SMTPUTF8";
  mail += "\r\n";

  std::vector<size_t> rcpt_index;  // recipients actually sent in RCPT, in order
  for (size_t i = 0; i < recipients.size(); ++i) {
    if (!results[i]) rcpt_index.push_back(i);
  }
  if (rcpt_index.empty()) return finish(std::nullopt);
  auto rcpt_command = [&](size_t i) { return "RCPT TO:<" + recipients[i] + ">\r\n"; };

  std::vector<size_t> accepted;
  auto handle_rcpt_reply = [&](size_t i, const Reply& reply) {
    if (reply.code == 250 || reply.code == 251) accepted.push_back(i);
    else results[i] = from_reply(recipients[i], reply);
  };

  if (ext.pipelining) {
    // RFC 2920 §3.1: MAIL and RCPTs may be sent as one group; replies come
    // back in order. DATA waits so it is only sent with recipients to take.
    std::string group = mail;
    for (size_t i : rcpt_index) group += rcpt_command(i);
    if (auto st = sock.send(group, cmd_timeout); !st) return fail_rest(st.error());
    auto mail_reply = sock.read_reply(cmd_timeout);
    if (!mail_reply) return fail_rest(mail_reply.error());
    std::vector<Reply> rcpt_replies;
    for (size_t n = 0; n < rcpt_index.size(); ++n) {
      auto r = sock.read_reply(cmd_timeout);
      if (!r) return fail_rest(r.error());
      rcpt_replies.push_back(std::move(*r));
    }
    if (mail_reply->code != 250) {
      for (size_t i : rcpt_index) results[i] = from_reply(recipients[i], *mail_reply);
    } else {
      for (size_t n = 0; n < rcpt_index.size(); ++n) handle_rcpt_reply(rcpt_index[n], rcpt_replies[n]);
    }
  } else {
    if (auto st = sock.send(mail, cmd_timeout); !st) return fail_rest(st.error());
    auto mail_reply = sock.read_reply(cmd_timeout);
    if (!mail_reply) return fail_rest(mail_reply.error());
    if (mail_reply->code != 250) {
      for (size_t i : rcpt_index) results[i] = from_reply(recipients[i], *mail_reply);
    } else {
      for (size_t i : rcpt_index) {
        if (auto st = sock.send(rcpt_command(i), cmd_timeout); !st) return fail_rest(st.error());
        auto r = sock.read_reply(cmd_timeout);
        if (!r) return fail_rest(r.error());
        handle_rcpt_reply(i, *r);
      }
    }
  }

  if (!accepted.empty()) {
    if (auto st = sock.send("DATA\r\n", cmd_timeout); !st) return fail_rest(st.error());
    auto data_reply = sock.read_reply(cmd_timeout);
    if (!data_reply) return fail_rest(data_reply.error());
    if (data_reply->code != 354) {
      for (size_t i : accepted) results[i] = from_reply(recipients[i], *data_reply);
    } else {
      // RFC 5321 §4.5.2 transparency, streamed in chunks.
      DotStuffer stuffer;
      std::string chunk;
      for (size_t off = 0; off < content.size(); off += kContentChunk) {
        chunk.clear();
        stuffer.append(content.substr(off, kContentChunk), chunk);
        if (auto st = sock.send(chunk, options_.data_timeout); !st) return fail_rest(st.error());
      }
      chunk.clear();
      stuffer.finish(chunk);
      if (auto st = sock.send(chunk, options_.data_timeout); !st) return fail_rest(st.error());
      // RFC 2033 §4.2: one reply per successful RCPT, in RCPT order. If the
      // connection dies midway, recipients already answered keep their result.
      for (size_t i : accepted) {
        auto r = sock.read_reply(options_.data_timeout);
        if (!r) return fail_rest(r.error());
        if (r->intermediate()) return fail_rest(unexpected("message data", *r));
        results[i] = from_reply(recipients[i], *r);
      }
    }
  }

  // Best-effort QUIT; the transaction is already settled.
  if (sock.send("QUIT\r\n", kQuitTimeout)) (void)sock.read_reply(kQuitTimeout);
  return finish(std::nullopt);
}

}  // namespace tern::delivery
