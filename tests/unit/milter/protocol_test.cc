// Unit tests for the sans-I/O milter protocol pieces: packet framing and
// its bounds, option negotiation with symbol lists, every reply type
// (verdicts, SMFIR_REPLYCODE, modifications) and milter address parsing.
#include "milter/protocol.h"

#include <gtest/gtest.h>

#include "milter/session.h"

namespace tern::milter {
namespace {

using namespace std::string_literals;

TEST(MilterPacket, EncodesLengthCommandAndData) {
  EXPECT_EQ(encode_packet('O', "abc"), "\0\0\0\x04Oabc"s);
  EXPECT_EQ(encode_packet('A', ""),
            "\0\0\0\x01"
            "A"s);
}

TEST(MilterPacket, ReaderReassemblesPacketsFedByteByByte) {
  std::string wire = encode_packet('c', "") + encode_packet('h', "X-A\0b\0"s);
  PacketReader reader;
  std::vector<Packet> packets;
  for (char c : wire) {
    reader.feed(std::string_view(&c, 1));
    for (;;) {
      auto next = reader.next();
      ASSERT_TRUE(next);
      if (!next.value()) break;
      packets.push_back(*next.value());
    }
  }
  ASSERT_EQ(packets.size(), 2u);
  EXPECT_EQ(packets[0].command, 'c');
  EXPECT_EQ(packets[0].data, "");
  EXPECT_EQ(packets[1].command, 'h');
  EXPECT_EQ(packets[1].data, "X-A\0b\0"s);
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(MilterPacket, ZeroAndOversizedLengthsAreStickyErrors) {
  PacketReader zero;
  zero.feed("\0\0\0\0c"s);
  EXPECT_FALSE(zero.next());
  EXPECT_FALSE(zero.next());

  PacketLimits limits;
  limits.max_packet = 100;
  PacketReader big(limits);
  big.feed("\0\0\x01\x00"s);
  auto next = big.next();
  ASSERT_FALSE(next);
  EXPECT_EQ(next.error().enhanced, "4.7.0");
  big.feed(encode_packet('c', ""));
  EXPECT_FALSE(big.next());
}

TEST(MilterNegotiation, ParsesFlagsAndSymbolLists) {
  std::string data = encode_negotiation(6, action::kAddHeaders | action::kQuarantine, proto::kNoHelo);
  data += "\0\0\0\0{client_addr} j\0"s;              // connect
  data += "\0\0\0\x02{mail_addr} {auth_authen}\0"s;  // mail from
  data += "\0\0\0\x63ignored\0"s;                    // an unknown stage
  auto n = parse_negotiation(data);
  ASSERT_TRUE(n) << n.error().to_string();
  EXPECT_EQ(n->version, 6u);
  EXPECT_EQ(n->actions, action::kAddHeaders | action::kQuarantine);
  EXPECT_EQ(n->protocol, proto::kNoHelo);
  ASSERT_EQ(n->symbol_lists.size(), 2u);
  EXPECT_EQ(n->symbol_lists[Stage::kConnect], (std::vector<std::string>{"{client_addr}", "j"}));
  EXPECT_EQ(n->symbol_lists[Stage::kMailFrom], (std::vector<std::string>{"{mail_addr}", "{auth_authen}"}));
}

TEST(MilterNegotiation, RejectsShortAndUnterminatedData) {
  EXPECT_FALSE(parse_negotiation("\0\0\0\x06\0\0"s));
  std::string data = encode_negotiation(6, 0, 0) + "\0\0\0\0j"s;
  EXPECT_FALSE(parse_negotiation(data));
}

TEST(MilterEncode, ConnectMacrosAndStrings) {
  EXPECT_EQ(encode_connect("mx.example", Family::kInet, 2525, "192.0.2.1"),
            "mx.example\0"
            "4\x09\xdd"
            "192.0.2.1\0"s);
  EXPECT_EQ(encode_connect("local", Family::kUnknown, 0, ""), "local\0U"s);
  EXPECT_EQ(encode_macros('C', {{"j", "mx"}, {"{daemon_name}", "tern"}}), "Cj\0mx\0{daemon_name}\0tern\0"s);
  EXPECT_EQ(encode_strings({"<a@b>", "SIZE=10"}), "<a@b>\0SIZE=10\0"s);
  EXPECT_EQ(canonical_macro_name("daemon_name"), "{daemon_name}");
  EXPECT_EQ(canonical_macro_name("{i}"), "i");
  EXPECT_EQ(canonical_macro_name("j"), "j");
}

TEST(MilterReplyParse, SimpleVerdicts) {
  struct Case {
    char command;
    MilterReply::Kind kind;
  };
  for (auto [command, kind] : {Case{'c', MilterReply::Kind::kContinue}, Case{'a', MilterReply::Kind::kAccept},
                               Case{'r', MilterReply::Kind::kReject}, Case{'t', MilterReply::Kind::kTempfail},
                               Case{'d', MilterReply::Kind::kDiscard}, Case{'s', MilterReply::Kind::kSkip},
                               Case{'p', MilterReply::Kind::kProgress}}) {
    auto r = parse_reply(Packet{command, ""});
    ASSERT_TRUE(r) << command;
    EXPECT_EQ(r->kind, kind) << command;
  }
  EXPECT_FALSE(parse_reply(Packet{'c', "junk"}));
  EXPECT_FALSE(parse_reply(Packet{'Z', ""}));
}

TEST(MilterReplyParse, ReplyCode) {
  auto r = parse_reply(Packet{'y', "554 5.7.1 go away\0"s});
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->kind, MilterReply::Kind::kReplyCode);
  EXPECT_EQ(r->code, 554);
  EXPECT_EQ(r->enhanced, "5.7.1");
  EXPECT_EQ(r->text, "go away");

  auto multi = parse_reply(Packet{'y', "452-4.3.1 first\r\n452 4.3.1 second\0"s});
  ASSERT_TRUE(multi) << multi.error().to_string();
  EXPECT_EQ(multi->code, 452);
  EXPECT_EQ(multi->text, "first\nsecond");

  auto bare = parse_reply(Packet{'y', "450 busy\0"s});
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->enhanced, "");
  EXPECT_EQ(bare->text, "busy");

  EXPECT_FALSE(parse_reply(Packet{'y', "250 2.0.0 ok\0"s}));  // not a refusal
  EXPECT_FALSE(parse_reply(Packet{'y', "5x0 bad\0"s}));
  EXPECT_FALSE(parse_reply(Packet{'y', "550 no terminator"s}));
  EXPECT_FALSE(parse_reply(Packet{'y', "550-a\r\n451 b\0"s}));  // codes differ
  EXPECT_FALSE(parse_reply(Packet{'y', "550 bell\x07\0"s}));
}

TEST(MilterReplyParse, Modifications) {
  auto add = parse_reply(Packet{'h', "X-Spam\0yes\0"s});
  ASSERT_TRUE(add);
  EXPECT_EQ(add->kind, MilterReply::Kind::kAddHeader);
  EXPECT_EQ(add->name, "X-Spam");
  EXPECT_EQ(add->value, "yes");

  auto ins = parse_reply(Packet{'i', "\0\0\0\x02X-First\0one\0"s});
  ASSERT_TRUE(ins);
  EXPECT_EQ(ins->kind, MilterReply::Kind::kInsertHeader);
  EXPECT_EQ(ins->index, 2u);

  auto chg = parse_reply(Packet{'m', "\0\0\0\x01Subject\0\0"s});
  ASSERT_TRUE(chg);
  EXPECT_EQ(chg->kind, MilterReply::Kind::kChangeHeader);
  EXPECT_EQ(chg->value, "");

  auto body = parse_reply(Packet{'b', "new body\r\n"});
  ASSERT_TRUE(body);
  EXPECT_EQ(body->body, "new body\r\n");

  auto rcpt = parse_reply(Packet{'2', "<x@y>\0NOTIFY=NEVER\0"s});
  ASSERT_TRUE(rcpt);
  EXPECT_EQ(rcpt->kind, MilterReply::Kind::kAddRecipient);
  EXPECT_EQ(rcpt->address, "<x@y>");
  EXPECT_EQ(rcpt->args, "NOTIFY=NEVER");

  auto del = parse_reply(Packet{'-', "<x@y>\0"s});
  ASSERT_TRUE(del);
  EXPECT_EQ(del->kind, MilterReply::Kind::kDeleteRecipient);

  auto from = parse_reply(Packet{'e', "<new@y>\0"s});
  ASSERT_TRUE(from);
  EXPECT_EQ(from->kind, MilterReply::Kind::kChangeSender);
  EXPECT_EQ(from->args, "");

  auto q = parse_reply(Packet{'q', "suspicious\0"s});
  ASSERT_TRUE(q);
  EXPECT_EQ(q->kind, MilterReply::Kind::kQuarantine);
  EXPECT_EQ(q->text, "suspicious");

  EXPECT_FALSE(parse_reply(Packet{'h', "X-Spam\0"s}));
  EXPECT_FALSE(parse_reply(Packet{'h', "\0v\0"s}));
  EXPECT_FALSE(parse_reply(Packet{'i', "\0\0"s}));
  EXPECT_FALSE(parse_reply(Packet{'+', "<a@b>\0extra\0"s}));
  EXPECT_FALSE(parse_reply(Packet{'-', ""}));
}

TEST(MilterAddressParse, Spellings) {
  auto unix_path = MilterAddress::parse("unix:/run/milter.sock");
  ASSERT_TRUE(unix_path);
  EXPECT_TRUE(unix_path->is_unix);
  EXPECT_EQ(unix_path->path, "/run/milter.sock");
  auto local = MilterAddress::parse("local:/x.sock");
  ASSERT_TRUE(local);
  EXPECT_TRUE(local->is_unix);
  auto tcp = MilterAddress::parse("127.0.0.1:8891");
  ASSERT_TRUE(tcp);
  EXPECT_EQ(tcp->host, "127.0.0.1");
  EXPECT_EQ(tcp->port, 8891);
  auto v6 = MilterAddress::parse("[::1]:11332");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  auto inet = MilterAddress::parse("inet:8891@localhost");
  ASSERT_TRUE(inet);
  EXPECT_EQ(inet->host, "localhost");
  EXPECT_EQ(inet->port, 8891);
  EXPECT_FALSE(MilterAddress::parse("unix:"));
  EXPECT_FALSE(MilterAddress::parse("host-without-port"));
  EXPECT_FALSE(MilterAddress::parse("inet:99999@h"));
}

}  // namespace
}  // namespace tern::milter
