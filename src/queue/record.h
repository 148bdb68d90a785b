// The spool file format: self-checking records and the encodings of the
// envelope and state records carried in them. Pure functions over bytes (no
// I/O) so that the parser can be unit-tested and fuzzed directly; spool.cc
// does the file handling. The format is specified in docs/spool-format.md.
//
// File   = magic (8 bytes "TERNQ\0\2\n") nonce (u64 LE) record*
// Record = length (u32 LE) type (u8) crc (u32 LE) payload[length]
//          where crc = CRC32C over the nonce, the type byte, the length and
//          the payload. The nonce is random per file incarnation: a spool
//          file is reused for later messages without being truncated, and
//          records left over from an earlier message fail the CRC.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "queue/envelope.h"

namespace tern::queue {

inline constexpr std::string_view kSpoolMagic{"TERNQ\0\2\n", 8};
inline constexpr size_t kSpoolHeaderSize = 16;  // magic + nonce
// Magic and nonce: the first bytes of every spool file.
std::string spool_header(uint64_t nonce);
inline constexpr size_t kRecordHeaderSize = 9;
// Bound on any single record, so a corrupt length cannot make us allocate
// gigabytes. Content is written in chunks far below this.
inline constexpr uint32_t kMaxRecordPayload = 16 * 1024 * 1024;

enum class RecordType : uint8_t {
  kContent = 'C',   // a chunk of message content, in order
  kEnvelope = 'E',  // the envelope as received (once, after the content)
  kCommit = 'K',    // the message is complete; payload: content size (u64 LE)
  kState = 'S',     // delivery state update; the latest one wins
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

// State record payload: the held flag and, for every recipient, its state,
// attempts, next attempt time and last reply. Applying a state record
// replaces those fields; other envelope fields are never changed by it.
std::string encode_state(const Envelope& env);
Status apply_state(std::string_view payload, Envelope& env);

std::string encode_commit(uint64_t content_size);

// Result of scanning a spool file.
struct ScanResult {
  bool magic_ok = false;
  uint64_t nonce = 0;        // the file's nonce (valid when magic_ok)
  bool committed = false;    // envelope + COMMIT found with matching content size
  Envelope envelope;         // valid when committed; latest state applied
  uint64_t content_size = 0; // sum of content record payloads before COMMIT
  struct Chunk {
    uint64_t offset;  // file offset of the payload
    uint32_t length;
    uint32_t crc;     // record CRC (covers header fields + payload)
  };
  std::vector<Chunk> content;  // content record positions, in order
  uint64_t valid_end = 0;      // end of the last good record; bytes after it are a torn tail
  uint64_t records = 0;
  size_t bad_state_records = 0;  // state records with a good CRC that did not decode
  std::string problem;         // why the scan stopped early (torn tail, bad CRC...), "" if clean
};

// Reads up to n bytes at `offset` into buf; returns bytes read (0 at EOF).
using ReadAt = std::function<Result<size_t>(uint64_t offset, char* buf, size_t n)>;

// Walks the records of a spool file of `file_size` bytes. Content payloads
// are not read (their CRC is checked when content is read); all other
// records are CRC-checked. Stops at the first short or bad record. Returns
// an Error only for I/O errors; format problems are reported in ScanResult.
Result<ScanResult> scan_spool(const ReadAt& read_at, uint64_t file_size);
// Convenience for in-memory data (tests, fuzzing).
ScanResult scan_spool_bytes(std::string_view data);

}  // namespace tern::queue
