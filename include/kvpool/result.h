// kvpool/result.h: Result<T> holds either a value or a non-OK Status.
#pragma once

#include <cassert>
#include <utility>
#include <variant>

#include <kvpool/status.h>

namespace kvpool {

template <typename T>
class [[nodiscard]] Result {
 public:
  // REQUIRES: !status.ok(); an OK status without a value is a programming error.
  Result(Status status) : data_(std::move(status)) {  // NOLINT: implicit by design
    assert(!std::get<Status>(data_).ok());
  }
  Result(T value) : data_(std::move(value)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(data_); }

  // The error, or OK when a value is held.
  Status status() const { return ok() ? Status::OK() : std::get<Status>(data_); }

  // REQUIRES: ok().
  T& value() & { return std::get<T>(data_); }
  const T& value() const& { return std::get<T>(data_); }
  T&& value() && { return std::get<T>(std::move(data_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace kvpool

#define KVP_CONCAT_INNER_(a, b) a##b
#define KVP_CONCAT_(a, b) KVP_CONCAT_INNER_(a, b)

// KVP_ASSIGN_OR_RETURN(auto x, Foo()); returns Foo()'s Status on error.
#define KVP_ASSIGN_OR_RETURN(lhs, expr) \
  KVP_ASSIGN_OR_RETURN_IMPL_(KVP_CONCAT_(kvp_result_, __LINE__), lhs, expr)
#define KVP_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()
