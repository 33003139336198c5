// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The variables a `when` expression can read, their kinds and where they come from.

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "policy/snapshot.h"

namespace daxpolicy::policy {

enum class Var : uint8_t {
  kFileSize,
  kFileAge,
  kFileCacheResidentRatio,
  kFileCachePages,
  kFileRecentlyEvictedRatio,
  kFileDirtyRatio,
  kFileHolders,
  kFileCacheHitRatio,
  kFileReadBytesRate,
  kFileReuse,
  kFileWriteBytesRate,
  kSystemCacheHitRatio,
  kMediaReadLatencyNs,
  kMediaWriteLatencyNs,
  kMediaLatencyRatio,
  kMediaHealth,
  kMediaNumaNode,
  kSystemMemPressure,
  kSystemPageCacheRatio,
  kCount,
};

// What a value means, which decides the literals it may be compared with.
enum class ValueKind : uint8_t {
  kSize,      // bytes: plain number or B/KiB/MiB/GiB/TiB
  kDuration,  // nanoseconds: needs a duration unit
  kLatency,   // nanoseconds: plain number (ns) or a duration unit
  kRatio,     // 0..1: plain number or percent
  kFactor,    // >= 0, unbounded (latency ratio, reuse)
  kCount,     // plain number
  kPercent,   // 0..100: plain number or percent
  kRate,      // bytes/second: plain number or B/s .. GiB/s
  kHealth,    // one of ok, warning, critical, unknown (strings, == and != only)
};

struct VarInfo {
  Var var;
  std::string_view name;
  ValueKind kind;
  std::string_view source;  // where it comes from, for explain and docs
};

const std::array<VarInfo, static_cast<size_t>(Var::kCount)>& AllVariables();
const VarInfo& InfoOf(Var var);
std::optional<Var> VarByName(std::string_view name);
std::string_view KindName(ValueKind kind);

// Health values as numbers for comparison.
std::optional<double> HealthByName(std::string_view name);
std::string_view HealthName(double value);

// Everything needed to read variables for one file.
struct VarContext {
  const Snapshot* snapshot = nullptr;
  const FileRecord* file = nullptr;
  int64_t sample_interval_ns = 0;  // for file.reuse
};

// The value of `var` for the file in ctx, or nullopt with *why_unavailable set.
std::optional<double> ReadVar(Var var, const VarContext& ctx, std::string_view* why_unavailable);

// Renders a value of the given kind for humans ("1.5 GiB", "0.82", "350ns").
std::string FormatValue(ValueKind kind, double value);

}  // namespace daxpolicy::policy
