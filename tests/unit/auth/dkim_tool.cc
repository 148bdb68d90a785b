// dkim_tool: a small test-only command line front end to src/auth/dkim.h, used
// by the dkimpy interop test (tests/integration/test_dkim_interop.py) until
// the `tern dkim` subcommands exist. No network: keys come from a DNS map file
// with lines "NAME TXT text" (the rest of the line after "TXT " is the record).
//
//   dkim_tool sign   --key FILE --domain D --selector S [--canon relaxed/simple]
//                    [--timestamp T] MESSAGE...   (writes MESSAGE.signed)
//   dkim_tool verify --dns FILE [--now T] MESSAGE...
//                    (prints "MESSAGE status reason" per signature, one line
//                    each; exits 0 only when every message has a passing
//                    signature and no failing one)
//   dkim_tool keygen --type rsa|ed25519 [--bits N] --out PREFIX
//                    (writes PREFIX.pem, PREFIX.txt and, for ed25519, PREFIX.seed)
// Messages are read as they are; LF-only files are converted to CRLF.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "auth/dkim.h"
#include "base/strings.h"
#include "dns/fake_resolver.h"

namespace {

using namespace tern;
using namespace tern::auth;

bool read_file(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

bool write_file(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out << data;
  return static_cast<bool>(out);
}

std::string to_crlf(const std::string& s) {
  if (s.find("\r\n") != std::string::npos) return s;
  std::string out;
  for (char c : s) {
    if (c == '\n') out.push_back('\r');
    out.push_back(c);
  }
  return out;
}

int usage() {
  std::fprintf(stderr,
               "usage: dkim_tool sign --key FILE --domain D --selector S [--canon H/B] [--timestamp T] MSG...\n"
               "       dkim_tool verify --dns FILE [--now T] MSG...\n"
               "       dkim_tool keygen --type rsa|ed25519 [--bits N] --out PREFIX\n");
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

  if (cmd == "keygen") {
    auto type = opts["type"] == "ed25519" ? crypto::KeyType::kEd25519 : crypto::KeyType::kRsa;
    int bits = opts.count("bits") ? std::stoi(opts["bits"]) : 2048;
    auto key = dkim::keygen(type, bits);
    if (!key) {
      std::fprintf(stderr, "keygen: %s\n", key.error().text.c_str());
      return 1;
    }
    std::string prefix = opts["out"];
    write_file(prefix + ".pem", key->private_pem);
    write_file(prefix + ".txt", key->dns_txt + "\n");
    if (type == crypto::KeyType::kEd25519) write_file(prefix + ".seed", base64_encode(key->key.ed25519_seed()) + "\n");
    return 0;
  }

  if (cmd == "sign") {
    auto key = dkim::load_private_key(opts["key"]);
    if (!key) {
      std::fprintf(stderr, "sign: %s\n", key.error().text.c_str());
      return 1;
    }
    dkim::SignOptions so;
    so.domain = opts["domain"];
    so.selector = opts["selector"];
    so.key = *key;
    if (opts.count("canon")) {
      std::string c = opts["canon"];
      size_t slash = c.find('/');
      std::string h = c.substr(0, slash), b = slash == std::string::npos ? "simple" : c.substr(slash + 1);
      so.header_canon = h == "simple" ? dkim::Canon::kSimple : dkim::Canon::kRelaxed;
      so.body_canon = b == "simple" ? dkim::Canon::kSimple : dkim::Canon::kRelaxed;
    }
    if (opts.count("timestamp")) so.timestamp = std::stoll(opts["timestamp"]);
    int rc = 0;
    for (const std::string& f : files) {
      std::string text;
      if (!read_file(f, text)) {
        std::fprintf(stderr, "%s: cannot read\n", f.c_str());
        rc = 1;
        continue;
      }
      text = to_crlf(text);
      auto m = mail::Message::parse(text);
      if (!m) {
        std::fprintf(stderr, "%s: %s\n", f.c_str(), m.error().text.c_str());
        rc = 1;
        continue;
      }
      auto field = dkim::sign(*m, so);
      if (!field) {
        std::fprintf(stderr, "%s: %s\n", f.c_str(), field.error().text.c_str());
        rc = 1;
        continue;
      }
      write_file(f + ".signed", *field + text);
    }
    return rc;
  }

  if (cmd == "verify") {
    dns::FakeResolver resolver;
    std::string dns_text;
    if (!read_file(opts["dns"], dns_text)) {
      std::fprintf(stderr, "cannot read --dns file\n");
      return 1;
    }
    for (std::string_view line : split(dns_text, '\n')) {
      line = trim(line);
      size_t sp = line.find(" TXT ");
      if (line.empty() || line[0] == '#' || sp == std::string_view::npos) continue;
      resolver.add_txt(line.substr(0, sp), std::string(line.substr(sp + 5)));
    }
    dkim::VerifyOptions vo;
    if (opts.count("now")) vo.now = std::stoll(opts["now"]);
    int rc = 0;
    for (const std::string& f : files) {
      std::string text;
      if (!read_file(f, text)) {
        std::printf("%s permerror cannot-read\n", f.c_str());
        rc = 1;
        continue;
      }
      auto m = mail::Message::parse(to_crlf(text));
      if (!m) {
        std::printf("%s permerror %s\n", f.c_str(), m.error().text.c_str());
        rc = 1;
        continue;
      }
      boost::asio::io_context ctx;
      auto fut = boost::asio::co_spawn(ctx, dkim::verify(resolver, *m, vo), boost::asio::use_future);
      ctx.run();
      auto results = fut.get();
      bool pass = false, bad = false;
      for (const auto& r : results) {
        std::printf("%s %s d=%s s=%s a=%s %s\n", f.c_str(), dkim::outcome_name(r.status), r.domain.c_str(),
                    r.selector.c_str(), r.algorithm.c_str(), r.reason.c_str());
        if (r.status == dkim::Outcome::kPass) pass = true;
        else bad = true;
      }
      if (results.empty()) std::printf("%s none no-signature\n", f.c_str());
      if (!pass || bad) rc = 1;
    }
    return rc;
  }
  return usage();
}
