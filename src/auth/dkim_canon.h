// DKIM canonicalization (RFC 6376 §3.4) and hashing (§3.7), shared with ARC
// (RFC 8617 §5.1.1 uses the same algorithms): the "simple" and "relaxed"
// header field forms, a streaming body canonicalizer + SHA-256 that accepts
// the body in arbitrary chunks (the SMTP server can feed DATA as it arrives)
// and honours an l= length limit, and header selection for h= lists (§5.4.2:
// the last unused instance of each named field, bottom-up).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/crypto.h"
#include "mail/message.h"

namespace tern::auth::dkim {

enum class Canon { kSimple, kRelaxed };
const char* canon_name(Canon c);

// Appends the canonical form of one header field (`raw` is the whole field
// including its final line end) to `out`. simple: unchanged (§3.4.1).
// relaxed (§3.4.2): name lower-cased, unfolded, WSP runs to one SP, WSP
// around the colon and at the end removed, terminated by CRLF.
void canonicalize_header(Canon canon, std::string_view raw, std::string& out);
std::string canonicalize_header(Canon canon, std::string_view raw);

// Streaming body canonicalization (§3.4.3 simple, §3.4.4 relaxed) and
// SHA-256. Line ends are CRLF; a lone CR or LF is an ordinary byte. Trailing
// empty lines are held back until more content arrives, so memory does not
// grow with the input.
class BodyHasher {
 public:
  // `limit`: the l= tag; only the first `limit` canonical octets are hashed.
  explicit BodyHasher(Canon canon, std::optional<uint64_t> limit = std::nullopt);

  void update(std::string_view chunk);
  // Ends the body and returns the 32-byte SHA-256 digest. Call once.
  std::string finish();
  // Canonical body length so far (all octets, also those beyond the limit);
  // final after finish().
  uint64_t canonical_length() const { return total_; }

 private:
  void emit(const char* data, size_t size);
  void emit_pending();
  void content_byte(char c);
  size_t scan_plain(const char* data, size_t begin, size_t end) const;
  void flush();

  Canon canon_;
  std::optional<uint64_t> limit_;
  crypto::Sha256 sha_;
  std::string buf_;
  uint64_t total_ = 0;           // canonical octets produced
  uint64_t hashed_ = 0;          // octets passed to the hash (<= limit)
  uint64_t pending_crlf_ = 0;    // CRLFs seen since the last content byte
  bool pending_wsp_ = false;     // relaxed: WSP seen since the last content byte
  bool pending_cr_ = false;      // a CR at the end of the previous chunk
  bool any_content_ = false;
};

// One-shot helper: canonical body hash of `body`.
std::string body_hash(Canon canon, std::string_view body, std::optional<uint64_t> limit = std::nullopt);

// Header selection (§5.4.2): for each name in `names` (in order), the last
// not yet used instance of that field, searching from the bottom; names
// without (remaining) instances select nothing. Returns field indices in the
// order they are to be hashed. `exclude` (a field index, e.g. the signature
// being verified) is never selected.
std::vector<size_t> select_headers(const mail::Message& message, const std::vector<std::string>& names,
                                   std::optional<size_t> exclude = std::nullopt);

// Hash input of §3.7 steps 2 (selected header fields) and the signature
// field itself with its b= value removed and without its final CRLF, for
// `canon`. Returns the canonical bytes; hash them with crypto::sha256().
std::string header_hash_input(Canon canon, const mail::Message& message, const std::vector<size_t>& selected,
                              std::string_view raw_signature_field);

}  // namespace tern::auth::dkim
