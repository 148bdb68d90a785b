// Queue administration command handler (see queue_commands.h).
#include "admin/queue_commands.h"

#include <ctime>
#include <string_view>

namespace tern::admin {
namespace {

std::string iso_time(int64_t t) {
  if (t <= 0) return "now";
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

const char* state_name(queue::Recipient::State s) {
  switch (s) {
    case queue::Recipient::State::kPending: return "pending";
    case queue::Recipient::State::kDelivered: return "delivered";
    case queue::Recipient::State::kFailed: return "failed";
  }
  return "?";
}

// A reply as one printable line inside double quotes: multi-line replies are
// joined with " | ", quotes and backslashes are escaped, other control
// characters become '?', and very long texts are cut (the full reply is in the spool and the logs).
std::string one_line(std::string_view text) {
  constexpr size_t kMaxShown = 400;
  std::string out;
  size_t i = 0;
  for (; i < text.size() && out.size() < kMaxShown; ++i) {
    char c = text[i];
    if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      if (i + 1 < text.size()) out += " | ";
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += '?';
    } else {
      out += c;
    }
  }
  if (i < text.size()) out += "...";
  return out;
}

}  // namespace

std::string format_envelope(const queue::Envelope& env) {
  std::string out = env.id + "  size=" + std::to_string(env.size) + "  arrived=" + iso_time(env.received_at) +
                    "  from=<" + env.mail_from + ">" + (env.held ? "  HELD" : "") +
                    (env.delay_warned ? "  delay-warned" : "") + "\n";
  for (const auto& r : env.recipients) {
    out += "    to=<" + r.address + ">";
    if (!r.original.empty() && r.original != r.address) out += " orig=<" + r.original + ">";
    out += " status=" + std::string(state_name(r.state)) + " attempts=" + std::to_string(r.attempts);
    if (r.state == queue::Recipient::State::kPending) out += " next=" + iso_time(r.next_attempt);
    if (!r.last_reply.empty()) out += " last=\"" + one_line(r.last_reply) + "\"";
    out += "\n";
  }
  return out;
}

namespace {
// DSN parameters (RFC 3461) as given at MAIL/RCPT, for `queue show`.
std::string notify_text(unsigned notify) {
  if (notify == 0) return "";
  if (notify & queue::kNotifyNever) return "NEVER";
  std::string out;
  auto add = [&](unsigned flag, const char* name) {
    if (notify & flag) out += (out.empty() ? "" : ",") + std::string(name);
  };
  add(queue::kNotifySuccess, "SUCCESS");
  add(queue::kNotifyFailure, "FAILURE");
  add(queue::kNotifyDelay, "DELAY");
  return out;
}

std::string format_dsn(const queue::Envelope& env) {
  std::string out;
  if (env.ret != 0 || !env.envid.empty()) {
    out += "    dsn:";
    if (env.ret != 0) out += std::string(" ret=") + (env.ret == 1 ? "FULL" : "HDRS");
    if (!env.envid.empty()) out += " envid=" + env.envid;
    out += "\n";
  }
  for (const auto& r : env.recipients) {
    std::string n = notify_text(r.notify);
    if (n.empty() && r.orcpt.empty()) continue;
    out += "    dsn: to=<" + r.address + ">";
    if (!n.empty()) out += " notify=" + n;
    if (!r.orcpt.empty()) out += " orcpt=" + r.orcpt_type + ";" + r.orcpt;
    out += "\n";
  }
  return out;
}
}  // namespace

std::string format_queue_list(const std::vector<queue::Envelope>& messages) {
  if (messages.empty()) return "queue is empty\n";
  std::string out;
  uint64_t bytes = 0;
  size_t rcpts = 0;
  for (const auto& m : messages) {
    out += format_envelope(m);
    bytes += m.size;
    rcpts += m.recipients.size();
  }
  out += "-- " + std::to_string(messages.size()) + " message(s), " + std::to_string(rcpts) + " recipient(s), " +
         std::to_string(bytes) + " bytes\n";
  return out;
}

CommandHandler make_queue_handler(queue::QueueManager& queue, queue::Spool& spool) {
  return [&queue, &spool](const std::string& cmd, const std::string& arg) -> Result<std::string> {
    auto need_id = [&]() -> Status {
      if (arg.empty()) return Error::perm("5.5.4", cmd + ": queue id required");
      return ok();
    };
    if (cmd == "list") return format_queue_list(queue.list());
    if (cmd == "flush") {
      queue.flush();
      return std::string("flushed: every pending recipient is due now\n");
    }
    if (cmd == "show") {
      if (auto s = need_id(); !s) return s.error();
      auto env = queue.get(arg);
      if (!env) return env.error();
      auto content = spool.read_message(*env);
      if (!content) return content.error();
      std::string out = format_envelope(*env);
      out += format_dsn(*env);
      out += "    client=" + env->client_ip + " helo=" + env->client_helo + " protocol=" + env->protocol +
             (env->auth_user.empty() ? "" : " auth=" + env->auth_user) + "\n";
      // What the inbound checks recorded (auth.*, policy.*, a milter's
      // quarantine reason); the header fields to prepend show in the content.
      for (const auto& [key, value] : env->attributes) {
        if (key == queue::kPrependAttribute) continue;
        out += "    " + key + "=" + one_line(value) + "\n";
      }
      out += "\n";
      out += *content;
      return out;
    }
    using Op = Status (queue::QueueManager::*)(const std::string&);
    Op op = nullptr;
    const char* done = "";
    if (cmd == "hold") {
      op = &queue::QueueManager::hold;
      done = "held";
    } else if (cmd == "release") {
      op = &queue::QueueManager::release;
      done = "released";
    } else if (cmd == "delete") {
      op = &queue::QueueManager::remove;
      done = "deleted";
    } else if (cmd == "retry") {
      op = &queue::QueueManager::retry;
      done = "scheduled for retry";
    }
    if (op == nullptr) return Error::perm("5.5.1", "unknown command: " + cmd);
    if (auto s = need_id(); !s) return s.error();
    if (auto s = (queue.*op)(arg); !s) return s.error();
    if (op == &queue::QueueManager::retry) {
      // A held message stays held: say so rather than let the operator wait.
      auto env = queue.get(arg);
      if (env && env->held) return arg + ": " + done + ", but it is held: release it to deliver\n";
    }
    return arg + ": " + done + "\n";
  };
}

}  // namespace tern::admin
