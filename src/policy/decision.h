// Sender identity verification and SPF/DMARC enforcement (issue 5 items 1-3),
// as pure functions of what the SMTP session knows: who the client is
// (listener, AUTH, trusted network, EHLO and whether it resolves), the
// envelope, and at end of data the authentication results (SPF, DKIM, DMARC,
// ARC, and SPF of the recipient's trusted forwarder domains). Each stage
// (MAIL, RCPT, end of data) returns a Decision: accept or the exact SMTP
// reply, plus the list of checks with their results. The session sends the
// reply and logs the checks; `tern policy explain` prints them; the
// Authentication-Results field carries the identity path taken. No I/O here:
// DNS answers come in as facts, the pct sampling random source is injected.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/arc.h"
#include "auth/dkim.h"
#include "auth/dmarc.h"
#include "auth/spf.h"
#include "config/config.h"

namespace tern::policy {

// Per-listener verify_sender_identity (issue 5 §1).
enum class IdentityMode { kStrict, kRelaxed, kDisabled };
const char* identity_mode_name(IdentityMode mode);
// "strict" | "relaxed" | "disabled"; anything else is nullopt.
std::optional<IdentityMode> parse_identity_mode(std::string_view text);

enum class Stage { kMail, kRcpt, kData };
const char* stage_name(Stage stage);  // "mail", "rcpt", "data"

// How the identity rule applied to this transaction; recorded in the log and
// as the tern-identity property of Authentication-Results.
enum class IdentityPath {
  kNotApplicable,  // submission, AUTH, trusted network, or neither MAIL FROM nor From is ours
  kDisabled,       // verify_sender_identity = disabled
  kStrict,         // refused at MAIL FROM (530)
  kRelaxedClient,  // relaxed, EHLO does not look like an MX: treated as strict (530)
  kRelaxedMx,      // relaxed, EHLO looks like an MX: our DKIM signature required at end of data
  kHeaderFrom,     // MAIL FROM is not ours but the header From is: our DKIM signature required
};
const char* identity_path_name(IdentityPath path);  // "n/a", "disabled", "strict", "relaxed-client", ...

// One check and its outcome, e.g. {"identity", "relaxed-mx", "EHLO mx.example.org resolves"}.
struct Check {
  std::string name;
  std::string result;
  std::string detail;
};

struct Decision {
  bool accepted = true;
  Stage stage = Stage::kMail;
  int code = 250;
  std::string enhanced = "2.0.0";
  std::string text;
  // DMARC quarantine: deliver into the recipient's Junk folder, with a header.
  bool junk = false;
  std::vector<Check> checks;

  bool temporary() const { return !accepted && code >= 400 && code < 500; }
  std::string reply_line() const;  // "550 5.7.20 text" (or "250 2.0.0 accepted")
};

// What the EHLO argument says about the peer (relaxed heuristic, issue 5 §1).
enum class HeloClass { kMissing, kAddressLiteral, kBareWord, kInvalid, kOurs, kNotInDns, kDnsError, kMx };
const char* helo_class_name(HeloClass c);

// Session facts known at MAIL FROM.
struct SessionFacts {
  bool mx_listener = true;
  IdentityMode mode = IdentityMode::kStrict;
  bool authenticated = false;
  bool trusted_network = false;
  std::string helo;
  // Whether the EHLO name has an A, AAAA or MX record: nullopt when the
  // lookup failed temporarily (or was not made).
  std::optional<bool> helo_resolves;
  // Reverse DNS of the client IP names the EHLO host (optional confirmation).
  bool ptr_confirms_helo = false;
  std::string mail_from;  // "" = null reverse-path
  std::string our_hostname;
  std::vector<std::string> local_domains;  // lower-cased
};

// Local-domain tests shared by the stages.
std::string domain_of(std::string_view address);  // lower-cased; "" when none
// One of our domains or a subdomain of one (a spoofer may use either).
bool is_our_domain(std::string_view domain, const std::vector<std::string>& local_domains);
// Does `d` equal `domain` or is it a parent of it that is still one of our
// domains (or below one)? The DKIM d= accepted as proof of our identity.
bool dkim_domain_covers(std::string_view d, std::string_view domain, const std::vector<std::string>& local_domains);

// Classifies an EHLO argument; `helo_resolves` as in SessionFacts.
HeloClass classify_helo(const SessionFacts& facts);

// True when the identity rule applies to this session and sender domain.
bool identity_rule_applies(const SessionFacts& facts, std::string_view domain);

// MAIL FROM stage: strict / relaxed-not-MX give 530 5.7.0.
Decision decide_mail(const SessionFacts& facts);
// The identity path decide_mail chose (kRelaxedMx when the transaction
// continues under the relaxed MX rule).
IdentityPath mail_identity_path(const SessionFacts& facts);

// RCPT stage: under the relaxed MX path a non-local recipient is refused
// (550 5.7.1, no relaying). `recipient_is_local` as the directory says.
Decision decide_rcpt(const SessionFacts& facts, std::string_view recipient, bool recipient_is_local);

// The [forwarders] domains configured for `recipient` (exact address first,
// then "@domain"); empty when none.
std::vector<std::string> forwarder_domains(const config::Config& cfg, std::string_view recipient);

// SPF of one trusted forwarder domain for the client IP.
struct ForwarderSpf {
  std::string recipient;
  std::string domain;
  auth::SpfResult::Code code = auth::SpfResult::Code::kNone;
};

// Everything known at end of data.
struct MessageFacts {
  auth::SpfResult spf;  // MAIL FROM identity (HELO for the null sender)
  bool spf_is_helo = false;
  std::vector<auth::dkim::DkimResult> dkim;
  auth::dmarc::DmarcResult dmarc;
  auth::arc::ArcResult arc;
  std::vector<std::string> header_from_domains;  // RFC5322.From domains, lower-cased
  std::vector<std::string> recipients;           // as given at RCPT (lower-cased addresses)
  std::vector<ForwarderSpf> forwarders;          // SPF of the recipients' forwarder domains
};

// End-of-data stage. `random_percent` returns [0, 100) for DMARC pct
// sampling (RFC 7489 §6.6.4); when empty, every message is sampled in.
Decision decide_data(const SessionFacts& facts, const MessageFacts& message, const config::PolicyConfig& policy,
                     const std::function<unsigned()>& random_percent);

// The identity path for the Authentication-Results property at end of data.
IdentityPath data_identity_path(const SessionFacts& facts, const MessageFacts& message);

// Recipients accepted as forwarded (SPF of a forwarder domain passed while
// the MAIL FROM SPF did not).
bool forwarded_for(const MessageFacts& message, std::string_view recipient, std::string* domain = nullptr);

}  // namespace tern::policy
