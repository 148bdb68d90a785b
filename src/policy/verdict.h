// The answer every anti-abuse check in src/policy gives the SMTP session: what
// to do with the command (continue with the next check, accept it without
// further anti-abuse checks, refuse it temporarily or permanently, or accept
// and silently drop the message), the SMTP reply to send when refusing
// (RFC 5321 §4.2 code, RFC 3463 enhanced status, text), and a one-line
// explanation for the log and `tern policy explain`. Checks never throw; DNS
// trouble becomes a 4xx verdict or a logged "no opinion", never an exception.
#pragma once

#include <string>
#include <utility>

#include "base/result.h"

namespace tern::policy {

struct Verdict {
  enum class Action {
    kContinue,  // no objection: run the next check
    kAccept,    // explicitly allowed (access map OK, greylist whitelist): skip the remaining anti-abuse checks
    kTempFail,  // refuse with a 4xx reply; the client should retry later
    kReject,    // refuse with a 5xx reply
    kDiscard,   // accept the transaction, then drop the message (250 to the client, nothing delivered)
  };
  Action action = Action::kContinue;
  int code = 0;             // SMTP reply code for kTempFail / kReject, 0 otherwise
  std::string enhanced;     // RFC 3463 enhanced status, e.g. "5.7.1"
  std::string text;         // reply text (no CR/LF)
  std::string explanation;  // why, for the log and `tern policy explain`

  bool refused() const { return action == Action::kTempFail || action == Action::kReject; }
  // The SMTP reply of a refusal as an Error (what the session sends back).
  Error error() const { return Error{code, enhanced, text}; }

  static Verdict pass(std::string explanation) { return {Action::kContinue, 0, {}, {}, std::move(explanation)}; }
  static Verdict accept(std::string explanation) { return {Action::kAccept, 0, {}, {}, std::move(explanation)}; }
  static Verdict discard(std::string explanation) { return {Action::kDiscard, 0, {}, {}, std::move(explanation)}; }
  static Verdict temp_fail(int code, std::string enhanced, std::string text, std::string explanation) {
    return {Action::kTempFail, code, std::move(enhanced), std::move(text), std::move(explanation)};
  }
  static Verdict reject(int code, std::string enhanced, std::string text, std::string explanation) {
    return {Action::kReject, code, std::move(enhanced), std::move(text), std::move(explanation)};
  }
};

// "continue", "accept", "tempfail", "reject", "discard".
inline const char* action_name(Verdict::Action action) {
  switch (action) {
    case Verdict::Action::kContinue:
      return "continue";
    case Verdict::Action::kAccept:
      return "accept";
    case Verdict::Action::kTempFail:
      return "tempfail";
    case Verdict::Action::kReject:
      return "reject";
    case Verdict::Action::kDiscard:
      return "discard";
  }
  return "continue";
}

}  // namespace tern::policy
