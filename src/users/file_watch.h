// Detects that a configuration file (accounts, aliases) was edited or
// replaced since it was read, so the owner can reload it: compares device,
// inode, size and mtime (nanoseconds) with a snapshot taken before reading.
#pragma once

#include <sys/types.h>

#include <ctime>
#include <optional>
#include <string>

namespace tern::users {

class FileWatch {
 public:
  FileWatch() = default;  // watches nothing; changed() is false
  // Snapshot of `path` now (take it before reading the file).
  static FileWatch of(const std::string& path);
  // True when the file differs from the snapshot, appeared or vanished.
  bool changed() const;
  const std::string& path() const { return path_; }

 private:
  struct Stamp {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    timespec mtime{};
    bool operator==(const Stamp& o) const {
      return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
             mtime.tv_nsec == o.mtime.tv_nsec;
    }
  };
  static std::optional<Stamp> stamp(const std::string& path);

  std::string path_;
  std::optional<Stamp> stamp_;
};

}  // namespace tern::users
