// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Access traces: per interval and per file, the figures the daemon's policy
/// sees, in the versioned text format of docs/trace-format.md. Written by the
/// workload generators and tools/validate-pagecache.py, read by
/// `daxpolicyctl simulate`. Pure: text in, text out.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/cost.h"
#include "policy/snapshot.h"

namespace daxpolicy::policy {

inline constexpr int kTraceVersion = 1;
inline constexpr std::string_view kTraceMagic = "daxpolicy-trace";

struct TraceMedia {
  std::string name;
  MediaParams params;  // every figure > 0
};

struct TraceMount {
  std::string path;
  int media = -1;  // index into Trace::media, -1 = none known
};

// One file in one interval. Negative figures were not measured.
struct TraceFile {
  uint32_t path = 0;  // index into Trace::paths
  uint64_t size = 0;
  DaxState mode = DaxState::kPageCache;  // effective mode during the interval
  double read_bytes = -1;
  double read_calls = -1;
  double write_bytes = -1;
  double distinct_bytes = -1;  // bytes of the file the reads covered
  double hit_ratio = -1;       // page-cache mode only
  double resident_bytes = -1;  // page cache held at the end of the interval
};

struct TraceInterval {
  int64_t t_ns = 0;          // end of the interval, monotonic
  double mem_pressure = -1;  // PSI memory some avg10, percent
  std::vector<TraceFile> files;
};

struct Trace {
  int version = kTraceVersion;
  int64_t interval_ns = 0;
  uint32_t page_size = 4096;
  double dram_budget = 0;  // bytes of page cache the workload had (0 = unknown)
  std::vector<TraceMedia> media;
  std::vector<TraceMount> mounts;
  std::vector<std::string> paths;  // absolute, each once
  std::vector<TraceInterval> intervals;

  // The mount holding `path` (longest prefix), or -1.
  int MountOf(std::string_view path) const;
};

// Parses a whole trace. On error returns nullopt and sets *error to
// "line N: message" (or "line N, field 'k': message").
std::optional<Trace> ParseTrace(std::string_view text, std::string* error);

// Writing. Paths are escaped (%XX for bytes <= 0x20, '%', '=' and >= 0x7f).
std::string TraceHeader(const Trace& header);  // magic through mount lines
std::string TraceIntervalText(const Trace& trace, const TraceInterval& interval);
std::string FormatTrace(const Trace& trace);  // header + every interval

std::string EscapeTracePath(std::string_view path);

}  // namespace daxpolicy::policy
