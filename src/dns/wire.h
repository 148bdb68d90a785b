// Decoding of DNS rdata in wire format (RFC 1035 §3.3, RFC 3596 §2.2,
// RFC 6698 §2.1) into dns::Answer fields. libunbound hands over each record's
// rdata separately with names uncompressed; these functions accept only that
// form (a compression pointer is rejected) and check every length against the
// buffer, so hostile answers cannot read out of bounds. Pure functions: they
// are unit-tested and fuzzed without a network.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "dns/resolver.h"

namespace tern::dns {

// Reads an uncompressed domain name at `pos` (advanced past it). Returns the
// name in presentation form, lower-case, without trailing dot ("" for the
// root); bytes other than letters, digits, '-', '_' and '*' are written as
// \DDD, and dots inside labels as "\.". nullopt when malformed.
std::optional<std::string> read_wire_name(std::string_view rdata, size_t& pos);

// Appends one record's rdata of `type` to the matching field of `answer`.
// False when the rdata is malformed (nothing is appended then).
bool append_rdata(RrType type, std::string_view rdata, Answer& answer);

// Escapes `name` for a resolver that parses presentation format (ub_resolve):
// bytes outside letters, digits, '-', '_', '.', '*' become \DDD. nullopt when
// the name cannot be sent: an empty or over-63-octet label, or over 253 octets.
std::optional<std::string> presentation_name(std::string_view name);

}  // namespace tern::dns
