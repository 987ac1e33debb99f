#pragma once
// Result<T>: the return type of every operation that can fail at run time for expected
// reasons (malformed ticket, schema violation, provider 429, Redis hiccup). Nothing is thrown
// per message; the caller turns the error into done, retry or dead-letter.

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace ticketflow {

enum class ErrorCode {
  kInvalidArgument,  // caller passed something unusable
  kMalformed,        // bytes are not the expected format (not JSON, bad UTF-8, ...)
  kSchemaViolation,  // well-formed but breaks the contract in schemas/
  kNotFound,
  kUnavailable,  // dependency down or unreachable; retriable
  kTimeout,      // retriable
  kRateLimited,  // retriable after a wait
  kBudgetExhausted,
  kIo,
  kInternal,
};

const char* errorCodeName(ErrorCode code);

struct Error {
  Error() = default;
  Error(ErrorCode code_, std::string message_, bool retriable_ = false, std::int64_t retry_after_ms_ = -1)
      : code(code_), message(std::move(message_)), retriable(retriable_), retry_after_ms(retry_after_ms_) {}

  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  bool retriable = false;
  std::int64_t retry_after_ms = -1;  // a server's hint (retry-after), -1 when none
  // Set when the failure is a dependency being down (redis, provider, kafka, sink, budget), not
  // the message: the stage engine then holds the message without using an attempt, pauses its
  // partition and probes until the dependency is back. Empty for every other failure.
  std::string outage;

  static Error invalidArgument(std::string msg) { return {ErrorCode::kInvalidArgument, std::move(msg), false, -1}; }
  static Error malformed(std::string msg) { return {ErrorCode::kMalformed, std::move(msg), false, -1}; }
  static Error schema(std::string msg) { return {ErrorCode::kSchemaViolation, std::move(msg), false, -1}; }
  static Error unavailable(std::string msg) { return {ErrorCode::kUnavailable, std::move(msg), true, -1}; }
  static Error timeout(std::string msg) { return {ErrorCode::kTimeout, std::move(msg), true, -1}; }
  static Error internal(std::string msg) { return {ErrorCode::kInternal, std::move(msg), false, -1}; }
  static Error io(std::string msg) { return {ErrorCode::kIo, std::move(msg), false, -1}; }
  static Error rateLimited(std::string msg, std::int64_t retry_after_ms) {
    return {ErrorCode::kRateLimited, std::move(msg), true, retry_after_ms};
  }
  // `cause` names the dependency; the error is retriable and keeps its code and hint.
  Error asOutage(std::string cause) && {
    outage = std::move(cause);
    retriable = true;
    return std::move(*this);
  }
  Error asOutage(std::string cause) const& { return Error(*this).asOutage(std::move(cause)); }
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : state_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace ticketflow
