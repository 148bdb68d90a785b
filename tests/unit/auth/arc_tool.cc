// arc_tool: a small test-only command line front end to src/auth/arc.h for
// the dkimpy interop test (tests/integration/test_arc_interop.py), until the
// lead exposes `tern arc seal|verify`. No network: keys come from a DNS map
// file with lines "NAME TXT text" (the same format as dkim_tool).
//
//   arc_tool seal   --dns FILE --key FILE --domain D --selector S --authserv-id ID
//                   [--timestamp T] MESSAGE      (writes MESSAGE.sealed: the new
//                   ARC set prepended; the existing chain is validated first
//                   to choose cv=, and the AAR copies the A-R fields of ID)
//   arc_tool verify --dns FILE MESSAGE...        (prints "MESSAGE cv oldest-pass
//                   reason" per message; exits 0 only when every chain passes)
// LF-only message files are converted to CRLF.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "auth/arc.h"
#include "auth/dkim.h"
#include "base/strings.h"
#include "dns/fake_resolver.h"
#include "test_support.h"

namespace {

using tern::testing::run_sync;
using tern::testing::to_crlf;

using namespace tern;
using namespace tern::auth;

bool read_whole(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

bool load_dns(const std::string& path, dns::FakeResolver& resolver) {
  std::string text;
  if (!read_whole(path, text)) return false;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t sp = line.find(" TXT ");
    if (sp == std::string::npos) continue;
    resolver.add_txt(line.substr(0, sp), line.substr(sp + 5));
  }
  return true;
}

int usage() {
  std::fprintf(stderr,
               "usage: arc_tool seal --dns F --key F --domain D --selector S --authserv-id ID [--timestamp T] MSG\n"
               "       arc_tool verify --dns F MSG...\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  std::string cmd = argv[1];
  std::map<std::string, std::string> opts;
  std::vector<std::string> files;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) == 0 && i + 1 < argc) {
      opts[a.substr(2)] = argv[++i];
    } else {
      files.push_back(a);
    }
  }
  dns::FakeResolver resolver;
  if (!opts.count("dns") || !load_dns(opts["dns"], resolver)) {
    std::fprintf(stderr, "arc_tool: cannot read --dns map\n");
    return 2;
  }
  if (cmd == "verify") {
    bool all_pass = !files.empty();
    for (const std::string& f : files) {
      std::string text;
      if (!read_whole(f, text)) return 2;
      auto msg = mail::Message::parse(to_crlf(text));
      if (!msg) {
        std::printf("%s fail 0 unparseable\n", f.c_str());
        all_pass = false;
        continue;
      }
      arc::ArcResult r = run_sync(arc::verify(resolver, *msg));
      std::printf("%s %s %u %s\n", f.c_str(), arc::chain_status_name(r.status), r.oldest_pass, r.reason.c_str());
      all_pass = all_pass && r.status == arc::ChainStatus::kPass;
    }
    return all_pass ? 0 : 1;
  }
  if (cmd == "seal") {
    if (files.size() != 1 || !opts.count("key") || !opts.count("domain") || !opts.count("selector") ||
        !opts.count("authserv-id"))
      return usage();
    auto key = dkim::load_private_key(opts["key"]);
    if (!key) {
      std::fprintf(stderr, "arc_tool: %s\n", key.error().text.c_str());
      return 2;
    }
    std::string text;
    if (!read_whole(files[0], text)) return 2;
    auto msg = mail::Message::parse(to_crlf(text));
    if (!msg) {
      std::fprintf(stderr, "arc_tool: %s\n", msg.error().text.c_str());
      return 1;
    }
    arc::ArcResult chain = run_sync(arc::verify(resolver, *msg));
    arc::SealOptions so;
    so.domain = opts["domain"];
    so.selector = opts["selector"];
    so.key = *key;
    if (opts.count("timestamp")) so.timestamp = std::stoll(opts["timestamp"]);
    std::string payload = arc::consolidate_auth_results(*msg, opts["authserv-id"]);
    auto sealed = arc::seal(*msg, chain.status, payload, so);
    if (!sealed) {
      std::fprintf(stderr, "arc_tool: %s\n", sealed.error().text.c_str());
      return 1;
    }
    std::ofstream out(files[0] + ".sealed", std::ios::binary);
    out << *sealed << msg->text();
    return out ? 0 : 2;
  }
  return usage();
}
