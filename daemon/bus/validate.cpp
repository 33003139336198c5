// SPDX-License-Identifier: Apache-2.0
#include "daemon/bus/validate.h"

#include <cstdint>

#include "policy/evaluate.h"

namespace daxpolicy::bus {

bool IsValidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<uint8_t>(text[i]);
    size_t len = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > text.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<uint8_t>(text[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // The shortest form only: overlong encodings are a classic way around path checks.
    static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

std::optional<std::string> PathProblem(std::string_view path) {
  if (path.empty()) return "the path is empty";
  if (path.size() > kMaxPathBytes) {
    return "the path is " + std::to_string(path.size()) + " bytes long, more than the " +
           std::to_string(kMaxPathBytes) + " allowed";
  }
  if (path.find('\0') != std::string_view::npos) return "the path contains a NUL byte";
  if (!IsValidUtf8(path)) return "the path is not valid UTF-8";
  if (path.front() != '/') return "the path '" + std::string(path) + "' is not absolute";
  if (path.size() > 1 && path.back() == '/') {
    return "the path '" + std::string(path) + "' ends with '/'";
  }
  if (path.find("//") != std::string_view::npos) {
    return "the path '" + std::string(path) + "' is not normalized (it contains '//')";
  }
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view component = path.substr(start, end - start);
    if (component == "." || component == "..") {
      return "the path '" + std::string(path) + "' is not normalized (it contains a '" +
             std::string(component) + "' component)";
    }
    start = end + 1;
  }
  return std::nullopt;
}

std::optional<policy::DaxState> HoldModeByName(std::string_view name) {
  if (name == "dax") return policy::DaxState::kDax;
  if (name == "page-cache") return policy::DaxState::kPageCache;
  return std::nullopt;
}

std::optional<policy::FileState> FileStateByName(std::string_view name) {
  for (auto s :
       {policy::FileState::kUnmanaged, policy::FileState::kInSync, policy::FileState::kPending,
        policy::FileState::kDeferred, policy::FileState::kObserved, policy::FileState::kBlocked}) {
    if (policy::FileStateName(s) == name) return s;
  }
  return std::nullopt;
}

std::string DesiredName(policy::DaxState desired) {
  if (desired == policy::DaxState::kUnknown) return "keep";
  return std::string(policy::DaxStateName(desired));
}

}  // namespace daxpolicy::bus
