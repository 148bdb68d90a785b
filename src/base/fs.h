// File-system helpers with explicit durability: reading whole files, durable
// replacement (write temp, fsync, rename, fsync directory), directory creation
// and fsync of directory entries. All return Result values with errno text.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"

namespace tern::fs {

Result<std::string> read_file(const std::string& path, size_t max_size = 64 * 1024 * 1024);
// Atomically replaces `path` with `data`; durable when it returns ok.
Status write_file_durable(const std::string& path, std::string_view data, int mode = 0644);
// Creates `path` and missing parents (like mkdir -p).
Status make_dirs(const std::string& path, int mode = 0755);
// fsync() of a directory, so that entries created/renamed in it are durable.
Status fsync_dir(const std::string& path);
// Writes all of `data` to fd (retrying on EINTR and short writes).
Status write_all(int fd, std::string_view data);
std::string dirname(const std::string& path);
std::string join(std::string_view a, std::string_view b);
bool exists(const std::string& path);
// "open(...): No such file or directory" style text.
std::string errno_text(std::string_view what, int err);

}  // namespace tern::fs
