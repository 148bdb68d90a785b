// DKIM canonicalization and hashing (see dkim_canon.h). The body hasher is on
// the hot path of every signed message: runs of bytes that the
// canonicalization leaves unchanged are found 16 at a time (SSE2 where
// available) and copied in bulk into a buffer that is hashed in large
// blocks, so the cost stays close to SHA-256 itself.
#include "auth/dkim_canon.h"

#include <algorithm>
#include <cstring>

#include "auth/dkim_tags.h"
#include "base/strings.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace tern::auth::dkim {

namespace {

constexpr size_t kHashBuffer = 64 * 1024;

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

}  // namespace

const char* canon_name(Canon c) { return c == Canon::kSimple ? "simple" : "relaxed"; }

void canonicalize_header(Canon canon, std::string_view raw, std::string& out) {
  if (canon == Canon::kSimple) {
    out.append(raw);  // RFC 6376 §3.4.1: no change at all
    return;
  }
  // RFC 6376 §3.4.2.
  size_t colon = raw.find(':');
  if (colon == std::string_view::npos) colon = raw.size();
  std::string_view name = raw.substr(0, colon);
  while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
  for (char c : name) out.push_back(ascii_lower(c));
  out.push_back(':');
  std::string_view value = colon < raw.size() ? raw.substr(colon + 1) : std::string_view();
  bool pending_space = false;
  bool started = false;
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (c == '\r' && i + 1 < value.size() && value[i + 1] == '\n') {
      ++i;  // unfold: the CRLF disappears, the following WSP is a WSP run
      continue;
    }
    if (c == '\n') continue;
    if (is_wsp(c)) {
      pending_space = true;
      continue;
    }
    if (pending_space && started) out.push_back(' ');
    pending_space = false;
    started = true;
    out.push_back(c);
  }
  out.append("\r\n");
}

std::string canonicalize_header(Canon canon, std::string_view raw) {
  std::string out;
  canonicalize_header(canon, raw, out);
  return out;
}

BodyHasher::BodyHasher(Canon canon, std::optional<uint64_t> limit) : canon_(canon), limit_(limit) {
  buf_.reserve(kHashBuffer);
}

void BodyHasher::flush() {
  sha_.update(buf_.data(), buf_.size());
  buf_.clear();
}

void BodyHasher::emit(const char* data, size_t size) {
  total_ += size;
  if (limit_) {
    if (hashed_ >= *limit_) return;
    size = static_cast<size_t>(std::min<uint64_t>(size, *limit_ - hashed_));
  }
  hashed_ += size;
  if (buf_.size() + size > kHashBuffer) {
    flush();
    if (size >= kHashBuffer) {
      sha_.update(data, size);
      return;
    }
  }
  buf_.append(data, size);
}

// Content follows: the held-back line ends and (relaxed) one SP for a WSP run.
void BodyHasher::emit_pending() {
  for (; pending_crlf_ > 0; --pending_crlf_) emit("\r\n", 2);
  if (pending_wsp_) {
    emit(" ", 1);
    pending_wsp_ = false;
  }
  any_content_ = true;
}

void BodyHasher::content_byte(char c) {
  emit_pending();
  emit(&c, 1);
}

namespace {

// A CRLF passes through unchanged when the byte after it is certainly
// content (not CR; for relaxed also not WSP, which could start a blank line):
// only line ends followed by nothing but empty lines may be dropped, and WSP
// before the CR has already stopped the scan.
inline bool plain_crlf(const char* data, size_t p, size_t end, bool relaxed) {
  if (p + 2 >= end || data[p] != '\r' || data[p + 1] != '\n') return false;
  char next = data[p + 2];
  return next != '\r' && !(relaxed && (next == ' ' || next == '\t'));
}

}  // namespace

// Returns the first index in [begin, end) at which the byte-by-byte state
// machine is needed, starting from a clean state (nothing pending). Plain
// bytes are copied unchanged: anything but CR (except a CRLF that
// plain_crlf() accepts), and for relaxed also HTAB and a SP that is followed
// by WSP or CR (or ends the chunk).
size_t BodyHasher::scan_plain(const char* data, size_t begin, size_t end) const {
  size_t i = begin;
  const bool relaxed = canon_ == Canon::kRelaxed;
#if defined(__SSE2__)
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i sp = _mm_set1_epi8(' ');
  const __m128i tab = _mm_set1_epi8('\t');
  while (i + 17 <= end) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i));
    __m128i special = _mm_cmpeq_epi8(v, cr);
    if (relaxed) {
      __m128i next = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i + 1));
      __m128i next_ws = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(next, sp), _mm_cmpeq_epi8(next, tab)),
                                     _mm_cmpeq_epi8(next, cr));
      special = _mm_or_si128(special, _mm_cmpeq_epi8(v, tab));
      special = _mm_or_si128(special, _mm_and_si128(_mm_cmpeq_epi8(v, sp), next_ws));
    }
    unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(special));
    while (mask != 0) {
      size_t p = i + static_cast<size_t>(__builtin_ctz(mask));
      if (!plain_crlf(data, p, end, relaxed)) return p;
      mask &= mask - 1;
    }
    i += 16;
  }
#endif
  for (; i < end; ++i) {
    char c = data[i];
    if (c == '\r') {
      if (plain_crlf(data, i, end, relaxed)) {
        ++i;  // the LF is plain too
        continue;
      }
      return i;
    }
    if (relaxed) {
      if (c == '\t') return i;
      if (c == ' ' && (i + 1 >= end || is_wsp(data[i + 1]) || data[i + 1] == '\r')) return i;
    }
  }
  return end;
}

void BodyHasher::update(std::string_view chunk) {
  const char* data = chunk.data();
  const size_t n = chunk.size();
  const bool relaxed = canon_ == Canon::kRelaxed;
  size_t i = 0;
  while (i < n) {
    if (!pending_cr_ && pending_crlf_ == 0 && !pending_wsp_) {
      size_t j = scan_plain(data, i, n);
      if (j > i) {
        emit(data + i, j - i);
        any_content_ = true;
        i = j;
        if (i == n) break;
      }
    }
    char c = data[i++];
    if (pending_cr_) {
      pending_cr_ = false;
      if (c == '\n') {
        // A line end: held back (trailing empty lines are dropped, §3.4.3,
        // §3.4.4) and WSP before it is dropped (relaxed).
        pending_wsp_ = false;
        ++pending_crlf_;
        continue;
      }
      content_byte('\r');  // a lone CR is content
    }
    if (c == '\r') {
      pending_cr_ = true;
    } else if (relaxed && is_wsp(c)) {
      pending_wsp_ = true;
    } else {
      content_byte(c);
    }
  }
}

std::string BodyHasher::finish() {
  if (pending_cr_) {
    pending_cr_ = false;
    content_byte('\r');
  }
  if (canon_ == Canon::kSimple) {
    // §3.4.3: trailing empty lines ignored; an empty body or a body without
    // a final CRLF gets one CRLF.
    emit("\r\n", 2);
  } else if (any_content_) {
    // §3.4.4: same, but an empty body stays empty.
    emit("\r\n", 2);
  }
  pending_crlf_ = 0;
  pending_wsp_ = false;
  flush();
  return sha_.finish();
}

std::string body_hash(Canon canon, std::string_view body, std::optional<uint64_t> limit) {
  BodyHasher h(canon, limit);
  h.update(body);
  return h.finish();
}

std::vector<size_t> select_headers(const mail::Message& message, const std::vector<std::string>& names,
                                   std::optional<size_t> exclude) {
  std::vector<size_t> out;
  std::vector<bool> used(message.field_count(), false);
  if (exclude && *exclude < used.size()) used[*exclude] = true;
  for (const std::string& name : names) {
    for (size_t k = message.field_count(); k-- > 0;) {
      if (used[k]) continue;
      if (iequals(message.field(k).name, name)) {
        used[k] = true;
        out.push_back(k);
        break;
      }
    }
  }
  return out;
}

std::string header_hash_input(Canon canon, const mail::Message& message, const std::vector<size_t>& selected,
                              std::string_view raw_signature_field) {
  std::string data;
  for (size_t k : selected) canonicalize_header(canon, message.field(k).raw, data);
  // §3.7: the signature field itself, b= emptied, without its trailing CRLF.
  std::string sig = canonicalize_header(canon, remove_b_value(raw_signature_field));
  if (sig.size() >= 2 && sig.compare(sig.size() - 2, 2, "\r\n") == 0) {
    sig.resize(sig.size() - 2);
  } else if (!sig.empty() && sig.back() == '\n') {
    sig.pop_back();
  }
  data += sig;
  return data;
}

}  // namespace tern::auth::dkim
