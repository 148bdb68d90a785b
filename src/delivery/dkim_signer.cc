// DKIM signing of outgoing mail at the end of DATA (see dkim_signer.h).
#include "delivery/dkim_signer.h"

#include <ctime>
#include <utility>

#include "auth/dkim.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/strings.h"
#include "mail/message.h"

namespace tern::delivery {
namespace {

// A key file is a few KiB; anything much larger is not a key.
constexpr size_t kMaxKeyFileBytes = 64 * 1024;

// The domain of an address ("" for none or a domain literal, which cannot
// have keys).
std::string domain_of(std::string_view address) {
  size_t at = address.rfind('@');
  if (at == std::string_view::npos || at + 1 >= address.size()) return "";
  std::string_view domain = address.substr(at + 1);
  if (domain.front() == '[') return "";
  return to_lower(domain);
}

Error key_error(const std::string& domain, const config::DkimSigningKey& k, const std::string& what) {
  return Error::local("dkim.sign \"" + domain + "\" selector \"" + k.selector + "\": " + k.key + ": " + what);
}

}  // namespace

Result<std::unique_ptr<DkimSigner>> DkimSigner::load(const config::Config& cfg) {
  std::vector<Key> keys;
  for (const auto& [domain, list] : cfg.dkim.sign) {
    for (const auto& k : list) {
      auto text = fs::read_file(k.key, kMaxKeyFileBytes);
      if (!text) return key_error(domain, k, "cannot read the key: " + text.error().text);
      auto key = auth::crypto::PrivateKey::from_text(*text);
      if (!key) return key_error(domain, k, "not a private key: " + key.error().text);
      // RFC 8301 §3.2: verifiers refuse RSA keys under 1024 bits.
      if (key->type() == auth::crypto::KeyType::kRsa && key->bits() < 1024) {
        return key_error(domain, k, "RSA key of " + std::to_string(key->bits()) + " bits; at least 1024 are needed");
      }
      const char* actual = key->type() == auth::crypto::KeyType::kRsa ? "rsa-sha256" : "ed25519-sha256";
      if (!k.algorithm.empty() && !iequals(k.algorithm, actual)) {
        return key_error(domain, k, "algorithm = \"" + k.algorithm + "\" but the key is " + actual);
      }
      keys.push_back(Key{to_lower(domain), to_lower(k.selector), std::move(*key), k.key});
    }
  }
  return std::make_unique<DkimSigner>(std::move(keys), cfg.relay.trusted_networks);
}

DkimSigner::DkimSigner(std::vector<Key> keys, std::vector<Cidr> trusted_networks)
    : keys_(std::move(keys)), trusted_networks_(std::move(trusted_networks)) {}

bool DkimSigner::trusted_origin(const queue::Envelope& env) const {
  return trusted_origin(env.auth_user, env.listener, env.client_ip);
}

bool DkimSigner::trusted_origin(std::string_view auth_user, std::string_view listener,
                                std::string_view client_ip) const {
  if (!auth_user.empty()) return true;
  // RFC 6409: the submission ports take mail from the domain's own users.
  if (listener == "submission" || listener == "submissions") return true;
  auto ip = IpAddress::parse(client_ip);
  if (!ip) return false;
  for (const auto& net : trusted_networks_) {
    if (net.contains(*ip)) return true;
  }
  return false;
}

std::vector<const DkimSigner::Key*> DkimSigner::keys_for(std::string_view domain) const {
  std::vector<const Key*> out;
  // The domain itself, else the closest parent that has keys
  // (mail.example.com is signed with example.com's keys: aligned for DMARC
  // in relaxed mode, RFC 7489 §3.1.1).
  std::string_view candidate = domain;
  while (!candidate.empty()) {
    for (const auto& k : keys_) {
      if (k.domain == candidate) out.push_back(&k);
    }
    if (!out.empty()) return out;
    size_t dot = candidate.find('.');
    if (dot == std::string_view::npos) break;
    candidate.remove_prefix(dot + 1);
  }
  return out;
}

std::optional<std::string> DkimSigner::signing_domain(const queue::Envelope& env, std::string_view message_text) const {
  auto message = mail::Message::parse(std::string(message_text));
  if (message) {
    auto from = message->from_addresses();
    if (from && !from->empty()) {
      std::string domain = to_lower((*from)[0].domain);
      auto keys = keys_for(domain);
      if (!keys.empty()) return keys[0]->domain;
    }
  }
  auto keys = keys_for(domain_of(env.mail_from));
  if (!keys.empty()) return keys[0]->domain;
  return std::nullopt;
}

Result<std::string> DkimSigner::sign(const queue::Envelope& env, std::string_view message_text,
                                     int64_t timestamp) const {
  if (keys_.empty() || !trusted_origin(env)) return std::string();
  auto message = mail::Message::parse(std::string(message_text));
  if (!message) return message.error();
  // RFC 6376 §6.1.1 and DMARC: the header From domain first, then the
  // envelope sender's.
  std::vector<const Key*> keys;
  auto from = message->from_addresses();
  if (from && !from->empty()) keys = keys_for(to_lower((*from)[0].domain));
  if (keys.empty()) keys = keys_for(domain_of(env.mail_from));
  std::string fields;
  for (const Key* k : keys) {
    auth::dkim::SignOptions options;
    options.domain = k->domain;
    options.selector = k->selector;
    options.key = k->key;
    options.header_canon = auth::dkim::Canon::kRelaxed;
    options.body_canon = auth::dkim::Canon::kRelaxed;
    options.timestamp = timestamp;
    auto field = auth::dkim::sign(*message, options);
    if (!field) {
      return Error::local("dkim sign d=" + k->domain + " s=" + k->selector + ": " + field.error().text);
    }
    fields += *field;
  }
  return fields;
}

Result<size_t> DkimSigner::sign_into(queue::Envelope& env, std::string_view content) const {
  if (keys_.empty() || !trusted_origin(env)) return size_t{0};
  std::string& prepend = env.attributes[queue::kPrependAttribute];
  std::string leaving = prepend;
  leaving.append(content);
  const int64_t timestamp = env.received_at != 0 ? env.received_at : static_cast<int64_t>(std::time(nullptr));
  auto fields = sign(env, leaving, timestamp);
  if (!fields) {
    if (prepend.empty()) env.attributes.erase(queue::kPrependAttribute);
    return fields.error();
  }
  size_t count = 0;
  for (size_t pos = 0; (pos = fields->find("DKIM-Signature:", pos)) != std::string::npos; ++pos) ++count;
  if (fields->empty()) {
    if (prepend.empty()) env.attributes.erase(queue::kPrependAttribute);
    return size_t{0};
  }
  // Below what is already there: those fields are not signed, and the
  // signatures cover the message as it leaves either way.
  prepend += *fields;
  log::info("dkim_signed").kv("id", env.id).kv("signatures", static_cast<uint64_t>(count));
  return count;
}

}  // namespace tern::delivery
