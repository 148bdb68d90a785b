// The live view of accounts and aliases shared by all sessions: an immutable
// snapshot (AccountStore + Aliases + Directory) swapped in when the files
// change on disk (checked at most once a second), so an operator's
// `tern account add` or alias edit takes effect without a restart. A file
// that fails to load keeps the previous snapshot and logs the error.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/result.h"
#include "users/account_store.h"
#include "users/aliases.h"
#include "users/directory.h"

namespace tern::server {

class UserDb {
 public:
  struct Snapshot {
    std::shared_ptr<const users::AccountStore> accounts;
    std::shared_ptr<const users::Aliases> aliases;
    std::shared_ptr<const users::Directory> directory;
  };

  UserDb(std::vector<std::string> local_domains, std::string accounts_file, std::string aliases_file);
  // Loads both files; errors name file:line. A missing accounts file is an
  // empty account list (a fresh install); a missing aliases file is an error
  // only when one is configured.
  Status load();
  // The current snapshot (reloaded first if a file changed).
  std::shared_ptr<const Snapshot> get();

 private:
  Result<std::shared_ptr<const Snapshot>> build() const;

  std::vector<std::string> domains_;
  std::string accounts_file_;
  std::string aliases_file_;
  std::mutex mu_;
  std::shared_ptr<const Snapshot> current_;
  std::chrono::steady_clock::time_point last_check_{};
};

}  // namespace tern::server
