// SPDX-License-Identifier: Apache-2.0
#include "daemon/bus/validate.h"

#include <cstdint>

#include "plugins/utf8.h"
#include "policy/evaluate.h"

namespace daxpolicy::bus {

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool IsValidUtf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    size_t len = Utf8SequenceAt(text, i);
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
    size_t len = Utf8SequenceAt(text, i);
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
