// The aliases file, aliases(5) style:
//   # comment
//   postmaster: alice
//   sales@example.test: alice, bob@example.test,
//       partner@elsewhere.example
//   @example.test: catchall
// An entry is "name: target, target, ..."; a line that starts with
// whitespace continues the previous entry; blank lines and lines whose first
// non-blank character is '#' are ignored. A name is "user" (every local
// domain), "user@domain" (that domain only) or "@domain" (catch-all for local
// parts of that domain that match nothing else). A target is a local part
// (resolved in the domain of the address being expanded) or a full address,
// which may be external (forwarding). Commands, files and :include: are not
// supported. Names are matched lower-cased. Parsing is all-or-nothing and
// errors name "path:line". Expansion lives in Directory (directory.h).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "users/file_watch.h"

namespace tern::users {

class Aliases {
 public:
  struct Entry {
    std::vector<std::string> targets;  // as written (trimmed)
    size_t line = 0;                   // where the entry starts
  };

  Aliases() = default;
  static Result<Aliases> load(const std::string& path);
  // `origin` prefixes error messages ("origin:line: ...").
  static Result<Aliases> parse(std::string_view text, std::string_view origin);

  // "user@domain" entries; `address` is matched lower-cased.
  const Entry* find_qualified(std::string_view address) const;
  // "user" entries (valid in every local domain).
  const Entry* find_unqualified(std::string_view local) const;
  // "@domain" catch-all entries.
  const Entry* find_catch_all(std::string_view domain) const;

  size_t size() const { return entries_.size(); }
  // True when the file this was loaded from changed since (see FileWatch).
  bool changed_on_disk() const { return watch_.changed(); }

 private:
  // Keys: "user@domain", "user" or "@domain", lower-cased.
  std::map<std::string, Entry> entries_;
  FileWatch watch_;
};

// Bounds for Directory::expand and for parsing hostile files.
inline constexpr size_t kMaxAliasDepth = 10;
inline constexpr size_t kMaxAliasTargets = 1000;

}  // namespace tern::users
