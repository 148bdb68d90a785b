// Structured logging: one line per event in key=value form on stderr, e.g.
//   2026-11-26T14:30:00.123Z info event=connect client=127.0.0.1 listener=mx
// Values containing spaces, quotes, '=' or control characters are quoted and
// escaped so that each event is exactly one parseable line. Writes are atomic
// per line (one write(2) call), so lines from several threads never interleave.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tern::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void set_min_level(Level level);
Level min_level();

// Builder for one log line; the line is written when the builder is destroyed.
class Line {
 public:
  Line(Level level, std::string_view event);
  ~Line();
  Line(const Line&) = delete;
  Line& operator=(const Line&) = delete;

  Line& kv(std::string_view key, std::string_view value);
  Line& kv(std::string_view key, const std::string& value) { return kv(key, std::string_view(value)); }
  Line& kv(std::string_view key, const char* value) { return kv(key, std::string_view(value)); }
  Line& kv(std::string_view key, int64_t value);
  Line& kv(std::string_view key, uint64_t value);
  Line& kv(std::string_view key, int value) { return kv(key, static_cast<int64_t>(value)); }
  Line& kv(std::string_view key, unsigned value) { return kv(key, static_cast<uint64_t>(value)); }
  Line& kv(std::string_view key, long long value) { return kv(key, static_cast<int64_t>(value)); }
  Line& kv(std::string_view key, unsigned long long value) { return kv(key, static_cast<uint64_t>(value)); }
  Line& kv(std::string_view key, double value);
  Line& kv(std::string_view key, bool value) { return kv(key, std::string_view(value ? "yes" : "no")); }

 private:
  bool enabled_;
  std::string buf_;
};

inline Line debug(std::string_view event) { return Line(Level::kDebug, event); }
inline Line info(std::string_view event) { return Line(Level::kInfo, event); }
inline Line warn(std::string_view event) { return Line(Level::kWarn, event); }
inline Line error(std::string_view event) { return Line(Level::kError, event); }

// Appends `value` to `out`, quoted and escaped if needed (exposed for tests).
void append_value(std::string& out, std::string_view value);

// While a Batch lives, the lines its thread logs are collected and written
// with one write(2) when it ends (or when they pass 32 KiB), instead of one
// write each. For loops that log a line per item and do not wait for
// anything a reader of the log would be waiting for (a delivery worker's
// batch). Nested batches join the outer one.
class Batch {
 public:
  Batch();
  ~Batch();
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

 private:
  bool outer_;
};

}  // namespace tern::log
