// Fuzz target for the SMTP server engine's command side: arbitrary bytes are
// fed (split at a fuzzer-chosen point, to exercise buffering) into a session
// that accepts every decision. Invariants checked: every output line is
// CRLF-terminated and starts with a 3-digit code and ' ' or '-'; the engine
// never emits events once closed; decision events are answered before the
// next event arrives; input is bounded by what was fed.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "smtp/session.h"

namespace {

using tern::smtp::ServerSession;

void check(bool ok) {
  if (!ok) std::abort();
}

void check_output(const std::string& out) {
  size_t start = 0;
  while (start < out.size()) {
    size_t end = out.find("\r\n", start);
    check(end != std::string::npos);
    std::string_view line(out.data() + start, end - start);
    check(line.size() >= 4);
    for (int i = 0; i < 3; ++i) check(line[i] >= '0' && line[i] <= '9');
    check(line[0] >= '2' && line[0] <= '5');
    check(line[3] == ' ' || line[3] == '-');
    for (char c : line) check(c != '\r' && c != '\n');
    start = end + 2;
  }
}

void drive(ServerSession& s, std::string& all_out) {
  bool closed = false;
  while (auto ev = s.next()) {
    check(!closed);
    using namespace tern::smtp;
    if (std::holds_alternative<EvHelo>(*ev)) {
      s.accept_helo();
    } else if (std::holds_alternative<EvMail>(*ev) || std::holds_alternative<EvRcpt>(*ev) ||
               std::holds_alternative<EvDataStart>(*ev)) {
      s.accept();
    } else if (auto* end = std::get_if<EvDataEnd>(&*ev)) {
      s.reply(end->problem ? Reply::from_error(*end->problem) : Reply(250, "2.0.0", "Ok: queued"));
    } else if (auto* auth = std::get_if<EvAuth>(&*ev)) {
      if (auth->initial_response) {
        s.auth_success();
      } else {
        s.auth_challenge("challenge");
      }
    } else if (auto* resp = std::get_if<EvAuthResponse>(&*ev)) {
      if (resp->data.size() % 2) {
        s.auth_success();
      } else {
        s.auth_failure(Reply(535, "5.7.8", "Authentication credentials invalid"));
      }
    } else if (std::holds_alternative<EvStartTls>(*ev)) {
      s.tls_started();
    } else if (std::holds_alternative<EvQuit>(*ev) || std::holds_alternative<EvClose>(*ev)) {
      closed = true;
    }
  }
  all_out += s.output();
  s.output().clear();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  tern::smtp::SessionOptions opts;
  opts.hostname = "fuzz.test";
  opts.max_message_size = 4096;
  opts.max_recipients = 5;
  opts.max_errors = 50;
  opts.tls_available = true;
  opts.auth_enabled = true;
  if (!in.empty() && (in[0] & 1)) opts.tls_active = true;
  ServerSession s(opts);
  s.greet();
  std::string out;
  size_t split = in.empty() ? 0 : static_cast<unsigned char>(in[0]) % (in.size() + 1);
  s.feed(in.substr(0, split));
  drive(s, out);
  check(s.buffered_input() <= size);
  s.feed(in.substr(split));
  drive(s, out);
  check(s.buffered_input() <= size);
  check_output(out);
  return 0;
}
