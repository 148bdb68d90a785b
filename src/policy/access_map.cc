// Access map parsing, lookup and reloading (see access_map.h).
#include "policy/access_map.h"

#include <algorithm>

#include "base/fs.h"
#include "base/log.h"
#include "base/strings.h"

namespace tern::policy {

namespace {

// Longest address we match against regexes: RFC 5321 §4.5.3.1.3 path limit 256, with room.
constexpr size_t kMaxMatchedAddress = 512;

Error map_error(std::string_view source, int line, std::string_view what) {
  return Error::perm("5.3.0", std::string(source) + ":" + std::to_string(line) + ": " + std::string(what));
}

// Splits off the first whitespace-delimited word of `s`; `s` keeps the rest, trimmed.
std::string_view next_word(std::string_view& s) {
  s = trim(s);
  size_t end = s.find_first_of(" \t");
  std::string_view word = s.substr(0, end);
  s = end == std::string_view::npos ? std::string_view{} : trim(s.substr(end));
  return word;
}

bool printable_text(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == '\t' || static_cast<unsigned char>(c) >= 0x20; }) &&
         s.find('\x7f') == std::string_view::npos;
}

}  // namespace

Result<AccessMap> AccessMap::parse(std::string_view text, AccessMapKind kind, std::string_view source) {
  AccessMap map;
  map.kind_ = kind;
  int line_number = 0;
  size_t entries = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view raw = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_number;
    if (raw.size() > kMaxLineLength) return map_error(source, line_number, "line too long");
    std::string_view rest = trim(raw);
    if (rest.empty() || rest.front() == '#') continue;
    if (++entries > kMaxEntries) return map_error(source, line_number, "too many entries");

    std::string_view key;
    if (rest.front() == '/') {
      // /regex/: the closing slash is the last one before whitespace and the action.
      size_t close = std::string_view::npos;
      for (size_t i = 1; i < rest.size(); ++i) {
        if (rest[i] == '/' && (i + 1 == rest.size() || rest[i + 1] == ' ' || rest[i + 1] == '\t')) close = i;
      }
      if (close == std::string_view::npos || close == 1) {
        return map_error(source, line_number, "regex key must be written /pattern/");
      }
      key = rest.substr(0, close + 1);
      rest = trim(rest.substr(close + 1));
    } else {
      key = next_word(rest);
    }
    std::string_view action_word = next_word(rest);
    if (action_word.empty()) return map_error(source, line_number, "missing action after '" + std::string(key) + "'");

    AccessEntry entry;
    entry.key = std::string(key);
    entry.line = line_number;
    if (iequals(action_word, "OK")) {
      entry.action = AccessEntry::Action::kOk;
    } else if (iequals(action_word, "REJECT")) {
      entry.action = AccessEntry::Action::kReject;
      if (!printable_text(rest)) return map_error(source, line_number, "control characters in REJECT text");
      entry.text = std::string(rest);
      rest = {};
    } else if (iequals(action_word, "DISCARD")) {
      if (kind == AccessMapKind::kRecipient) {
        return map_error(source, line_number, "DISCARD is only allowed in sender_access");
      }
      entry.action = AccessEntry::Action::kDiscard;
    } else {
      return map_error(source, line_number,
                       "unknown action '" + std::string(action_word) + "' (expected OK, REJECT or DISCARD)");
    }
    if (!rest.empty()) return map_error(source, line_number, "unexpected text after " + std::string(action_word));

    if (key.front() == '/') {
      if (kind != AccessMapKind::kRecipient) {
        return map_error(source, line_number, "regex keys are only allowed in recipient_access");
      }
      std::string pattern(key.substr(1, key.size() - 2));
      try {
        // Exceptions only at the edge: configuration parsing (std::regex reports syntax errors so).
        map.patterns_.push_back({std::regex(pattern, std::regex::ECMAScript | std::regex::icase), entry});
      } catch (const std::regex_error& e) {
        return map_error(source, line_number, "bad regex " + std::string(key) + ": " + e.what());
      }
    } else if (key.front() == '@') {
      std::string domain = to_lower(key.substr(1));
      if (domain.empty() || domain.find('@') != std::string::npos) {
        return map_error(source, line_number, "bad domain key '" + std::string(key) + "'");
      }
      map.domains_.try_emplace(domain, entry);
    } else if (key.find('@') != std::string_view::npos) {
      map.addresses_.try_emplace(to_lower(key), entry);
    } else if (auto cidr = Cidr::parse(key)) {
      if (kind != AccessMapKind::kSender) {
        return map_error(source, line_number, "IP/CIDR keys are only allowed in sender_access");
      }
      map.networks_.push_back({*cidr, entry});
    } else {
      return map_error(source, line_number,
                       "bad key '" + std::string(key) + "' (expected user@domain, @domain" +
                           (kind == AccessMapKind::kSender ? ", IP or CIDR)" : " or /regex/)"));
    }
  }
  std::stable_sort(map.networks_.begin(), map.networks_.end(),
                   [](const Network& a, const Network& b) { return a.cidr.prefix > b.cidr.prefix; });
  return map;
}

Result<AccessMap> AccessMap::load(const std::string& path, AccessMapKind kind) {
  auto text = fs::read_file(path, 64 * 1024 * 1024);
  if (!text) return Error::perm("5.3.0", path + ": " + text.error().text);
  return parse(*text, kind, path);
}

std::optional<AccessEntry> AccessMap::lookup(std::string_view address, const std::optional<IpAddress>& client) const {
  std::string lower = to_lower(address);
  if (!lower.empty()) {
    if (auto it = addresses_.find(lower); it != addresses_.end()) return it->second;
    size_t at = lower.rfind('@');
    if (at != std::string::npos) {
      // The domain, then each parent domain: "@example.org" covers "mx.example.org".
      std::string_view domain = std::string_view(lower).substr(at + 1);
      while (!domain.empty()) {
        if (auto it = domains_.find(std::string(domain)); it != domains_.end()) return it->second;
        size_t dot = domain.find('.');
        if (dot == std::string_view::npos) break;
        domain.remove_prefix(dot + 1);
      }
    }
  }
  if (client) {
    IpAddress ip = client->unmapped();
    for (const Network& n : networks_) {
      if (n.cidr.contains(ip)) return n.entry;
    }
  }
  if (!lower.empty() && lower.size() <= kMaxMatchedAddress) {
    for (const Pattern& p : patterns_) {
      if (std::regex_search(lower, p.regex)) return p.entry;
    }
  }
  return std::nullopt;
}

Verdict AccessMap::check(std::string_view address, const std::optional<IpAddress>& client) const {
  const char* what = kind_ == AccessMapKind::kSender ? "sender_access" : "recipient_access";
  auto entry = lookup(address, client);
  if (!entry) return Verdict::pass(std::string(what) + ": no match");
  std::string where = std::string(what) + ": line " + std::to_string(entry->line) + " '" + entry->key + "'";
  switch (entry->action) {
    case AccessEntry::Action::kOk:
      return Verdict::accept(where + " OK");
    case AccessEntry::Action::kDiscard:
      return Verdict::discard(where + " DISCARD");
    case AccessEntry::Action::kReject:
      break;
  }
  std::string prefix = kind_ == AccessMapKind::kSender ? "Sender address rejected: " : "Recipient address rejected: ";
  return Verdict::reject(550, "5.7.1", prefix + (entry->text.empty() ? "Access denied" : entry->text),
                         where + " REJECT");
}

Result<std::shared_ptr<ReloadingAccessMap>> ReloadingAccessMap::open(std::string path, AccessMapKind kind,
                                                                     std::chrono::milliseconds check_interval) {
  std::shared_ptr<ReloadingAccessMap> reloading(new ReloadingAccessMap());
  reloading->watch_ = users::FileWatch::of(path);  // snapshot before reading: a concurrent edit is seen next time
  auto map = AccessMap::load(path, kind);
  if (!map) return map.error();
  reloading->path_ = std::move(path);
  reloading->kind_ = kind;
  reloading->check_interval_ = check_interval;
  reloading->last_check_ = std::chrono::steady_clock::now();
  reloading->map_ = std::make_shared<const AccessMap>(std::move(*map));
  return reloading;
}

std::shared_ptr<const AccessMap> ReloadingAccessMap::current() {
  std::lock_guard lock(mu_);
  auto now = std::chrono::steady_clock::now();
  if (now - last_check_ < check_interval_) return map_;
  last_check_ = now;
  if (!watch_.changed()) return map_;
  watch_ = users::FileWatch::of(path_);
  auto map = AccessMap::load(path_, kind_);
  if (!map) {
    log::warn("access_map_reload_failed").kv("path", path_).kv("error", map.error().text);
    return map_;
  }
  log::info("access_map_reloaded").kv("path", path_).kv("entries", static_cast<uint64_t>(map->size()));
  map_ = std::make_shared<const AccessMap>(std::move(*map));
  return map_;
}

}  // namespace tern::policy
