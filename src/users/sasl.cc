// PLAIN, LOGIN and SCRAM-SHA-256 server state machines (see sasl.h).
#include "users/sasl.h"

#include "base/strings.h"
#include "users/address.h"

namespace tern::users {

namespace {

using Step = SaslServer::Step;

// Checks a PLAIN/LOGIN password. Unknown users still pay for one key
// derivation so response timing does not reveal which accounts exist.
bool check_password(const AccountStore& store, std::string_view user, std::string_view password,
                    std::string& reason) {
  auto credential = store.find(user);
  if (!credential) {
    (void)verify_password(store.decoy_credential(user), password);
    reason = "unknown user";
    return false;
  }
  if (!verify_password(*credential, password)) {
    reason = "wrong password";
    return false;
  }
  return true;
}

// --- PLAIN (RFC 4616 §2) ----------------------------------------------------

class PlainServer final : public SaslServer {
 public:
  explicit PlainServer(const AccountStore& store) : store_(store) {}

  Step start(std::optional<std::string_view> initial_response) override {
    if (!initial_response) {
      awaiting_ = true;
      return challenge("");  // RFC 4616 §2: empty challenge, client sends the message
    }
    return verify(*initial_response);
  }

  Step step(std::string_view response) override {
    if (!awaiting_) return failure("unexpected response");
    awaiting_ = false;
    return verify(response);
  }

 private:
  // message = [authzid] UTF8NUL authcid UTF8NUL passwd
  Step verify(std::string_view message) {
    if (message.size() > kMaxSaslResponseSize) return failure("response too long");
    auto fields = split(message, '\0');
    if (fields.size() != 3) return failure("malformed PLAIN message");
    std::string_view authzid = fields[0], authcid = fields[1], password = fields[2];
    if (authcid.empty() || password.empty()) return failure("empty PLAIN authcid or password");
    // RFC 4616 §2: the server decides whether authcid may act as authzid;
    // tern only allows acting as oneself.
    if (!authzid.empty() && canonical_address(authzid) != canonical_address(authcid)) {
      return failure("authzid differs from authcid");
    }
    std::string reason;
    if (!check_password(store_, authcid, password, reason)) return failure(reason);
    return success(canonical_address(authcid));
  }

  const AccountStore& store_;
  bool awaiting_ = false;
};

// --- LOGIN (draft-murchison-sasl-login) -------------------------------------

class LoginServer final : public SaslServer {
 public:
  explicit LoginServer(const AccountStore& store) : store_(store) {}

  Step start(std::optional<std::string_view> initial_response) override {
    // Some clients send the user name as an initial response.
    if (initial_response && !initial_response->empty()) return on_username(*initial_response);
    state_ = State::kUsername;
    return challenge("Username:");
  }

  Step step(std::string_view response) override {
    switch (state_) {
      case State::kUsername:
        return on_username(response);
      case State::kPassword:
        return on_password(response);
      case State::kDone:
        break;
    }
    return failure("unexpected response");
  }

 private:
  enum class State { kUsername, kPassword, kDone };

  Step on_username(std::string_view username) {
    if (username.empty() || username.size() > kMaxSaslResponseSize) {
      state_ = State::kDone;
      return failure("bad LOGIN user name");
    }
    username_ = std::string(username);
    state_ = State::kPassword;
    return challenge("Password:");
  }

  Step on_password(std::string_view password) {
    state_ = State::kDone;
    if (password.empty() || password.size() > kMaxSaslResponseSize) return failure("bad LOGIN password");
    std::string reason;
    if (!check_password(store_, username_, password, reason)) return failure(reason);
    return success(canonical_address(username_));
  }

  const AccountStore& store_;
  State state_ = State::kUsername;
  std::string username_;
};

// --- SCRAM-SHA-256 (RFC 5802 §3, §5, §7; RFC 7677) ---------------------------

// RFC 5802 §7 "printable": %x21-2B / %x2D-7E.
bool is_printable_nonce(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  }
  return true;
}

// RFC 5802 §5.1 saslname: "=2C" encodes ',' and "=3D" encodes '='; any other
// '=' is invalid. tern's SASLprep policy accepts printable ASCII names only.
bool decode_saslname(std::string_view in, std::string& out) {
  out.clear();
  if (in.empty()) return false;
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '=') {
      std::string_view esc = in.substr(i + 1, 2);
      if (esc == "2C") {
        out += ',';
      } else if (esc == "3D") {
        out += '=';
      } else {
        return false;
      }
      i += 2;
    } else if (c < 0x21 || c > 0x7e || c == ',') {
      return false;
    } else {
      out += c;
    }
  }
  return true;
}

// RFC 5802 §7 attr-val: ALPHA "=" value.
bool is_attr_val(std::string_view s) {
  if (s.size() < 3 || s[1] != '=') return false;
  char a = s[0];
  return (a >= 'a' && a <= 'z') || (a >= 'A' && a <= 'Z');
}

std::string random_server_nonce() {
  std::string bytes = crypto::random_bytes(18);
  return bytes.empty() ? std::string() : base64_encode(bytes);
}

class ScramServer final : public SaslServer {
 public:
  ScramServer(const AccountStore& store, const SaslOptions& options) : store_(store), options_(options) {}

  Step start(std::optional<std::string_view> initial_response) override {
    if (!initial_response || initial_response->empty()) {
      state_ = State::kClientFirst;
      return challenge("");
    }
    return on_client_first(*initial_response);
  }

  Step step(std::string_view response) override {
    switch (state_) {
      case State::kClientFirst:
        return on_client_first(response);
      case State::kClientFinal:
        return on_client_final(response);
      case State::kAcknowledge:
        state_ = State::kDone;
        // RFC 4954 §4: the client answers the server-final challenge with an
        // empty response; only then may the server say 235.
        if (!response.empty()) return failure("non-empty response to server-final message");
        return success(user_);
      case State::kDone:
        break;
    }
    return failure("unexpected response");
  }

 private:
  enum class State { kClientFirst, kClientFinal, kAcknowledge, kDone };

  Step fail(std::string reason) {
    state_ = State::kDone;
    return failure(std::move(reason));
  }

  // client-first-message = gs2-header client-first-message-bare (RFC 5802 §7)
  Step on_client_first(std::string_view message) {
    if (message.size() > kMaxSaslResponseSize) return fail("client-first message too long");
    if (message.find('\0') != std::string_view::npos) return fail("NUL in client-first message");

    // gs2-cbind-flag: tern offers no channel binding, so "n" (client has none)
    // and "y" (client has it but believes we do not, which is true) are
    // acceptable; "p=" asks for binding we cannot do (RFC 5802 §6).
    if (message.empty()) return fail("empty client-first message");
    if (message[0] == 'p') return fail("channel binding requested but not supported");
    if ((message[0] != 'n' && message[0] != 'y') || message.size() < 2 || message[1] != ',') {
      return fail("malformed gs2-header");
    }
    size_t authzid_end = message.find(',', 2);
    if (authzid_end == std::string_view::npos) return fail("malformed gs2-header");
    std::string_view authzid_field = message.substr(2, authzid_end - 2);
    gs2_header_ = std::string(message.substr(0, authzid_end + 1));
    std::string_view bare = message.substr(authzid_end + 1);
    client_first_bare_ = std::string(bare);

    auto attrs = split(bare, ',');
    if (attrs.size() < 2) return fail("client-first message lacks username or nonce");
    if (attrs[0].substr(0, 2) == "m=") return fail("unsupported mandatory extension");
    if (attrs[0].substr(0, 2) != "n=") return fail("client-first message lacks username");
    if (attrs[1].substr(0, 2) != "r=") return fail("client-first message lacks nonce");
    for (size_t i = 2; i < attrs.size(); ++i) {
      if (!is_attr_val(attrs[i])) return fail("malformed extension attribute");
    }
    std::string username;
    if (!decode_saslname(attrs[0].substr(2), username)) return fail("invalid username encoding");
    if (!authzid_field.empty()) {
      std::string authzid;
      if (authzid_field.substr(0, 2) != "a=" || !decode_saslname(authzid_field.substr(2), authzid)) {
        return fail("malformed authzid");
      }
      if (canonical_address(authzid) != canonical_address(username)) return fail("authzid differs from username");
    }
    std::string_view client_nonce = attrs[1].substr(2);
    if (!is_printable_nonce(client_nonce)) return fail("invalid client nonce");

    std::string server_nonce = options_.scram_nonce ? options_.scram_nonce() : random_server_nonce();
    if (!is_printable_nonce(server_nonce)) return fail("could not make a server nonce");

    auto credential = store_.find(username);
    known_user_ = credential.has_value();
    credential_ = known_user_ ? *credential : store_.decoy_credential(username);
    user_ = canonical_address(username);
    nonce_ = std::string(client_nonce) + server_nonce;

    // server-first-message = nonce "," salt "," iteration-count
    server_first_ = "r=" + nonce_ + ",s=" + base64_encode(credential_.salt) + ",i=" +
                    std::to_string(credential_.iterations);
    state_ = State::kClientFinal;
    return challenge(server_first_);
  }

  // client-final-message = channel-binding "," nonce ["," extensions] "," proof
  Step on_client_final(std::string_view message) {
    if (message.size() > kMaxSaslResponseSize) return fail("client-final message too long");
    if (message.find('\0') != std::string_view::npos) return fail("NUL in client-final message");
    size_t proof_at = message.rfind(",p=");
    if (proof_at == std::string_view::npos) return fail("client-final message lacks proof");
    std::string_view without_proof = message.substr(0, proof_at);
    std::string proof;
    if (!base64_decode(message.substr(proof_at + 3), proof) || proof.size() != kSha256Size) {
      return fail("malformed proof");
    }
    auto attrs = split(without_proof, ',');
    if (attrs.size() < 2 || attrs[0].substr(0, 2) != "c=" || attrs[1].substr(0, 2) != "r=") {
      return fail("malformed client-final message");
    }
    for (size_t i = 2; i < attrs.size(); ++i) {
      if (!is_attr_val(attrs[i])) return fail("malformed extension attribute");
    }
    // RFC 5802 §5.1 "c": base64 of cbind-input, which is just the gs2-header
    // without channel binding data.
    std::string cbind_input;
    if (!base64_decode(attrs[0].substr(2), cbind_input) || cbind_input != gs2_header_) {
      return fail("channel binding data does not match gs2-header");
    }
    if (attrs[1].substr(2) != nonce_) return fail("nonce mismatch");

    // RFC 5802 §3: recover ClientKey = ClientProof XOR ClientSignature and
    // check H(ClientKey) == StoredKey.
    std::string auth_message = client_first_bare_ + "," + server_first_ + "," + std::string(without_proof);
    std::string client_signature = crypto::hmac_sha256(credential_.stored_key, auth_message);
    std::string client_key(kSha256Size, '\0');
    for (size_t i = 0; i < kSha256Size; ++i) client_key[i] = static_cast<char>(proof[i] ^ client_signature[i]);
    bool proof_ok = crypto::equal_constant_time(crypto::sha256(client_key), credential_.stored_key);
    if (!known_user_) return fail("unknown user");
    if (!proof_ok) return fail("invalid proof");

    std::string server_signature = crypto::hmac_sha256(credential_.server_key, auth_message);
    state_ = State::kAcknowledge;
    return challenge("v=" + base64_encode(server_signature));
  }

  const AccountStore& store_;
  SaslOptions options_;
  State state_ = State::kClientFirst;
  std::string gs2_header_;
  std::string client_first_bare_;
  std::string server_first_;
  std::string nonce_;
  std::string user_;
  Credential credential_;
  bool known_user_ = false;
};

}  // namespace

std::unique_ptr<SaslServer> SaslServer::create(std::string_view mechanism, const AccountStore& store,
                                               const SaslOptions& options) {
  if (iequals(mechanism, "PLAIN")) return std::make_unique<PlainServer>(store);
  if (iequals(mechanism, "LOGIN")) return std::make_unique<LoginServer>(store);
  if (iequals(mechanism, "SCRAM-SHA-256")) return std::make_unique<ScramServer>(store, options);
  return nullptr;
}

}  // namespace tern::users
