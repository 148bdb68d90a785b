// tern's command line: one executable with subcommands.
//   tern serve [--config FILE]            run the server in the foreground
//   tern config check --config FILE       validate a config file
//   tern account add|remove|list [ADDRESS] --config FILE
//   tern queue list|show|hold|release|delete|flush|retry [ID] --config FILE
// Exit status: 0 success, 1 failure (message on stderr), 2 usage error.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "admin/control.h"
#include "app/auth_commands.h"
#include "app/policy_commands.h"
#include "app/serve.h"
#include "base/fs.h"
#include "base/strings.h"
#include "config/config.h"
#include "policy/checks.h"
#include "users/account_store.h"

namespace {

using tern::config::Config;

struct Args {
  std::vector<std::string> positional;
  std::string config_path;
  bool has_config = false;
  std::vector<std::string> dns;                // --dns IP@PORT (repeatable): overrides [dns] nameservers
  std::map<std::string, std::string> options;  // other --name value pairs (auth/dkim/arc commands)
};

int usage() {
  std::fprintf(stderr,
               "usage: tern <command> [options]\n"
               "  serve [--config FILE]                        run the server (embedded default without --config)\n"
               "  config check --config FILE                   validate a configuration file\n"
               "  account add ADDRESS --config FILE            add an account (password on stdin)\n"
               "  account remove ADDRESS --config FILE         remove an account\n"
               "  account list --config FILE                   list accounts\n"
               "  queue list|flush --config FILE               show / flush the queue of the running server\n"
               "  queue show|hold|release|delete|retry ID --config FILE\n"
               "  auth check --message FILE --ip IP --helo NAME --mail-from ADDR [--authserv-id ID]\n"
               "  dkim keygen --algorithm rsa|ed25519 [--bits N] --selector S --domain D [--key FILE]\n"
               "  dkim sign --key FILE --domain D --selector S [--headers LIST] < message > signed\n"
               "  dkim verify < message\n"
               "  arc seal --key FILE --domain D --selector S [--authserv-id ID] < message > sealed\n"
               "  arc verify < message\n"
               "  policy explain --ip IP --helo NAME --mail-from ADDR --rcpt ADDR[,ADDR] [--message FILE]\n"
               "  version\n"
               "every command accepts --dns IP@PORT (repeatable) to override [dns] nameservers\n");
  return 2;
}

bool parse_args(int argc, char** argv, Args& out) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--config" || a == "-c") {
      if (i + 1 >= argc) return false;
      out.config_path = argv[++i];
      out.has_config = true;
    } else if (a.rfind("--config=", 0) == 0) {
      out.config_path = a.substr(9);
      out.has_config = true;
    } else if (a == "--dns") {
      if (i + 1 >= argc) return false;
      if (!tern::config::valid_nameserver(argv[i + 1])) {
        std::fprintf(stderr, "tern: --dns %s: expected IP or IP@PORT\n", argv[i + 1]);
        return false;
      }
      out.dns.push_back(argv[++i]);
    } else if (a.rfind("--", 0) == 0 && a.size() > 2) {
      // --name value, or --name=value; checked by the command that uses it.
      auto eq = a.find('=');
      if (eq != std::string::npos) {
        out.options[a.substr(2, eq - 2)] = a.substr(eq + 1);
      } else {
        if (i + 1 >= argc) {
          std::fprintf(stderr, "tern: option %s needs a value\n", a.c_str());
          return false;
        }
        out.options[a.substr(2)] = argv[++i];
      }
    } else {
      out.positional.push_back(a);
    }
  }
  return true;
}

tern::Result<Config> load_config(const Args& args) {
  auto cfg = args.has_config ? tern::config::load_file(args.config_path) : tern::config::embedded_default();
  if (cfg && !args.dns.empty()) cfg->dns.nameservers = args.dns;
  return cfg;
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "tern: %s\n", msg.c_str());
  return 1;
}

int cmd_account(const Args& args, const Config& cfg) {
  const auto& p = args.positional;
  if (p.size() < 2) return usage();
  const std::string& file = cfg.accounts.file;
  if (p[1] == "list" && p.size() == 2) {
    auto list = tern::users::AccountStore::list(file);
    if (!list) return fail(list.error().text);
    for (const auto& a : *list) std::printf("%s\n", a.c_str());
    return 0;
  }
  if (p.size() != 3) return usage();
  if (p[1] == "add") {
    std::string password;
    if (!std::getline(std::cin, password)) return fail("no password on standard input");
    if (!password.empty() && password.back() == '\r') password.pop_back();
    // A fresh install has no data directory yet: create the file's folder.
    if (auto d = tern::fs::make_dirs(tern::fs::dirname(file), 0750); !d) return fail(d.error().text);
    auto s = tern::users::AccountStore::add(file, p[2], password);
    if (!s) return fail(s.error().text);
    std::printf("account %s added to %s\n", p[2].c_str(), file.c_str());
    return 0;
  }
  if (p[1] == "remove") {
    auto s = tern::users::AccountStore::remove(file, p[2]);
    if (!s) return fail(s.error().text);
    std::printf("account %s removed from %s\n", p[2].c_str(), file.c_str());
    return 0;
  }
  return usage();
}

int cmd_queue(const Args& args, const Config& cfg) {
  const auto& p = args.positional;
  if (p.size() < 2) return usage();
  const std::string& op = p[1];
  bool needs_id = op == "show" || op == "hold" || op == "release" || op == "delete" || op == "retry";
  bool no_id = op == "list" || op == "flush";
  if (!(needs_id && p.size() == 3) && !(no_id && p.size() == 2)) return usage();
  auto r = tern::admin::control_request(cfg.server.control_socket, op, needs_id ? p[2] : std::string());
  if (!r) return fail(r.error().text);
  std::fwrite(r->data(), 1, r->size(), stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!parse_args(argc, argv, args) || args.positional.empty()) return usage();
  const std::string& cmd = args.positional[0];
  if (cmd == "version" || cmd == "--version") {
    std::printf("tern 0.1.0\n");
    return 0;
  }
  if (cmd == "config") {
    if (args.positional.size() != 2 || args.positional[1] != "check" || !args.has_config) return usage();
    auto cfg = tern::config::load_file(args.config_path);
    if (!cfg) {
      std::fprintf(stderr, "%s\n", cfg.error().text.c_str());
      return 1;
    }
    // The [policy] access maps are parsed as `tern serve` would (errors name
    // the map file and line); the greylist file is left alone (serve creates it).
    if (auto maps = tern::policy::load_access_maps(cfg->policy); !maps) {
      std::fprintf(stderr, "%s: %s\n", args.config_path.c_str(), maps.error().text.c_str());
      return 1;
    }
    std::printf("%s: ok\n", args.config_path.c_str());
    return 0;
  }
  auto cfg = load_config(args);
  if (!cfg) {
    std::fprintf(stderr, "%s\n", cfg.error().text.c_str());
    return 1;
  }
  if (cmd == "serve") {
    if (args.positional.size() != 1) return usage();
    return tern::app::serve(*cfg);
  }
  bool auth_group = cmd == "auth" || cmd == "dkim" || cmd == "arc" || cmd == "policy";
  if (!auth_group && !args.options.empty()) {
    std::fprintf(stderr, "tern: unknown option --%s\n", args.options.begin()->first.c_str());
    return 2;
  }
  if (cmd == "policy") return tern::app::policy_command(args.positional, args.options, *cfg);
  if (auth_group) return tern::app::auth_command(args.positional, args.options, *cfg);
  if (cmd == "account") return cmd_account(args, *cfg);
  if (cmd == "queue") return cmd_queue(args, *cfg);
  return usage();
}
