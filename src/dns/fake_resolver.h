// FakeResolver: an in-memory dns::Resolver for unit tests. Tests add records
// per (name, type), make names fail (NXDOMAIN is the default for unknown
// names; SERVFAIL, timeout or REFUSED can be forced per name or per type),
// mark answers DNSSEC secure or bogus, and inspect how many queries were made
// (for SPF lookup-limit tests). Names compare case-insensitively and a
// trailing dot is ignored. CNAMEs are followed (up to kMaxCnameChain links)
// the way a recursive resolver returns them: the answer carries the target's
// records and `canonical_name`; a loop or an over-long chain is SERVFAIL.
// Answers are produced without suspending, so evaluation is deterministic.
// Not thread-safe: use from one io_context thread.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dns/resolver.h"

namespace tern::dns {

class FakeResolver : public Resolver {
 public:
  static constexpr int kMaxCnameChain = 8;

  // One TXT record whose character-strings are already concatenated.
  void add_txt(std::string_view name, std::string text);
  // An A or AAAA record depending on the address family.
  void add_address(std::string_view name, const IpAddress& address);
  // Parses `address`; returns false (adding nothing) when it is not an IP.
  bool add_address(std::string_view name, std::string_view address);
  void add_mx(std::string_view name, uint16_t preference, std::string_view host);
  void add_ptr(std::string_view name, std::string_view target);
  // `target` empty: the name exists but the alias leads nowhere (NODATA).
  void add_cname(std::string_view name, std::string_view target);
  void add_tlsa(std::string_view name, TlsaRecord record);
  // Makes `name` exist without records (queries get NODATA rather than NXDOMAIN).
  void add_name(std::string_view name);

  // Every query for `name` (or only those of `type`) ends with `rcode`.
  void set_rcode(std::string_view name, Rcode rcode, std::optional<RrType> type = std::nullopt);
  // DNSSEC status reported for answers about `name` (default: the resolver-wide one).
  void set_security(std::string_view name, Security security);
  void set_default_security(Security security) { default_security_ = security; }

  boost::asio::awaitable<Answer> query(std::string name, RrType type) override;
  // The same lookup without a coroutine (the work behind query()).
  Answer lookup(std::string_view name, RrType type);

  size_t query_count() const { return queries_.size(); }
  // Every query made, in order, as (normalised name, type).
  const std::vector<std::pair<std::string, RrType>>& queries() const { return queries_; }
  void clear_queries() { queries_.clear(); }

  // Lower-case, without one trailing dot: the form names are stored in.
  static std::string normalize(std::string_view name);

 private:
  struct Node {
    std::vector<std::string> txt;
    std::vector<IpAddress> a, aaaa;
    std::vector<MxRecord> mx;
    std::vector<std::string> ptr;
    std::optional<std::string> cname;
    std::vector<TlsaRecord> tlsa;
    std::optional<Rcode> rcode_all;
    std::map<RrType, Rcode> rcode_by_type;
    std::optional<Security> security;
  };
  Node& node(std::string_view name);
  // Fills `out` with the records of `type` at `n`; false when there are none.
  static bool fill(const Node& n, RrType type, Answer& out);

  std::map<std::string, Node> nodes_;
  std::vector<std::pair<std::string, RrType>> queries_;
  Security default_security_ = Security::kInsecure;
};

}  // namespace tern::dns
