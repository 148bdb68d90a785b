// File change detection by stat(2) snapshot (see file_watch.h).
#include "users/file_watch.h"

#include <sys/stat.h>

namespace tern::users {

std::optional<FileWatch::Stamp> FileWatch::stamp(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return Stamp{st.st_dev, st.st_ino, st.st_size, st.st_mtim};
}

FileWatch FileWatch::of(const std::string& path) {
  FileWatch w;
  w.path_ = path;
  w.stamp_ = stamp(path);
  return w;
}

bool FileWatch::changed() const {
  if (path_.empty()) return false;
  return stamp(path_) != stamp_;
}

}  // namespace tern::users
