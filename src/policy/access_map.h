// Sender and recipient access maps: an operator's table of addresses,
// domains, client networks and patterns with an action each, consulted at
// MAIL FROM (sender_access) and RCPT TO (recipient_access). File format, one
// entry per line, '#' comments and blank lines ignored:
//   user@example.org     REJECT Go away
//   @spam.example        REJECT
//   @partner.example     OK
//   192.0.2.0/24         DISCARD        (sender_access only: the client IP)
//   /^postmaster@/       OK             (recipient_access only: regex, case-insensitive)
// Actions: OK (explicitly allowed: the remaining anti-abuse checks of that
// command are skipped), REJECT [text] (550 5.7.1 with the text, default
// "Access denied"), DISCARD (sender_access only: accepted, then dropped).
// Lookup order, most specific first: exact address, @domain (then its parent
// domains, "@example.org" also covering "mx.example.org"), client IP/CIDR
// (longest prefix), regexes in file order. Keys compare case-insensitively.
// Errors name the file and line. ReloadingAccessMap re-reads the file when it
// changes (users::FileWatch), keeping the previous map if the new one is bad.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/net.h"
#include "base/result.h"
#include "policy/verdict.h"
#include "users/file_watch.h"

namespace tern::policy {

enum class AccessMapKind { kSender, kRecipient };

struct AccessEntry {
  enum class Action { kOk, kReject, kDiscard };
  Action action = Action::kOk;
  std::string text;  // REJECT text (may be empty)
  std::string key;   // as written in the file, for explanations
  int line = 0;
};

class AccessMap {
 public:
  static constexpr size_t kMaxEntries = 100000;
  static constexpr size_t kMaxLineLength = 1000;

  // Parses map text; `source` names it in errors ("path:line: ...").
  static Result<AccessMap> parse(std::string_view text, AccessMapKind kind, std::string_view source);
  static Result<AccessMap> load(const std::string& path, AccessMapKind kind);

  // The entry for `address` (reverse-path or forward-path without brackets;
  // "" for the null sender, which matches only IP entries) and, for sender
  // maps, the client IP. nullopt when nothing matches.
  std::optional<AccessEntry> lookup(std::string_view address, const std::optional<IpAddress>& client = {}) const;

  // lookup() as a verdict: nothing/OK/REJECT/DISCARD -> continue/accept/550 5.7.1/discard.
  // `what` ("sender" or "recipient") goes into reply texts and explanations.
  Verdict check(std::string_view address, const std::optional<IpAddress>& client = {}) const;

  AccessMapKind kind() const { return kind_; }
  size_t size() const { return addresses_.size() + domains_.size() + networks_.size() + patterns_.size(); }

 private:
  struct Network {
    Cidr cidr;
    AccessEntry entry;
  };
  struct Pattern {
    std::regex regex;
    AccessEntry entry;
  };

  AccessMapKind kind_ = AccessMapKind::kSender;
  std::unordered_map<std::string, AccessEntry> addresses_;  // lower-case "local@domain"
  std::unordered_map<std::string, AccessEntry> domains_;    // lower-case "domain"
  std::vector<Network> networks_;                           // sorted by prefix length, longest first
  std::vector<Pattern> patterns_;                           // file order
};

// An AccessMap kept in step with its file. current() re-reads the file when it
// has changed (checked at most once per `check_interval`); a file that fails
// to parse is logged and the previous map stays in use. Thread-safe.
class ReloadingAccessMap {
 public:
  // Loads `path` now; an error here is a configuration error (start-up fails).
  static Result<std::shared_ptr<ReloadingAccessMap>> open(
      std::string path, AccessMapKind kind, std::chrono::milliseconds check_interval = std::chrono::milliseconds(1000));
  std::shared_ptr<const AccessMap> current();
  const std::string& path() const { return path_; }

 private:
  ReloadingAccessMap() = default;

  std::string path_;
  AccessMapKind kind_ = AccessMapKind::kSender;
  std::chrono::milliseconds check_interval_{1000};
  std::mutex mu_;
  users::FileWatch watch_;
  std::chrono::steady_clock::time_point last_check_{};
  std::shared_ptr<const AccessMap> map_;
};

}  // namespace tern::policy
