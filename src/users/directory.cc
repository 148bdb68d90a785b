// Local recipient checks, alias expansion and sender authorisation (see
// directory.h).
#include "users/directory.h"

#include <utility>

#include "base/strings.h"
#include "users/address.h"

namespace tern::users {

// What a local address resolves to at one level (no recursion).
struct Directory::Resolution {
  enum Kind { kAlias, kCatchAll, kAccount, kPostmaster, kUnknown } kind = kUnknown;
  const Aliases::Entry* entry = nullptr;  // kAlias, kCatchAll
  std::string account;                    // kAccount: canonical address
  std::string detail;                     // kAccount: detail stripped to find it
};

// Mutable state of one expand() call.
struct Directory::Expansion {
  std::vector<Destination> out;
  std::set<std::string> emitted;  // dedupe keys
  // Alias entries being expanded, with the domain they were applied in
  // ("user" entries apply per domain): seeing one again is a loop.
  std::set<std::pair<const Aliases::Entry*, std::string>> path;
  size_t targets = 0;
  bool postmaster_fallback_used = false;

  void emit(Destination d) {
    std::string key = (d.kind == Destination::kMailbox ? "m:" : "f:") + canonical_address(d.address);
    if (emitted.insert(std::move(key)).second) out.push_back(std::move(d));
  }
};

namespace {

Destination make_destination(Destination::Kind kind, std::string address, std::string detail) {
  Destination d;
  d.kind = kind;
  if (auto parts = split_address(address)) {
    d.user = parts->local;
    d.domain = parts->domain;
  }
  d.address = std::move(address);
  d.detail = std::move(detail);
  return d;
}

}  // namespace

Directory::Directory(std::vector<std::string> local_domains, std::shared_ptr<const AccountStore> accounts,
                     std::shared_ptr<const Aliases> aliases, std::string postmaster)
    : accounts_(accounts ? std::move(accounts) : std::make_shared<const AccountStore>()),
      aliases_(aliases ? std::move(aliases) : std::make_shared<const Aliases>()) {
  for (const auto& d : local_domains) {
    std::string domain = to_lower(trim(d));
    if (domain.empty()) continue;
    if (primary_domain_.empty()) primary_domain_ = domain;
    local_domains_.insert(std::move(domain));
  }
  if (!postmaster.empty()) {
    postmaster_ = canonical_address(postmaster);
    if (postmaster_.find('@') == std::string::npos) postmaster_ += "@" + primary_domain_;
  } else if (!primary_domain_.empty()) {
    postmaster_ = "postmaster@" + primary_domain_;
  }
}

bool Directory::is_local_domain(std::string_view domain) const {
  return local_domains_.count(to_lower(domain)) != 0;
}

Directory::Resolution Directory::resolve(const std::string& local, const std::string& domain) const {
  LocalPart split = split_detail(local);
  std::pair<const std::string*, std::string_view> candidates[2] = {{&local, {}}, {&split.base, split.detail}};
  size_t count = split.detail.empty() ? 1 : 2;
  for (size_t i = 0; i < count; ++i) {
    const std::string& name = *candidates[i].first;
    std::string qualified = name + "@" + domain;
    if (const auto* e = aliases_->find_qualified(qualified)) return {Resolution::kAlias, e, {}, {}};
    if (const auto* e = aliases_->find_unqualified(name)) return {Resolution::kAlias, e, {}, {}};
    if (accounts_->exists(qualified)) {
      return {Resolution::kAccount, nullptr, std::move(qualified), std::string(candidates[i].second)};
    }
  }
  if (const auto* e = aliases_->find_catch_all(domain)) return {Resolution::kCatchAll, e, {}, {}};
  if (split.base == "postmaster") return {Resolution::kPostmaster, nullptr, {}, {}};
  return {};
}

Directory::Lookup Directory::check(std::string_view address) const {
  auto parts = split_address(address);
  if (!parts) return iequals(address, "postmaster") ? Lookup::kKnown : Lookup::kUnknown;
  std::string domain = to_lower(parts->domain);
  if (!is_local_domain(domain)) return Lookup::kNotLocal;
  return resolve(to_lower(parts->local), domain).kind == Resolution::kUnknown ? Lookup::kUnknown : Lookup::kKnown;
}

Status Directory::expand_into(const std::string& address, size_t depth, Expansion& state) const {
  if (depth > kMaxAliasDepth) {
    return Error::perm("5.4.6", "alias expansion of " + address + " is nested too deeply");
  }
  auto parts = split_address(address);
  if (!parts) {
    // RFC 5321 §4.1.1.3: a bare "postmaster" means the local postmaster.
    if (iequals(address, "postmaster") && !primary_domain_.empty()) {
      return expand_into("postmaster@" + primary_domain_, depth, state);
    }
    return Error::perm("5.1.3", "invalid address " + address, 501);
  }
  std::string domain = to_lower(parts->domain);
  if (!is_local_domain(domain)) {
    state.emit(make_destination(Destination::kForward, address, {}));
    return ok();
  }
  std::string local = to_lower(parts->local);
  Resolution r = resolve(local, domain);
  switch (r.kind) {
    case Resolution::kAccount:
      state.emit(make_destination(Destination::kMailbox, std::move(r.account), std::move(r.detail)));
      return ok();

    case Resolution::kAlias:
    case Resolution::kCatchAll: {
      auto key = std::make_pair(r.entry, domain);
      if (state.path.count(key)) {
        // An alias that names itself ("alice: alice, alice@elsewhere") means
        // "also keep a copy in the account"; anything else is a loop.
        std::string self = local + "@" + domain;
        if (accounts_->exists(self)) {
          state.emit(make_destination(Destination::kMailbox, std::move(self), {}));
          return ok();
        }
        return Error::perm("5.4.6", "alias loop at " + address);
      }
      state.path.insert(key);
      for (const std::string& target : r.entry->targets) {
        if (++state.targets > kMaxAliasTargets) {
          return Error::perm("5.5.3", "alias expansion of " + address + " has too many targets");
        }
        std::string next = target.find('@') != std::string::npos ? target : target + "@" + domain;
        if (auto st = expand_into(next, depth + 1, state); !st) return st;
      }
      state.path.erase(key);
      return ok();
    }

    case Resolution::kPostmaster:
      // RFC 5321 §4.5.1: postmaster must be accepted for every local domain.
      if (state.postmaster_fallback_used || postmaster_.empty()) {
        return Error::temp("4.3.0", "no mailbox configured for " + address);
      }
      state.postmaster_fallback_used = true;
      return expand_into(postmaster_, depth + 1, state);

    case Resolution::kUnknown:
      break;
  }
  if (depth == 0) return Error::perm("5.1.1", address + ": no such user here");
  // A misconfigured alias: keep the message (retry) until the operator fixes it.
  return Error::temp("4.3.0", "alias target " + address + " does not exist");
}

Result<std::vector<Destination>> Directory::expand(std::string_view address) const {
  Expansion state;
  if (auto st = expand_into(std::string(address), 0, state); !st) return st.error();
  return std::move(state.out);
}

bool Directory::may_send_as(std::string_view user, std::string_view mail_from) const {
  if (mail_from.empty()) return true;
  std::string me = canonical_address(user);
  auto parts = split_address(mail_from);
  if (!parts || me.empty()) return false;
  std::string local = to_lower(parts->local);
  std::string domain = to_lower(parts->domain);
  if (local + "@" + domain == me) return true;
  LocalPart split = split_detail(local);
  if (split.base + "@" + domain == me) return true;
  if (!is_local_domain(domain)) return false;

  Resolution r = resolve(local, domain);
  if (r.kind == Resolution::kAccount) return r.account == me;
  if (r.kind != Resolution::kAlias) return false;  // catch-alls and unknowns grant nothing
  auto expanded = expand(mail_from);
  if (!expanded) return false;
  for (const auto& d : *expanded) {
    if (d.kind == Destination::kMailbox && d.address == me) return true;
  }
  return false;
}

}  // namespace tern::users
