// Queue id generation (see queue_id.h).
#include "queue/queue_id.h"

#include <chrono>

namespace tern::queue {
namespace {

constexpr std::string_view kAlphabet = "0123456789abcdefghjkmnpqrstvwxyz";  // 32 symbols, sorted
constexpr int kTimeChars = 11;  // 55 bits of microseconds: good until year 3111
constexpr int kSequenceChars = 3;
constexpr uint32_t kSequenceLimit = 1u << (5 * kSequenceChars);

void put_base32(std::string& out, uint64_t value, int chars) {
  for (int i = chars - 1; i >= 0; --i) out.push_back(kAlphabet[(value >> (5 * i)) & 31]);
}

int symbol_value(char c) {
  auto pos = kAlphabet.find(c);
  return pos == std::string_view::npos ? -1 : static_cast<int>(pos);
}

}  // namespace

std::string QueueIdGenerator::next(uint64_t now_micros) {
  uint64_t micros;
  uint32_t sequence;
  {
    std::lock_guard lock(mu_);
    if (now_micros > last_micros_) {
      last_micros_ = now_micros;
      sequence_ = 0;
    } else if (++sequence_ >= kSequenceLimit) {
      ++last_micros_;  // borrow from the future rather than repeat
      sequence_ = 0;
    }
    micros = last_micros_;
    sequence = sequence_;
  }
  std::string id;
  id.reserve(kQueueIdLength);
  put_base32(id, micros, kTimeChars);
  put_base32(id, sequence, kSequenceChars);
  return id;
}

std::string QueueIdGenerator::next() {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  return next(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(now).count()));
}

void QueueIdGenerator::observe(std::string_view id) {
  if (!is_queue_id(id)) return;
  uint64_t micros = 0;
  for (int i = 0; i < kTimeChars; ++i) micros = (micros << 5) | static_cast<uint64_t>(symbol_value(id[i]));
  uint32_t sequence = 0;
  for (int i = kTimeChars; i < kTimeChars + kSequenceChars; ++i) {
    sequence = (sequence << 5) | static_cast<uint32_t>(symbol_value(id[i]));
  }
  std::lock_guard lock(mu_);
  if (micros > last_micros_ || (micros == last_micros_ && sequence > sequence_)) {
    last_micros_ = micros;
    sequence_ = sequence;
  }
}

bool is_queue_id(std::string_view id) {
  if (id.size() != kQueueIdLength) return false;
  for (char c : id) {
    if (symbol_value(c) < 0) return false;
  }
  return true;
}

}  // namespace tern::queue
