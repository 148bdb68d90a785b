// In-memory resolver for tests (see fake_resolver.h).
#include "dns/fake_resolver.h"

#include "base/strings.h"

namespace tern::dns {

std::string FakeResolver::normalize(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return to_lower(name);
}

FakeResolver::Node& FakeResolver::node(std::string_view name) { return nodes_[normalize(name)]; }

void FakeResolver::add_txt(std::string_view name, std::string text) { node(name).txt.push_back(std::move(text)); }

void FakeResolver::add_address(std::string_view name, const IpAddress& address) {
  auto& n = node(name);
  (address.v6 ? n.aaaa : n.a).push_back(address);
}

bool FakeResolver::add_address(std::string_view name, std::string_view address) {
  auto ip = IpAddress::parse(address);
  if (!ip) return false;
  add_address(name, *ip);
  return true;
}

void FakeResolver::add_mx(std::string_view name, uint16_t preference, std::string_view host) {
  node(name).mx.push_back(MxRecord{preference, normalize(host)});
}

void FakeResolver::add_ptr(std::string_view name, std::string_view target) {
  node(name).ptr.push_back(normalize(target));
}

void FakeResolver::add_cname(std::string_view name, std::string_view target) {
  node(name).cname = normalize(target);
}

void FakeResolver::add_tlsa(std::string_view name, TlsaRecord record) { node(name).tlsa.push_back(std::move(record)); }

void FakeResolver::add_name(std::string_view name) { node(name); }

void FakeResolver::set_rcode(std::string_view name, Rcode rcode, std::optional<RrType> type) {
  auto& n = node(name);
  if (type) {
    n.rcode_by_type[*type] = rcode;
  } else {
    n.rcode_all = rcode;
  }
}

void FakeResolver::set_security(std::string_view name, Security security) { node(name).security = security; }

bool FakeResolver::fill(const Node& n, RrType type, Answer& out) {
  switch (type) {
    case RrType::kTxt: out.txt = n.txt; return !n.txt.empty();
    case RrType::kA: out.addresses = n.a; return !n.a.empty();
    case RrType::kAaaa: out.addresses = n.aaaa; return !n.aaaa.empty();
    case RrType::kMx: out.mx = n.mx; return !n.mx.empty();
    case RrType::kPtr: out.names = n.ptr; return !n.ptr.empty();
    case RrType::kCname:
      if (n.cname && !n.cname->empty()) out.names = {*n.cname};
      return n.cname.has_value();
    case RrType::kTlsa: out.tlsa = n.tlsa; return !n.tlsa.empty();
    default: return false;
  }
}

// Combines DNSSEC status along a CNAME chain: bogus wins, then insecure.
static Security weakest(Security a, Security b) {
  if (a == Security::kBogus || b == Security::kBogus) return Security::kBogus;
  if (a == Security::kInsecure || b == Security::kInsecure) return Security::kInsecure;
  return Security::kSecure;
}

Answer FakeResolver::lookup(std::string_view raw_name, RrType type) {
  std::string name = normalize(raw_name);
  queries_.emplace_back(name, type);
  Answer answer;
  answer.ttl = 300;
  bool first = true;
  for (int hops = 0; hops <= kMaxCnameChain; ++hops) {
    auto it = nodes_.find(name);
    if (it == nodes_.end()) {
      // A dangling alias still reports NXDOMAIN, like a real resolver.
      answer.rcode = Rcode::kNxDomain;
      if (first) answer.security = default_security_;
      return answer;
    }
    const Node& n = it->second;
    Security sec = n.security.value_or(default_security_);
    answer.security = first ? sec : weakest(answer.security, sec);
    first = false;
    if (auto rt = n.rcode_by_type.find(type); rt != n.rcode_by_type.end()) {
      answer.rcode = rt->second;
      return answer;
    }
    if (n.rcode_all) {
      answer.rcode = *n.rcode_all;
      return answer;
    }
    if (answer.security == Security::kBogus) {
      // A validating resolver withholds bogus data and reports SERVFAIL.
      answer.rcode = Rcode::kServFail;
      return answer;
    }
    if (type == RrType::kCname || !n.cname) {
      fill(n, type, answer);
      return answer;
    }
    if (n.cname->empty()) return answer;  // alias to nothing: NODATA
    name = *n.cname;
    answer.canonical_name = name;
  }
  answer.rcode = Rcode::kServFail;  // loop or chain too long
  answer.canonical_name.clear();
  return answer;
}

boost::asio::awaitable<Answer> FakeResolver::query(std::string name, RrType type) { co_return lookup(name, type); }

}  // namespace tern::dns
