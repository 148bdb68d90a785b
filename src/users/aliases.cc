// aliases(5)-style file parsing (see aliases.h).
#include "users/aliases.h"

#include <optional>

#include "base/fs.h"
#include "base/strings.h"
#include "users/address.h"

namespace tern::users {

namespace {

constexpr size_t kMaxAliasesFileSize = 16 * 1024 * 1024;

std::string located(std::string_view origin, size_t line_no, std::string_view what) {
  return std::string(origin) + ":" + std::to_string(line_no) + ": " + std::string(what);
}

bool valid_name(std::string_view name) {
  if (name.empty()) return false;
  if (name.front() == '@') return valid_domain(name.substr(1));
  if (name.find('@') != std::string_view::npos) return valid_address(name);
  return valid_local_part(name);
}

// Checks one target; returns an error text, or nullopt when it is fine.
std::optional<std::string> target_problem(std::string_view target) {
  if (target.front() == '|' || target.front() == '/' || istarts_with(target, ":include:")) {
    return "pipes, files and :include: are not supported: '" + std::string(target) + "'";
  }
  if (target.front() == '"') return "quoted targets are not supported: '" + std::string(target) + "'";
  bool ok = target.find('@') != std::string_view::npos ? valid_address(target) : valid_local_part(target);
  if (!ok) return "invalid target '" + std::string(target) + "'";
  return std::nullopt;
}

}  // namespace

Result<Aliases> Aliases::load(const std::string& path) {
  FileWatch watch = FileWatch::of(path);  // before reading: a racing edit counts as a change
  auto text = fs::read_file(path, kMaxAliasesFileSize);
  if (!text) return text.error();
  auto aliases = parse(*text, path);
  if (aliases) aliases->watch_ = std::move(watch);
  return aliases;
}

Result<Aliases> Aliases::parse(std::string_view text, std::string_view origin) {
  Aliases aliases;
  Entry* current = nullptr;  // entry that continuation lines extend
  size_t line_no = 0;
  for (std::string_view line : split(text, '\n')) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::string_view content = trim(line);
    if (content.empty() || content.front() == '#') continue;

    std::string_view targets_text;
    if (line.front() == ' ' || line.front() == '\t') {
      if (current == nullptr) return Error::local(located(origin, line_no, "continuation line without an alias"));
      targets_text = content;
    } else {
      size_t colon = content.find(':');
      if (colon == std::string_view::npos) return Error::local(located(origin, line_no, "expected name: targets"));
      std::string_view name = trim(content.substr(0, colon));
      if (!valid_name(name)) {
        return Error::local(located(origin, line_no, "invalid alias name '" + std::string(name) + "'"));
      }
      std::string key = to_lower(name);
      auto [it, inserted] = aliases.entries_.try_emplace(key);
      if (!inserted) {
        return Error::local(located(origin, line_no,
                                    "duplicate alias '" + key + "' (first at line " + std::to_string(it->second.line) + ")"));
      }
      current = &it->second;
      current->line = line_no;
      targets_text = content.substr(colon + 1);
    }

    for (std::string_view raw : split(targets_text, ',')) {
      std::string_view target = trim(raw);
      if (target.empty()) continue;
      if (auto problem = target_problem(target)) return Error::local(located(origin, line_no, *problem));
      if (current->targets.size() >= kMaxAliasTargets) {
        return Error::local(located(origin, line_no, "too many targets"));
      }
      current->targets.emplace_back(target);
    }
  }
  for (const auto& [key, entry] : aliases.entries_) {
    if (entry.targets.empty()) {
      return Error::local(located(origin, entry.line, "alias '" + key + "' has no targets"));
    }
  }
  return aliases;
}

const Aliases::Entry* Aliases::find_qualified(std::string_view address) const {
  if (address.find('@') == std::string_view::npos) return nullptr;
  auto it = entries_.find(to_lower(address));
  return it == entries_.end() ? nullptr : &it->second;
}

const Aliases::Entry* Aliases::find_unqualified(std::string_view local) const {
  if (local.empty() || local.find('@') != std::string_view::npos) return nullptr;
  auto it = entries_.find(to_lower(local));
  return it == entries_.end() ? nullptr : &it->second;
}

const Aliases::Entry* Aliases::find_catch_all(std::string_view domain) const {
  if (domain.empty()) return nullptr;
  auto it = entries_.find("@" + to_lower(domain));
  return it == entries_.end() ? nullptr : &it->second;
}

}  // namespace tern::users
