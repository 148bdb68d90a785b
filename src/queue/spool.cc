// Durable spool: segment log, index, group committer and compaction (see
// spool.h and docs/spool-format.md).
#include "queue/spool.h"

#include <pthread.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
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
constexpr size_t kInitialContentBuffer = 16 * 1024;  // Writer::append's first reservation
// Messages compacted per maintenance pass, so that copying never holds the
// spool lock for long.
constexpr size_t kCompactPerPass = 64;

Error io_error(std::string_view what, int err) { return Error::local(fs::errno_text(what, err)); }

Result<size_t> pread_full(int fd, uint64_t offset, char* buf, size_t n) {
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
}

Status pwrite_full(int fd, std::string_view data, uint64_t offset) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("write", errno);
    }
    done += static_cast<size_t>(n);
  }
  return ok();
}

std::string segment_name(uint64_t serial) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016" PRIx64 ".seg", serial);
  return buf;
}

// Serial of a segment file name ("<16 hex digits>.seg"), 0 if it is not one.
uint64_t parse_segment_name(std::string_view name) {
  if (name.size() != 20 || name.substr(16) != ".seg") return 0;
  uint64_t serial = 0;
  for (char c : name.substr(0, 16)) {
    int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (v < 0) return 0;
    serial = (serial << 4) | static_cast<uint64_t>(v);
  }
  return serial;
}

int64_t steady_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Spool::Segment::~Segment() {
  if (fd >= 0) ::close(fd);
}

// --- Opening and replay ---------------------------------------------------------

Spool::Spool(std::string dir, int dir_fd, Options options)
    : dir_(std::move(dir)), dir_fd_(dir_fd), options_(options) {}

Result<std::unique_ptr<Spool>> Spool::open(const std::string& dir, SyncMode mode) {
  Options options;
  options.mode = mode;
  return open(dir, options);
}

Result<std::unique_ptr<Spool>> Spool::open(const std::string& dir, const Options& options) {
  if (auto st = fs::make_dirs(dir, 0700); !st) return st.error();
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return io_error(dir, errno);
  std::unique_ptr<Spool> spool(new Spool(dir, dir_fd, options));
  if (auto st = spool->replay_segments(); !st) return st.error();
  {
    std::lock_guard lock(spool->mu_);
    auto seg = spool->new_segment_locked();
    if (!seg) return seg.error();
  }
  if (::fsync(dir_fd) != 0) return io_error("fsync " + dir, errno);
  spool->committer_ = std::thread([raw = spool.get()] {
    pthread_setname_np(pthread_self(), "tern-commit");
    raw->committer_loop();
  });
  return spool;
}

Status Spool::replay_segments() {
  std::vector<std::pair<uint64_t, std::string>> names;
  {
    DIR* d = ::fdopendir(::dup(dir_fd_));
    if (d == nullptr) return io_error("opendir " + dir_, errno);
    ::rewinddir(d);  // a dup shares the directory offset with dir_fd_
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == ".." || name == "corrupt") continue;
      if (uint64_t serial = parse_segment_name(name); serial != 0) {
        names.emplace_back(serial, std::move(name));
      } else {
        log::warn("spool_foreign_file").kv("dir", dir_).kv("file", name);
        ++replay_ignored_;
      }
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  SpoolReplay replay;
  std::lock_guard lock(mu_);
  for (auto& [serial, name] : names) {
    std::string path = fs::join(dir_, name);
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return io_error(path, errno);
    auto seg = std::make_shared<Segment>();
    seg->serial = serial;
    seg->path = path;
    seg->fd = fd;
    struct stat st;
    if (::fstat(fd, &st) != 0) return io_error("fstat " + path, errno);
    auto size = static_cast<uint64_t>(st.st_size);
    auto scan = scan_segment(serial, [fd](uint64_t off, char* buf, size_t n) { return pread_full(fd, off, buf, n); },
                             size);
    if (!scan) return scan.error();
    if (!scan->magic_ok) {
      if (size < kSegmentHeaderSize) {
        // Created, then a crash before its header reached the disk: it never
        // held a record.
        log::info("spool_drop_empty_segment").kv("file", name).kv("bytes", size);
        if (::unlink(path.c_str()) != 0) return io_error("unlink " + path, errno);
        continue;
      }
      if (auto q = quarantine(name, scan->problem); !q) return q;
      ++replay_quarantined_;
      continue;
    }
    if (!scan->problem.empty()) {
      // Normal for the segment that was active at a crash (a torn last
      // write); anywhere else it is damage, and the rest of the file is lost.
      log::warn("spool_segment_tail_ignored").kv("file", name).kv("valid_bytes", scan->valid_end)
          .kv("file_bytes", size).kv("reason", scan->problem);
    }
    for (const auto& rec : scan->records) ids_.observe(rec.id);
    replay.apply(*scan);
    seg->nonce = scan->nonce;
    seg->end = scan->valid_end;
    segments_[serial] = std::move(seg);
  }
  replay_dropped_ = replay.finish();
  replay_bad_records_ = replay.bad_records;
  for (auto& [id, m] : replay.committed) {
    Indexed ix{std::move(m.content), m.size, m.envelope_loc, m.state_loc};
    ref_locked(segments_of(ix), +1);
    index_.emplace(id, std::move(ix));
  }
  // Unreferenced segments at the front go now, oldest first, each deletion
  // made durable before the next (a later segment may hold the DONE records
  // of messages in an earlier one).
  while (!segments_.empty() && segments_.begin()->second->live == 0) {
    auto seg = segments_.begin()->second;
    if (::unlink(seg->path.c_str()) != 0) return io_error("unlink " + seg->path, errno);
    if (::fsync(dir_fd_) != 0) return io_error("fsync " + dir_, errno);
    segments_.erase(segments_.begin());
  }
  return ok();
}

Result<std::vector<Envelope>> Spool::recover() {
  std::vector<Envelope> out;
  std::vector<std::string> ids;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, m] : index_) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  for (const auto& id : ids) {
    auto env = load(id);
    if (!env) return env.error();
    out.push_back(std::move(*env));
  }
  std::lock_guard lock(mu_);
  log::info("spool_recovered").kv("dir", dir_).kv("messages", static_cast<uint64_t>(out.size()))
      .kv("segments", static_cast<uint64_t>(segments_.size()))
      .kv("dropped_uncommitted", static_cast<uint64_t>(replay_dropped_))
      .kv("bad_records", static_cast<uint64_t>(replay_bad_records_))
      .kv("quarantined", static_cast<uint64_t>(replay_quarantined_))
      .kv("ignored", static_cast<uint64_t>(replay_ignored_));
  return out;
}

Status Spool::quarantine(const std::string& name, std::string_view why) {
  std::string corrupt_dir = fs::join(dir_, "corrupt");
  if (auto st = fs::make_dirs(corrupt_dir, 0700); !st) return st;
  std::string from = fs::join(dir_, name), to = fs::join(corrupt_dir, name);
  if (::rename(from.c_str(), to.c_str()) != 0) return io_error("rename " + from, errno);
  log::error("spool_quarantined").kv("file", name).kv("moved_to", to).kv("reason", why);
  return ok();
}

Spool::~Spool() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (committer_.joinable()) committer_.join();
  ::close(dir_fd_);
}

// --- Writing ----------------------------------------------------------------------

uint64_t Spool::next_nonce() {
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

Result<std::shared_ptr<Spool::Segment>> Spool::new_segment_locked() {
  uint64_t serial = segments_.empty() ? 1 : segments_.rbegin()->first + 1;
  auto seg = std::make_shared<Segment>();
  seg->serial = serial;
  seg->path = fs::join(dir_, segment_name(serial));
  seg->fd = ::open(seg->path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (seg->fd < 0) return io_error(seg->path, errno);
  seg->nonce = next_nonce();
  if (auto st = pwrite_full(seg->fd, segment_header(seg->nonce), 0); !st) {
    ::unlink(seg->path.c_str());
    return io_error(seg->path, EIO);
  }
  seg->end = kSegmentHeaderSize;
  seg->dirty = true;
  dir_changed_ = true;
  if (active_) active_->retired_at = steady_seconds();
  segments_[serial] = seg;
  active_ = seg;
  log::debug("spool_segment_started").kv("file", seg->path);
  return seg;
}

Result<std::vector<RecordLoc>> Spool::write_records_locked(const std::string& id, const std::vector<Part>& parts) {
  size_t total = 0;
  for (const auto& p : parts) total += kRecordHeaderSize + 1 + id.size() + p.body.size();
  // Rotate when the records do not fit (an oversized write still goes into
  // an otherwise empty segment).
  if (active_->end > kSegmentHeaderSize && active_->end + total > options_.segment_bytes) {
    auto seg = new_segment_locked();
    if (!seg) return seg.error();
  }
  std::string bytes;
  bytes.reserve(total);
  std::vector<RecordLoc> locs;
  const uint64_t at = active_->end;
  for (const auto& p : parts) {
    size_t off = bytes.size();
    append_message_record(bytes, p.type, id, p.body, active_->nonce);
    RecordHeader h = decode_record_header(bytes.data() + off);
    locs.push_back({active_->serial, at + off + kRecordHeaderSize, h.length, h.crc});
  }
  if (auto st = pwrite_full(active_->fd, bytes, at); !st) {
    return Error::local("spool: " + active_->path + ": " + st.error().text);
  }
  active_->end += bytes.size();
  active_->dirty = true;
  ++write_gen_;
  return locs;
}

Result<std::unique_ptr<Spool::Writer>> Spool::create() {
  std::unique_ptr<Writer> writer(new Writer(*this, ids_.next()));
  return writer;
}

std::set<uint64_t> Spool::segments_of(const Indexed& m) {
  std::set<uint64_t> out;
  for (const auto& c : m.content) out.insert(c.segment);
  out.insert(m.envelope_loc.segment);
  if (m.state_loc) out.insert(m.state_loc->segment);
  return out;
}

void Spool::ref_locked(const std::set<uint64_t>& serials, int delta) {
  for (uint64_t s : serials) {
    auto it = segments_.find(s);
    if (it == segments_.end()) continue;
    auto& seg = *it->second;
    if (delta > 0) {
      seg.live += static_cast<size_t>(delta);
    } else {
      seg.live -= std::min(seg.live, static_cast<size_t>(-delta));
      if (seg.live == 0) seg.freed_gen = write_gen_;
    }
  }
}

// --- Writer ------------------------------------------------------------------

Spool::Writer::~Writer() {
  if (!finished_) abort();
}

Status Spool::Writer::append(std::string_view content) {
  if (finished_) return Error::local("spool: append to a closed message");
  size_ += content.size();
  // The Received field and the header fields come first, a few bytes at a
  // time: start with room for a typical message rather than doubling up.
  if (buffer_.capacity() < kInitialContentBuffer) buffer_.reserve(kInitialContentBuffer);
  while (!content.empty()) {
    size_t take = std::min(content.size(), kContentChunk - buffer_.size());
    buffer_.append(content.substr(0, take));
    content.remove_prefix(take);
    if (buffer_.size() == kContentChunk) {
      // A large message: its content goes out in records as it arrives
      // (memory per session stays bounded); the segments holding them are
      // pinned until finish() or abort().
      std::lock_guard lock(spool_.mu_);
      auto locs = spool_.write_records_locked(id_, {{RecordType::kContent, buffer_}});
      if (!locs) {
        buffer_.clear();
        return locs.error();
      }
      for (const auto& l : *locs) {
        if (pinned_.insert(l.segment).second) spool_.ref_locked({l.segment}, +1);
        chunks_.push_back(l);
      }
      buffer_.clear();
    }
  }
  return ok();
}

Status Spool::Writer::finish(const Envelope& env) {
  if (finished_) return Error::local("spool: finish of a closed message");
  Envelope stored = env;
  stored.id = id_;
  stored.size = size_;
  std::string envelope = encode_envelope(stored);
  std::string commit = encode_commit(size_);
  std::vector<Part> parts;
  if (!buffer_.empty()) parts.push_back({RecordType::kContent, buffer_});
  parts.push_back({RecordType::kEnvelope, envelope});
  parts.push_back({RecordType::kCommit, commit});
  std::lock_guard lock(spool_.mu_);
  auto locs = spool_.write_records_locked(id_, parts);
  if (!locs) return locs.error();
  Indexed m;
  m.content = std::move(chunks_);
  if (!buffer_.empty()) m.content.push_back((*locs)[0]);
  m.size = size_;
  m.envelope_loc = (*locs)[locs->size() - 2];
  spool_.ref_locked(segments_of(m), +1);
  spool_.ref_locked(pinned_, -1);
  pinned_.clear();
  spool_.index_[id_] = std::move(m);
  buffer_.clear();
  finished_ = true;
  return ok();
}

void Spool::Writer::abort() {
  if (finished_) return;
  finished_ = true;
  buffer_.clear();
  chunks_.clear();
  if (!pinned_.empty()) {
    std::lock_guard lock(spool_.mu_);
    spool_.ref_locked(pinned_, -1);
    pinned_.clear();
  }
}

// --- State, removal, reading ----------------------------------------------------

Status Spool::append_state(const Envelope& env) {
  std::string body = encode_state(env);
  std::lock_guard lock(mu_);
  auto it = index_.find(env.id);
  if (it == index_.end()) return Error::local("spool: " + env.id + " is not queued");
  auto locs = write_records_locked(env.id, {{RecordType::kState, body}});
  if (!locs) return locs.error();
  auto before = segments_of(it->second);
  it->second.state_loc = locs->front();
  ref_locked(segments_of(it->second), +1);
  ref_locked(before, -1);
  return ok();
}

Status Spool::remove(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = index_.find(id);
  if (it == index_.end()) return Error::local("spool: " + id + " is not queued");
  auto locs = write_records_locked(id, {{RecordType::kDone, {}}});
  if (!locs) return locs.error();
  ref_locked(segments_of(it->second), -1);
  index_.erase(it);
  return ok();
}

Result<std::string> Spool::read_record(const Segment& seg, const RecordLoc& loc, RecordType type,
                                       const std::string& id) const {
  std::string payload(loc.length, '\0');
  auto got = pread_full(seg.fd, loc.offset, payload.data(), payload.size());
  if (!got) return got.error();
  RecordHeader h{loc.length, static_cast<uint8_t>(type), loc.crc};
  std::string_view rid, body;
  if (*got != loc.length || !record_crc_ok(h, payload, seg.nonce) || !split_message_payload(payload, rid, body) ||
      rid != id) {
    return Error::local("spool: " + id + ": " + std::string(1, static_cast<char>(type)) + " record at " +
                        seg.path + ":" + std::to_string(loc.offset) + " is corrupt");
  }
  return std::string(body);
}

Result<Envelope> Spool::load_locked(const std::string& id) const {
  auto it = index_.find(id);
  if (it == index_.end()) return Error::local("spool: " + id + " is not queued");
  const Indexed& m = it->second;
  auto seg = segments_.find(m.envelope_loc.segment);
  if (seg == segments_.end()) return Error::local("spool: " + id + ": segment missing");
  auto body = read_record(*seg->second, m.envelope_loc, RecordType::kEnvelope, id);
  if (!body) return body.error();
  auto env = decode_envelope(*body);
  if (!env) return env.error();
  if (m.state_loc) {
    auto sseg = segments_.find(m.state_loc->segment);
    if (sseg == segments_.end()) return Error::local("spool: " + id + ": segment missing");
    auto state = read_record(*sseg->second, *m.state_loc, RecordType::kState, id);
    if (!state) return state.error();
    if (auto st = apply_state(*state, *env); !st) return st.error();
  }
  env->id = id;
  env->size = m.size;
  return env;
}

Result<Envelope> Spool::load(const std::string& id) const {
  std::lock_guard lock(mu_);
  return load_locked(id);
}

Result<std::unique_ptr<Spool::ContentReader>> Spool::open_content(const std::string& id) const {
  std::unique_ptr<ContentReader> reader(new ContentReader());
  reader->id_ = id;
  std::lock_guard lock(mu_);
  auto it = index_.find(id);
  if (it == index_.end()) return Error::local("spool: " + id + " is not queued");
  for (const auto& loc : it->second.content) {
    auto seg = segments_.find(loc.segment);
    if (seg == segments_.end()) return Error::local("spool: " + id + ": segment missing");
    reader->chunks_.push_back({seg->second, loc});
  }
  reader->size_ = it->second.size;
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

Spool::ContentReader::~ContentReader() = default;

Result<bool> Spool::ContentReader::next(std::string& chunk) {
  if (next_ >= chunks_.size()) return false;
  const auto& c = chunks_[next_];
  std::string payload(c.loc.length, '\0');
  auto got = pread_full(c.segment->fd, c.loc.offset, payload.data(), payload.size());
  if (!got) return got.error();
  RecordHeader h{c.loc.length, static_cast<uint8_t>(RecordType::kContent), c.loc.crc};
  std::string_view rid, body;
  if (*got != c.loc.length || !record_crc_ok(h, payload, c.segment->nonce) ||
      !split_message_payload(payload, rid, body) || rid != id_) {
    return Error::local("spool: " + id_ + ": content chunk " + std::to_string(next_) + " is corrupt");
  }
  chunk.assign(body);
  ++next_;
  return true;
}

// --- Group commit and maintenance -----------------------------------------------

void Spool::sync_async(std::function<void(Status)> done) {
  {
    std::lock_guard lock(mu_);
    waiting_.push_back(std::move(done));
  }
  wake_.notify_one();
}

void Spool::sync_soon() {
  {
    std::lock_guard lock(mu_);
    if (lazy_due_) return;  // already pending: nothing to do
    lazy_due_ = std::chrono::steady_clock::now() + kLazySyncDelay;
  }
  // Once per delay, not per call: an idle committer switches to a timed wait.
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
    // Regular requests wake the committer at once; a sync_soon() request
    // only turns the wait into a timed one.
    auto requested = [this] { return stopping_ || !waiting_.empty(); };
    if (lazy_due_) {
      wake_.wait_until(lock, *lazy_due_, requested);
    } else {
      wake_.wait(lock, [&] { return requested() || lazy_due_.has_value(); });
    }
    const bool lazy_now = lazy_due_ && std::chrono::steady_clock::now() >= *lazy_due_;
    if (!requested() && !lazy_now) continue;
    // Stopping with nothing left to sync (a pending sync_soon() is synced
    // now rather than lost).
    if (waiting_.empty() && !lazy_due_) break;
    lazy_due_.reset();  // the sync below covers every write made so far
    // Everything written before these requests were queued is covered by
    // the sync below, since it starts after they were taken. Requests that
    // arrive meanwhile wait for the next batch: that is the group commit.
    auto batch = std::move(waiting_);
    waiting_.clear();
    std::vector<std::shared_ptr<Segment>> dirty;
    for (auto& [serial, seg] : segments_) {
      if (seg->dirty) {
        dirty.push_back(seg);
        seg->dirty = false;
      }
    }
    bool dir_changed = std::exchange(dir_changed_, false);
    const uint64_t gen = write_gen_;
    lock.unlock();
    Status st = sync_batch(dirty, dir_changed);
    syncs_.fetch_add(1, std::memory_order_relaxed);
    synced_requests_.fetch_add(batch.size(), std::memory_order_relaxed);
    if (!st) log::error("spool_sync_failed").kv("dir", dir_).kv("error", st.error().text);
    for (auto& done : batch) done(st);
    if (st) maintain(gen);
    if (st) prefill();
    lock.lock();
    if (!st) {  // retry those with the next batch
      for (auto& seg : dirty) seg->dirty = true;
      dir_changed_ = dir_changed_ || dir_changed;
    }
  }
}

Status Spool::sync_batch(std::vector<std::shared_ptr<Segment>>& dirty, bool dir_changed) {
  if (options_.mode == SyncMode::kSyncfs) {
    // Flushes data and directory entries of every file on this file system
    // (Linux >= 5.8 reports writeback errors here).
    if (::syncfs(dir_fd_) != 0) return io_error("syncfs " + dir_, errno);
    return ok();
  }
  Status result;
  for (auto& seg : dirty) {
    if (::fdatasync(seg->fd) != 0 && result) result = io_error("fdatasync " + seg->path, errno);
  }
  // A new segment is a directory entry: flush the directory too.
  if (dir_changed && ::fsync(dir_fd_) != 0 && result) result = io_error("fsync " + dir_, errno);
  return result;
}

void Spool::prefill() {
  // Pieces of 64 KiB, each written under mu_: a writer never appends into a
  // piece being zeroed (the piece starts at or after the current end) and
  // waits for at most one piece. The zeros reach the disk with the next
  // sync batch (the segment is marked dirty); sync_file_range starts that
  // writeback now so the batch waits less.
  constexpr uint64_t kPiece = 64 * 1024;
  static const std::string zeros(kPiece, '\0');
  if (options_.prefill_bytes == 0) return;
  std::shared_ptr<Segment> seg;
  uint64_t first = 0, last = 0;
  for (;;) {
    std::lock_guard lock(mu_);
    if (!active_ || (seg && seg != active_)) break;
    seg = active_;
    const uint64_t target = std::min(options_.segment_bytes, seg->end + options_.prefill_bytes);
    const uint64_t from = std::max(seg->prefilled, seg->end);
    if (from >= target) break;
    // Top up once half the lead is used, then in one run: not a piece after
    // every commit.
    if (first == 0 && from - seg->end >= (target - seg->end) / 2) break;
    const uint64_t n = std::min(kPiece, target - from);
    if (auto st = pwrite_full(seg->fd, std::string_view(zeros.data(), n), from); !st) {
      log::warn("spool_prefill_failed").kv("file", seg->path).kv("error", st.error().text);
      break;
    }
    if (first == 0) first = from;
    last = from + n;
    seg->prefilled = last;
    seg->dirty = true;
  }
  if (seg && last > first) ::sync_file_range(seg->fd, static_cast<off64_t>(first), static_cast<off64_t>(last - first), SYNC_FILE_RANGE_WRITE);
}

void Spool::maintain(uint64_t synced_gen) {
  // Compaction: the oldest retired segment still holds a few messages that
  // have been queued for a while (deferred ones); copy them forward so that
  // the segment, and every segment after it, can go.
  {
    std::lock_guard lock(mu_);
    if (segments_.empty()) return;
    auto& front = *segments_.begin()->second;
    if (&front != active_.get() && front.live > 0 && front.live <= options_.compact_max_live &&
        steady_seconds() - front.retired_at >= options_.compact_after_seconds) {
      std::vector<std::string> ids;
      for (const auto& [id, m] : index_) {
        if (segments_of(m).count(front.serial) > 0) ids.push_back(id);
        if (ids.size() >= kCompactPerPass) break;
      }
      for (const auto& id : ids) {
        if (auto st = compact_one_locked(id); !st) {
          log::warn("spool_compaction_failed").kv("id", id).kv("error", st.error().text);
          break;
        }
      }
    }
  }
  // Deletion, oldest first: a segment may go once nothing refers to it and
  // a sync has completed since it became unreferenced (so the copies that
  // compaction made of its messages are durable). Each unlink is made
  // durable before the next one, because a later segment may hold the DONE
  // records of messages in an earlier one.
  for (;;) {
    std::shared_ptr<Segment> victim;
    {
      std::lock_guard lock(mu_);
      if (segments_.empty()) return;
      auto front = segments_.begin()->second;
      if (front == active_ || front->live > 0 || front->freed_gen > synced_gen) return;
      victim = front;
      segments_.erase(segments_.begin());
    }
    if (::unlink(victim->path.c_str()) != 0 && errno != ENOENT) {
      log::error("spool_segment_unlink_failed").kv("error", fs::errno_text(victim->path, errno));
    }
    if (::fsync(dir_fd_) != 0) log::error("spool_sync_failed").kv("error", fs::errno_text("fsync " + dir_, errno));
    log::debug("spool_segment_deleted").kv("file", victim->path);
  }
}

Status Spool::compact_one_locked(const std::string& id) {
  auto env = load_locked(id);
  if (!env) return env.error();
  Indexed& m = index_.at(id);
  std::vector<std::string> chunks;
  for (const auto& loc : m.content) {
    auto seg = segments_.find(loc.segment);
    if (seg == segments_.end()) return Error::local("spool: " + id + ": segment missing");
    auto body = read_record(*seg->second, loc, RecordType::kContent, id);
    if (!body) return body.error();
    chunks.push_back(std::move(*body));
  }
  // The copy carries the current state inside its envelope record.
  std::string envelope = encode_envelope(*env);
  std::string commit = encode_commit(m.size);
  std::vector<Part> parts;
  for (const auto& c : chunks) parts.push_back({RecordType::kContent, c});
  parts.push_back({RecordType::kEnvelope, envelope});
  parts.push_back({RecordType::kCommit, commit});
  auto locs = write_records_locked(id, parts);
  if (!locs) return locs.error();
  Indexed copy;
  copy.content.assign(locs->begin(), locs->begin() + static_cast<std::ptrdiff_t>(chunks.size()));
  copy.size = m.size;
  copy.envelope_loc = (*locs)[chunks.size()];
  auto before = segments_of(m);
  ref_locked(segments_of(copy), +1);
  ref_locked(before, -1);
  m = std::move(copy);
  compacted_.fetch_add(1, std::memory_order_relaxed);
  return ok();
}

Spool::Stats Spool::stats() const {
  std::lock_guard lock(mu_);
  return Stats{syncs_.load(std::memory_order_relaxed), synced_requests_.load(std::memory_order_relaxed),
               segments_.size(), index_.size(), compacted_.load(std::memory_order_relaxed)};
}

}  // namespace tern::queue
