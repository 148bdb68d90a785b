// The spool's on-disk format: append-only segment files of self-checking
// records, and the encodings of the envelope and state records carried in
// them. Pure functions over bytes (no I/O), so that the parser and the
// recovery replay can be unit-tested and fuzzed directly; spool.cc does the
// file handling. The format is specified in docs/spool-format.md.
//
// Segment = magic (8 bytes "TERNS\0\3\n") nonce (u64 LE) record*
// Record  = length (u32 LE) type (u8) crc (u32 LE) payload[length]
//           where crc = CRC32C over the nonce, the type byte, the length and
//           the payload, and payload = id length (u8) queue id, then the
//           record body. Records of many messages interleave in a segment.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "queue/envelope.h"

namespace tern::queue {

inline constexpr std::string_view kSegmentMagic{"TERNS\0\3\n", 8};
inline constexpr size_t kSegmentHeaderSize = 16;  // magic + nonce
// Magic and nonce: the first bytes of every segment file.
std::string segment_header(uint64_t nonce);
inline constexpr size_t kRecordHeaderSize = 9;
// Bound on any single record, so a corrupt length cannot make us allocate
// gigabytes. Content is written in chunks far below this.
inline constexpr uint32_t kMaxRecordPayload = 16 * 1024 * 1024;

enum class RecordType : uint8_t {
  kContent = 'C',   // a chunk of message content, in order
  kEnvelope = 'E',  // the envelope as received (once, after the content)
  kCommit = 'K',    // the message is complete; payload: content size (u64 LE)
  kState = 'S',     // delivery state update; the latest one wins
  kDone = 'D',      // the message left the queue (delivered, bounced or deleted)
};

// CRC32C (Castagnoli), as used by iSCSI/ext4; `crc` continues a running value.
uint32_t crc32c(std::string_view data, uint32_t crc = 0);

// Header + payload of one record, ready to be written.
std::string encode_record(RecordType type, std::string_view payload, uint64_t nonce = 0);
// Appends the record for `payload` to `out`.
void append_record(std::string& out, RecordType type, std::string_view payload, uint64_t nonce = 0);

struct RecordHeader {
  uint32_t length = 0;
  uint8_t type = 0;
  uint32_t crc = 0;
};
RecordHeader decode_record_header(const char* header /* kRecordHeaderSize bytes */);
bool record_crc_ok(const RecordHeader& h, std::string_view payload, uint64_t nonce = 0);

// Envelope record payload: all fields of the envelope (tagged, skippable).
std::string encode_envelope(const Envelope& env);
Result<Envelope> decode_envelope(std::string_view payload);

// State record payload: the held and delay_warned flags and, for every recipient, its state,
// attempts, next attempt time and last reply. Applying a state record
// replaces those fields; other envelope fields are never changed by it.
std::string encode_state(const Envelope& env);
Status apply_state(std::string_view payload, Envelope& env);

std::string encode_commit(uint64_t content_size);

// Appends one record of message `id` (payload = id length, id, body).
void append_message_record(std::string& out, RecordType type, std::string_view id, std::string_view body,
                           uint64_t nonce);
// Splits a record payload into the queue id and the body; false if malformed.
bool split_message_payload(std::string_view payload, std::string_view& id, std::string_view& body);

// Where a record's payload lies: segment serial, offset, length and the CRC
// from its header (content is verified against it when read).
struct RecordLoc {
  uint64_t segment = 0;
  uint64_t offset = 0;
  uint32_t length = 0;
  uint32_t crc = 0;
  bool operator==(const RecordLoc&) const = default;
};

// One record found by scan_segment(). The body is kept for every type but
// content (content is read again, and CRC-checked, when delivered).
struct SegmentRecord {
  RecordType type{};
  std::string id;
  RecordLoc loc;
  std::string body;
};

struct SegmentScan {
  bool magic_ok = false;
  uint64_t nonce = 0;          // valid when magic_ok
  std::vector<SegmentRecord> records;
  uint64_t valid_end = 0;      // end of the last good record
  std::string problem;         // why the scan stopped before the end, "" if clean
};

// Reads up to n bytes at `offset` into buf; returns bytes read (0 at EOF).
using ReadAt = std::function<Result<size_t>(uint64_t offset, char* buf, size_t n)>;

// Walks the records of a segment of `file_size` bytes, checking every CRC
// (content included). Stops at the first short, bad or malformed record.
// Returns an Error only for I/O errors; format problems are in `problem`.
Result<SegmentScan> scan_segment(uint64_t serial, const ReadAt& read_at, uint64_t file_size);
// Convenience for in-memory data (tests, fuzzing).
SegmentScan scan_segment_bytes(std::string_view data, uint64_t serial = 0);

// A committed message as the replay of all segments leaves it.
struct ReplayedMessage {
  std::vector<RecordLoc> content;  // content records, in order
  uint64_t size = 0;               // content bytes
  RecordLoc envelope_loc;
  std::optional<RecordLoc> state_loc;  // latest state record, if any
  Envelope envelope;                   // with the latest state applied
};

// Recovery: applies segment scans in serial order and keeps what is
// committed and not done. Rules (docs/spool-format.md): a message becomes
// committed at a COMMIT record that follows its envelope and matches the
// content seen since its previous COMMIT (a later complete copy, written by
// compaction, replaces an earlier one); state records apply to committed
// messages in order; DONE removes the message.
class SpoolReplay {
 public:
  void apply(const SegmentScan& scan);
  // Call once after the last apply(): drops incomplete messages and returns
  // how many there were (never acknowledged).
  size_t finish();

  std::map<std::string, ReplayedMessage> committed;
  size_t bad_records = 0;  // good CRC but undecodable (skipped)

 private:
  struct Pending {
    std::vector<RecordLoc> content;
    uint64_t size = 0;
    std::optional<Envelope> envelope;
    RecordLoc envelope_loc;
  };
  std::map<std::string, Pending> pending_;
};

}  // namespace tern::queue
