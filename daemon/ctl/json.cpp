// SPDX-License-Identifier: Apache-2.0
#include "daemon/ctl/json.h"

#include <charconv>
#include <cmath>

#include "daemon/bus/validate.h"

namespace daxpolicy::ctl {

std::string JsonString(std::string_view text) {
  const bool utf8 = bus::IsValidUtf8(text);
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('"');
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xF]);
        } else if (c >= 0x80 && !utf8) {
          out += "\\ufffd";
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
  return out;
}

std::string JsonNumber(uint64_t value) { return std::to_string(value); }
std::string JsonNumber(int64_t value) { return std::to_string(value); }

std::string JsonNumber(double value) {
  if (!std::isfinite(value)) return "null";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  if (ec != std::errc()) return "null";
  return std::string(buf, end);
}

std::string JsonBool(bool value) { return value ? "true" : "false"; }

JsonObject& JsonObject::Add(std::string_view key, std::string json) {
  members_.emplace_back(std::string(key), std::move(json));
  return *this;
}

std::string JsonObject::str() const {
  std::string out = "{";
  for (size_t i = 0; i < members_.size(); ++i) {
    if (i > 0) out += ",";
    out += JsonString(members_[i].first);
    out += ":";
    out += members_[i].second;
  }
  out += "}";
  return out;
}

std::string JsonArray(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ",";
    out += items[i];
  }
  out += "]";
  return out;
}

}  // namespace daxpolicy::ctl
