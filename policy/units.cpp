// SPDX-License-Identifier: Apache-2.0
#include "policy/units.h"

#include <cmath>
#include <cstdio>
#include <limits>

namespace daxpolicy::policy {

namespace {

struct Unit {
  std::string_view suffix;
  UnitKind kind;
  double factor;
};

// Longest suffixes first so "ms" is not read as "m" + garbage.
constexpr Unit kUnits[] = {
    {"KiB/s", UnitKind::kRate, 1024.0},
    {"MiB/s", UnitKind::kRate, 1024.0 * 1024},
    {"GiB/s", UnitKind::kRate, 1024.0 * 1024 * 1024},
    {"TiB/s", UnitKind::kRate, 1024.0 * 1024 * 1024 * 1024},
    {"B/s", UnitKind::kRate, 1.0},
    {"KiB", UnitKind::kSize, 1024.0},
    {"MiB", UnitKind::kSize, 1024.0 * 1024},
    {"GiB", UnitKind::kSize, 1024.0 * 1024 * 1024},
    {"TiB", UnitKind::kSize, 1024.0 * 1024 * 1024 * 1024},
    {"B", UnitKind::kSize, 1.0},
    {"ns", UnitKind::kDuration, 1.0},
    {"us", UnitKind::kDuration, 1e3},
    {"ms", UnitKind::kDuration, 1e6},
    {"s", UnitKind::kDuration, 1e9},
    {"m", UnitKind::kDuration, 60e9},
    {"h", UnitKind::kDuration, 3600e9},
    {"%", UnitKind::kPercent, 1.0},
};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Durations are kept in int64 nanoseconds and added to timestamps, so leave headroom.
constexpr double kMaxDurationNs = static_cast<double>(std::numeric_limits<int64_t>::max() / 2);
// 2^64: the first byte count a uint64_t cannot hold.
constexpr double kSizeLimit = 18446744073709551616.0;

// Reads "12", "0.5", "1e3" style numbers; returns characters consumed (0 if none).
size_t ReadNumber(std::string_view text, double* out) {
  size_t i = 0;
  while (i < text.size() && IsDigit(text[i])) ++i;
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && IsDigit(text[i])) ++i;
  }
  if (i == 0 || (i == 1 && text[0] == '.')) return 0;
  std::string digits(text.substr(0, i));
  *out = std::strtod(digits.c_str(), nullptr);
  return i;
}

const Unit* FindUnit(std::string_view rest) {
  for (const Unit& u : kUnits) {
    if (rest.substr(0, u.suffix.size()) == u.suffix) return &u;
  }
  return nullptr;
}

}  // namespace

std::optional<Quantity> ParseQuantity(std::string_view text, std::string* error) {
  if (text.empty()) {
    *error = "empty value";
    return std::nullopt;
  }
  double number = 0;
  size_t used = ReadNumber(text, &number);
  if (used == 0) {
    *error = "'" + std::string(text) + "' is not a number";
    return std::nullopt;
  }
  std::string_view rest = text.substr(used);
  if (rest.empty()) {
    if (!std::isfinite(number) || number >= kSizeLimit) {
      *error = "'" + std::string(text) + "' is too large";
      return std::nullopt;
    }
    return Quantity{number, UnitKind::kNone};
  }
  const Unit* unit = FindUnit(rest);
  if (unit == nullptr || unit->suffix.size() != rest.size()) {
    // Durations may be compound ("1h30m"); everything else has exactly one unit.
    if (unit != nullptr && unit->kind == UnitKind::kDuration) {
      auto nanos = ParseDuration(text, error);
      if (!nanos) return std::nullopt;
      return Quantity{static_cast<double>(*nanos), UnitKind::kDuration};
    }
    *error = "unknown unit '" + std::string(rest) + "' in '" + std::string(text) +
             "' (sizes: B KiB MiB GiB TiB; durations: ns us ms s m h; rates: B/s KiB/s MiB/s "
             "GiB/s; percent: %)";
    return std::nullopt;
  }
  double value = number * unit->factor;
  if (!std::isfinite(value) || (unit->kind == UnitKind::kDuration && value > kMaxDurationNs) ||
      (unit->kind != UnitKind::kDuration && value >= kSizeLimit)) {
    *error = "'" + std::string(text) + "' is too large";
    return std::nullopt;
  }
  return Quantity{value, unit->kind};
}

std::optional<int64_t> ParseDuration(std::string_view text, std::string* error) {
  if (text.empty()) {
    *error = "empty duration";
    return std::nullopt;
  }
  double total = 0;
  std::string_view rest = text;
  while (!rest.empty()) {
    double number = 0;
    size_t used = ReadNumber(rest, &number);
    if (used == 0) {
      *error = "'" + std::string(text) + "' is not a duration (examples: 500ms, 10s, 5m, 1h30m)";
      return std::nullopt;
    }
    rest.remove_prefix(used);
    const Unit* unit = FindUnit(rest);
    if (unit == nullptr || unit->kind != UnitKind::kDuration) {
      if (rest.empty()) {
        *error = "duration '" + std::string(text) + "' needs a unit (ns, us, ms, s, m or h)";
      } else {
        *error = "unknown duration unit in '" + std::string(text) + "' (use ns, us, ms, s, m or h)";
      }
      return std::nullopt;
    }
    total += number * unit->factor;
    rest.remove_prefix(unit->suffix.size());
  }
  if (!std::isfinite(total) || total > kMaxDurationNs) {
    *error = "duration '" + std::string(text) + "' is too long";
    return std::nullopt;
  }
  return static_cast<int64_t>(std::llround(total));
}

std::optional<uint64_t> ParseSize(std::string_view text, std::string* error) {
  auto q = ParseQuantity(text, error);
  if (!q) return std::nullopt;
  if (q->kind != UnitKind::kSize && q->kind != UnitKind::kNone) {
    *error = "'" + std::string(text) + "' is not a size (use B, KiB, MiB, GiB or TiB)";
    return std::nullopt;
  }
  // ParseQuantity already refused anything at or above 2^64; rounding cannot reach it.
  return static_cast<uint64_t>(std::round(q->value));
}

std::string FormatSize(double bytes) {
  static constexpr const char* kNames[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int i = 0;
  double v = bytes;
  while (std::fabs(v) >= 1024 && i < 5) {
    v /= 1024;
    ++i;
  }
  char buf[48];
  if (i == 0 || v == std::floor(v)) {
    std::snprintf(buf, sizeof buf, "%.0f %s", v, kNames[i]);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, kNames[i]);
  }
  return buf;
}

std::string FormatDuration(int64_t nanos) {
  char buf[64];
  if (nanos < 0) {
    // -INT64_MIN does not exist; one nanosecond less is indistinguishable in this format.
    return "-" + FormatDuration(nanos == std::numeric_limits<int64_t>::min()
                                    ? std::numeric_limits<int64_t>::max()
                                    : -nanos);
  }
  if (nanos < 1000) {
    std::snprintf(buf, sizeof buf, "%lldns", static_cast<long long>(nanos));
  } else if (nanos < 1'000'000) {
    std::snprintf(buf, sizeof buf, "%.3gus", nanos / 1e3);
  } else if (nanos < kNanosPerSecond) {
    std::snprintf(buf, sizeof buf, "%.3gms", nanos / 1e6);
  } else {
    long long s = nanos / kNanosPerSecond;
    long long h = s / 3600, m = (s % 3600) / 60, sec = s % 60;
    if (h > 0) {
      std::snprintf(buf, sizeof buf, "%lldh%lldm%llds", h, m, sec);
    } else if (m > 0) {
      std::snprintf(buf, sizeof buf, "%lldm%llds", m, sec);
    } else {
      std::snprintf(buf, sizeof buf, "%.3gs", nanos / 1e9);
    }
  }
  return buf;
}

}  // namespace daxpolicy::policy
