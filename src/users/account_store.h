// The accounts file: who may authenticate, with what stored keys. One account
// per line, "address:credential" (credential as in credential.h), with '#'
// comment lines and blank lines. Addresses are compared by their lower-cased
// whole form, so "Alice@Example.TEST" and "alice@example.test" are one
// account. Loading is all-or-nothing and errors name "path:line". The static
// add/remove/list helpers back the admin CLI; they rewrite the file durably
// with mode 0600 and keep comments and other lines as they were.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "users/credential.h"
#include "users/file_watch.h"

namespace tern::users {

class AccountStore {
 public:
  // An empty store (no accounts; nothing on disk).
  AccountStore();

  // Reads and parses `path`. A missing file is an error (the operator named it).
  static Result<AccountStore> load(const std::string& path);
  // Parses accounts-file text; `origin` prefixes error messages ("origin:line: ...").
  static Result<AccountStore> parse(std::string_view text, std::string_view origin);

  // Adds or replaces an in-memory entry without address validation (tests,
  // embedding). Never touches the file.
  void insert(std::string_view name, Credential credential);

  bool exists(std::string_view address) const;
  std::optional<Credential> find(std::string_view address) const;
  size_t size() const { return accounts_.size(); }
  // Canonical (lower-cased) addresses, sorted.
  std::vector<std::string> addresses() const;

  // True when the file this store was loaded from has been replaced or
  // modified since (mtime, size or inode differ, or it vanished). Always false
  // for stores not loaded from a file. The caller reloads.
  bool changed_on_disk() const;

  // A salt and iteration count for an address that has no account, stable for
  // the lifetime of this store, so SCRAM replies do not reveal which accounts
  // exist (RFC 5802 §9 "unknown-user" leak avoidance).
  Credential decoy_credential(std::string_view address) const;

  // Admin operations on the file itself. `add` refuses invalid addresses,
  // duplicates and passwords outside acceptable_password(); it creates the
  // file when missing.
  static Status add(const std::string& path, std::string_view address, std::string_view password,
                    uint32_t iterations = kDefaultIterations);
  static Status remove(const std::string& path, std::string_view address);
  static Result<std::vector<std::string>> list(const std::string& path);

 private:
  std::map<std::string, Credential> accounts_;  // canonical address -> keys
  FileWatch watch_;
  std::string decoy_secret_;
};

}  // namespace tern::users
