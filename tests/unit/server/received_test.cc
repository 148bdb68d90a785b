// Tests for the Received trace header (RFC 5321 §4.4) and protocol names (RFC 3848).
#include "server/received.h"

#include <gtest/gtest.h>

namespace tern::server {
namespace {

TEST(Received, ProtocolNames) {
  EXPECT_EQ(protocol_name(false, false, false, false), "SMTP");
  EXPECT_EQ(protocol_name(true, false, false, false), "ESMTP");
  EXPECT_EQ(protocol_name(true, true, false, false), "ESMTPS");
  EXPECT_EQ(protocol_name(true, true, true, false), "ESMTPSA");
  EXPECT_EQ(protocol_name(true, false, true, false), "ESMTPA");
  EXPECT_EQ(protocol_name(true, true, true, true), "UTF8SMTPSA");
}

TEST(Received, FormatsAllClauses) {
  ReceivedInfo i;
  i.helo = "client.example.net";
  i.client_ip = "192.0.2.7";
  i.by_host = "mx.example.test";
  i.protocol = "ESMTPS";
  i.queue_id = "1k15v3zp0jc000";
  i.tls_version = "TLSv1.3";
  i.tls_cipher = "TLS_AES_256_GCM_SHA384";
  i.tls_bits = 256;
  i.for_recipient = "alice@example.test";
  i.timestamp = 1795703411;
  EXPECT_EQ(format_received(i),
            "Received: from client.example.net (unknown [192.0.2.7])\r\n"
            "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n"
            "\tby mx.example.test (tern) with ESMTPS id 1k15v3zp0jc000\r\n"
            "\tfor <alice@example.test>; Thu, 26 Nov 2026 14:30:11 +0000\r\n");
}

TEST(Received, HostileHeloCannotBreakTheHeader) {
  ReceivedInfo i;
  i.helo = "evil)\r\nX-Injected: 1 (";
  i.client_ip = "192.0.2.7";
  i.by_host = "mx";
  i.protocol = "SMTP";
  i.queue_id = "x";
  std::string h = format_received(i);
  EXPECT_EQ(h.find("X-Injected: 1"), std::string::npos);
  EXPECT_EQ(h.find("evil)"), std::string::npos);
  // Exactly two lines: from-clause and by-clause.
  EXPECT_EQ(std::count(h.begin(), h.end(), '\n'), 2);
}

}  // namespace
}  // namespace tern::server
