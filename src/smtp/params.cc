// MAIL/RCPT parameter parsing (see params.h).
#include "smtp/params.h"

#include <vector>

#include "base/strings.h"

namespace tern::smtp {
namespace {

constexpr size_t kMaxEnvidChars = 100;  // RFC 3461 §4.4
constexpr size_t kMaxOrcptChars = 500;  // RFC 3461 §4.2
constexpr size_t kMaxParams = 16;       // bound work on hostile input

Error unknown_param(std::string_view key) {
  return Error{555, "5.5.4", "Unsupported parameter " + to_upper(key)};
}
Error duplicate_param(std::string_view key) {
  return Error{555, "5.5.4", "Duplicate parameter " + to_upper(key)};
}
Error bad_value(std::string_view key) {
  return Error{501, "5.5.4", "Bad value for parameter " + to_upper(key)};
}

struct Param {
  std::string_view key;
  std::optional<std::string_view> value;  // absent when there was no "="
};

bool is_alnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// esmtp-param = esmtp-keyword ["=" esmtp-value]   (RFC 5321 §4.1.2)
// esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
// esmtp-value = 1*(%d33-60 / %d62-126), extended with UTF-8 by RFC 6531 §3.3
Result<std::vector<Param>> split_params(std::string_view text) {
  std::vector<Param> out;
  for (std::string_view word : split(text, ' ')) {
    if (word.empty()) continue;  // tolerate repeated spaces
    if (out.size() >= kMaxParams) return Error{501, "5.5.4", "Too many parameters"};
    Param p;
    size_t eq = word.find('=');
    p.key = word.substr(0, eq);
    if (eq != std::string_view::npos) p.value = word.substr(eq + 1);
    if (p.key.empty() || !is_alnum(static_cast<unsigned char>(p.key[0]))) {
      return Error{501, "5.5.4", "Bad parameter syntax"};
    }
    for (unsigned char c : p.key) {
      if (!is_alnum(c) && c != '-') return Error{501, "5.5.4", "Bad parameter syntax"};
    }
    if (p.value) {
      if (p.value->empty()) return bad_value(p.key);
      for (unsigned char c : *p.value) {
        if (c < 33 || c == '=' || c == 127) return bad_value(p.key);
      }
    }
    out.push_back(p);
  }
  return out;
}

bool decode_xtext(std::string_view in, std::string& out) {
  return xtext_decode(in, out);
}

}  // namespace

Result<MailParams> parse_mail_params(std::string_view text, const ParamContext& ctx) {
  auto params = split_params(text);
  if (!params) return params.error();
  MailParams mp;
  unsigned seen = 0;
  auto once = [&seen](unsigned bit) {
    bool first = (seen & bit) == 0;
    seen |= bit;
    return first;
  };
  for (const Param& p : *params) {
    // RFC 5321 §4.1.1.11: parameters are only valid after EHLO.
    if (!ctx.esmtp) return unknown_param(p.key);
    if (iequals(p.key, "SIZE")) {
      // RFC 1870 §3: size-value = 1*20DIGIT
      if (!once(1)) return duplicate_param(p.key);
      unsigned long long n = 0;
      if (!p.value || p.value->size() > 20 || !is_digits(*p.value) || !parse_u64(*p.value, n)) {
        return bad_value(p.key);
      }
      if (ctx.max_message_size != 0 && n > ctx.max_message_size) {
        return Error{552, "5.3.4", "Message size exceeds fixed maximum message size"};
      }
      mp.size = n;
    } else if (iequals(p.key, "BODY")) {
      // RFC 6152 §2 and RFC 3030 §3: BODY=7BIT / 8BITMIME / BINARYMIME
      if (!once(2)) return duplicate_param(p.key);
      if (!p.value) return bad_value(p.key);
      if (iequals(*p.value, "7BIT")) {
        mp.body = Body::k7Bit;
      } else if (iequals(*p.value, "8BITMIME")) {
        mp.body = Body::k8BitMime;
      } else if (iequals(*p.value, "BINARYMIME")) {
        mp.body = Body::kBinaryMime;
      } else {
        return bad_value(p.key);
      }
    } else if (iequals(p.key, "SMTPUTF8")) {
      // RFC 6531 §3.4: no value
      if (!once(4)) return duplicate_param(p.key);
      if (p.value) return bad_value(p.key);
      mp.smtputf8 = true;
    } else if (iequals(p.key, "RET")) {
      // RFC 3461 §4.3: RET=FULL / HDRS
      if (!once(8)) return duplicate_param(p.key);
      if (p.value && iequals(*p.value, "FULL")) {
        mp.ret = Ret::kFull;
      } else if (p.value && iequals(*p.value, "HDRS")) {
        mp.ret = Ret::kHdrs;
      } else {
        return bad_value(p.key);
      }
    } else if (iequals(p.key, "ENVID")) {
      // RFC 3461 §4.4: ENVID=xtext, at most 100 characters
      if (!once(16)) return duplicate_param(p.key);
      if (!p.value || p.value->size() > kMaxEnvidChars || !decode_xtext(*p.value, mp.envid)) {
        return bad_value(p.key);
      }
    } else if (iequals(p.key, "AUTH")) {
      // RFC 4954 §5: AUTH=xtext mailbox, or "<>" when the submitter is unknown
      if (!once(32)) return duplicate_param(p.key);
      if (!p.value) return bad_value(p.key);
      if (*p.value == "<>") {
        mp.auth = "<>";
      } else if (!decode_xtext(*p.value, mp.auth)) {
        return bad_value(p.key);
      }
    } else if (iequals(p.key, "REQUIRETLS")) {
      // RFC 8689 §2: no value; offered only over TLS, so otherwise unknown
      if (!ctx.tls_active) return unknown_param(p.key);
      if (!once(64)) return duplicate_param(p.key);
      if (p.value) return bad_value(p.key);
      mp.requiretls = true;
    } else {
      return unknown_param(p.key);
    }
  }
  return mp;
}

Result<RcptParams> parse_rcpt_params(std::string_view text, const ParamContext& ctx) {
  auto params = split_params(text);
  if (!params) return params.error();
  RcptParams rp;
  bool seen_notify = false, seen_orcpt = false;
  for (const Param& p : *params) {
    if (!ctx.esmtp) return unknown_param(p.key);
    if (iequals(p.key, "NOTIFY")) {
      // RFC 3461 §4.1: "NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" )
      if (seen_notify) return duplicate_param(p.key);
      seen_notify = true;
      if (!p.value) return bad_value(p.key);
      for (std::string_view item : split(*p.value, ',')) {
        unsigned bit;
        if (iequals(item, "NEVER")) {
          bit = kNotifyNever;
        } else if (iequals(item, "SUCCESS")) {
          bit = kNotifySuccess;
        } else if (iequals(item, "FAILURE")) {
          bit = kNotifyFailure;
        } else if (iequals(item, "DELAY")) {
          bit = kNotifyDelay;
        } else {
          return bad_value(p.key);
        }
        if (rp.notify & bit) return bad_value(p.key);  // repeated keyword
        rp.notify |= bit;
      }
      if ((rp.notify & kNotifyNever) && rp.notify != kNotifyNever) return bad_value(p.key);
    } else if (iequals(p.key, "ORCPT")) {
      // RFC 3461 §4.2: ORCPT=addr-type ";" xtext, addr-type = atom
      if (seen_orcpt) return duplicate_param(p.key);
      seen_orcpt = true;
      if (!p.value || p.value->size() > kMaxOrcptChars) return bad_value(p.key);
      size_t semi = p.value->find(';');
      if (semi == std::string_view::npos || semi == 0 || semi + 1 >= p.value->size()) return bad_value(p.key);
      std::string_view type = p.value->substr(0, semi);
      for (unsigned char c : type) {
        if (!is_alnum(c) && c != '-') return bad_value(p.key);
      }
      rp.orcpt_type = to_lower(type);
      if (!decode_xtext(p.value->substr(semi + 1), rp.orcpt)) return bad_value(p.key);
    } else {
      return unknown_param(p.key);
    }
  }
  return rp;
}

}  // namespace tern::smtp
