// DKIM signing of outgoing mail (RFC 6376, RFC 8463): the keys of the
// `[dkim.sign]` configuration, loaded once at start-up, and the decision and
// signing done once per message at the end of DATA, before the message is
// queued (so every delivery attempt sends the same signatures). Each
// configured key of the signing domain gives one DKIM-Signature field, RSA
// and Ed25519 side by side (RFC 8463 §4: signers SHOULD add an RSA signature
// next to an Ed25519 one), relaxed/relaxed, over the header fields present
// among From, To, Cc, Subject, Date, Message-ID, MIME-Version, Content-Type
// and the rest of auth::dkim::default_signed_headers(), with From
// over-signed.
//
// What is signed: mail from a trusted origin only — a client that
// authenticated (Envelope::auth_user), the submission/submissions listeners
// (RFC 6409), or a client address in `[relay] trusted_networks`; never mail
// arriving on the MX listener from elsewhere, which would turn tern into a
// signing oracle for anyone. The domain: the header From domain (RFC 6376
// §6.1.1 / DMARC alignment) when it or a parent domain has keys, else the
// MAIL FROM domain likewise; nothing when neither has keys.
//
// The fields go into the envelope attribute queue::kPrependAttribute, after
// any fields already there (e.g. Authentication-Results), and the signature
// is computed over exactly what leaves the queue: those earlier prepended
// fields, then the spooled content.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/crypto.h"
#include "base/net.h"
#include "base/result.h"
#include "config/config.h"
#include "queue/envelope.h"

namespace tern::delivery {

class DkimSigner {
 public:
  struct Key {
    std::string domain;    // d=, lower-case
    std::string selector;  // s=
    auth::crypto::PrivateKey key;
    std::string source;  // the PEM file it came from (for log lines)
  };

  // Loads every key of cfg.dkim.sign (PEM files, RSA or Ed25519). Errors
  // name the domain, selector and file: unreadable or unparsable key, RSA
  // under 1024 bits (RFC 8301 §3.2), or a key that does not match the
  // configured algorithm. Trusted networks come from cfg.relay.
  static Result<std::unique_ptr<DkimSigner>> load(const config::Config& cfg);

  DkimSigner(std::vector<Key> keys, std::vector<Cidr> trusted_networks);

  bool empty() const { return keys_.empty(); }
  size_t key_count() const { return keys_.size(); }

  // True when mail from this origin may be signed (see the file comment).
  // Only needs the envelope fields known at DATA: auth_user, listener,
  // client_ip. The server uses it to decide whether to keep a copy of the
  // content for sign_into().
  bool trusted_origin(const queue::Envelope& env) const;
  // The same from the session's facts (at DATA, before the envelope exists).
  bool trusted_origin(std::string_view auth_user, std::string_view listener, std::string_view client_ip) const;

  // The domain whose keys sign `message_text` of `env`, or nullopt (see the
  // file comment). Exposed for tests and `queue show`-style diagnostics.
  std::optional<std::string> signing_domain(const queue::Envelope& env, std::string_view message_text) const;

  // The DKIM-Signature fields ("DKIM-Signature: ...\r\n" each, in key order)
  // for `message_text`, the message exactly as it will leave the queue. ""
  // when the origin is not trusted or no key fits. t= is `timestamp`.
  // Errors: the message does not parse, or a key failed to sign.
  Result<std::string> sign(const queue::Envelope& env, std::string_view message_text, int64_t timestamp) const;

  // End of DATA, before Spool::Writer::finish(env): signs what will leave
  // the queue (env's current kPrependAttribute fields, then `content`, the
  // spooled content) and appends the fields to that attribute. t= is
  // env.received_at (now when 0). Returns the number of signatures added.
  Result<size_t> sign_into(queue::Envelope& env, std::string_view content) const;

 private:
  // Keys of `domain` or of its closest configured parent domain.
  std::vector<const Key*> keys_for(std::string_view domain) const;

  std::vector<Key> keys_;
  std::vector<Cidr> trusted_networks_;
};

}  // namespace tern::delivery
