// Fuzz target for SPF record syntax (src/auth/spf_record.h): parse the input
// as a record, expand the macros of every parsed domain-spec, treat the input
// as a domain-spec and as explanation text, and make the result a query
// name. Invariants: a parsed record starts with "v=spf1"; parsed
// domain-specs pass the domain-spec check and expand (unless the output cap
// is hit); the syntax check and the expander agree; query names respect the
// RFC 1035 limits. The same bytes also go through the DNS rdata decoders
// that feed SPF records and addresses (src/dns/wire.h).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "auth/spf_record.h"
#include "dns/wire.h"

namespace {

void check_query_name(std::string_view expanded) {
  auto q = tern::auth::spf_query_name(expanded);
  if (!q) return;
  if (q->empty() || q->size() > 253) std::abort();
  size_t label = 0;
  for (char c : *q) {
    label = c == '.' ? 0 : label + 1;
    if (label > 63) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  using namespace tern::auth;
  SpfMacroContext ctx;
  ctx.sender = "user-name+tag@mail.example.com";
  ctx.local_part = "user-name+tag";
  ctx.sender_domain = "mail.example.com";
  ctx.domain = "example.com";
  ctx.ip = *tern::IpAddress::parse(size % 2 ? "2001:db8::cb01" : "192.0.2.3");
  ctx.helo = "helo.example.org";

  auto record = parse_spf_record(in);
  if (record) {
    if (!is_spf_record(in)) std::abort();
    for (const auto& m : record->mechanisms) {
      if (m.domain_spec.empty()) continue;
      if (!valid_domain_spec(m.domain_spec)) std::abort();
      auto e = expand_spf_macros(m.domain_spec, ctx, false);
      if (!e && m.domain_spec.size() * 8 < kMaxSpfExpansion) std::abort();
      if (e) check_query_name(*e);
    }
    for (const auto* spec : {&record->redirect, &record->exp}) {
      if (*spec && !valid_domain_spec(**spec)) std::abort();
    }
  }
  for (bool explanation : {false, true}) {
    auto e = expand_spf_macros(in, ctx, explanation);
    bool valid = valid_macro_string(in, explanation);
    if (e && !valid) std::abort();
    if (!e && valid && in.size() * 8 < kMaxSpfExpansion) std::abort();
    if (e && e->size() > kMaxSpfExpansion) std::abort();
  }
  (void)valid_domain_spec(in);
  (void)uses_p_macro(in);
  check_query_name(in);

  tern::dns::Answer answer;
  for (auto type : {tern::dns::RrType::kTxt, tern::dns::RrType::kA, tern::dns::RrType::kAaaa,
                    tern::dns::RrType::kMx, tern::dns::RrType::kPtr, tern::dns::RrType::kTlsa}) {
    (void)tern::dns::append_rdata(type, in, answer);
  }
  (void)tern::dns::presentation_name(in);
  return 0;
}
