// Spool record codec (see record.h and docs/spool-format.md).
#include "queue/record.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace tern::queue {
namespace {

// CRC32C lookup table for the reflected polynomial 0x82F63B78, built at
// compile time.
constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr auto kCrc32cTable = make_crc32c_table();

void put_u32le(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint32_t get_u32le(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// --- Tagged field encoding -------------------------------------------------
// A payload is a sequence of fields: tag (varint), length (varint), bytes.
// Integers are varints inside the field bytes. Unknown tags are skipped, so
// newer writers can add fields without breaking older readers.

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

bool get_varint(std::string_view& in, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in.empty()) return false;
    auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return true;
  }
  return false;  // more than 10 bytes: malformed
}

class FieldWriter {
 public:
  void bytes(uint64_t tag, std::string_view value) {
    put_varint(out_, tag);
    put_varint(out_, value.size());
    out_.append(value);
  }
  void uint(uint64_t tag, uint64_t value) {
    std::string v;
    put_varint(v, value);
    bytes(tag, v);
  }
  void sint(uint64_t tag, int64_t value) { uint(tag, static_cast<uint64_t>(value)); }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// Iterates the fields of a payload; next() returns false at the end or on
// malformed input (then failed() is true).
class FieldReader {
 public:
  explicit FieldReader(std::string_view in) : in_(in) {}
  bool next(uint64_t& tag, std::string_view& value) {
    if (in_.empty()) return false;
    uint64_t len = 0;
    if (!get_varint(in_, tag) || !get_varint(in_, len) || len > in_.size()) {
      failed_ = true;
      return false;
    }
    value = in_.substr(0, len);
    in_.remove_prefix(len);
    return true;
  }
  bool failed() const { return failed_; }

 private:
  std::string_view in_;
  bool failed_ = false;
};

bool as_uint(std::string_view field, uint64_t& v) { return get_varint(field, v) && field.empty(); }

enum EnvelopeTag : uint64_t {
  kEnvId = 1, kEnvMailFrom, kEnvRecipient, kEnvBody, kEnvSmtputf8, kEnvRet, kEnvEnvid,
  kEnvRequiretls, kEnvReceivedAt, kEnvClientIp, kEnvClientHelo, kEnvAuthUser, kEnvListener,
  kEnvProtocol, kEnvHeld, kEnvSize, kEnvAttribute, kEnvDelayWarned,
};
enum RecipientTag : uint64_t {
  kRcptAddress = 1, kRcptOriginal, kRcptNotify, kRcptOrcptType, kRcptOrcpt, kRcptState,
  kRcptAttempts, kRcptNextAttempt, kRcptLastReply, kRcptIndex,
};
enum StateTag : uint64_t { kStateHeld = 1, kStateRecipient = 2, kStateDelayWarned = 3 };
enum AttributeTag : uint64_t { kAttrKey = 1, kAttrValue = 2 };

void put_recipient_state(FieldWriter& w, const Recipient& r) {
  w.uint(kRcptState, static_cast<uint64_t>(r.state));
  w.uint(kRcptAttempts, r.attempts);
  w.sint(kRcptNextAttempt, r.next_attempt);
  if (!r.last_reply.empty()) w.bytes(kRcptLastReply, r.last_reply);
}

// Decodes a recipient-state field into r; returns false if malformed.
// Unknown tags are ignored; `index` receives kRcptIndex when present.
bool get_recipient_field(uint64_t tag, std::string_view value, Recipient& r, uint64_t* index) {
  uint64_t n = 0;
  switch (tag) {
    case kRcptAddress: r.address = value; return true;
    case kRcptOriginal: r.original = value; return true;
    case kRcptOrcptType: r.orcpt_type = value; return true;
    case kRcptOrcpt: r.orcpt = value; return true;
    case kRcptLastReply: r.last_reply = value; return true;
    case kRcptNotify:
      if (!as_uint(value, n) || n > 0xff) return false;
      r.notify = static_cast<unsigned>(n);
      return true;
    case kRcptState:
      if (!as_uint(value, n) || n > static_cast<uint64_t>(Recipient::State::kFailed)) return false;
      r.state = static_cast<Recipient::State>(n);
      return true;
    case kRcptAttempts:
      if (!as_uint(value, n) || n > 0xffffffffu) return false;
      r.attempts = static_cast<uint32_t>(n);
      return true;
    case kRcptNextAttempt:
      if (!as_uint(value, n)) return false;
      r.next_attempt = static_cast<int64_t>(n);
      return true;
    case kRcptIndex:
      if (!as_uint(value, n) || index == nullptr) return false;
      *index = n;
      return true;
    default:
      return true;
  }
}

Error format_error(std::string text) { return Error::local("spool record: " + std::move(text)); }

}  // namespace

namespace {
uint32_t crc32c_table(std::string_view data, uint32_t crc) {
  for (char ch : data) crc = kCrc32cTable[(crc ^ static_cast<uint8_t>(ch)) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
// The SSE4.2 crc32 instruction computes CRC32C (Castagnoli) 8 bytes per step;
// every message byte passes through here twice (spool write and read).
__attribute__((target("sse4.2"))) uint32_t crc32c_sse42(std::string_view data, uint32_t crc) {
  const char* p = data.data();
  size_t n = data.size();
  uint64_t c = crc;
  while (n >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<uint32_t>(c);
  while (n-- > 0) c32 = __builtin_ia32_crc32qi(c32, static_cast<unsigned char>(*p++));
  return c32;
}
#endif
}  // namespace

uint32_t crc32c(std::string_view data, uint32_t crc) {
#if defined(__x86_64__)
  static const bool kHaveSse42 = __builtin_cpu_supports("sse4.2");
  if (kHaveSse42) return ~crc32c_sse42(data, ~crc);
#endif
  return ~crc32c_table(data, ~crc);
}

namespace {
uint32_t record_crc(uint8_t type, uint32_t length, std::string_view payload, uint64_t nonce) {
  char head[13];
  for (int i = 0; i < 8; ++i) head[i] = static_cast<char>((nonce >> (8 * i)) & 0xff);
  head[8] = static_cast<char>(type);
  for (int i = 0; i < 4; ++i) head[9 + i] = static_cast<char>((length >> (8 * i)) & 0xff);
  return crc32c(payload, crc32c(std::string_view(head, sizeof head)));
}
}  // namespace

std::string segment_header(uint64_t nonce) {
  std::string out(kSegmentMagic);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((nonce >> (8 * i)) & 0xff));
  return out;
}

void append_record(std::string& out, RecordType type, std::string_view payload, uint64_t nonce) {
  auto length = static_cast<uint32_t>(payload.size());
  auto t = static_cast<uint8_t>(type);
  put_u32le(out, length);
  out.push_back(static_cast<char>(t));
  put_u32le(out, record_crc(t, length, payload, nonce));
  out.append(payload);
}

std::string encode_record(RecordType type, std::string_view payload, uint64_t nonce) {
  std::string out;
  out.reserve(kRecordHeaderSize + payload.size());
  append_record(out, type, payload, nonce);
  return out;
}

RecordHeader decode_record_header(const char* header) {
  RecordHeader h;
  h.length = get_u32le(header);
  h.type = static_cast<uint8_t>(header[4]);
  h.crc = get_u32le(header + 5);
  return h;
}

bool record_crc_ok(const RecordHeader& h, std::string_view payload, uint64_t nonce) {
  return payload.size() == h.length && record_crc(h.type, h.length, payload, nonce) == h.crc;
}

std::string encode_envelope(const Envelope& env) {
  FieldWriter w;
  w.bytes(kEnvId, env.id);
  w.bytes(kEnvMailFrom, env.mail_from);
  for (const auto& r : env.recipients) {
    FieldWriter rw;
    rw.bytes(kRcptAddress, r.address);
    if (!r.original.empty()) rw.bytes(kRcptOriginal, r.original);
    if (r.notify != 0) rw.uint(kRcptNotify, r.notify);
    if (!r.orcpt_type.empty()) rw.bytes(kRcptOrcptType, r.orcpt_type);
    if (!r.orcpt.empty()) rw.bytes(kRcptOrcpt, r.orcpt);
    put_recipient_state(rw, r);
    w.bytes(kEnvRecipient, rw.take());
  }
  w.sint(kEnvBody, env.body);
  w.uint(kEnvSmtputf8, env.smtputf8 ? 1 : 0);
  w.sint(kEnvRet, env.ret);
  if (!env.envid.empty()) w.bytes(kEnvEnvid, env.envid);
  w.uint(kEnvRequiretls, env.requiretls ? 1 : 0);
  w.sint(kEnvReceivedAt, env.received_at);
  w.bytes(kEnvClientIp, env.client_ip);
  w.bytes(kEnvClientHelo, env.client_helo);
  if (!env.auth_user.empty()) w.bytes(kEnvAuthUser, env.auth_user);
  w.bytes(kEnvListener, env.listener);
  w.bytes(kEnvProtocol, env.protocol);
  w.uint(kEnvHeld, env.held ? 1 : 0);
  w.uint(kEnvSize, env.size);
  // Written only when set, so records of messages that never got a delay DSN
  // stay byte-identical to those of older versions.
  if (env.delay_warned) w.uint(kEnvDelayWarned, 1);
  for (const auto& [key, value] : env.attributes) {
    FieldWriter aw;
    aw.bytes(kAttrKey, key);
    aw.bytes(kAttrValue, value);
    w.bytes(kEnvAttribute, aw.take());
  }
  return w.take();
}

Result<Envelope> decode_envelope(std::string_view payload) {
  Envelope env;
  FieldReader fields(payload);
  uint64_t tag = 0;
  std::string_view value;
  while (fields.next(tag, value)) {
    uint64_t n = 0;
    bool good = true;
    switch (tag) {
      case kEnvId: env.id = value; break;
      case kEnvMailFrom: env.mail_from = value; break;
      case kEnvEnvid: env.envid = value; break;
      case kEnvClientIp: env.client_ip = value; break;
      case kEnvClientHelo: env.client_helo = value; break;
      case kEnvAuthUser: env.auth_user = value; break;
      case kEnvListener: env.listener = value; break;
      case kEnvProtocol: env.protocol = value; break;
      case kEnvRecipient: {
        Recipient r;
        FieldReader rf(value);
        uint64_t rtag = 0;
        std::string_view rvalue;
        while (rf.next(rtag, rvalue)) {
          if (!get_recipient_field(rtag, rvalue, r, nullptr)) return format_error("bad recipient field");
        }
        if (rf.failed()) return format_error("malformed recipient");
        env.recipients.push_back(std::move(r));
        break;
      }
      case kEnvAttribute: {
        FieldReader af(value);
        uint64_t atag = 0;
        std::string_view avalue;
        std::string key, val;
        while (af.next(atag, avalue)) {
          if (atag == kAttrKey) key = avalue;
          if (atag == kAttrValue) val = avalue;
        }
        if (af.failed()) return format_error("malformed attribute");
        env.attributes[key] = val;
        break;
      }
      case kEnvBody:
        good = as_uint(value, n) && n <= 2;
        env.body = static_cast<int>(n);
        break;
      case kEnvRet:
        good = as_uint(value, n) && n <= 2;
        env.ret = static_cast<int>(n);
        break;
      case kEnvSmtputf8:
        good = as_uint(value, n);
        env.smtputf8 = n != 0;
        break;
      case kEnvRequiretls:
        good = as_uint(value, n);
        env.requiretls = n != 0;
        break;
      case kEnvHeld:
        good = as_uint(value, n);
        env.held = n != 0;
        break;
      case kEnvReceivedAt:
        good = as_uint(value, n);
        env.received_at = static_cast<int64_t>(n);
        break;
      case kEnvSize:
        good = as_uint(value, n);
        env.size = n;
        break;
      case kEnvDelayWarned:
        good = as_uint(value, n);
        env.delay_warned = n != 0;
        break;
      default:
        break;  // unknown field from a newer version
    }
    if (!good) return format_error("bad envelope field " + std::to_string(tag));
  }
  if (fields.failed()) return format_error("malformed envelope");
  return env;
}

std::string encode_state(const Envelope& env) {
  FieldWriter w;
  w.uint(kStateHeld, env.held ? 1 : 0);
  if (env.delay_warned) w.uint(kStateDelayWarned, 1);
  for (size_t i = 0; i < env.recipients.size(); ++i) {
    FieldWriter rw;
    rw.uint(kRcptIndex, i);
    put_recipient_state(rw, env.recipients[i]);
    w.bytes(kStateRecipient, rw.take());
  }
  return w.take();
}

Status apply_state(std::string_view payload, Envelope& env) {
  // Decode into a copy first so that a malformed record changes nothing.
  Envelope updated = env;
  // Like the held flag, the state record is complete: no tag 3 means no
  // delay DSN was sent yet (also how records written before tag 3 read).
  updated.delay_warned = false;
  FieldReader fields(payload);
  uint64_t tag = 0;
  std::string_view value;
  while (fields.next(tag, value)) {
    if (tag == kStateHeld) {
      uint64_t n = 0;
      if (!as_uint(value, n)) return format_error("bad held flag");
      updated.held = n != 0;
    } else if (tag == kStateDelayWarned) {
      uint64_t n = 0;
      if (!as_uint(value, n)) return format_error("bad delay_warned flag");
      updated.delay_warned = n != 0;
    } else if (tag == kStateRecipient) {
      // A state record carries the complete per-recipient state, so decode
      // into a default Recipient: absent fields mean defaults, not "unchanged".
      Recipient r;
      uint64_t index = UINT64_MAX;
      FieldReader rf(value);
      uint64_t rtag = 0;
      std::string_view rvalue;
      while (rf.next(rtag, rvalue)) {
        if (!get_recipient_field(rtag, rvalue, r, &index)) return format_error("bad recipient state");
      }
      if (rf.failed()) return format_error("malformed recipient state");
      if (index >= updated.recipients.size()) return format_error("recipient index out of range");
      auto& target = updated.recipients[index];
      target.state = r.state;
      target.attempts = r.attempts;
      target.next_attempt = r.next_attempt;
      target.last_reply = std::move(r.last_reply);
    }
  }
  if (fields.failed()) return format_error("malformed state");
  env = std::move(updated);
  return ok();
}

std::string encode_commit(uint64_t content_size) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((content_size >> (8 * i)) & 0xff));
  return out;
}

void append_message_record(std::string& out, RecordType type, std::string_view id, std::string_view body,
                           uint64_t nonce) {
  std::string payload;
  payload.reserve(1 + id.size() + body.size());
  payload.push_back(static_cast<char>(id.size()));
  payload.append(id);
  payload.append(body);
  append_record(out, type, payload, nonce);
}

bool split_message_payload(std::string_view payload, std::string_view& id, std::string_view& body) {
  if (payload.empty()) return false;
  size_t n = static_cast<uint8_t>(payload[0]);
  if (n == 0 || payload.size() < 1 + n) return false;
  id = payload.substr(1, n);
  body = payload.substr(1 + n);
  return true;
}

namespace {
// The preallocated tail of a segment (Spool::Options::prefill_bytes).
bool all_zeros(std::string_view bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == 0; });
}
}  // namespace

Result<SegmentScan> scan_segment(uint64_t serial, const ReadAt& read_at, uint64_t file_size) {
  SegmentScan scan;
  char magic[kSegmentHeaderSize];
  if (file_size < kSegmentHeaderSize) {
    scan.problem = "file shorter than the header";
    return scan;
  }
  auto got = read_at(0, magic, sizeof magic);
  if (!got) return got.error();
  if (*got != sizeof magic || std::string_view(magic, kSegmentMagic.size()) != kSegmentMagic) {
    scan.problem = "bad magic header";
    return scan;
  }
  scan.magic_ok = true;
  for (int i = 0; i < 8; ++i) {
    scan.nonce |= static_cast<uint64_t>(static_cast<uint8_t>(magic[kSegmentMagic.size() + i])) << (8 * i);
  }
  // Read in large blocks: recovery reads every segment once, front to back.
  constexpr size_t kBlock = 1 << 20;
  std::string block;
  uint64_t block_at = 0;
  auto view = [&](uint64_t at, size_t n) -> Result<std::string_view> {
    if (at < block_at || at + n > block_at + block.size()) {
      block.resize(std::max<size_t>(kBlock, n));
      auto r = read_at(at, block.data(), block.size());
      if (!r) return r.error();
      block.resize(*r);
      block_at = at;
      if (block.size() < n) return std::string_view();
    }
    return std::string_view(block).substr(at - block_at, n);
  };
  uint64_t pos = kSegmentHeaderSize;
  scan.valid_end = pos;
  while (pos < file_size) {
    if (file_size - pos < kRecordHeaderSize) {
      auto rest = view(pos, file_size - pos);
      if (!rest) return rest.error();
      if (!all_zeros(*rest)) scan.problem = "torn record header at offset " + std::to_string(pos);
      break;
    }
    auto head = view(pos, kRecordHeaderSize);
    if (!head) return head.error();
    if (head->size() != kRecordHeaderSize) {
      scan.problem = "short read at offset " + std::to_string(pos);
      break;
    }
    // Zeros where a record header would be: the end of the log in a
    // segment whose tail was preallocated (Spool::Options::prefill_bytes).
    // A record header is never all zeros (types are letters).
    if (all_zeros(*head)) break;
    RecordHeader h = decode_record_header(head->data());
    uint64_t payload_at = pos + kRecordHeaderSize;
    if (h.length > kMaxRecordPayload || h.length > file_size - payload_at) {
      scan.problem = (h.length > kMaxRecordPayload ? "record length out of range at offset " : "torn record at offset ") +
                     std::to_string(pos);
      break;
    }
    auto payload = view(payload_at, h.length);
    if (!payload) return payload.error();
    if (!record_crc_ok(h, *payload, scan.nonce)) {
      scan.problem = "bad CRC at offset " + std::to_string(pos);
      break;
    }
    std::string_view id, body;
    if (!split_message_payload(*payload, id, body)) {
      scan.problem = "record without a queue id at offset " + std::to_string(pos);
      break;
    }
    SegmentRecord rec;
    rec.type = static_cast<RecordType>(h.type);
    rec.id.assign(id);
    rec.loc = {serial, payload_at, h.length, h.crc};
    if (rec.type != RecordType::kContent) rec.body.assign(body);
    scan.records.push_back(std::move(rec));
    pos = payload_at + h.length;
    scan.valid_end = pos;
  }
  return scan;
}

SegmentScan scan_segment_bytes(std::string_view data, uint64_t serial) {
  ReadAt read_at = [data](uint64_t offset, char* buf, size_t n) -> Result<size_t> {
    if (offset >= data.size()) return size_t{0};
    size_t take = std::min<size_t>(n, data.size() - offset);
    std::memcpy(buf, data.data() + offset, take);
    return take;
  };
  auto scan = scan_segment(serial, read_at, data.size());
  return scan ? std::move(*scan) : SegmentScan{};
}

void SpoolReplay::apply(const SegmentScan& scan) {
  for (const auto& rec : scan.records) {
    const size_t prefix = 1 + rec.id.size();
    switch (rec.type) {
      case RecordType::kContent: {
        auto& p = pending_[rec.id];
        p.content.push_back(rec.loc);
        p.size += rec.loc.length - prefix;
        break;
      }
      case RecordType::kEnvelope: {
        auto env = decode_envelope(rec.body);
        auto& p = pending_[rec.id];
        if (!env || env->id != rec.id) {
          ++bad_records;
          p.envelope.reset();
          break;
        }
        p.envelope = std::move(*env);
        p.envelope_loc = rec.loc;
        break;
      }
      case RecordType::kCommit: {
        auto it = pending_.find(rec.id);
        uint64_t size = 0;
        for (int i = 7; i >= 0 && rec.body.size() == 8; --i) size = (size << 8) | static_cast<uint8_t>(rec.body[i]);
        if (it == pending_.end() || !it->second.envelope || rec.body.size() != 8 || size != it->second.size) {
          ++bad_records;
          if (it != pending_.end()) pending_.erase(it);
          break;
        }
        ReplayedMessage m;
        m.content = std::move(it->second.content);
        m.size = size;
        m.envelope_loc = it->second.envelope_loc;
        m.envelope = std::move(*it->second.envelope);
        m.envelope.size = size;
        pending_.erase(it);
        committed[rec.id] = std::move(m);
        break;
      }
      case RecordType::kState: {
        auto it = committed.find(rec.id);
        if (it == committed.end()) break;  // for a message finished in a deleted segment
        // A well-formed record we cannot understand is skipped: later
        // records may still be good.
        if (!apply_state(rec.body, it->second.envelope)) {
          ++bad_records;
          break;
        }
        it->second.state_loc = rec.loc;
        break;
      }
      case RecordType::kDone:
        committed.erase(rec.id);
        pending_.erase(rec.id);
        break;
      default:
        break;  // unknown record type from a newer version: skipped
    }
  }
}

size_t SpoolReplay::finish() {
  size_t n = pending_.size();
  pending_.clear();
  return n;
}

}  // namespace tern::queue
