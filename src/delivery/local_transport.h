// The interface the delivery workers use for local mailboxes, with its two
// implementations: MaildirTransport writes into Maildirs itself, LmtpTransport
// hands the message to an LMTP server (e.g. Dovecot). Both return exactly one
// RecipientResult per input recipient, in input order, and never throw.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "delivery/lmtp_client.h"
#include "delivery/local_delivery.h"
#include "delivery/maildir.h"

namespace tern::delivery {

class LocalTransport {
 public:
  virtual ~LocalTransport() = default;
  // Delivers one message (RFC 5322 text with CRLF endings, tern's Received
  // header already on top) to `rcpts`. `smtputf8`: the message was received
  // with the SMTPUTF8 parameter (RFC 6531).
  virtual std::vector<RecipientResult> deliver(const std::string& sender, const std::vector<LocalDelivery>& rcpts,
                                               std::string_view content, bool smtputf8) = 0;

  // Several messages at once; one result vector per message, in order. The
  // default delivers them one by one; MaildirTransport batches the syncs.
  struct Message {
    std::string sender;
    std::vector<LocalDelivery> rcpts;
    std::string_view content;
    bool smtputf8 = false;
  };
  virtual std::vector<std::vector<RecipientResult>> deliver_messages(const std::vector<Message>& messages) {
    std::vector<std::vector<RecipientResult>> out;
    out.reserve(messages.size());
    for (const auto& m : messages) out.push_back(deliver(m.sender, m.rcpts, m.content, m.smtputf8));
    return out;
  }
};

// Writes to Maildirs (adds Return-Path and Delivered-To). Success is
// "250 2.0.0 delivered to <path>". Recipients resolving to the same mailbox
// (user, domain, detail) in one call are stored once and share the result.
class MaildirTransport : public LocalTransport {
 public:
  explicit MaildirTransport(MaildirOptions options) : deliverer_(std::move(options)) {}
  std::vector<RecipientResult> deliver(const std::string& sender, const std::vector<LocalDelivery>& rcpts,
                                       std::string_view content, bool smtputf8) override;
  std::vector<std::vector<RecipientResult>> deliver_messages(const std::vector<Message>& messages) override;

 private:
  MaildirDeliverer deliverer_;
};

// Sends to an LMTP server; RCPT TO uses LocalDelivery::mailbox_address()
// (user[+detail]@domain) and the server adds its own Return-Path and
// Delivered-To. Duplicate mailboxes are sent once and share the result.
class LmtpTransport : public LocalTransport {
 public:
  explicit LmtpTransport(LmtpOptions options) : client_(std::move(options)) {}
  std::vector<RecipientResult> deliver(const std::string& sender, const std::vector<LocalDelivery>& rcpts,
                                       std::string_view content, bool smtputf8) override;

 private:
  LmtpClient client_;
};

}  // namespace tern::delivery
