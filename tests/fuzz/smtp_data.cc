// Fuzz target for message content: a transaction is opened, then the input
// is sent as DATA content (first byte even) or as BDAT chunks (odd), in
// fuzzer-chosen slices. Invariants checked: total EvData bytes never exceed
// the size limit; DATA content never contains a bare LF or bare CR; exactly
// one EvDataEnd per accepted DATA transaction at most; output stays well-formed.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "smtp/session.h"

namespace {

using namespace tern::smtp;

void check(bool ok) {
  if (!ok) std::abort();
}

struct Sink {
  std::string content;  // current message
  size_t ends = 0;
  bool bdat = false;
};

void drive(ServerSession& s, Sink& sink, uint64_t max_size) {
  while (auto ev = s.next()) {
    if (std::holds_alternative<EvHelo>(*ev)) {
      s.accept_helo();
    } else if (std::holds_alternative<EvMail>(*ev) || std::holds_alternative<EvRcpt>(*ev)) {
      s.accept();
    } else if (auto* st = std::get_if<EvDataStart>(&*ev)) {
      sink.bdat = st->bdat;
      sink.content.clear();
      s.accept();
    } else if (auto* d = std::get_if<EvData>(&*ev)) {
      sink.content += d->bytes;
      check(sink.content.size() <= max_size);
    } else if (auto* end = std::get_if<EvDataEnd>(&*ev)) {
      ++sink.ends;
      if (!sink.bdat) {
        const std::string& c = sink.content;
        for (size_t i = 0; i < c.size(); ++i) {
          if (c[i] == '\n') check(i > 0 && c[i - 1] == '\r');
          if (c[i] == '\r') check(i + 1 < c.size() && c[i + 1] == '\n');
        }
        // A message without a problem is a sequence of whole lines.
        if (!end->problem && !c.empty()) check(c.size() >= 2 && c.substr(c.size() - 2) == "\r\n");
      }
      sink.content.clear();
      s.reply(end->problem ? Reply::from_error(*end->problem) : Reply(250, "2.0.0", "Ok"));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  bool use_bdat = data[0] & 1;
  size_t slice = 1 + (data[0] >> 1);  // 1..128 bytes per feed
  SessionOptions opts;
  opts.hostname = "fuzz.test";
  opts.max_message_size = 2048;
  opts.max_text_line = 200;
  ServerSession s(opts);
  Sink sink;
  s.feed("EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n");
  drive(s, sink, opts.max_message_size);
  if (use_bdat) {
    // Cut the input into chunks whose sizes come from the data itself.
    size_t pos = 0;
    while (pos < in.size()) {
      size_t n = std::min<size_t>(static_cast<unsigned char>(in[pos]) * 4, in.size() - pos - 1);
      bool last = pos + 1 + n >= in.size();
      std::string cmd = "BDAT " + std::to_string(n) + (last ? " LAST" : "") + "\r\n";
      s.feed(cmd);
      s.feed(in.substr(pos + 1, n));
      drive(s, sink, opts.max_message_size);
      pos += 1 + n;
    }
  } else {
    s.feed("DATA\r\n");
    drive(s, sink, opts.max_message_size);
    for (size_t pos = 0; pos < in.size(); pos += slice) {
      s.feed(in.substr(pos, slice));
      drive(s, sink, opts.max_message_size);
    }
    s.feed("\r\n.\r\n");
    drive(s, sink, opts.max_message_size);
  }
  check(sink.ends <= 1 || use_bdat);
  const std::string& out = s.output();
  check(out.empty() || out.substr(out.size() - 2) == "\r\n");
  return 0;
}
