// Local recipient resolution: which domains are ours, whether a recipient in
// them exists, what a local address expands to (mailboxes and forwards), and
// which sender addresses an authenticated user may use. Built from the local
// domain list, the AccountStore and the Aliases; immutable and therefore safe
// to share between threads. To reload, build a new Directory.
//
// Lookup of "local+detail@domain" (all lower-cased; domains and local parts
// are case-insensitive in tern): first the full local part, then the part
// before '+'; for each, a "user@domain" alias, then a "user" alias, then an
// account; then the domain's "@domain" catch-all. "postmaster" is always
// known in every local domain (RFC 5321 §4.5.1).
#pragma once

#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "users/account_store.h"
#include "users/aliases.h"

namespace tern::users {

// One final destination of an expanded address.
struct Destination {
  enum Kind { kMailbox, kForward } kind = kMailbox;
  // kMailbox: the canonical account address, without detail, e.g.
  // "alice@example.test". kForward: the external address as written.
  std::string address;
  std::string user;    // local part of `address` (for mailboxes: no detail)
  std::string domain;  // domain of `address`
  // kMailbox only: the "+detail" (without '+') when the recipient named the
  // account directly, e.g. "news" for alice+news@example.test; empty through
  // aliases (details are not propagated through aliases).
  std::string detail;

  bool operator==(const Destination&) const = default;
};

class Directory {
 public:
  enum class Lookup { kNotLocal, kUnknown, kKnown };

  // `postmaster` is where postmaster@<any local domain> goes when no account
  // or alias covers it: a full address, or a local part qualified with the
  // first local domain. Empty: postmaster@<first local domain>.
  Directory(std::vector<std::string> local_domains, std::shared_ptr<const AccountStore> accounts,
            std::shared_ptr<const Aliases> aliases, std::string postmaster = {});

  bool is_local_domain(std::string_view domain) const;
  // kNotLocal for other domains; kKnown for accounts, aliases, catch-all
  // coverage and postmaster. A bare "postmaster" (RFC 5321 §4.1.1.3) is known.
  Lookup check(std::string_view address) const;
  // Final destinations, deduplicated, in first-seen order. Addresses outside
  // the local domains expand to themselves as kForward. Errors:
  //   550 5.1.1 unknown local recipient;
  //   550 5.4.6 alias loop or expansion deeper than kMaxAliasDepth;
  //   550 5.5.3 more than kMaxAliasTargets targets;
  //   451 4.3.0 an alias names a local address that does not exist, or no
  //             postmaster mailbox is configured (operator must fix; retried).
  Result<std::vector<Destination>> expand(std::string_view address) const;
  // Whether `user` (an authenticated account address) may use `mail_from`
  // as envelope sender: its own address (with or without +detail), or a
  // local address whose alias expansion reaches its mailbox. Catch-all
  // coverage does not count. The null reverse-path "" is allowed (RFC 5321
  // §4.5.5 notifications).
  bool may_send_as(std::string_view user, std::string_view mail_from) const;

 private:
  struct Resolution;
  struct Expansion;
  Resolution resolve(const std::string& local, const std::string& domain) const;
  Status expand_into(const std::string& address, size_t depth, Expansion& state) const;

  std::set<std::string> local_domains_;  // lower-cased
  std::string primary_domain_;
  std::shared_ptr<const AccountStore> accounts_;
  std::shared_ptr<const Aliases> aliases_;
  std::string postmaster_;  // canonical full address, or empty
};

}  // namespace tern::users
