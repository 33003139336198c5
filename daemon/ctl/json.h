// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The little JSON daxpolicyctl prints with --json: strings escaped per RFC 8259, numbers,
/// and objects/arrays assembled from already-encoded values.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace daxpolicy::ctl {

/// `text` as a quoted JSON string. Quote, backslash and control characters are escaped;
/// valid UTF-8 passes through; bytes of invalid UTF-8 become U+FFFD.
std::string JsonString(std::string_view text);
std::string JsonNumber(uint64_t value);
std::string JsonNumber(int64_t value);
/// Shortest representation that reads back exactly; NaN and infinities become null.
std::string JsonNumber(double value);
std::string JsonBool(bool value);

/// An object whose members keep their insertion order.
class JsonObject {
 public:
  /// `json` must already be encoded (JsonString, JsonNumber, another object...).
  JsonObject& Add(std::string_view key, std::string json);
  std::string str() const;

 private:
  std::vector<std::pair<std::string, std::string>> members_;
};

/// `[a,b,...]` from already-encoded values.
std::string JsonArray(const std::vector<std::string>& items);

}  // namespace daxpolicy::ctl
