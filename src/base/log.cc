// Implementation of the key=value logger (see log.h).
#include "base/log.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace tern::log {
namespace {

std::atomic<int> g_min_level{static_cast<int>(Level::kInfo)};

const char* level_name(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

bool needs_quoting(std::string_view v) {
  if (v.empty()) return true;
  for (unsigned char c : v) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return true;
  }
  return false;
}

void write_all(const std::string& s) {
  const char* p = s.data();
  size_t left = s.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

// Lines collected by the thread's active Batch (see log.h).
struct ThreadBatch {
  bool active = false;
  std::string lines;
};
thread_local ThreadBatch t_batch;
constexpr size_t kBatchFlushBytes = 32 * 1024;

}  // namespace

Batch::Batch() : outer_(!t_batch.active) { t_batch.active = true; }

Batch::~Batch() {
  if (!outer_) return;
  t_batch.active = false;
  if (!t_batch.lines.empty()) write_all(t_batch.lines);
  t_batch.lines.clear();
  if (t_batch.lines.capacity() > 4 * kBatchFlushBytes) t_batch.lines.shrink_to_fit();
}

void set_min_level(Level level) { g_min_level.store(static_cast<int>(level)); }
Level min_level() { return static_cast<Level>(g_min_level.load()); }

void append_value(std::string& out, std::string_view value) {
  if (!needs_quoting(value)) {
    out.append(value);
    return;
  }
  out.push_back('"');
  for (unsigned char c : value) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char hex[8];
          std::snprintf(hex, sizeof hex, "\\x%02x", c);
          out += hex;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

Line::Line(Level level, std::string_view event)
    : enabled_(static_cast<int>(level) >= g_min_level.load(std::memory_order_relaxed)) {
  if (!enabled_) return;
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char ts[40];
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  buf_.reserve(160);
  buf_ += ts;
  buf_ += ' ';
  buf_ += level_name(level);
  buf_ += " event=";
  append_value(buf_, event);
}

Line::~Line() {
  if (!enabled_) return;
  buf_.push_back('\n');
  if (t_batch.active) {
    t_batch.lines += buf_;
    if (t_batch.lines.size() >= kBatchFlushBytes) {
      write_all(t_batch.lines);
      t_batch.lines.clear();
    }
    return;
  }
  write_all(buf_);
}

Line& Line::kv(std::string_view key, std::string_view value) {
  if (!enabled_) return *this;
  buf_.push_back(' ');
  buf_.append(key);
  buf_.push_back('=');
  append_value(buf_, value);
  return *this;
}

Line& Line::kv(std::string_view key, int64_t value) { return kv(key, std::string_view(std::to_string(value))); }
Line& Line::kv(std::string_view key, uint64_t value) { return kv(key, std::string_view(std::to_string(value))); }
Line& Line::kv(std::string_view key, double value) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", value);
  return kv(key, std::string_view(b));
}

}  // namespace tern::log
