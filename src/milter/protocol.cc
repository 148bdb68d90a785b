// Milter packet encoding and reply parsing (see protocol.h).
#include "milter/protocol.h"

#include <cctype>

namespace tern::milter {

namespace {

Error protocol_error(const std::string& what) {
  return Error::temp("4.7.0", "milter protocol error: " + what);
}

void put_u32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>((v >> 24) & 0xff));
  out.push_back(static_cast<char>((v >> 16) & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
  out.push_back(static_cast<char>(v & 0xff));
}

uint32_t get_u32(std::string_view in) {
  return (uint32_t{static_cast<uint8_t>(in[0])} << 24) | (uint32_t{static_cast<uint8_t>(in[1])} << 16) |
         (uint32_t{static_cast<uint8_t>(in[2])} << 8) | uint32_t{static_cast<uint8_t>(in[3])};
}

// Splits NUL-terminated strings. Every string must be terminated; at most
// `max` are accepted, and fewer than `min` is an error.
Result<std::vector<std::string>> split_strings(std::string_view data, size_t min, size_t max, const char* what) {
  std::vector<std::string> out;
  while (!data.empty()) {
    size_t nul = data.find('\0');
    if (nul == std::string_view::npos) return protocol_error(std::string(what) + ": string without NUL");
    if (out.size() == max) return protocol_error(std::string(what) + ": too many strings");
    out.emplace_back(data.substr(0, nul));
    data.remove_prefix(nul + 1);
  }
  if (out.size() < min) return protocol_error(std::string(what) + ": missing strings");
  return out;
}

// SMFIR_REPLYCODE: "ddd[ -]x.y.z text" lines separated by CRLF, NUL-terminated.
// The code must be 4xx or 5xx (a milter cannot turn a stage into a success).
Result<MilterReply> parse_reply_code(std::string_view data) {
  auto strings = split_strings(data, 1, 1, "reply code");
  if (!strings) return strings.error();
  std::string_view all = strings.value()[0];
  MilterReply r;
  r.kind = MilterReply::Kind::kReplyCode;
  size_t lines = 0;
  while (!all.empty()) {
    size_t end = all.find("\r\n");
    std::string_view line = all.substr(0, end);
    all = end == std::string_view::npos ? std::string_view() : all.substr(end + 2);
    if (++lines > 32) return protocol_error("reply code: too many lines");
    if (line.size() < 3 || !std::isdigit(static_cast<unsigned char>(line[0])) ||
        !std::isdigit(static_cast<unsigned char>(line[1])) || !std::isdigit(static_cast<unsigned char>(line[2]))) {
      return protocol_error("reply code: bad code");
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (code < 400 || code > 599) return protocol_error("reply code: not 4xx or 5xx");
    if (lines == 1)
      r.code = code;
    else if (code != r.code)
      return protocol_error("reply code: lines with different codes");
    std::string_view rest = line.substr(3);
    if (!rest.empty()) {
      if (rest[0] != ' ' && rest[0] != '-') return protocol_error("reply code: bad separator");
      rest.remove_prefix(1);
    }
    // Optional enhanced status code (RFC 3463 §2): class must match the reply code.
    size_t sp = rest.find(' ');
    std::string_view first = rest.substr(0, sp);
    int dots = 0;
    bool enhanced = !first.empty() && first[0] - '0' == code / 100 && first.size() <= 16;
    for (size_t i = 0; enhanced && i < first.size(); ++i) {
      if (first[i] == '.')
        ++dots;
      else if (!std::isdigit(static_cast<unsigned char>(first[i])))
        enhanced = false;
    }
    if (enhanced && dots == 2 && first.back() != '.') {
      if (lines == 1) r.enhanced = std::string(first);
      rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
    }
    for (char c : rest) {
      if (static_cast<unsigned char>(c) < 0x20 && c != '\t') return protocol_error("reply code: control character");
    }
    if (lines > 1) r.text.push_back('\n');
    r.text.append(rest);
  }
  if (lines == 0) return protocol_error("reply code: empty");
  return r;
}

// "index(4) name NUL value NUL" for insert/change header.
Result<MilterReply> parse_indexed_header(MilterReply::Kind kind, std::string_view data) {
  if (data.size() < 4) return protocol_error("header change: short");
  MilterReply r;
  r.kind = kind;
  r.index = get_u32(data);
  auto strings = split_strings(data.substr(4), 2, 2, "header change");
  if (!strings) return strings.error();
  r.name = std::move(strings.value()[0]);
  r.value = std::move(strings.value()[1]);
  if (r.name.empty()) return protocol_error("header change: empty name");
  return r;
}

}  // namespace

std::string encode_packet(char command, std::string_view data) {
  std::string out;
  out.reserve(5 + data.size());
  put_u32(out, static_cast<uint32_t>(data.size() + 1));
  out.push_back(command);
  out.append(data);
  return out;
}

Result<std::optional<Packet>> PacketReader::next() {
  if (failed_) return *failed_;
  std::string_view pending = std::string_view(buffer_).substr(consumed_);
  if (pending.size() < 4) return std::optional<Packet>();
  uint32_t length = get_u32(pending);
  if (length == 0) {
    failed_ = protocol_error("zero-length packet");
    return *failed_;
  }
  if (length > limits_.max_packet) {
    failed_ = protocol_error("packet of " + std::to_string(length) + " bytes exceeds the limit");
    return *failed_;
  }
  if (pending.size() - 4 < length) return std::optional<Packet>();
  Packet p;
  p.command = pending[4];
  p.data.assign(pending.substr(5, length - 1));
  consumed_ += 4 + length;
  // Compact once the consumed prefix dominates the buffer.
  if (consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  } else if (consumed_ > 65536 && consumed_ * 2 > buffer_.size()) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  return std::optional<Packet>(std::move(p));
}

std::string encode_negotiation(uint32_t version, uint32_t actions, uint32_t protocol) {
  std::string out;
  put_u32(out, version);
  put_u32(out, actions);
  put_u32(out, protocol);
  return out;
}

Result<Negotiation> parse_negotiation(std::string_view data, const PacketLimits& limits) {
  if (data.size() < 12) return protocol_error("option negotiation: short");
  Negotiation n;
  n.version = get_u32(data);
  n.actions = get_u32(data.substr(4));
  n.protocol = get_u32(data.substr(8));
  data.remove_prefix(12);
  // Optional symbol lists: stage(4) "names separated by spaces" NUL, repeated.
  while (!data.empty()) {
    if (n.symbol_lists.size() >= limits.max_symbol_lists) return protocol_error("option negotiation: too many lists");
    if (data.size() < 5) return protocol_error("option negotiation: short symbol list");
    uint32_t stage = get_u32(data);
    data.remove_prefix(4);
    size_t nul = data.find('\0');
    if (nul == std::string_view::npos) return protocol_error("option negotiation: symbol list without NUL");
    std::string_view names = data.substr(0, nul);
    data.remove_prefix(nul + 1);
    if (stage >= kStageCount) continue;  // a stage tern does not know: ignore its list
    auto& list = n.symbol_lists[static_cast<Stage>(stage)];
    list.clear();
    while (!names.empty()) {
      size_t sp = names.find_first_of(" ,");
      std::string_view name = names.substr(0, sp);
      names = sp == std::string_view::npos ? std::string_view() : names.substr(sp + 1);
      if (name.empty()) continue;
      if (list.size() >= 256) return protocol_error("option negotiation: symbol list too long");
      list.push_back(canonical_macro_name(name));
    }
  }
  return n;
}

std::string encode_connect(std::string_view hostname, Family family, uint16_t port, std::string_view address) {
  std::string out(hostname);
  out.push_back('\0');
  out.push_back(static_cast<char>(family));
  if (family != Family::kUnknown) {
    out.push_back(static_cast<char>(port >> 8));
    out.push_back(static_cast<char>(port & 0xff));
    out.append(address);
    out.push_back('\0');
  }
  return out;
}

std::string encode_macros(char for_command, const std::vector<std::pair<std::string, std::string>>& macros) {
  std::string out(1, for_command);
  for (const auto& [name, value] : macros) {
    out.append(name);
    out.push_back('\0');
    out.append(value);
    out.push_back('\0');
  }
  return out;
}

std::string encode_strings(const std::vector<std::string_view>& strings) {
  std::string out;
  for (std::string_view s : strings) {
    out.append(s);
    out.push_back('\0');
  }
  return out;
}

std::string canonical_macro_name(std::string_view name) {
  if (name.size() >= 2 && name.front() == '{' && name.back() == '}') name = name.substr(1, name.size() - 2);
  if (name.size() == 1) return std::string(name);
  return "{" + std::string(name) + "}";
}

bool MilterReply::is_verdict() const {
  switch (kind) {
    case Kind::kContinue:
    case Kind::kAccept:
    case Kind::kReject:
    case Kind::kTempfail:
    case Kind::kDiscard:
    case Kind::kReplyCode:
    case Kind::kSkip:
    case Kind::kConnectionFail:
    case Kind::kShutdown:
      return true;
    default:
      return false;
  }
}

bool MilterReply::is_modification() const {
  return required_action(kind) != 0;
}

uint32_t required_action(MilterReply::Kind kind) {
  using K = MilterReply::Kind;
  switch (kind) {
    case K::kAddHeader:
      return action::kAddHeaders;
    case K::kInsertHeader:
    case K::kChangeHeader:
      return action::kChangeHeaders;
    case K::kReplaceBody:
      return action::kChangeBody;
    case K::kAddRecipient:  // either flag allows it ('+' or '2' with arguments)
      return action::kAddRecipient | action::kAddRecipientWithArgs;
    case K::kDeleteRecipient:
      return action::kDeleteRecipient;
    case K::kChangeSender:
      return action::kChangeSender;
    case K::kQuarantine:
      return action::kQuarantine;
    default:
      return 0;
  }
}

Result<MilterReply> parse_reply(const Packet& packet) {
  using K = MilterReply::Kind;
  MilterReply r;
  const std::string_view data = packet.data;
  auto simple = [&](K kind) -> Result<MilterReply> {
    // Verdicts carry no data; libmilter never sends any, but tolerate a stray NUL.
    if (data.size() > 1) return protocol_error(std::string("unexpected data with reply '") + packet.command + "'");
    r.kind = kind;
    return r;
  };
  switch (packet.command) {
    case reply::kContinue:
      return simple(K::kContinue);
    case reply::kAccept:
      return simple(K::kAccept);
    case reply::kReject:
      return simple(K::kReject);
    case reply::kTempfail:
      return simple(K::kTempfail);
    case reply::kDiscard:
      return simple(K::kDiscard);
    case reply::kSkip:
      return simple(K::kSkip);
    case reply::kProgress:
      return simple(K::kProgress);
    case reply::kConnectionFail:
      return simple(K::kConnectionFail);
    case reply::kShutdown:
      return simple(K::kShutdown);
    case reply::kReplyCode:
      return parse_reply_code(data);
    case reply::kAddHeader: {
      auto s = split_strings(data, 2, 2, "add header");
      if (!s) return s.error();
      r.kind = K::kAddHeader;
      r.name = std::move(s.value()[0]);
      r.value = std::move(s.value()[1]);
      if (r.name.empty()) return protocol_error("add header: empty name");
      return r;
    }
    case reply::kInsertHeader:
      return parse_indexed_header(K::kInsertHeader, data);
    case reply::kChangeHeader:
      return parse_indexed_header(K::kChangeHeader, data);
    case reply::kReplaceBody:
      r.kind = K::kReplaceBody;
      r.body.assign(data);
      return r;
    case reply::kAddRecipient:
    case reply::kAddRecipientWithArgs:
    case reply::kDeleteRecipient:
    case reply::kChangeSender: {
      bool with_args = packet.command == reply::kAddRecipientWithArgs || packet.command == reply::kChangeSender;
      auto s = split_strings(data, 1, with_args ? 2 : 1, "envelope change");
      if (!s) return s.error();
      r.kind = packet.command == reply::kDeleteRecipient ? K::kDeleteRecipient
               : packet.command == reply::kChangeSender  ? K::kChangeSender
                                                         : K::kAddRecipient;
      r.address = std::move(s.value()[0]);
      if (s.value().size() > 1) r.args = std::move(s.value()[1]);
      if (r.address.empty() && r.kind != K::kChangeSender) return protocol_error("envelope change: empty address");
      return r;
    }
    case reply::kQuarantine: {
      auto s = split_strings(data, 1, 1, "quarantine");
      if (!s) return s.error();
      r.kind = K::kQuarantine;
      r.text = std::move(s.value()[0]);
      return r;
    }
    default:
      return protocol_error(std::string("unknown reply command 0x") + "0123456789abcdef"[(packet.command >> 4) & 0xf] +
                            "0123456789abcdef"[packet.command & 0xf]);
  }
}

}  // namespace tern::milter
