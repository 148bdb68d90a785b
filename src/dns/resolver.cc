// Names for DNS record types and response codes, for logs and
// Authentication-Results comments (see resolver.h).
#include "dns/resolver.h"

namespace tern::dns {

const char* type_name(RrType type) {
  switch (type) {
    case RrType::kA: return "A";
    case RrType::kNs: return "NS";
    case RrType::kCname: return "CNAME";
    case RrType::kSoa: return "SOA";
    case RrType::kPtr: return "PTR";
    case RrType::kMx: return "MX";
    case RrType::kTxt: return "TXT";
    case RrType::kAaaa: return "AAAA";
    case RrType::kSpf: return "SPF";
    case RrType::kTlsa: return "TLSA";
  }
  return "UNKNOWN";
}

const char* rcode_name(Rcode rcode) {
  switch (rcode) {
    case Rcode::kNoError: return "NOERROR";
    case Rcode::kNxDomain: return "NXDOMAIN";
    case Rcode::kServFail: return "SERVFAIL";
    case Rcode::kTimeout: return "TIMEOUT";
    case Rcode::kRefused: return "REFUSED";
  }
  return "UNKNOWN";
}

const char* security_name(Security security) {
  switch (security) {
    case Security::kInsecure: return "insecure";
    case Security::kSecure: return "secure";
    case Security::kBogus: return "bogus";
  }
  return "unknown";
}

}  // namespace tern::dns
