// Greylisting: the first delivery attempt of an unknown (client network,
// sender, recipient) triplet is refused with 451 4.7.1; a retry after `delay`
// passes, and the triplet is then accepted at once for `expire` after it was
// last seen. A client network (IPv4 /24, IPv6 /64: the pool a legitimate
// sender's retries come from) whose triplets have passed `pass_after` times is
// whitelisted as a whole (it retries properly; spamware rarely does) and is
// remembered for `expire` after its last message. An attempt whose first try
// is older than `retry_window` starts over.
//
// Persistence: <data_dir>/greylist is an append-only log of records, one per
// line (tab-separated; the last record for a key wins), written with one
// write(2) each, so a crash loses at most the latest few records (the client
// is greylisted once more) and a torn last line is skipped on load. The file
// is rewritten (write temp, fsync, rename) when it has grown to more than
// twice the live records. Expired entries are dropped on load and rewrite.
// Memory is bounded by max_entries; when full of live entries, new triplets
// pass without greylisting (fail open) and the explanation says so.
// The clock is injected so tests can step time. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/net.h"
#include "base/result.h"
#include "policy/verdict.h"

namespace tern::policy {

struct GreylistOptions {
  std::chrono::seconds delay{300};                   // minimum wait before a retry passes
  std::chrono::seconds expire{35 * 24 * 3600};       // how long passed triplets and whitelisted clients are remembered
  std::chrono::seconds retry_window{2 * 24 * 3600};  // a pending triplet older than this starts over
  uint32_t pass_after = 5;                           // passed triplets that whitelist the client network; 0: never
  size_t max_entries = 1000000;                      // triplets + client networks kept in memory
};

class Greylist {
 public:
  // Seconds since the Unix epoch.
  using Clock = std::function<int64_t()>;
  static int64_t system_now();

  // Loads `path` (created when missing; "" keeps the state in memory only).
  static Result<std::unique_ptr<Greylist>> open(std::string path, GreylistOptions options, Clock clock = system_now);
  ~Greylist();
  Greylist(const Greylist&) = delete;
  Greylist& operator=(const Greylist&) = delete;

  // At RCPT TO (the triplet needs the recipient): continue (passed before or
  // now), accept (whitelisted client network), or 451 4.7.1 (greylisted).
  // `sender` is "" for the null reverse-path.
  Verdict check(const IpAddress& client, std::string_view sender, std::string_view recipient);

  // Rewrites the file with only the live records.
  Status compact();

  size_t triplet_count() const;
  size_t client_count() const;
  // "192.0.2.0/24" or "2001:db8:1:2::/64".
  static std::string network_of(const IpAddress& client);

 private:
  struct Triplet {
    int64_t first_seen = 0;
    int64_t last_seen = 0;
    bool passed = false;
  };
  struct ClientNetwork {
    uint32_t passed = 0;
    int64_t last_seen = 0;
  };

  Greylist(std::string path, GreylistOptions options, Clock clock);
  Status load();
  // Applies one record; false when it is malformed.
  bool parse_record(std::string_view line);
  void prune(int64_t now);
  void append(const std::string& record);
  Status rewrite_locked();
  static std::string triplet_record(const std::string& key, const Triplet& t);
  static std::string client_record(const std::string& network, const ClientNetwork& c);
  bool whitelisted(const ClientNetwork& c, int64_t now) const;

  std::string path_;
  GreylistOptions options_;
  Clock clock_;
  mutable std::mutex mu_;
  int fd_ = -1;
  size_t records_in_file_ = 0;
  std::unordered_map<std::string, Triplet> triplets_;       // "network\tsender\trecipient"
  std::unordered_map<std::string, ClientNetwork> clients_;  // network
};

}  // namespace tern::policy
