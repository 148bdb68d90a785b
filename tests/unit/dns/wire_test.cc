// Tests for wire-format rdata decoding and name escaping (dns/wire.h),
// including malformed and hostile rdata.
#include "dns/wire.h"

#include <gtest/gtest.h>

namespace tern::dns {
namespace {

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

TEST(DnsWire, AddressRecords) {
  Answer a;
  EXPECT_TRUE(append_rdata(RrType::kA, bytes({192, 0, 2, 1}), a));
  EXPECT_TRUE(append_rdata(RrType::kAaaa, bytes({0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}), a));
  ASSERT_EQ(a.addresses.size(), 2u);
  EXPECT_EQ(a.addresses[0].to_string(), "192.0.2.1");
  EXPECT_EQ(a.addresses[1].to_string(), "2001:db8::1");
  EXPECT_FALSE(append_rdata(RrType::kA, bytes({1, 2, 3}), a));
  EXPECT_FALSE(append_rdata(RrType::kAaaa, bytes({1, 2, 3, 4}), a));
  EXPECT_EQ(a.addresses.size(), 2u);
}

TEST(DnsWire, TxtConcatenatesCharacterStrings) {
  Answer a;
  std::string long_part(255, 'x');
  std::string rdata = std::string(1, '\xff') + long_part + "\x05hello";
  EXPECT_TRUE(append_rdata(RrType::kTxt, rdata, a));
  EXPECT_TRUE(append_rdata(RrType::kTxt, "", a));  // no strings: an empty record
  ASSERT_EQ(a.txt.size(), 2u);
  EXPECT_EQ(a.txt[0], long_part + "hello");
  EXPECT_EQ(a.txt[1], "");
  EXPECT_FALSE(append_rdata(RrType::kTxt, "\x09short", a));  // length beyond the buffer
  EXPECT_EQ(a.txt.size(), 2u);
}

TEST(DnsWire, MxAndNames) {
  Answer a;
  EXPECT_TRUE(append_rdata(RrType::kMx, bytes({0, 10, 4, 'M', 'a', 'i', 'l', 7, 'E', 'x', 'a', 'm', 'p', 'l', 'e', 0}), a));
  EXPECT_TRUE(append_rdata(RrType::kMx, bytes({0, 0, 0}), a));  // null MX (RFC 7505)
  ASSERT_EQ(a.mx.size(), 2u);
  EXPECT_EQ(a.mx[0], (MxRecord{10, "mail.example"}));
  EXPECT_EQ(a.mx[1], (MxRecord{0, ""}));
  EXPECT_TRUE(append_rdata(RrType::kPtr, bytes({3, 'a', '.', ' ', 2, 'n', 'l', 0}), a));
  ASSERT_EQ(a.names.size(), 1u);
  EXPECT_EQ(a.names[0], "a\\.\\032.nl");
  // Compression pointer, truncated label, trailing junk, missing root.
  EXPECT_FALSE(append_rdata(RrType::kPtr, bytes({0xc0, 0x0c}), a));
  EXPECT_FALSE(append_rdata(RrType::kPtr, bytes({5, 'a', 'b'}), a));
  EXPECT_FALSE(append_rdata(RrType::kPtr, bytes({1, 'a', 0, 7}), a));
  EXPECT_FALSE(append_rdata(RrType::kCname, bytes({1, 'a'}), a));
  EXPECT_FALSE(append_rdata(RrType::kMx, bytes({0, 10}), a));
  EXPECT_EQ(a.names.size(), 1u);
}

TEST(DnsWire, NameLongerThan255OctetsRejected) {
  std::string rdata;
  for (int i = 0; i < 5; ++i) rdata += std::string(1, '\x3f') + std::string(63, 'a');
  rdata.push_back('\0');
  size_t pos = 0;
  EXPECT_FALSE(read_wire_name(rdata, pos));
}

TEST(DnsWire, Tlsa) {
  Answer a;
  EXPECT_TRUE(append_rdata(RrType::kTlsa, bytes({3, 1, 1, 0xab, 0xcd}), a));
  ASSERT_EQ(a.tlsa.size(), 1u);
  EXPECT_EQ(a.tlsa[0], (TlsaRecord{3, 1, 1, bytes({0xab, 0xcd})}));
  EXPECT_FALSE(append_rdata(RrType::kTlsa, bytes({3, 1}), a));
}

TEST(DnsWire, PresentationName) {
  EXPECT_EQ(presentation_name("Example.COM."), "Example.COM");
  EXPECT_EQ(presentation_name("macro%percent  space.example"), "macro\\037percent\\032\\032space.example");
  EXPECT_EQ(presentation_name("_spf.example.com"), "_spf.example.com");
  EXPECT_FALSE(presentation_name(""));
  EXPECT_FALSE(presentation_name("a..b"));
  EXPECT_FALSE(presentation_name(std::string(64, 'a') + ".com"));
  std::string long_name;
  for (int i = 0; i < 4; ++i) long_name += std::string(63, 'a') + ".";
  EXPECT_FALSE(presentation_name(long_name + "com"));
  EXPECT_STREQ(type_name(RrType::kTxt), "TXT");
  EXPECT_STREQ(rcode_name(Rcode::kNxDomain), "NXDOMAIN");
  EXPECT_STREQ(security_name(Security::kBogus), "bogus");
}

}  // namespace
}  // namespace tern::dns
