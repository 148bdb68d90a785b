// Sans-I/O pieces of the Sendmail milter protocol, version 6, from the MTA's
// side. There is no RFC; the de-facto specification is libmilter's mfdef.h
// and the "milter protocol" notes that come with Sendmail. Every packet is a
// 4-byte big-endian length (counting the command byte), a one-byte command
// and the command's data. This file holds the command, reply, action and
// protocol-flag values, builders for the packets tern sends, a bounded
// incremental packet reader, and the parser that turns a milter's reply
// packet into a typed MilterReply. Everything the milter sends is untrusted:
// lengths and counts are bounded and malformed packets are errors (4.7.0).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace tern::milter {

// Protocol version tern speaks (SMFI_PROT_VERSION in libmilter).
constexpr uint32_t kProtocolVersion = 6;
// Largest body chunk tern sends (MILTER_CHUNK_SIZE): the MDS_256K/MDS_1M
// flags that allow bigger ones are never offered.
constexpr size_t kMaxBodyChunk = 65535;

// Commands, MTA -> milter (SMFIC_*).
namespace cmd {
constexpr char kAbort = 'A';
constexpr char kBody = 'B';
constexpr char kConnect = 'C';
constexpr char kMacro = 'D';
constexpr char kEndOfBody = 'E';
constexpr char kHelo = 'H';
constexpr char kQuitNewConnection = 'K';
constexpr char kHeader = 'L';
constexpr char kMail = 'M';
constexpr char kEndOfHeaders = 'N';
constexpr char kOptionNegotiation = 'O';
constexpr char kQuit = 'Q';
constexpr char kRcpt = 'R';
constexpr char kData = 'T';
constexpr char kUnknown = 'U';
}  // namespace cmd

// Replies, milter -> MTA (SMFIR_*).
namespace reply {
constexpr char kAddRecipient = '+';
constexpr char kDeleteRecipient = '-';
constexpr char kAddRecipientWithArgs = '2';
constexpr char kShutdown = '4';
constexpr char kAccept = 'a';
constexpr char kReplaceBody = 'b';
constexpr char kContinue = 'c';
constexpr char kDiscard = 'd';
constexpr char kChangeSender = 'e';
constexpr char kConnectionFail = 'f';
constexpr char kAddHeader = 'h';
constexpr char kInsertHeader = 'i';
constexpr char kSetSymbolList = 'l';
constexpr char kChangeHeader = 'm';
constexpr char kProgress = 'p';
constexpr char kQuarantine = 'q';
constexpr char kReject = 'r';
constexpr char kSkip = 's';
constexpr char kTempfail = 't';
constexpr char kReplyCode = 'y';
}  // namespace reply

// Modification actions the milter may ask for (SMFIF_*), offered in OPTNEG.
namespace action {
constexpr uint32_t kAddHeaders = 0x01;
constexpr uint32_t kChangeBody = 0x02;
constexpr uint32_t kAddRecipient = 0x04;
constexpr uint32_t kDeleteRecipient = 0x08;
constexpr uint32_t kChangeHeaders = 0x10;
constexpr uint32_t kQuarantine = 0x20;
constexpr uint32_t kChangeSender = 0x40;
constexpr uint32_t kAddRecipientWithArgs = 0x80;
constexpr uint32_t kSetSymbolList = 0x100;
constexpr uint32_t kAll = 0x1ff;
}  // namespace action

// Protocol flags (SMFIP_*): "do not send" and "will not reply" per stage.
namespace proto {
constexpr uint32_t kNoConnect = 0x1;
constexpr uint32_t kNoHelo = 0x2;
constexpr uint32_t kNoMail = 0x4;
constexpr uint32_t kNoRcpt = 0x8;
constexpr uint32_t kNoBody = 0x10;
constexpr uint32_t kNoHeaders = 0x20;
constexpr uint32_t kNoEndOfHeaders = 0x40;
constexpr uint32_t kNoReplyHeader = 0x80;
constexpr uint32_t kNoUnknown = 0x100;
constexpr uint32_t kNoData = 0x200;
constexpr uint32_t kSkip = 0x400;           // the MTA understands SMFIR_SKIP
constexpr uint32_t kRejectedRcpts = 0x800;  // send rejected recipients too (not offered)
constexpr uint32_t kNoReplyConnect = 0x1000;
constexpr uint32_t kNoReplyHelo = 0x2000;
constexpr uint32_t kNoReplyMail = 0x4000;
constexpr uint32_t kNoReplyRcpt = 0x8000;
constexpr uint32_t kNoReplyData = 0x10000;
constexpr uint32_t kNoReplyUnknown = 0x20000;
constexpr uint32_t kNoReplyEndOfHeaders = 0x40000;
constexpr uint32_t kNoReplyBody = 0x80000;
constexpr uint32_t kHeaderLeadingSpace = 0x100000;  // header values are sent exactly as received
// What tern offers: every no-send / no-reply flag, skip and leading space.
constexpr uint32_t kOffered = 0x1fffff & ~kRejectedRcpts;
}  // namespace proto

// Macro stages in OPTNEG symbol lists (SMFIM_*).
enum class Stage : uint32_t {
  kConnect = 0,
  kHelo = 1,
  kMailFrom = 2,
  kRcptTo = 3,
  kData = 4,
  kEndOfMessage = 5,
  kEndOfHeaders = 6,
};
constexpr uint32_t kStageCount = 7;

// Bounds on what a milter may send.
struct PacketLimits {
  size_t max_packet = 1 << 20;   // one packet's length field
  size_t max_symbol_lists = 64;  // stages in an OPTNEG reply
};

struct Packet {
  char command = 0;
  std::string data;
};

// "len(4, big-endian) command data".
std::string encode_packet(char command, std::string_view data);

// Incremental reader: feed() bytes as they arrive, next() returns complete
// packets in order. A zero or oversized length is an error and sticks.
class PacketReader {
 public:
  explicit PacketReader(PacketLimits limits = {}) : limits_(limits) {}
  void feed(std::string_view bytes) { buffer_.append(bytes); }
  // A packet, nullopt when more bytes are needed, or an Error (sticky).
  Result<std::optional<Packet>> next();
  size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  PacketLimits limits_;
  std::string buffer_;
  size_t consumed_ = 0;
  std::optional<Error> failed_;
};

// ---- Packets tern sends ----

struct Negotiation {
  uint32_t version = kProtocolVersion;
  uint32_t actions = 0;
  uint32_t protocol = 0;
  // Macro names the milter wants per stage (SMFIR_SETSYMLIST data), e.g.
  // {Stage::kConnect: ["j", "{client_addr}"]}. Absent: tern's defaults.
  std::map<Stage, std::vector<std::string>> symbol_lists;
};

// OPTNEG data: version, actions, protocol (each 4 bytes, big-endian).
std::string encode_negotiation(uint32_t version, uint32_t actions, uint32_t protocol);
// Parses the milter's OPTNEG reply (data only), with any symbol lists.
Result<Negotiation> parse_negotiation(std::string_view data, const PacketLimits& limits = {});

// The family byte of SMFIC_CONNECT (SMFIA_*).
enum class Family : char { kUnknown = 'U', kUnix = 'L', kInet = '4', kInet6 = '6' };

// SMFIC_CONNECT data: hostname NUL family [port(2, big-endian) address NUL].
std::string encode_connect(std::string_view hostname, Family family, uint16_t port, std::string_view address);
// SMFIC_MACRO data: the command byte the macros belong to, then name NUL value NUL pairs.
std::string encode_macros(char for_command, const std::vector<std::pair<std::string, std::string>>& macros);
// NUL-terminated strings back to back (MAIL/RCPT arguments, HELO, HEADER).
std::string encode_strings(const std::vector<std::string_view>& strings);

// Macro names as sent: single characters bare ("j", "i", "_"), longer names in
// braces ("{daemon_name}"). Accepts either spelling.
std::string canonical_macro_name(std::string_view name);

// ---- Replies ----

// One milter reply, typed. Verdicts end the wait for a stage; modifications
// (only valid while waiting for the end-of-message reply) and progress do not.
struct MilterReply {
  enum class Kind {
    kContinue,
    kAccept,
    kReject,
    kTempfail,
    kDiscard,
    kReplyCode,       // code/enhanced/text: a full SMTP reply chosen by the milter
    kSkip,            // stop sending body chunks
    kProgress,        // still working: restart the reply timer
    kConnectionFail,  // SMFIR_CONN_FAIL: treated like tempfail
    kShutdown,        // SMFIR_SHUTDOWN: treated like tempfail
    kAddHeader,
    kInsertHeader,
    kChangeHeader,
    kReplaceBody,
    kAddRecipient,
    kDeleteRecipient,
    kChangeSender,
    kQuarantine,
  };
  Kind kind = Kind::kContinue;
  int code = 0;          // kReplyCode
  std::string enhanced;  // kReplyCode, may be empty
  std::string text;      // kReplyCode text (one entry per reply line, joined with "\n"), quarantine reason
  uint32_t index = 0;    // insert/change header: 1-based occurrence (change) or position (insert)
  std::string name;      // header name
  std::string value;     // header value; for change header, empty means delete
  std::string address;   // recipient or sender
  std::string args;      // ESMTP arguments for add-recipient-with-args / change sender
  std::string body;      // one replace-body chunk

  bool is_verdict() const;
  bool is_modification() const;
};

// Parses one reply packet. Unknown commands and malformed data are errors.
Result<MilterReply> parse_reply(const Packet& packet);

// The action flags that allow a modification (any one suffices; 0 for non-modifications).
uint32_t required_action(MilterReply::Kind kind);

}  // namespace tern::milter
