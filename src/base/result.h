// Errors as values for the data path. An Error carries what an SMTP peer or an
// operator needs to see: a reply code (RFC 5321 §4.2), an enhanced status code
// (RFC 3463) and a human-readable text. Result<T> holds either a value or an
// Error; nothing on the data path throws. A 4xx code means "transient" (retry
// later), a 5xx code "permanent".
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace tern {

struct Error {
  int code = 451;        // SMTP basic reply code: 4xx transient, 5xx permanent
  std::string enhanced;  // RFC 3463 enhanced status code, e.g. "4.3.0"
  std::string text;      // human-readable explanation (no CR/LF)

  bool transient() const { return code >= 400 && code < 500; }
  bool permanent() const { return code >= 500; }
  // "451 4.3.0 text"
  std::string to_string() const;

  static Error temp(std::string enhanced, std::string text, int code = 451) {
    return Error{code, std::move(enhanced), std::move(text)};
  }
  static Error perm(std::string enhanced, std::string text, int code = 550) {
    return Error{code, std::move(enhanced), std::move(text)};
  }
  // Local/system failure: 451 4.3.0.
  static Error local(std::string text) { return temp("4.3.0", std::move(text)); }
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { assert(has_value()); return std::get<0>(v_); }
  const T& value() const& { assert(has_value()); return std::get<0>(v_); }
  T&& value() && { assert(has_value()); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { assert(!has_value()); return std::get<1>(v_); }
  Error& error() { assert(!has_value()); return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : e_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool has_value() const { return !e_.has_value(); }
  explicit operator bool() const { return has_value(); }
  const Error& error() const { assert(e_); return *e_; }
  Error& error() { assert(e_); return *e_; }

 private:
  std::optional<Error> e_;
};

using Status = Result<void>;
inline Status ok() { return {}; }

}  // namespace tern
