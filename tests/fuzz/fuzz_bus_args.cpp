// SPDX-License-Identifier: Apache-2.0
// Fuzzes the checks of D-Bus arguments (daemon/bus/validate) and the JSON
// escaping daxpolicyctl applies to what comes back. The input is split at the
// first two 0xff bytes into a path, a mode/state name and a reason, as a Hold or
// ListFiles call would carry them.
//
// Properties checked: an accepted path is absolute, normalized, NUL-free, valid
// UTF-8 and bounded; every refusal message is valid UTF-8 (it goes on the bus
// as a D-Bus string) and non-empty; the UTF-8 check agrees with an independent
// decoder; names map to values and back; JSON output is a valid UTF-8 string
// literal with no raw control characters; what EscapeForBus and QuoteArgument
// send is valid UTF-8 without NUL, and UnescapeFromBus gives back the bytes that
// were escaped; RawPathProblem (the check of unescaped names) accepts exactly
// what PathProblem accepts except for UTF-8.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "daemon/bus/validate.h"
#include "daemon/ctl/json.h"

using namespace daxpolicy;

namespace {

// An independent UTF-8 check (RFC 3629 table 3-7, byte ranges per position).
bool ReferenceUtf8(std::string_view s) {
  size_t i = 0;
  auto in = [&](size_t k, unsigned lo, unsigned hi) {
    if (i + k >= s.size()) return false;
    unsigned c = static_cast<unsigned char>(s[i + k]);
    return c >= lo && c <= hi;
  };
  while (i < s.size()) {
    unsigned c = static_cast<unsigned char>(s[i]);
    if (c <= 0x7f) {
      i += 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
      if (!in(1, 0x80, 0xbf)) return false;
      i += 2;
    } else if (c == 0xe0) {
      if (!in(1, 0xa0, 0xbf) || !in(2, 0x80, 0xbf)) return false;
      i += 3;
    } else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) {
      if (!in(1, 0x80, 0xbf) || !in(2, 0x80, 0xbf)) return false;
      i += 3;
    } else if (c == 0xed) {
      if (!in(1, 0x80, 0x9f) || !in(2, 0x80, 0xbf)) return false;
      i += 3;
    } else if (c == 0xf0) {
      if (!in(1, 0x90, 0xbf) || !in(2, 0x80, 0xbf) || !in(3, 0x80, 0xbf)) return false;
      i += 4;
    } else if (c >= 0xf1 && c <= 0xf3) {
      if (!in(1, 0x80, 0xbf) || !in(2, 0x80, 0xbf) || !in(3, 0x80, 0xbf)) return false;
      i += 4;
    } else if (c == 0xf4) {
      if (!in(1, 0x80, 0x8f) || !in(2, 0x80, 0xbf) || !in(3, 0x80, 0xbf)) return false;
      i += 4;
    } else {
      return false;
    }
  }
  return true;
}

// Absolute, no empty, "." or ".." component, no trailing '/' (except "/" itself).
bool ReferenceNormalized(std::string_view p) {
  if (p.empty() || p[0] != '/') return false;
  if (p == "/") return true;
  size_t start = 1;
  for (;;) {
    size_t end = p.find('/', start);
    std::string_view c = p.substr(start, end == std::string_view::npos ? p.npos : end - start);
    if (c.empty() || c == "." || c == "..") return false;
    if (end == std::string_view::npos) return true;
    start = end + 1;
  }
}

void CheckMessage(const std::string& m) {
  if (m.empty() || !ReferenceUtf8(m)) __builtin_trap();
}

void CheckJson(std::string_view text) {
  const std::string j = ctl::JsonString(text);
  if (j.size() < 2 || j.front() != '"' || j.back() != '"' || !ReferenceUtf8(j)) __builtin_trap();
  for (size_t i = 1; i + 1 < j.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(j[i]);
    if (c < 0x20) __builtin_trap();
    if (c == '\\') {
      ++i;  // the escaped character
      continue;
    }
    if (c == '"') __builtin_trap();  // an unescaped quote ends the string early
  }
  // Valid UTF-8 without quotes, backslashes or controls passes through unchanged.
  if (ReferenceUtf8(text) && text.find_first_of("\"\\") == std::string_view::npos) {
    bool plain = true;
    for (unsigned char c : text) plain &= c >= 0x20 && c != 0x7f;
    if (plain && j.substr(1, j.size() - 2) != text) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 3 * bus::kMaxPathBytes) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t a = in.find('\xff');
  const size_t b = a == std::string_view::npos ? a : in.find('\xff', a + 1);
  const std::string_view path = in.substr(0, a);
  const std::string_view name =
      a == std::string_view::npos ? std::string_view() : in.substr(a + 1, b - a - 1);
  const std::string_view reason =
      b == std::string_view::npos ? std::string_view() : in.substr(b + 1);

  if (bus::IsValidUtf8(path) != ReferenceUtf8(path)) __builtin_trap();
  if (bus::IsValidUtf8(reason) != ReferenceUtf8(reason)) __builtin_trap();

  if (auto problem = bus::PathProblem(path)) {
    CheckMessage(*problem);
  } else {
    if (path.size() > bus::kMaxPathBytes || path.find('\0') != std::string_view::npos ||
        !ReferenceUtf8(path) || !ReferenceNormalized(path)) {
      __builtin_trap();
    }
  }
  // A refused path must be refused for a reason the reference agrees with.
  if (bus::PathProblem(path) && path.size() <= bus::kMaxPathBytes &&
      path.find('\0') == std::string_view::npos && ReferenceUtf8(path) &&
      ReferenceNormalized(path)) {
    __builtin_trap();
  }

  if (auto mode = bus::HoldModeByName(name)) {
    if (name != policy::DaxStateName(*mode) || *mode == policy::DaxState::kUnknown) {
      __builtin_trap();
    }
    if (bus::DesiredName(*mode) != name) __builtin_trap();
  }
  if (auto state = bus::FileStateByName(name)) {
    if (policy::FileStateName(*state) != name) __builtin_trap();
  }
  for (std::string_view text : {path, reason}) {
    const std::string sent = bus::EscapeForBus(text);
    if (!ReferenceUtf8(sent) || sent.find('\0') != std::string::npos) __builtin_trap();
    if (bus::UnescapeFromBus(sent) != text) __builtin_trap();
    const std::string quoted = bus::QuoteArgument(text);
    if (!ReferenceUtf8(quoted) || quoted.find('\0') != std::string::npos) __builtin_trap();
  }
  const auto raw_problem = bus::RawPathProblem(path);
  if (raw_problem) CheckMessage(*raw_problem);
  const bool raw_ok = path.size() <= bus::kMaxPathBytes &&
                      path.find('\0') == std::string_view::npos && ReferenceNormalized(path);
  if (raw_problem.has_value() == raw_ok) __builtin_trap();
  if (ReferenceUtf8(path) && raw_problem != bus::PathProblem(path)) __builtin_trap();

  CheckJson(path);
  CheckJson(reason);
  return 0;
}
