// Queue ids: the names of spool files and the handle operators and logs use
// for a message. 14 characters from a lowercase base32 alphabet without
// look-alikes (filename- and shell-safe): 11 characters of microseconds since
// the Unix epoch followed by 3 characters of a sequence number, so ids sort by
// arrival time. A generator never returns the same id twice (it advances its
// own clock when the system clock stalls or steps back); across restarts the
// spool seeds it with the newest id on disk and creates files with O_EXCL.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace tern::queue {

inline constexpr size_t kQueueIdLength = 14;

class QueueIdGenerator {
 public:
  // Next id for the given wall-clock time in microseconds.
  std::string next(uint64_t now_micros);
  // Next id for the current time.
  std::string next();
  // Guarantees later ids sort after `id` (used with the newest id on disk).
  void observe(std::string_view id);

 private:
  std::mutex mu_;
  uint64_t last_micros_ = 0;
  uint32_t sequence_ = 0;
};

// True for strings that look like queue ids (right length and alphabet).
// Used to reject path tricks in admin input and foreign files in the spool.
bool is_queue_id(std::string_view id);

}  // namespace tern::queue
