// Maildir delivery (see maildir.h). The sequence per message follows the
// maildir(5) protocol: a file in tmp/ (an unnamed O_TMPFILE inode where the
// file system allows, else a unique name), write, fsync, link into new/ (the
// atomic "publish" step), fsync new/, unlink the tmp/ name if any. Errors keep
// their errno so that disk-full and quota conditions map to the right SMTP
// status (RFC 3463 X.2.2 mailbox full, X.3.1 mail system full).
#include "delivery/maildir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <utility>

#include "base/fs.h"
#include "base/log.h"
#include "base/strings.h"

namespace tern::delivery {

namespace {

// Process-wide sequence for unique names: two deliverers in the same process
// and microsecond must still differ, so this cannot be per-instance state.
std::atomic<uint64_t> g_name_counter{0};

constexpr size_t kMaxNameComponent = 255;  // NAME_MAX on common file systems
constexpr size_t kBatchChunk = 128;         // open tmp files at once in a batch
constexpr int kNameAttempts = 5;

// Maps an errno from the file system to the status a client should see.
Error io_error(const std::string& what, int err) {
  std::string text = fs::errno_text(what, err);
  if (err == EDQUOT) return Error::temp("4.2.2", "mailbox full: " + text, 452);
  if (err == ENOSPC) return Error::temp("4.3.1", "mail system full: " + text, 452);
  return Error::local(text);  // EACCES, EROFS, EIO, ... : 451 4.3.0, retried
}

// A recipient-derived string that will become one path component.
bool safe_component(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameComponent || s[0] == '.') return false;  // also ".", ".."
  for (unsigned char c : s) {
    if (c == '/' || c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// mkdir that tolerates an existing directory; `created` reports a new one.
Status ensure_dir(const std::string& path, mode_t mode, bool& created) {
  if (::mkdir(path.c_str(), mode) == 0) {
    created = true;
    return ok();
  }
  int err = errno;
  if (err == EEXIST) {
    if (is_directory(path)) return ok();
    return Error::local(path + ": exists and is not a directory");
  }
  return io_error("mkdir " + path, err);
}

// Creates missing parent directories (mode 0755), syncing each new entry.
Status make_parents(const std::string& path) {
  if (path.empty() || path == "/" || is_directory(path)) return ok();
  std::string parent = fs::dirname(path);
  if (parent != path) {
    if (auto st = make_parents(parent); !st) return st;
  }
  bool created = false;
  if (auto st = ensure_dir(path, 0755, created); !st) return st;
  if (created) {
    if (auto st = fs::fsync_dir(parent); !st) return st;
  }
  return ok();
}

// Header values must stay on one line whatever the envelope contains.
std::string one_line(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c != '\r' && c != '\n') out.push_back(c);
  }
  return out;
}

// writev(2) loop over two parts that keeps errno (fs::write_all only keeps
// the text).
int write_fully(int fd, std::string_view first, std::string_view second) {
  while (!first.empty() || !second.empty()) {
    iovec iov[2] = {{const_cast<char*>(first.data()), first.size()}, {const_cast<char*>(second.data()), second.size()}};
    ssize_t n = ::writev(fd, first.empty() ? iov + 1 : iov, first.empty() ? 1 : 2);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    auto done = static_cast<size_t>(n);
    size_t from_first = std::min(done, first.size());
    first.remove_prefix(from_first);
    second.remove_prefix(done - from_first);
  }
  return 0;
}

std::string escape_hostname(std::string_view host) {
  std::string out;
  for (char c : host) {
    if (c == '/') out += "\\057";
    else if (c == ':') out += "\\072";
    else out.push_back(c);
  }
  return out;
}

// Creating and linking files in one directory takes that directory's lock
// in the kernel; several workers delivering into the same Maildir at once
// spin on it (measured: a fifth of the delivery threads' CPU), and on ext4
// without a journal each new inode is expensive to allocate anyway. So
// directory operations on one Maildir are serialized here, where waiting
// workers sleep instead of spinning. Striped by path: different mailboxes
// rarely share a stripe, and then only wait, never deadlock (one stripe is
// held at a time).
std::mutex& maildir_lock(const std::string& maildir) {
  static std::mutex stripes[64];
  return stripes[std::hash<std::string>{}(maildir) % 64];
}

// O_TMPFILE (Linux 3.11, ext4/xfs/btrfs/tmpfs) gives an unnamed inode in
// tmp/ that is linked into new/ once synced: no tmp/ entry to create and
// unlink, and nothing is left in tmp/ by a crash. It is linked with
// linkat(AT_EMPTY_PATH) where the kernel allows that (root, or the opener
// since Linux 6.10), else by its /proc/self/fd name; so it is used only
// when /proc is there. Without /proc, or on a file system that refuses
// O_TMPFILE, the classic named tmp/ file is used.
bool proc_fd_links_available() {
  static const bool available = ::access("/proc/self/fd", X_OK) == 0;
  return available;
}

// Directories known to be complete Maildirs (tmp/, new/ and, for the
// mailbox itself, cur/): checked with stat(2) once, not three times per
// message. A delivery that finds one gone (ENOENT) forgets it and prepares
// it again.
class ReadyMaildirs {
 public:
  bool contains(const std::string& dir) {
    std::lock_guard lock(mu_);
    return dirs_.count(dir) > 0;
  }
  void add(const std::string& dir) {
    std::lock_guard lock(mu_);
    if (dirs_.size() >= kMaxEntries) dirs_.clear();  // bounded; refilled on demand
    dirs_.insert(dir);
  }
  void forget(const std::string& dir) {
    std::lock_guard lock(mu_);
    dirs_.erase(dir);
  }

 private:
  static constexpr size_t kMaxEntries = 10000;
  std::mutex mu_;
  std::set<std::string> dirs_;
};

ReadyMaildirs& ready_maildirs() {
  static ReadyMaildirs ready;
  return ready;
}

// True when `dir` has the given Maildir subdirectories (cached when so).
bool maildir_ready(const std::string& dir, bool need_cur = true) {
  if (ready_maildirs().contains(dir)) return true;
  bool ready = is_directory(dir + "/tmp") && is_directory(dir + "/new") && (!need_cur || is_directory(dir + "/cur"));
  if (ready && need_cur) ready_maildirs().add(dir);
  return ready;
}

}  // namespace


Status validate_maildir_template(std::string_view path_template) {
  if (path_template.empty() || path_template[0] != '/') {
    return Error::temp("4.3.5", "maildir template must be an absolute path");
  }
  for (size_t i = 0; i < path_template.size(); ++i) {
    char c = path_template[i];
    if (c == '}') return Error::temp("4.3.5", "maildir template: unbalanced '}'");
    if (c != '{') continue;
    size_t close = path_template.find('}', i);
    if (close == std::string_view::npos) return Error::temp("4.3.5", "maildir template: unbalanced '{'");
    std::string_view name = path_template.substr(i + 1, close - i - 1);
    if (name != "domain" && name != "user" && name != "local") {
      return Error::temp("4.3.5", "maildir template: unknown placeholder {" + std::string(name) + "}");
    }
    i = close;
  }
  // A template like "/var/mail/../etc" is the operator's choice, but a ".."
  // component next to a placeholder is almost certainly a mistake.
  for (auto part : split(path_template, '/')) {
    if (part == "..") return Error::temp("4.3.5", "maildir template must not contain '..'");
  }
  return ok();
}

Result<std::string> expand_maildir_path(std::string_view path_template, const LocalDelivery& d) {
  if (auto st = validate_maildir_template(path_template); !st) return st.error();
  std::string user = to_lower(d.user);
  std::string domain = to_lower(d.domain);
  std::string local = d.detail.empty() ? d.user : d.user + "+" + d.detail;
  auto bad = [&](std::string_view what) {
    return Error::perm("5.1.1", "recipient " + one_line(d.recipient) + ": " + std::string(what) +
                                    " cannot be used as a mailbox directory name");
  };
  std::string out;
  for (size_t i = 0; i < path_template.size(); ++i) {
    if (path_template[i] != '{') {
      out.push_back(path_template[i]);
      continue;
    }
    size_t close = path_template.find('}', i);
    std::string_view name = path_template.substr(i + 1, close - i - 1);
    const std::string& value = name == "domain" ? domain : name == "user" ? user : local;
    if (!safe_component(value)) return bad(name);
    out += value;
    i = close;
  }
  return out;
}

struct MaildirDeliverer::Pending {
  const LocalDelivery* delivery = nullptr;
  std::string maildir;
  std::string tmp_path;
  std::string final_path;
  size_t size = 0;
  int fd = -1;
  // The Maildir's tmp/ and new/ opened once per batch (owned by
  // deliver_many; -1 when they could not be opened: paths are used then).
  // Relative operations skip walking the Maildir's path for every message.
  int tmp_dir = -1;
  int new_dir = -1;
  std::optional<Error> error;

  // For messages: the tmp/ file's name, or tmp/ itself for an unnamed one.
  std::string tmp_name() const { return tmp_path.empty() ? maildir + "/tmp" : tmp_path; }

  void fail(Error e) {
    if (fd >= 0) ::close(fd);
    fd = -1;
    if (!tmp_path.empty()) ::unlink(tmp_path.c_str());
    tmp_path.clear();
    error = std::move(e);
  }
};

MaildirDeliverer::MaildirDeliverer(Options options) : options_(std::move(options)) {
  if (options_.hostname.empty()) {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) == 0) options_.hostname = buf;
    if (options_.hostname.empty()) options_.hostname = "localhost";
  }
  escaped_hostname_ = escape_hostname(options_.hostname);
  pid_ = ::getpid();
  template_status_ = validate_maildir_template(options_.path_template);
}

std::string MaildirDeliverer::unique_name() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  uint64_t counter = g_name_counter.fetch_add(1, std::memory_order_relaxed);
  return std::to_string(now.tv_sec) + ".M" + std::to_string(now.tv_nsec / 1000) + "P" +
         std::to_string(pid_) + "Q" + std::to_string(counter) + "." + escaped_hostname_;
}

Result<std::string> MaildirDeliverer::prepare_maildir(const LocalDelivery& d) {
  if (!template_status_) return template_status_.error();
  auto expanded = expand_maildir_path(options_.path_template, d);
  if (!expanded) return expanded.error();
  std::string maildir = std::move(*expanded);

  // Quarantine: the Maildir++ folder ".Junk" (created with the mailbox and a
  // "maildirfolder" marker when missing, as IMAP servers expect).
  if (d.junk) {
    LocalDelivery inbox = d;
    inbox.junk = false;
    inbox.detail.clear();
    auto root = prepare_maildir(inbox);
    if (!root) return root.error();
    std::string folder = fs::join(*root, ".Junk");
    if (maildir_ready(folder)) return folder;
    bool created = false, created_sub = false;
    if (auto st = ensure_dir(folder, 0700, created); !st) return st.error();
    for (const char* sub : {"/tmp", "/new", "/cur"}) {
      if (auto st = ensure_dir(folder + sub, 0700, created_sub); !st) return st.error();
    }
    int marker = ::open((folder + "/maildirfolder").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (marker >= 0) ::close(marker);
    if (auto st = fs::fsync_dir(folder); !st) return st.error();
    if (created) {
      if (auto st = fs::fsync_dir(*root); !st) return st.error();
    }
    return folder;
  }

  // Maildir++ subfolder for +detail, only when the user already made it.
  if (options_.detail_folder && safe_component(d.detail)) {
    std::string folder = fs::join(maildir, "." + d.detail);
    if (maildir_ready(folder, /*need_cur=*/false)) return folder;
  }

  if (maildir_ready(maildir)) return maildir;
  if (auto st = make_parents(fs::dirname(maildir)); !st) return st.error();
  bool created_root = false, created_sub = false;
  if (auto st = ensure_dir(maildir, 0700, created_root); !st) return st.error();
  for (const char* sub : {"/tmp", "/new", "/cur"}) {
    if (auto st = ensure_dir(maildir + sub, 0700, created_sub); !st) return st.error();
  }
  if (created_sub) {
    if (auto st = fs::fsync_dir(maildir); !st) return st.error();
  }
  if (created_root) {
    if (auto st = fs::fsync_dir(fs::dirname(maildir)); !st) return st.error();
    log::info("maildir_created").kv("path", maildir);
  }
  return maildir;
}

Status MaildirDeliverer::write_tmp(Pending& p, std::string_view lf_content) {
  int err = EEXIST;
  if (proc_fd_links_available()) {
    p.fd = p.tmp_dir >= 0 ? ::openat(p.tmp_dir, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600)
                          : ::open((p.maildir + "/tmp").c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    err = p.fd < 0 ? errno : 0;
    if (err == ENOENT) ready_maildirs().forget(p.maildir);
    // Not supported here: fall back to a named file.
    if (err == EOPNOTSUPP || err == EISDIR || err == EINVAL) err = EEXIST;
  }
  if (err == EEXIST) {
    // A named file is a directory entry in tmp/: serialized per Maildir
    // (see maildir_lock). The unnamed O_TMPFILE inode above touches no
    // directory, so workers write their files in parallel.
    std::lock_guard lock(maildir_lock(p.maildir));
    for (int attempt = 0; attempt < kNameAttempts && err == EEXIST; ++attempt) {
      p.tmp_path = p.maildir + "/tmp/" + unique_name();
      p.fd = ::open(p.tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      err = p.fd < 0 ? errno : 0;
    }
  }
  if (p.fd < 0) {
    std::string path = p.tmp_name();
    p.tmp_path.clear();  // nothing of ours to remove
    if (err == ENOENT) ready_maildirs().forget(p.maildir);
    return io_error("open " + path, err);
  }
  // RFC 5321 §4.4: the delivering system records the envelope sender in a
  // Return-Path header; Delivered-To (a Postfix/qmail convention) records
  // the envelope recipient and lets loops be detected.
  std::string headers = "Return-Path: <" + one_line(p.delivery->sender) + ">\n" +
                        "Delivered-To: " + one_line(p.delivery->recipient) + "\n";
  err = write_fully(p.fd, headers, lf_content);
  if (err != 0) return io_error("write " + p.tmp_name(), err);
  p.size = headers.size() + lf_content.size();
  return ok();
}

Status MaildirDeliverer::publish(Pending& p) {
  for (int attempt = 0; attempt < kNameAttempts; ++attempt) {
    // ",S=<size>" lets readers know the size without stat (Maildir++).
    std::string name = unique_name() + ",S=" + std::to_string(p.size);
    std::string target = p.maildir + "/new/" + name;
    if (p.tmp_path.empty()) {
      // The unnamed O_TMPFILE inode, still open: linked by descriptor
      // (AT_EMPTY_PATH: allowed for root, and since Linux 6.10 for the
      // opener), else by its /proc name.
      const int dir = p.new_dir >= 0 ? p.new_dir : AT_FDCWD;
      const char* where = p.new_dir >= 0 ? name.c_str() : target.c_str();
      static std::atomic<bool> empty_path_refused{false};
      if (!empty_path_refused.load(std::memory_order_relaxed) && ::linkat(p.fd, "", dir, where, AT_EMPTY_PATH) == 0) {
        p.final_path = std::move(target);
        return ok();
      }
      std::string self = "/proc/self/fd/" + std::to_string(p.fd);
      if (::linkat(AT_FDCWD, self.c_str(), dir, where, AT_SYMLINK_FOLLOW) == 0) {
        empty_path_refused.store(true, std::memory_order_relaxed);  // the /proc way works, the other did not
        p.final_path = std::move(target);
        return ok();
      }
      int err = errno;
      if (err == EEXIST) continue;
      if (err == ENOENT) ready_maildirs().forget(p.maildir);
      return io_error("link into " + p.maildir + "/new", err);
    }
    if (::link(p.tmp_path.c_str(), target.c_str()) == 0) {
      ::unlink(p.tmp_path.c_str());
      p.tmp_path.clear();
      p.final_path = std::move(target);
      return ok();
    }
    int err = errno;
    if (err == EEXIST) continue;
    if (err == ENOENT) ready_maildirs().forget(p.maildir);
    if (err == EPERM || err == EOPNOTSUPP || err == ENOSYS || err == EMLINK) {
      // File systems without hard links: rename is atomic too, and the name
      // is fresh, so it cannot replace another message in practice.
      if (fs::exists(target)) continue;
      if (::rename(p.tmp_path.c_str(), target.c_str()) == 0) {
        p.tmp_path.clear();
        p.final_path = std::move(target);
        return ok();
      }
      err = errno;
    }
    return io_error("link into " + p.maildir + "/new", err);
  }
  return Error::local("could not find a unique name in " + p.maildir + "/new");
}

Result<std::string> MaildirDeliverer::deliver(const LocalDelivery& delivery, std::string_view content) {
  auto results = deliver_batch({delivery}, content);
  return std::move(results.front());
}

std::vector<Result<std::string>> MaildirDeliverer::deliver_batch(const std::vector<LocalDelivery>& deliveries,
                                                                 std::string_view content) {
  return deliver_many(deliveries, std::vector<std::string_view>(deliveries.size(), content));
}

std::vector<Result<std::string>> MaildirDeliverer::deliver_many(const std::vector<LocalDelivery>& deliveries,
                                                                const std::vector<std::string_view>& contents) {
  std::vector<Result<std::string>> results;
  results.reserve(deliveries.size());
  // LF conversion once per distinct message.
  std::vector<std::string> converted;
  std::vector<size_t> content_slot(deliveries.size());
  for (size_t i = 0; i < deliveries.size(); ++i) {
    if (i > 0 && contents[i].data() == contents[i - 1].data() && contents[i].size() == contents[i - 1].size()) {
      content_slot[i] = content_slot[i - 1];
      continue;
    }
    content_slot[i] = converted.size();
    converted.push_back(crlf_to_lf(contents[i]));
  }

  for (size_t start = 0; start < deliveries.size(); start += kBatchChunk) {
    size_t end = std::min(deliveries.size(), start + kBatchChunk);
    std::vector<Pending> pending(end - start);

    // tmp/ and new/ of each Maildir in this chunk, opened once, and the
    // file system tmp/ is on (where its files are: one fstat per Maildir).
    struct Dirs {
      int tmp = -1, new_ = -1;
      dev_t dev = 0;  // 0: unknown
    };
    std::map<std::string, Dirs> dirs;
    struct CloseDirs {
      std::map<std::string, Dirs>& dirs;
      ~CloseDirs() {
        for (auto& [path, d] : dirs) {
          if (d.tmp >= 0) ::close(d.tmp);
          if (d.new_ >= 0) ::close(d.new_);
        }
      }
    } close_dirs{dirs};

    // 1. Write every copy to tmp/.
    for (size_t i = start; i < end; ++i) {
      Pending& p = pending[i - start];
      p.delivery = &deliveries[i];
      auto maildir = prepare_maildir(deliveries[i]);
      if (!maildir) {
        p.fail(maildir.error());
        continue;
      }
      p.maildir = std::move(*maildir);
      auto [it, fresh] = dirs.try_emplace(p.maildir);
      Dirs& d = it->second;
      if (fresh) {
        d.tmp = ::open((p.maildir + "/tmp").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        d.new_ = ::open((p.maildir + "/new").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct stat st;
        if (d.tmp >= 0 && ::fstat(d.tmp, &st) == 0) d.dev = st.st_dev;
      }
      p.tmp_dir = d.tmp;
      p.new_dir = d.new_;
      if (auto st = write_tmp(p, converted[content_slot[i]]); !st) p.fail(st.error());
    }
    // 2. Make the file contents durable. Several files on one file system
    // are flushed with a single syncfs(2) (which reports writeback errors
    // since Linux 5.8) instead of one journal commit per fsync(2).
    std::map<dev_t, std::vector<Pending*>> by_device;
    for (Pending& p : pending) {
      if (p.error) continue;
      dev_t dev = dirs.at(p.maildir).dev;
      struct stat st;
      if (dev == 0 && ::fstat(p.fd, &st) == 0) dev = st.st_dev;
      by_device[dev].push_back(&p);
    }
    for (auto& [dev, files] : by_device) {
      bool shared_sync = files.size() > 1 && dev != 0;
      int shared_err = 0;
      if (shared_sync && ::syncfs(files.front()->fd) != 0) shared_err = errno;
      for (Pending* p : files) {
        int err = shared_sync ? shared_err : (::fsync(p->fd) == 0 ? 0 : errno);
        if (err != 0) p->fail(io_error((shared_sync ? "syncfs " : "fsync ") + p->tmp_name(), err));
      }
    }
    // 3. Publish into new/.
    std::set<std::string> linked;  // Maildirs with a new entry
    for (Pending& p : pending) {
      if (p.error) continue;
      std::unique_lock lock(maildir_lock(p.maildir));
      Status published = publish(p);
      // The file is durable (synced above) and linked or failed: close it.
      // (An error of close(2) after fsync cannot concern the data.)
      ::close(p.fd);
      p.fd = -1;
      if (!published) {
        p.fail(published.error());
        continue;
      }
      linked.insert(p.maildir);
    }
    // 4. Make the new/ entries durable, once per directory. If that fails
    // the entry is withdrawn so the retry does not produce a duplicate.
    for (const std::string& maildir : linked) {
      const int new_dir = dirs.at(maildir).new_;  // opened in step 1
      Status st;
      if (new_dir < 0) {
        st = fs::fsync_dir(maildir + "/new");
      } else if (::fsync(new_dir) != 0) {
        st = io_error("fsync " + maildir + "/new", errno);
      }
      if (st) continue;
      for (Pending& p : pending) {
        if (!p.error && p.maildir == maildir) {
          ::unlink(p.final_path.c_str());
          p.fail(st.error());
        }
      }
    }
    for (Pending& p : pending) {
      if (p.error) {
        log::warn("maildir_delivery_failed")
            .kv("recipient", p.delivery->recipient)
            .kv("error", p.error->to_string());
        results.emplace_back(std::move(*p.error));
      } else {
        results.emplace_back(std::move(p.final_path));
      }
    }
  }
  return results;
}

}  // namespace tern::delivery
