// Accounts file parsing, lookup and durable admin edits (see account_store.h).
#include "users/account_store.h"

#include <sys/stat.h>

#include <cerrno>

#include "base/fs.h"
#include "base/strings.h"
#include "users/address.h"

namespace tern::users {

namespace {

constexpr size_t kMaxAccountsFileSize = 16 * 1024 * 1024;

// One non-comment line, split into address and credential text.
struct AccountLine {
  std::string_view address;
  std::string_view credential;
};

bool is_comment_or_blank(std::string_view line) {
  std::string_view t = trim(line);
  return t.empty() || t.front() == '#';
}

std::optional<AccountLine> split_line(std::string_view line) {
  std::string_view t = trim(line);
  size_t colon = t.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  return AccountLine{trim(t.substr(0, colon)), trim(t.substr(colon + 1))};
}

std::string located(std::string_view origin, size_t line_no, std::string_view what) {
  std::string out(origin);
  out += ':';
  out += std::to_string(line_no);
  out += ": ";
  out += what;
  return out;
}

Result<std::string> read_accounts_text(const std::string& path, bool missing_is_empty) {
  auto text = fs::read_file(path, kMaxAccountsFileSize);
  if (!text) {
    if (missing_is_empty && !fs::exists(path)) return std::string();
    return text.error();
  }
  return std::move(text).value();
}

}  // namespace

AccountStore::AccountStore() : decoy_secret_(crypto::random_bytes(32)) {}

Result<AccountStore> AccountStore::parse(std::string_view text, std::string_view origin) {
  AccountStore store;
  size_t line_no = 0;
  for (std::string_view line : split(text, '\n')) {
    ++line_no;
    if (is_comment_or_blank(line)) continue;
    auto parsed = split_line(line);
    if (!parsed) return Error::local(located(origin, line_no, "expected address:credential"));
    if (!valid_address(parsed->address)) {
      return Error::local(located(origin, line_no, "invalid address '" + std::string(parsed->address) + "'"));
    }
    auto credential = parse_credential(parsed->credential);
    if (!credential) return Error::local(located(origin, line_no, credential.error().text));
    std::string key = canonical_address(parsed->address);
    if (!store.accounts_.emplace(key, std::move(credential).value()).second) {
      return Error::local(located(origin, line_no, "duplicate account '" + key + "'"));
    }
  }
  return store;
}

Result<AccountStore> AccountStore::load(const std::string& path) {
  // Stamp before reading: a write racing with the read shows up as a change.
  FileWatch watch = FileWatch::of(path);
  auto text = read_accounts_text(path, /*missing_is_empty=*/false);
  if (!text) return text.error();
  auto store = parse(*text, path);
  if (!store) return store.error();
  store->watch_ = std::move(watch);
  return store;
}

void AccountStore::insert(std::string_view name, Credential credential) {
  accounts_[canonical_address(name)] = std::move(credential);
}

bool AccountStore::exists(std::string_view address) const {
  return accounts_.count(canonical_address(address)) != 0;
}

std::optional<Credential> AccountStore::find(std::string_view address) const {
  auto it = accounts_.find(canonical_address(address));
  if (it == accounts_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> AccountStore::addresses() const {
  std::vector<std::string> out;
  out.reserve(accounts_.size());
  for (const auto& [address, credential] : accounts_) out.push_back(address);
  return out;
}

bool AccountStore::changed_on_disk() const { return watch_.changed(); }

Credential AccountStore::decoy_credential(std::string_view address) const {
  std::string key = canonical_address(address);
  Credential c;
  c.iterations = kDefaultIterations;
  c.salt = crypto::hmac_sha256(decoy_secret_, "salt:" + key).substr(0, kDefaultSaltSize);
  c.stored_key = crypto::hmac_sha256(decoy_secret_, "stored:" + key);
  c.server_key = crypto::hmac_sha256(decoy_secret_, "server:" + key);
  return c;
}

Status AccountStore::add(const std::string& path, std::string_view address, std::string_view password,
                         uint32_t iterations) {
  if (!valid_address(address)) return Error::perm("5.1.3", "invalid address '" + std::string(address) + "'", 501);
  if (!acceptable_password(password)) {
    return Error::perm("5.7.0", "password must be 1-1024 printable ASCII characters", 501);
  }
  auto text = read_accounts_text(path, /*missing_is_empty=*/true);
  if (!text) return text.error();
  auto store = parse(*text, path);
  if (!store) return store.error();
  if (store->exists(address)) {
    return Error::perm("5.1.0", "account '" + canonical_address(address) + "' already exists", 550);
  }
  auto credential = new_credential(password, iterations);
  if (!credential) return credential.error();
  std::string out = std::move(text).value();
  if (!out.empty() && out.back() != '\n') out += '\n';
  out += canonical_address(address);
  out += ':';
  out += format_credential(*credential);
  out += '\n';
  if (auto st = fs::write_file_durable(path, out, 0600); !st) return st;
  // write_file_durable keeps the mode of a stale temporary file; make sure.
  if (::chmod(path.c_str(), 0600) != 0) return Error::local(fs::errno_text("chmod " + path, errno));
  return ok();
}

Status AccountStore::remove(const std::string& path, std::string_view address) {
  auto text = read_accounts_text(path, /*missing_is_empty=*/false);
  if (!text) return text.error();
  if (auto store = parse(*text, path); !store) return store.error();
  std::string key = canonical_address(address);
  std::string out;
  bool removed = false;
  auto lines = split(*text, '\n');
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    if (!is_comment_or_blank(line)) {
      auto parsed = split_line(line);
      if (parsed && canonical_address(parsed->address) == key) {
        removed = true;
        continue;
      }
    }
    out.append(line);
    if (i + 1 < lines.size()) out += '\n';
  }
  if (!removed) return Error::perm("5.1.1", "no account '" + key + "'", 550);
  if (auto st = fs::write_file_durable(path, out, 0600); !st) return st;
  if (::chmod(path.c_str(), 0600) != 0) return Error::local(fs::errno_text("chmod " + path, errno));
  return ok();
}

Result<std::vector<std::string>> AccountStore::list(const std::string& path) {
  auto store = load(path);
  if (!store) return store.error();
  return store->addresses();
}

}  // namespace tern::users
