// Durable spool and group committer (see spool.h, docs/spool-format.md).
#include "queue/spool.h"

#include <pthread.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <future>
#include <random>

#include "base/fs.h"
#include "base/log.h"
#include "queue/record.h"

namespace tern::queue {
namespace {

// Content is written in records of this size: large enough to keep the
// per-record overhead negligible, small enough to bound memory per session.
constexpr size_t kContentChunk = 64 * 1024;

Error io_error(std::string_view what, int err) { return Error::local(fs::errno_text(what, err)); }

ReadAt fd_reader(int fd) {
  return [fd](uint64_t offset, char* buf, size_t n) -> Result<size_t> {
    size_t done = 0;
    while (done < n) {
      ssize_t got = ::pread(fd, buf + done, n - done, static_cast<off_t>(offset + done));
      if (got < 0) {
        if (errno == EINTR) continue;
        return io_error("pread", errno);
      }
      if (got == 0) break;
      done += static_cast<size_t>(got);
    }
    return done;
  };
}

// Scans an open spool file.
Result<ScanResult> scan_fd(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return io_error("fstat", errno);
  return scan_spool(fd_reader(fd), static_cast<uint64_t>(st.st_size));
}

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

}  // namespace

// --- Spool -------------------------------------------------------------------

Spool::Spool(std::string dir, int dir_fd, SyncMode mode) : dir_(std::move(dir)), dir_fd_(dir_fd), mode_(mode) {
  committer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "tern-commit");
    committer_loop();
  });
}

Result<std::unique_ptr<Spool>> Spool::open(const std::string& dir, SyncMode mode) {
  if (auto st = fs::make_dirs(dir, 0700); !st) return st.error();
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return io_error(dir, errno);
  std::unique_ptr<Spool> spool(new Spool(dir, dir_fd, mode));
  spool->free_dir_ = fs::join(dir, "free");
  if (auto st = fs::make_dirs(spool->free_dir_, 0700); !st) return st.error();
  if (DIR* d = ::opendir(spool->free_dir_.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != ".." && spool->free_.size() < kMaxFree) spool->free_.push_back(name);
    }
    ::closedir(d);
  }
  spool->pool_thread_ = std::thread([raw = spool.get()] {
    pthread_setname_np(pthread_self(), "tern-spoolpool");
    raw->pool_loop();
  });
  // Seed the id generator so new ids sort after (and never equal) any id
  // already on disk, even if the clock stepped back since the last run.
  if (DIR* d = ::fdopendir(::dup(dir_fd))) {
    ::rewinddir(d);  // a dup shares the directory offset
    while (dirent* e = ::readdir(d)) spool->ids_.observe(e->d_name);
    ::closedir(d);
  }
  return spool;
}

Spool::~Spool() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  pool_wake_.notify_all();
  if (pool_thread_.joinable()) pool_thread_.join();
  if (committer_.joinable()) committer_.join();
  ::close(dir_fd_);
}

std::string Spool::path_for(const std::string& id) const { return fs::join(dir_, id); }

void Spool::mark_dirty(const std::string& path) {
  if (mode_ != SyncMode::kFsyncEach) return;
  std::lock_guard lock(mu_);
  dirty_.insert(path);
}

Result<std::unique_ptr<Spool::Writer>> Spool::create() {
  // O_EXCL: never reuse a name, even if the clock went backwards past ids
  // we could not see at open().
  for (int attempt = 0; attempt < 16; ++attempt) {
    std::string id = ids_.next();
    std::string path = path_for(id);
    int fd = take_recycled_fd(path);
    if (fd < 0) fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      if (errno == EEXIST) continue;
      return io_error(path, errno);
    }
    std::unique_ptr<Writer> writer(new Writer(*this, id, path, fd));
    writer->nonce_ = next_nonce();
    writer->pending_ = spool_header(writer->nonce_);  // written with the first chunk
    return writer;
  }
  return Error::local("spool: could not allocate a unique queue id");
}

void Spool::sync_async(std::function<void(Status)> done) {
  {
    std::lock_guard lock(mu_);
    waiting_.push_back(std::move(done));
  }
  wake_.notify_one();
}

Status Spool::sync() {
  std::promise<Status> promise;
  auto future = promise.get_future();
  sync_async([&promise](Status st) { promise.set_value(std::move(st)); });
  return future.get();
}

void Spool::committer_loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !waiting_.empty(); });
    if (waiting_.empty()) break;  // stopping, and nothing left to complete
    // Everything written before these requests were queued is covered by
    // the sync below, since it starts after they were taken. Requests that
    // arrive meanwhile wait for the next batch: that is the group commit.
    auto batch = std::move(waiting_);
    waiting_.clear();
    auto dirty = std::move(dirty_);
    dirty_.clear();
    lock.unlock();
    Status st = sync_batch(dirty);
    syncs_.fetch_add(1, std::memory_order_relaxed);
    synced_requests_.fetch_add(batch.size(), std::memory_order_relaxed);
    if (!st) log::error("spool_sync_failed").kv("dir", dir_).kv("error", st.error().text);
    for (auto& done : batch) done(st);
    lock.lock();
    if (!st) dirty_.merge(dirty);  // retry those files with the next batch
  }
}

Status Spool::sync_batch(std::set<std::string>& dirty) {
  if (mode_ == SyncMode::kSyncfs) {
    // One journal commit flushes data and directory entries of every file
    // on this file system (Linux >= 5.8 reports writeback errors here).
    if (::syncfs(dir_fd_) != 0) return io_error("syncfs " + dir_, errno);
    dirty.clear();
    return ok();
  }
  Status result;
  for (auto it = dirty.begin(); it != dirty.end();) {
    int fd = ::open(it->c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {  // removed since: nothing to flush
      it = dirty.erase(it);
      continue;
    }
    if (fd < 0 || ::fdatasync(fd) != 0) {
      if (result) result = io_error("fdatasync " + *it, errno);
      if (fd >= 0) ::close(fd);
      ++it;
      continue;
    }
    ::close(fd);
    it = dirty.erase(it);
  }
  // New files and removals are directory entries: flush the directory too.
  if (::fsync(dir_fd_) != 0 && result) result = io_error("fsync " + dir_, errno);
  return result;
}

Spool::Stats Spool::stats() const {
  return Stats{syncs_.load(std::memory_order_relaxed), synced_requests_.load(std::memory_order_relaxed)};
}

Status Spool::append_state(const Envelope& env) {
  if (!is_queue_id(env.id)) return Error::local("spool: bad queue id '" + env.id + "'");
  std::string path = path_for(env.id);
  auto info = file_info(env.id);
  if (!info) return info.error();
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return io_error(path, errno);
  FdCloser closer(fd);
  // Written at the logical end. A failed or torn write leaves bytes that fail
  // the CRC, and the next state record overwrites them (same offset).
  std::string record = encode_record(RecordType::kState, encode_state(env), info->nonce);
  size_t done = 0;
  while (done < record.size()) {
    ssize_t n = ::pwrite(fd, record.data() + done, record.size() - done, static_cast<off_t>(info->end + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("write " + path, errno);
    }
    done += static_cast<size_t>(n);
  }
  set_file_info(env.id, {info->nonce, info->end + record.size()});
  mark_dirty(path);
  return ok();
}

uint64_t Spool::next_nonce() {
  std::lock_guard lock(mu_);
  if (nonce_state_ == 0) {
    std::random_device rd;
    nonce_state_ = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(::getpid());
  }
  // splitmix64: distinct, well-mixed values from a counter.
  uint64_t z = (nonce_state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void Spool::set_file_info(const std::string& id, FileInfo info) {
  std::lock_guard lock(mu_);
  files_[id] = info;
}

Result<Spool::FileInfo> Spool::file_info(const std::string& id) {
  {
    std::lock_guard lock(mu_);
    auto it = files_.find(id);
    if (it != files_.end()) return it->second;
  }
  auto scan = scan_committed(id);
  if (!scan) return scan.error();
  FileInfo info{scan->nonce, scan->valid_end};
  set_file_info(id, info);
  return info;
}

Status Spool::remove(const std::string& id) {
  if (!is_queue_id(id)) return Error::local("spool: bad queue id '" + id + "'");
  std::string path = path_for(id);
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return io_error(path, errno);
  {
    std::lock_guard lock(mu_);
    files_.erase(id);
  }
  recycle_or_unlink(path, id);
  mark_dirty(path);  // the committer skips it (ENOENT) but fsyncs the directory
  return ok();
}

// A finished file keeps its content while in free/: recovery never looks
// there, and if a crash leaves a reused file under its new name with old
// records, the envelope id inside differs from the file name and recovery
// drops it (see recover()).
void Spool::recycle_or_unlink(const std::string& path, const std::string& id) {
  {
    std::lock_guard lock(mu_);
    if (free_.size() < kMaxFree) {
      std::string to = fs::join(free_dir_, id);
      if (::rename(path.c_str(), to.c_str()) == 0) {
        free_.push_back(id);
        return;
      }
    }
  }
  ::unlink(path.c_str());
}

void Spool::pool_loop() {
  // Background, low priority: this is preparation, not the accept path.
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
  std::unique_lock lock(mu_);
  for (;;) {
    pool_wake_.wait(lock, [this] { return stopping_ || free_.size() < kPoolLow; });
    if (stopping_) return;
    while (!stopping_ && free_.size() < kPoolTarget) {
      std::string name = "p" + std::to_string(::getpid()) + "." + std::to_string(++pool_serial_);
      lock.unlock();
      std::string path = fs::join(free_dir_, name);
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      bool made = fd >= 0;
      if (made) ::close(fd);
      lock.lock();
      if (!made) {
        if (errno == EEXIST) continue;
        log::warn("spool_pool_error").kv("error", fs::errno_text(path, errno));
        break;  // try again when woken
      }
      free_.push_back(std::move(name));
    }
  }
}

// Takes a file from free/, empties it and moves it to `path`; -1 if none.
int Spool::take_recycled_fd(const std::string& path) {
  for (;;) {
    std::string name;
    {
      std::lock_guard lock(mu_);
      if (free_.empty()) return -1;
      name = std::move(free_.back());
      free_.pop_back();
      if (free_.size() < kPoolLow) pool_wake_.notify_one();
    }
    std::string from = fs::join(free_dir_, name);
    int fd = ::open(from.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;
    // Not truncated: truncation frees blocks (a discard on this kind of
    // file system) and makes ext4 flush the file at close, which cost more
    // than everything else on the accept path. The new incarnation is
    // written over the old bytes from offset 0 with a new nonce, so stale
    // records beyond its end fail the CRC (see docs/spool-format.md).
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
      ::close(fd);
      ::unlink(from.c_str());
      continue;
    }
    return fd;
  }
}

Result<ScanResult> Spool::scan_committed(const std::string& id) const {
  std::string path = path_for(id);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error(path, errno);
  FdCloser closer(fd);
  auto scan = scan_fd(fd);
  if (!scan) return scan.error();
  if (!scan->committed) return Error::local("spool: " + id + " is not committed: " + scan->problem);
  return scan;
}

Result<Envelope> Spool::load(const std::string& id) const {
  if (!is_queue_id(id)) return Error::local("spool: bad queue id '" + id + "'");
  auto scan = scan_committed(id);
  if (!scan) return scan.error();
  scan->envelope.id = id;
  return std::move(scan->envelope);
}

Result<std::unique_ptr<Spool::ContentReader>> Spool::open_content(const std::string& id) const {
  if (!is_queue_id(id)) return Error::local("spool: bad queue id '" + id + "'");
  std::string path = path_for(id);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error(path, errno);
  std::unique_ptr<ContentReader> reader(new ContentReader());
  reader->fd_ = fd;  // closed by the reader from here on
  reader->id_ = id;
  auto scan = scan_fd(fd);
  if (!scan) return scan.error();
  if (!scan->committed) return Error::local("spool: " + id + " is not committed: " + scan->problem);
  reader->nonce_ = scan->nonce;
  for (const auto& c : scan->content) reader->chunks_.push_back({c.offset, c.length, c.crc});
  reader->size_ = scan->content_size;
  return reader;
}

Result<std::string> Spool::read_content(const std::string& id) const {
  auto reader = open_content(id);
  if (!reader) return reader.error();
  std::string content, chunk;
  content.reserve((*reader)->size());
  for (;;) {
    auto more = (*reader)->next(chunk);
    if (!more) return more.error();
    if (!*more) break;
    content += chunk;
  }
  return content;
}

Result<std::string> Spool::read_message(const Envelope& env) const {
  auto it = env.attributes.find(kPrependAttribute);
  if (it == env.attributes.end() || it->second.empty()) return read_content(env.id);
  auto content = read_content(env.id);
  if (!content) return content.error();
  return it->second + *content;
}

Status Spool::quarantine(const std::string& name, std::string_view why) {
  std::string corrupt_dir = fs::join(dir_, "corrupt");
  if (auto st = fs::make_dirs(corrupt_dir, 0700); !st) return st;
  std::string from = path_for(name), to = fs::join(corrupt_dir, name);
  if (::rename(from.c_str(), to.c_str()) != 0) return io_error("rename " + from, errno);
  log::error("spool_quarantined").kv("file", name).kv("moved_to", to).kv("reason", why);
  return ok();
}

Result<std::vector<Envelope>> Spool::recover() {
  std::vector<std::string> names;
  {
    DIR* d = ::fdopendir(::dup(dir_fd_));
    if (d == nullptr) return io_error("opendir " + dir_, errno);
    ::rewinddir(d);  // a dup shares the directory offset with dir_fd_
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == ".." || name == "corrupt" || name == "free") continue;
      names.push_back(std::move(name));
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  std::vector<Envelope> recovered;
  size_t deleted = 0, truncated = 0, quarantined = 0, ignored = 0;
  for (const auto& name : names) {
    std::string path = path_for(name);
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || !is_queue_id(name)) {
      log::warn("spool_foreign_file").kv("dir", dir_).kv("file", name);
      ++ignored;
      continue;
    }
    ids_.observe(name);
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return io_error(path, errno);
    FdCloser closer(fd);
    auto scan = scan_fd(fd);
    if (!scan) return scan.error();
    const auto size = static_cast<uint64_t>(st.st_size);
    // A crash right after create() can leave a prefix of the magic header.
    bool magic_prefix = size < kSpoolHeaderSize;
    if (!scan->magic_ok && !magic_prefix) {
      if (auto q = quarantine(name, scan->problem); !q) return q.error();
      ++quarantined;
      continue;
    }
    if (!scan->committed) {
      // Never acknowledged: the client was not told 250, so it still has it.
      log::info("spool_drop_uncommitted").kv("id", name).kv("bytes", size).kv("reason", scan->problem);
      if (::unlink(path.c_str()) != 0) return io_error("unlink " + path, errno);
      ++deleted;
      continue;
    }
    if (scan->valid_end < size) {
      // Torn append (crash during a state update): cut it off so that the
      // next append is not hidden behind it.
      // Also normal for a reused file: its old, longer content is left
      // behind its new records until recovery trims it.
      log::info("spool_trimmed_tail").kv("id", name).kv("valid_bytes", scan->valid_end).kv("file_bytes", size)
          .kv("reason", scan->problem);
      if (::ftruncate(fd, static_cast<off_t>(scan->valid_end)) != 0) return io_error("ftruncate " + path, errno);
      mark_dirty(path);
      ++truncated;
    }
    if (scan->bad_state_records > 0) {
      log::warn("spool_bad_state_records").kv("id", name).kv("count", static_cast<uint64_t>(scan->bad_state_records));
    }
    if (scan->envelope.id != name) {
      // A recycled file that crashed between getting its new name and its
      // new COMMIT: what is committed in it belongs to an earlier, finished
      // message. Never deliver it again.
      log::warn("spool_drop_stale_recycled").kv("file", name).kv("envelope_id", scan->envelope.id);
      if (::unlink(path.c_str()) != 0) return io_error("unlink " + path, errno);
      ++deleted;
      continue;
    }
    scan->envelope.id = name;
    set_file_info(name, {scan->nonce, scan->valid_end});
    recovered.push_back(std::move(scan->envelope));
  }
  if (truncated > 0) {
    if (auto st = sync(); !st) return st.error();
  }
  log::info("spool_recovered").kv("dir", dir_).kv("messages", static_cast<uint64_t>(recovered.size()))
      .kv("dropped_uncommitted", static_cast<uint64_t>(deleted)).kv("truncated", static_cast<uint64_t>(truncated))
      .kv("quarantined", static_cast<uint64_t>(quarantined)).kv("ignored", static_cast<uint64_t>(ignored));
  return recovered;
}

// --- Writer ------------------------------------------------------------------

Spool::Writer::Writer(Spool& spool, std::string id, std::string path, int fd)
    : spool_(spool), id_(std::move(id)), path_(std::move(path)), fd_(fd) {}

Spool::Writer::~Writer() {
  if (!finished_) abort();
}

Status Spool::Writer::flush_content() {
  if (!buffer_.empty()) {
    append_record(pending_, RecordType::kContent, buffer_, nonce_);
    buffer_.clear();
  }
  if (pending_.empty()) return ok();
  Status st = fs::write_all(fd_, pending_);
  if (st) written_ += pending_.size();
  pending_.clear();
  return st;
}

Status Spool::Writer::append(std::string_view content) {
  if (finished_ || fd_ < 0) return Error::local("spool: append to a closed message");
  size_ += content.size();
  while (!content.empty()) {
    size_t take = std::min(content.size(), kContentChunk - buffer_.size());
    buffer_.append(content.substr(0, take));
    content.remove_prefix(take);
    if (buffer_.size() == kContentChunk) {
      if (auto st = flush_content(); !st) {
        abort();
        return st;
      }
    }
  }
  return ok();
}

Status Spool::Writer::finish(const Envelope& env) {
  if (finished_ || fd_ < 0) return Error::local("spool: finish of a closed message");
  Envelope stored = env;
  stored.id = id_;
  stored.size = size_;
  // The last content chunk, the envelope and COMMIT go out in one write(2).
  if (!buffer_.empty()) {
    append_record(pending_, RecordType::kContent, buffer_, nonce_);
    buffer_.clear();
  }
  append_record(pending_, RecordType::kEnvelope, encode_envelope(stored), nonce_);
  append_record(pending_, RecordType::kCommit, encode_commit(size_), nonce_);
  Status st = flush_content();
  int close_rc = ::close(fd_);
  int close_errno = errno;
  fd_ = -1;
  if (st && close_rc != 0) st = io_error("close " + path_, close_errno);
  if (!st) {
    abort();
    return st;
  }
  finished_ = true;
  spool_.set_file_info(id_, {nonce_, written_});
  spool_.mark_dirty(path_);
  return ok();
}

void Spool::Writer::abort() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!finished_) {
    spool_.recycle_or_unlink(path_, id_);
    finished_ = true;  // nothing left to do
  }
}

// --- ContentReader -------------------------------------------------------------

Spool::ContentReader::~ContentReader() {
  if (fd_ >= 0) ::close(fd_);
}

Result<bool> Spool::ContentReader::next(std::string& chunk) {
  if (next_ >= chunks_.size()) return false;
  const auto& c = chunks_[next_];
  chunk.resize(c.length);
  auto got = fd_reader(fd_)(c.offset, chunk.data(), c.length);
  if (!got) return got.error();
  RecordHeader h{c.length, static_cast<uint8_t>(RecordType::kContent), c.crc};
  if (*got != c.length || !record_crc_ok(h, chunk, nonce_)) {
    return Error::local("spool: " + id_ + ": content chunk " + std::to_string(next_) + " is corrupt");
  }
  ++next_;
  return true;
}

}  // namespace tern::queue
