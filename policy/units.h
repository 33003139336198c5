// SPDX-License-Identifier: Apache-2.0
#pragma once

// Numbers with units, as they appear in policy files and `when` expressions.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace daxpolicy::policy {

inline constexpr int64_t kNanosPerSecond = 1'000'000'000;

enum class UnitKind { kNone, kSize, kDuration, kPercent, kRate };

struct Quantity {
  double value = 0;  // bytes, nanoseconds, percent or bytes/second
  UnitKind kind = UnitKind::kNone;
};

// "1MiB" -> 1048576 bytes, "10s" -> 1e10 ns, "80%" -> 80, "10MiB/s" -> rate, "0.8" -> plain.
// On failure returns nullopt and a message naming the problem.
std::optional<Quantity> ParseQuantity(std::string_view text, std::string* error);

// A duration such as "10m", "1h30m" or "250ms", in nanoseconds. Negative durations are errors.
std::optional<int64_t> ParseDuration(std::string_view text, std::string* error);

// A size such as "1GiB" or "4096" (bytes).
std::optional<uint64_t> ParseSize(std::string_view text, std::string* error);

// Human forms used by explain and the CLI: "1.5 GiB", "2m30s", "350ns".
std::string FormatSize(double bytes);
std::string FormatDuration(int64_t nanos);

}  // namespace daxpolicy::policy
