// kvpool/status.h: the one error idiom of kvpool.
//
// Every fallible call returns a Status or a Result<T>. An OK Status carries no
// message and costs one byte plus an empty string. No exception crosses the
// public API. Codes are chosen by what the caller does next:
//   kNotFound         the thing is not there (a cache miss is not an error)
//   kInvalidArgument  the caller's input is wrong; the message names the field
//   kIOError          a device failed; retrying may help, the data is a miss
//   kCorruption       stored bytes failed their checksum; treated as a miss
//   kNoSpace          capacity is exhausted even after eviction
//   kBusy             a bounded queue is full; retry later
//   kUnsupported      the feature is not built in or not offered by the system
//   kAborted          the operation was cancelled (pool closing)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace kvpool {

enum class StatusCode : uint8_t {
  kOk = 0,
  kNotFound = 1,
  kInvalidArgument = 2,
  kIOError = 3,
  kCorruption = 4,
  kNoSpace = 5,
  kBusy = 6,
  kUnsupported = 7,
  kAborted = 8,
};

// Returns a stable lower-case name such as "invalid argument".
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return Status(); }
  static Status NotFound(std::string msg) { return {StatusCode::kNotFound, std::move(msg)}; }
  static Status InvalidArgument(std::string msg) {
    return {StatusCode::kInvalidArgument, std::move(msg)};
  }
  static Status IOError(std::string msg) { return {StatusCode::kIOError, std::move(msg)}; }
  static Status Corruption(std::string msg) { return {StatusCode::kCorruption, std::move(msg)}; }
  static Status NoSpace(std::string msg) { return {StatusCode::kNoSpace, std::move(msg)}; }
  static Status Busy(std::string msg) { return {StatusCode::kBusy, std::move(msg)}; }
  static Status Unsupported(std::string msg) { return {StatusCode::kUnsupported, std::move(msg)}; }
  static Status Aborted(std::string msg) { return {StatusCode::kAborted, std::move(msg)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "OK" or "<code name>: <message>".
  std::string ToString() const;

  // Returns a copy whose message is "<context>: <message>"; OK stays OK.
  Status WithContext(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

}  // namespace kvpool

// Returns the Status of `expr` from the enclosing function when it is not OK.
#define KVP_RETURN_IF_ERROR(expr)                    \
  do {                                               \
    ::kvpool::Status kvp_status_tmp_ = (expr);       \
    if (!kvp_status_tmp_.ok()) return kvp_status_tmp_; \
  } while (0)
