// Reloading snapshot of accounts and aliases (see user_db.h).
#include "server/user_db.h"

#include "base/fs.h"
#include "base/log.h"

namespace tern::server {

UserDb::UserDb(std::vector<std::string> local_domains, std::string accounts_file, std::string aliases_file)
    : domains_(std::move(local_domains)),
      accounts_file_(std::move(accounts_file)),
      aliases_file_(std::move(aliases_file)) {}

Result<std::shared_ptr<const UserDb::Snapshot>> UserDb::build() const {
  auto snap = std::make_shared<Snapshot>();
  if (!accounts_file_.empty() && fs::exists(accounts_file_)) {
    auto a = users::AccountStore::load(accounts_file_);
    if (!a) return a.error();
    snap->accounts = std::make_shared<const users::AccountStore>(std::move(*a));
  } else {
    snap->accounts = std::make_shared<const users::AccountStore>();
  }
  if (!aliases_file_.empty()) {
    auto al = users::Aliases::load(aliases_file_);
    if (!al) return al.error();
    snap->aliases = std::make_shared<const users::Aliases>(std::move(*al));
  } else {
    snap->aliases = std::make_shared<const users::Aliases>();
  }
  snap->directory = std::make_shared<const users::Directory>(domains_, snap->accounts, snap->aliases);
  return std::shared_ptr<const Snapshot>(std::move(snap));
}

Status UserDb::load() {
  auto s = build();
  if (!s) return s.error();
  std::lock_guard lock(mu_);
  current_ = *s;
  last_check_ = std::chrono::steady_clock::now();
  return ok();
}

std::shared_ptr<const UserDb::Snapshot> UserDb::get() {
  std::lock_guard lock(mu_);
  auto now = std::chrono::steady_clock::now();
  if (now - last_check_ < std::chrono::seconds(1)) return current_;
  last_check_ = now;
  bool accounts_changed = current_->accounts->changed_on_disk() ||
                          (current_->accounts->size() == 0 && !accounts_file_.empty() && fs::exists(accounts_file_));
  if (!accounts_changed && !current_->aliases->changed_on_disk()) return current_;
  auto s = build();
  if (!s) {
    log::error("users_reload_failed").kv("error", s.error().text);
    return current_;
  }
  current_ = *s;
  log::info("users_reloaded").kv("accounts", static_cast<uint64_t>(current_->accounts->size()));
  return current_;
}

}  // namespace tern::server
