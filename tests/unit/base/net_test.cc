// Tests for base/net: IP, CIDR and host:port parsing and matching.
#include "base/net.h"

#include <gtest/gtest.h>

namespace tern {
namespace {

TEST(Net, CidrMatchesV4) {
  auto c = Cidr::parse("127.0.0.0/8");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->contains(*IpAddress::parse("127.1.2.3")));
  EXPECT_FALSE(c->contains(*IpAddress::parse("128.0.0.1")));
  EXPECT_TRUE(c->contains(*IpAddress::parse("::ffff:127.0.0.1")));
  EXPECT_FALSE(c->contains(*IpAddress::parse("::1")));
}

TEST(Net, CidrMatchesV6AndNormalises) {
  auto c = Cidr::parse("2001:db8::1/32");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->to_string(), "2001:db8::/32");
  EXPECT_TRUE(c->contains(*IpAddress::parse("2001:db8:ffff::9")));
  EXPECT_FALSE(c->contains(*IpAddress::parse("2001:db9::1")));
  EXPECT_FALSE(Cidr::parse("10.0.0.0/33"));
  EXPECT_FALSE(Cidr::parse("10.0.0/8"));
  auto odd = Cidr::parse("10.0.0.255/25");
  ASSERT_TRUE(odd);
  EXPECT_EQ(odd->to_string(), "10.0.0.128/25");
}

TEST(Net, HostPort) {
  auto a = HostPort::parse("127.0.0.1:2525");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 2525);
  auto b = HostPort::parse("[::1]:25");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->to_string(), "[::1]:25");
  EXPECT_FALSE(HostPort::parse("::1:25"));
  EXPECT_FALSE(HostPort::parse("127.0.0.1:0"));
  EXPECT_FALSE(HostPort::parse("127.0.0.1:65536"));
  EXPECT_FALSE(HostPort::parse("127.0.0.1"));
  EXPECT_TRUE(HostPort::parse("127.0.0.1", 24));
}

}  // namespace
}  // namespace tern
