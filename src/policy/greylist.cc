// Greylisting state machine and its append-only persistence (see greylist.h).
#include "policy/greylist.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/fs.h"
#include "base/log.h"
#include "base/strings.h"

namespace tern::policy {

namespace {

constexpr std::string_view kHeader = "tern-greylist 1";
constexpr size_t kMaxAddressInKey = 320;  // RFC 5321 §4.5.3.1: 64 + 1 + 255, with room
constexpr size_t kMaxFileSize = 1024 * 1024 * 1024;

// Lower-case, bounded, without the characters the record format uses.
std::string key_part(std::string_view address) {
  if (address.empty()) return "<>";
  std::string out = to_lower(address.substr(0, kMaxAddressInKey));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}

bool parse_i64(std::string_view s, int64_t& out) {
  unsigned long long v = 0;
  if (!parse_u64(s, v) || v > static_cast<unsigned long long>(INT64_MAX)) return false;
  out = static_cast<int64_t>(v);
  return true;
}

}  // namespace

int64_t Greylist::system_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string Greylist::network_of(const IpAddress& client) {
  IpAddress ip = client.unmapped();
  if (!ip.v6) {
    ip.bytes[3] = 0;
    return ip.to_string() + "/24";
  }
  std::fill(ip.bytes.begin() + 8, ip.bytes.end(), 0);
  return ip.to_string() + "/64";
}

Greylist::Greylist(std::string path, GreylistOptions options, Clock clock)
    : path_(std::move(path)), options_(options), clock_(std::move(clock)) {}

Greylist::~Greylist() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<Greylist>> Greylist::open(std::string path, GreylistOptions options, Clock clock) {
  std::unique_ptr<Greylist> greylist(new Greylist(std::move(path), options, std::move(clock)));
  if (!greylist->path_.empty()) {
    if (auto st = greylist->load(); !st) return st.error();
  }
  return greylist;
}

std::string Greylist::triplet_record(const std::string& key, const Triplet& t) {
  return "T\t" + std::to_string(t.first_seen) + "\t" + std::to_string(t.last_seen) + "\t" + (t.passed ? "1" : "0") +
         "\t" + key + "\n";
}

std::string Greylist::client_record(const std::string& network, const ClientNetwork& c) {
  return "C\t" + std::to_string(c.passed) + "\t" + std::to_string(c.last_seen) + "\t" + network + "\n";
}

bool Greylist::parse_record(std::string_view line) {
  auto fields = split(line, '\t');
  if (fields.size() == 7 && fields[0] == "T") {
    Triplet t;
    if (!parse_i64(fields[1], t.first_seen) || !parse_i64(fields[2], t.last_seen)) return false;
    if (fields[3] != "0" && fields[3] != "1") return false;
    t.passed = fields[3] == "1";
    std::string key = std::string(fields[4]) + "\t" + std::string(fields[5]) + "\t" + std::string(fields[6]);
    triplets_[key] = t;
    return true;
  }
  if (fields.size() == 4 && fields[0] == "C") {
    ClientNetwork c;
    int64_t passed = 0;
    if (!parse_i64(fields[1], passed) || passed > UINT32_MAX || !parse_i64(fields[2], c.last_seen)) return false;
    c.passed = static_cast<uint32_t>(passed);
    clients_[std::string(fields[3])] = c;
    return true;
  }
  return false;
}

Status Greylist::load() {
  if (fs::exists(path_)) {
    auto text = fs::read_file(path_, kMaxFileSize);
    if (!text) return Error::local(path_ + ": " + text.error().text);
    std::string_view rest = *text;
    size_t skipped = 0;
    bool first = true;
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      if (nl == std::string_view::npos) {  // torn last record of a crash: skip it
        ++skipped;
        break;
      }
      std::string_view line = rest.substr(0, nl);
      rest.remove_prefix(nl + 1);
      if (first) {
        first = false;
        if (line != kHeader) return Error::local(path_ + ": not a tern greylist file");
        continue;
      }
      if (!parse_record(line)) ++skipped;
    }
    if (skipped > 0)
      log::warn("greylist_records_skipped").kv("path", path_).kv("count", static_cast<uint64_t>(skipped));
  }
  prune(clock_());
  // Start from a compact file: drops expired and superseded records, and a torn tail.
  std::lock_guard lock(mu_);
  return rewrite_locked();
}

bool Greylist::whitelisted(const ClientNetwork& c, int64_t now) const {
  return options_.pass_after > 0 && c.passed >= options_.pass_after && now - c.last_seen < options_.expire.count();
}

void Greylist::prune(int64_t now) {
  std::erase_if(triplets_, [&](const auto& entry) {
    const Triplet& t = entry.second;
    return t.passed ? now - t.last_seen >= options_.expire.count()
                    : now - t.first_seen >= options_.retry_window.count();
  });
  std::erase_if(clients_, [&](const auto& entry) { return now - entry.second.last_seen >= options_.expire.count(); });
}

void Greylist::append(const std::string& record) {
  if (fd_ < 0) return;
  if (auto st = fs::write_all(fd_, record); !st) {
    log::warn("greylist_write_failed").kv("path", path_).kv("error", st.error().text);
    return;
  }
  ++records_in_file_;
  if (records_in_file_ > 2 * (triplets_.size() + clients_.size()) + 1000) {
    prune(clock_());
    if (auto st = rewrite_locked(); !st) log::warn("greylist_rewrite_failed").kv("error", st.error().text);
  }
}

Status Greylist::rewrite_locked() {
  if (path_.empty()) return ok();
  std::string data(kHeader);
  data += '\n';
  for (const auto& [network, c] : clients_) data += client_record(network, c);
  for (const auto& [key, t] : triplets_) data += triplet_record(key, t);
  if (auto st = fs::write_file_durable(path_, data, 0600); !st) return st;
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) return Error::local(fs::errno_text("open(" + path_ + ")", errno));
  records_in_file_ = clients_.size() + triplets_.size();
  return ok();
}

Status Greylist::compact() {
  std::lock_guard lock(mu_);
  prune(clock_());
  return rewrite_locked();
}

Verdict Greylist::check(const IpAddress& client, std::string_view sender, std::string_view recipient) {
  const int64_t now = clock_();
  const std::string network = network_of(client);
  std::lock_guard lock(mu_);

  auto client_it = clients_.find(network);
  if (client_it != clients_.end() && whitelisted(client_it->second, now)) {
    client_it->second.last_seen = now;
    append(client_record(network, client_it->second));
    return Verdict::accept("greylist: client network " + network + " whitelisted after " +
                           std::to_string(client_it->second.passed) + " passed triplets");
  }

  const std::string key = network + "\t" + key_part(sender) + "\t" + key_part(recipient);
  auto it = triplets_.find(key);
  if (it != triplets_.end()) {
    Triplet& t = it->second;
    if (t.passed && now - t.last_seen < options_.expire.count()) {
      t.last_seen = now;
      append(triplet_record(key, t));
      return Verdict::pass("greylist: triplet passed before");
    }
    if (!t.passed && now - t.first_seen < options_.retry_window.count()) {
      int64_t waited = now - t.first_seen;
      if (waited < options_.delay.count()) {
        int64_t left = options_.delay.count() - waited;
        return Verdict::temp_fail(451, "4.7.1", "Greylisted, please try again in " + std::to_string(left) + " seconds",
                                  "greylist: retried after " + std::to_string(waited) + "s, before the delay of " +
                                      std::to_string(options_.delay.count()) + "s");
      }
      t.passed = true;
      t.last_seen = now;
      append(triplet_record(key, t));
      ClientNetwork& c = clients_[network];
      c.passed += 1;
      c.last_seen = now;
      append(client_record(network, c));
      return Verdict::pass("greylist: retried after " + std::to_string(waited) + "s, passed (" +
                           std::to_string(c.passed) + " for " + network + ")");
    }
  }

  // New (or expired) triplet.
  if (it == triplets_.end() && triplets_.size() + clients_.size() >= options_.max_entries) {
    prune(now);
    if (triplets_.size() + clients_.size() >= options_.max_entries) {
      return Verdict::pass("greylist: table full (" + std::to_string(options_.max_entries) + "), not greylisted");
    }
  }
  Triplet& t = triplets_[key];
  t = Triplet{now, now, false};
  append(triplet_record(key, t));
  return Verdict::temp_fail(451, "4.7.1",
                            "Greylisted, please try again in " + std::to_string(options_.delay.count()) + " seconds",
                            "greylist: first attempt of this client network, sender and recipient");
}

size_t Greylist::triplet_count() const {
  std::lock_guard lock(mu_);
  return triplets_.size();
}

size_t Greylist::client_count() const {
  std::lock_guard lock(mu_);
  return clients_.size();
}

}  // namespace tern::policy
