// The durable message spool: an append-only log split into segment files
// (format in docs/spool-format.md), an in-memory index of where each queued
// message's records lie, and a committer thread that makes writes durable in
// groups. The SMTP server streams DATA into a Writer, calls finish() and then
// sync_async(); it replies 250 only from the sync callback. Many sessions
// share one fdatasync(2) of the active segment (or one syncfs(2)), and a
// message costs no directory operation at all, so throughput is bounded by
// the disk's bandwidth rather than by file creation or one sync per message.
//
// Crash safety: a message is acknowledged only after its COMMIT record is
// durable. At open the spool replays every segment in order: committed
// messages come back with their latest state, messages whose DONE record
// survived stay gone, incomplete ones (never acknowledged) are dropped.
// Segments are deleted oldest first once no queued message refers to them;
// the few long-lived messages in an old segment are copied forward
// (compaction) so that one deferred message never pins the log behind it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "queue/envelope.h"
#include "queue/queue_id.h"
#include "queue/record.h"

namespace tern::queue {

class Spool {
 public:
  enum class SyncMode {
    kSyncfs,     // one syncfs(2) on the spool's file system per batch
    kFsyncEach,  // fdatasync(2) of each segment written since the last batch (+ the directory when it changed)
  };
  struct Options {
    SyncMode mode = SyncMode::kFsyncEach;
    // A new segment is started when the active one reaches this size.
    uint64_t segment_bytes = 64ull << 20;
    // An old segment with at most this many live messages is compacted
    // (they are copied forward) once newer segments exist.
    size_t compact_max_live = 1000;
    // ... and has been retired (no longer the active segment) this long:
    // younger messages are usually just waiting their turn for delivery.
    int64_t compact_after_seconds = 300;
    // The committer keeps this much of the active segment ahead of its end
    // written with zeros (and synced once), so that appends overwrite
    // allocated blocks inside the file's size: each group commit's
    // fdatasync(2) then writes only the data, not the size, extents and
    // block bitmaps as well (measured: half the time and CPU per sync on
    // ext4). 0 = append to the end of the file.
    uint64_t prefill_bytes = 4ull << 20;
  };

  // Opens (creating if needed) the spool directory `dir`, replays its
  // segments and starts the committer thread.
  static Result<std::unique_ptr<Spool>> open(const std::string& dir, SyncMode mode = SyncMode::kFsyncEach);
  static Result<std::unique_ptr<Spool>> open(const std::string& dir, const Options& options);
  // Stops the committer after completing pending syncs. Writers and content
  // readers must be destroyed first.
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // The committed messages found at open() with their latest state, sorted
  // by id (call once, at start-up). Logs what the replay found.
  Result<std::vector<Envelope>> recover();

  // One message being received. Content is buffered and written in chunks;
  // nothing is durable until finish() and a later sync.
  class Writer {
   public:
    ~Writer();  // abort() unless finished
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    const std::string& id() const { return id_; }
    // Appends message content (buffered; written in 64 KiB records; no sync).
    Status append(std::string_view content);
    // Content bytes appended so far.
    uint64_t size() const { return size_; }
    // Writes the last content record, the envelope (with id and size filled
    // in) and the COMMIT record in one write. Not durable until a later sync.
    Status finish(const Envelope& env);
    // Forgets the message (its records, if any were written, are garbage
    // that recovery ignores). Also done by the destructor if not finished.
    void abort();

   private:
    friend class Spool;
    Writer(Spool& spool, std::string id) : spool_(spool), id_(std::move(id)) {}

    Spool& spool_;
    std::string id_;
    std::string buffer_;               // content not yet written
    std::vector<RecordLoc> chunks_;    // content records already written
    std::set<uint64_t> pinned_;        // segments holding them (kept until finish/abort)
    uint64_t size_ = 0;
    bool finished_ = false;
  };

  // Starts a new message with a fresh queue id.
  Result<std::unique_ptr<Writer>> create();

  // Group commit: `done` runs (on the committer thread; keep it short) once
  // everything written by any thread before this call is durable, or with
  // the error if the sync failed.
  void sync_async(std::function<void(Status)> done);
  // Blocking helper built on sync_async.
  Status sync();
  // Asks for a sync within kLazySyncDelay without waking the committer now.
  // For records whose loss in a crash only repeats work (delivery state,
  // DONE): under load the next group commit, which syncs every dirty
  // segment, covers them at no extra cost; when quiet they are synced
  // within the delay.
  void sync_soon();
  static constexpr std::chrono::milliseconds kLazySyncDelay{200};

  // Whole content of a committed message (checks every chunk's CRC).
  Result<std::string> read_content(const std::string& id) const;
  // The message as it leaves the queue: the envelope's kPrependAttribute
  // header fields, then the content.
  Result<std::string> read_message(const Envelope& env) const;

  struct Segment;
  // Streams the content of a committed message in chunks, for large ones.
  class ContentReader {
   public:
    ~ContentReader();
    ContentReader(const ContentReader&) = delete;
    ContentReader& operator=(const ContentReader&) = delete;
    uint64_t size() const { return size_; }
    // Next chunk into `chunk`; returns false at the end. Errors on I/O
    // failure or a chunk whose CRC does not match.
    Result<bool> next(std::string& chunk);

   private:
    friend class Spool;
    ContentReader() = default;
    std::string id_;
    struct Chunk {
      std::shared_ptr<Segment> segment;  // keeps the file open even if the segment is deleted meanwhile
      RecordLoc loc;
    };
    std::vector<Chunk> chunks_;
    size_t next_ = 0;
    uint64_t size_ = 0;
  };
  Result<std::unique_ptr<ContentReader>> open_content(const std::string& id) const;

  // Appends a state record (held flag, per-recipient state) for env.id.
  // Not durable until a later sync.
  Status append_state(const Envelope& env);
  // Appends the DONE record of a finished message. Durable after a later sync.
  Status remove(const std::string& id);
  // Envelope of a committed message with its latest state.
  Result<Envelope> load(const std::string& id) const;

  struct Stats {
    uint64_t syncs = 0;            // sync batches performed
    uint64_t synced_requests = 0;  // sync_async requests completed
    size_t segments = 0;           // segment files on disk
    size_t messages = 0;           // committed messages not yet done
    uint64_t compacted = 0;        // messages copied forward by compaction
  };
  Stats stats() const;

  const std::string& dir() const { return dir_; }
  SyncMode mode() const { return options_.mode; }

  // One segment file (public for ContentReader; not part of the API).
  struct Segment {
    uint64_t serial = 0;
    std::string path;
    int fd = -1;
    uint64_t nonce = 0;
    uint64_t end = 0;         // where the next record goes (active segment)
    uint64_t prefilled = 0;   // bytes [end, prefilled) of the file are zeros (Options::prefill_bytes)
    size_t live = 0;          // queued messages (and open writers) with records here
    bool dirty = false;       // written since the last sync batch
    uint64_t freed_gen = 0;   // write generation at which `live` last dropped to 0
    int64_t retired_at = 0;   // steady-clock seconds when it stopped being the active segment
    ~Segment();
  };

 private:
  struct Indexed {
    std::vector<RecordLoc> content;
    uint64_t size = 0;
    RecordLoc envelope_loc;
    std::optional<RecordLoc> state_loc;
  };

  Spool(std::string dir, int dir_fd, Options options);
  Status replay_segments();
  // Writes the records of message `id` in one pwrite(2) at the end of the
  // active segment (rotated first when they do not fit); returns where each
  // record's payload went. A failed write does not move the end: the next
  // write goes over whatever part of it reached the file, so the log never
  // holds garbage before good records. mu_ held.
  struct Part {
    RecordType type;
    std::string_view body;
  };
  Result<std::vector<RecordLoc>> write_records_locked(const std::string& id, const std::vector<Part>& parts);
  Result<std::shared_ptr<Segment>> new_segment_locked();
  // Reads and CRC-checks one record payload; returns the body (id stripped).
  Result<std::string> read_record(const Segment& seg, const RecordLoc& loc, RecordType type,
                                  const std::string& id) const;
  Result<Envelope> load_locked(const std::string& id) const;
  static std::set<uint64_t> segments_of(const Indexed& m);
  void ref_locked(const std::set<uint64_t>& serials, int delta);
  void committer_loop();
  Status sync_batch(std::vector<std::shared_ptr<Segment>>& dirty, bool dir_changed);
  // After a sync: copies forward the live messages of an old segment, and
  // deletes unreferenced segments oldest first.
  void maintain(uint64_t synced_gen);
  // Zero-fills the active segment up to Options::prefill_bytes past its end
  // (committer thread, in pieces taken under mu_).
  void prefill();
  Status compact_one_locked(const std::string& id);
  Status quarantine(const std::string& name, std::string_view why);
  uint64_t next_nonce();

  const std::string dir_;
  const int dir_fd_;
  const Options options_;
  QueueIdGenerator ids_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::vector<std::function<void(Status)>> waiting_;
  std::optional<std::chrono::steady_clock::time_point> lazy_due_;  // sync_soon() pending
  std::map<uint64_t, std::shared_ptr<Segment>> segments_;  // by serial, oldest first
  std::shared_ptr<Segment> active_;
  std::unordered_map<std::string, Indexed> index_;
  size_t replay_dropped_ = 0, replay_bad_records_ = 0, replay_quarantined_ = 0, replay_ignored_ = 0;
  bool dir_changed_ = false;     // a segment was created since the last batch
  uint64_t write_gen_ = 0;       // bumped by every write
  uint64_t nonce_state_ = 0;
  bool stopping_ = false;
  std::atomic<uint64_t> syncs_{0};
  std::atomic<uint64_t> synced_requests_{0};
  std::atomic<uint64_t> compacted_{0};
  std::thread committer_;
};

}  // namespace tern::queue
