// SPDX-License-Identifier: Apache-2.0
#include "daemon/bus/validate.h"

#include <cstdint>

#include "policy/evaluate.h"

namespace daxpolicy::bus {

namespace {

// Length of the well-formed UTF-8 sequence at text[i], 0 when the byte there starts none.
size_t SequenceAt(std::string_view text, size_t i) {
  const auto c = static_cast<uint8_t>(text[i]);
  size_t len = 0;
  uint32_t cp = 0;
  if (c < 0x80) {
    return 1;
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
    return 0;
  }
  if (i + len > text.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<uint8_t>(text[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  // The shortest form only: overlong encodings are a classic way around path checks.
  static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLength[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool IsValidUtf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    size_t len = SequenceAt(text, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string EscapeForBus(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    size_t len = SequenceAt(text, i);
    if (len == 1 && text[i] == '\\') {
      out += "\\\\";
    } else if (len == 0 || text[i] == '\0') {
      const auto c = static_cast<uint8_t>(text[i]);
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
      len = 1;
    } else {
      out.append(text.substr(i, len));
    }
    i += len;
  }
  return out;
}

std::string UnescapeFromBus(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      if (text[i + 1] == '\\') {
        out += '\\';
        ++i;
        continue;
      }
      if (text[i + 1] == 'x' && i + 3 < text.size()) {
        int hi = HexValue(text[i + 2]), lo = HexValue(text[i + 3]);
        if (hi >= 0 && lo >= 0) {
          out += static_cast<char>(hi * 16 + lo);
          i += 3;
          continue;
        }
      }
    }
    out += text[i];
  }
  return out;
}

std::string NoSuchFileMessage(std::string_view path) {
  return "'" + std::string(path) + "': No such file or directory";
}

std::string QuoteArgument(std::string_view arg) {
  if (arg.size() <= kMaxQuotedBytes) return "'" + EscapeForBus(arg) + "'";
  return "'" + EscapeForBus(arg.substr(0, kMaxQuotedBytes)) + "'... (" +
         std::to_string(arg.size()) + " bytes)";
}

namespace {

std::optional<std::string> ProblemOf(std::string_view path, bool need_utf8) {
  if (path.empty()) return "the path is empty";
  if (path.size() > kMaxPathBytes) {
    return "the path is " + std::to_string(path.size()) + " bytes long, more than the " +
           std::to_string(kMaxPathBytes) + " allowed";
  }
  if (path.find('\0') != std::string_view::npos) return "the path contains a NUL byte";
  if (need_utf8 && !IsValidUtf8(path)) return "the path is not valid UTF-8";
  if (path.front() != '/') return "the path " + QuoteArgument(path) + " is not absolute";
  if (path.size() > 1 && path.back() == '/') {
    return "the path " + QuoteArgument(path) + " ends with '/'";
  }
  if (path.find("//") != std::string_view::npos) {
    return "the path " + QuoteArgument(path) + " is not normalized (it contains '//')";
  }
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view component = path.substr(start, end - start);
    if (component == "." || component == "..") {
      return "the path " + QuoteArgument(path) + " is not normalized (it contains a '" +
             std::string(component) + "' component)";
    }
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> PathProblem(std::string_view path) { return ProblemOf(path, true); }

std::optional<std::string> RawPathProblem(std::string_view path) { return ProblemOf(path, false); }

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
