// The durable message spool: one append-only file of self-checking records
// per queued message (format in docs/spool-format.md), plus a committer thread
// that makes writes durable in groups. The SMTP server streams DATA into a
// Writer, calls finish() and then sync_async(); it replies 250 only from the
// sync callback. Many sessions share one syncfs(2) (or one round of
// fdatasync(2)s), so throughput is bounded by syncs per second times the batch
// size rather than by one sync per message.
//
// Crash safety: a message is acknowledged only after its COMMIT record is
// durable. At start-up recover() keeps committed files (with the latest state
// record that survived whole), deletes uncommitted ones (never acknowledged)
// and moves unreadable ones to <dir>/corrupt/.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
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
    kFsyncEach,  // fdatasync(2) of every file touched since the last batch + fsync of the directory
  };

  // Opens (creating if needed) the spool directory `dir` and starts the
  // committer thread.
  static Result<std::unique_ptr<Spool>> open(const std::string& dir, SyncMode mode = SyncMode::kSyncfs);
  // Stops the committer after completing pending syncs. Writers and content
  // readers must be destroyed first.
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Start-up scan: committed messages with their latest state, sorted by id.
  // Deletes uncommitted files, truncates torn tails, moves unreadable files
  // to <dir>/corrupt/, and logs what it did.
  Result<std::vector<Envelope>> recover();

  // One message being received. Content is buffered and written in chunks;
  // nothing is durable until finish() and a later sync.
  class Writer {
   public:
    ~Writer();  // abort() unless finished
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    const std::string& id() const { return id_; }
    // Appends message content (buffered; written in chunks; no sync).
    Status append(std::string_view content);
    // Content bytes appended so far.
    uint64_t size() const { return size_; }
    // Writes the envelope (with id and size filled in) and the COMMIT record
    // and hands them to the kernel. Not durable until a later sync. On error
    // the file is removed.
    Status finish(const Envelope& env);
    // Removes the file (also done by the destructor if not finished).
    void abort();

   private:
    friend class Spool;
    Writer(Spool& spool, std::string id, std::string path, int fd);
    Status flush_content();

    Spool& spool_;
    std::string id_;
    std::string path_;
    int fd_;
    uint64_t nonce_ = 0;    // this incarnation's record CRC seed
    uint64_t written_ = 0;  // bytes written so far: the file's logical end
    std::string pending_;  // encoded bytes not yet written
    std::string buffer_;   // content not yet framed into a record
    uint64_t size_ = 0;
    bool finished_ = false;
  };

  // Starts a new message file with a fresh queue id.
  Result<std::unique_ptr<Writer>> create();

  // Group commit: `done` runs (on the committer thread; keep it short) once
  // everything written by any thread before this call is durable, or with
  // the error if the sync failed.
  void sync_async(std::function<void(Status)> done);
  // Blocking helper built on sync_async.
  Status sync();

  // Whole content of a committed message (checks every chunk's CRC).
  Result<std::string> read_content(const std::string& id) const;
  // The message as it leaves the queue: the envelope's kPrependAttribute
  // header fields, then the content.
  Result<std::string> read_message(const Envelope& env) const;

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
    int fd_ = -1;
    uint64_t nonce_ = 0;
    std::string id_;
    struct Chunk {
      uint64_t offset;
      uint32_t length;
      uint32_t crc;
    };
    std::vector<Chunk> chunks_;
    size_t next_ = 0;
    uint64_t size_ = 0;
  };
  Result<std::unique_ptr<ContentReader>> open_content(const std::string& id) const;

  // Appends a state record (held flag, per-recipient state) for env.id.
  // Not durable until a later sync.
  Status append_state(const Envelope& env);
  // Deletes a finished message. The removal is durable after a later sync.
  Status remove(const std::string& id);
  // Envelope of a committed message with its latest state.
  Result<Envelope> load(const std::string& id) const;

  struct Stats {
    uint64_t syncs = 0;            // sync batches performed
    uint64_t synced_requests = 0;  // sync_async requests completed
  };
  Stats stats() const;

  const std::string& dir() const { return dir_; }
  SyncMode mode() const { return mode_; }

 private:
  Spool(std::string dir, int dir_fd, SyncMode mode);
  std::string path_for(const std::string& id) const;
  // Records that `path` has unsynced data (for kFsyncEach).
  void mark_dirty(const std::string& path);
  void committer_loop();
  Status sync_batch(std::set<std::string>& dirty);
  Status quarantine(const std::string& name, std::string_view why);
  // File recycling (see docs/spool-format.md): finished message files are
  // moved to <dir>/free/ and reused by create() instead of being unlinked,
  // because creating a new inode right after freeing many is expensive on
  // ext4 (the allocator scans past recently deleted inodes).
  int take_recycled_fd(const std::string& path);
  void recycle_or_unlink(const std::string& path, const std::string& id);
  uint64_t next_nonce();
  // Keeps free/ stocked with files (created by a background thread), so
  // that create() never allocates an inode on the caller's thread.
  void pool_loop();
  // Where the valid records of a committed file end, and its nonce: state
  // records go there (files are reused without truncation, so the physical
  // end may hold stale bytes). Scans the file when not known yet.
  struct FileInfo {
    uint64_t nonce = 0;
    uint64_t end = 0;
  };
  Result<FileInfo> file_info(const std::string& id);
  // Scans a committed message file (error when missing or uncommitted).
  Result<ScanResult> scan_committed(const std::string& id) const;
  void set_file_info(const std::string& id, FileInfo info);

  const std::string dir_;
  const int dir_fd_;
  const SyncMode mode_;
  QueueIdGenerator ids_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::vector<std::function<void(Status)>> waiting_;
  std::set<std::string> dirty_;  // kFsyncEach only
  std::string free_dir_;
  std::vector<std::string> free_;  // names in free_dir_, guarded by mu_
  std::map<std::string, FileInfo> files_;  // guarded by mu_
  std::condition_variable pool_wake_;
  std::thread pool_thread_;
  uint64_t pool_serial_ = 0;                 // guarded by mu_
  static constexpr size_t kPoolLow = 256;    // refill below this many free files
  static constexpr size_t kPoolTarget = 1024;
  uint64_t nonce_state_ = 0;               // guarded by mu_
  static constexpr size_t kMaxFree = 4096;
  bool stopping_ = false;
  std::atomic<uint64_t> syncs_{0};
  std::atomic<uint64_t> synced_requests_{0};
  std::thread committer_;
};

}  // namespace tern::queue
