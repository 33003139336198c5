// SPDX-License-Identifier: Apache-2.0
#pragma once

// Errors as values for failures that are expected in normal operation (a file
// vanished, EACCES, a bad policy). Impossible states are asserts instead.

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace daxpolicy {

struct Error {
  std::string message;
  int code = 0;  // errno when the failure came from a system call, else 0
};

// "what: strerror(err)", with code = err.
Error ErrnoError(int err, const std::string& what);

// A value or an error; E is Error unless a layer carries a richer refusal
// (plugins/driver's Blocked).
template <class T, class E = Error>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(E error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const E& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, E> v_;
};

template <class E>
class [[nodiscard]] Result<void, E> {
 public:
  Result() = default;
  Result(E error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit by design

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const E& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  E error_;
  bool ok_ = true;
};

}  // namespace daxpolicy
