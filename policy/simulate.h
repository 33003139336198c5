// SPDX-License-Identifier: Apache-2.0
#pragma once

/// What-if replay of a trace: the real Evaluate (same rules, hysteresis and
/// RuleState, simulated time) against a page-cache model with a DRAM budget,
/// next to dax=always, dax=never and the best fixed per-file choice in
/// hindsight (the static oracle). Pure and deterministic.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "policy/policy.h"
#include "policy/trace.h"

namespace daxpolicy::policy {

enum SimColumn : uint8_t { kSimPolicy, kSimAlways, kSimNever, kSimOracle, kSimColumns };
std::string_view SimColumnName(SimColumn c);  // "policy", "dax=always", "dax=never", "oracle"

struct SimOptions {
  double dram_budget =
      0;               // bytes of page cache for the traced files; 0: the trace's, else no limit
  std::string media;   // a MediaPreset name to use for every mount instead of the trace's
  bool hits = false;   // fill SimResult::hits (one more run, with the recorded modes)
  bool modes = false;  // fill SimResult::modes
};

struct SimFigures {
  double time_ns = 0;       // estimated I/O time (cost model terms, DRAM price not included)
  double dram_byte_ns = 0;  // integral of page-cache bytes over simulated time
  double dram_peak = 0;     // bytes
  uint64_t switches = 0;
};

struct SimGroup {
  std::string name;  // first path component below the mount ("" = files at the mount root)
  uint64_t files = 0;
  double read_bytes = 0;
  std::array<SimFigures, kSimColumns> columns{};
};

// Predicted (page-cache model) against recorded hit ratio of one file, over
// the intervals in which the trace has it in page-cache mode with a measured
// ratio, weighted by bytes read.
struct SimHitCheck {
  std::string path;
  double read_bytes = 0;
  double measured = 0;
  double predicted = 0;
};

// A change of a file's mode: `to` from the end of the interval ending at t_ns.
struct SimSwitch {
  int64_t t_ns = 0;
  DaxState to = DaxState::kUnknown;
};

// One file's modes as the trace recorded them (what the recording daemon did,
// for a trace it wrote) and as the policy run chose them.
struct SimFileModes {
  std::string path;
  DaxState first = DaxState::kUnknown;  // the mode of its first traced interval
  // A recorded change seen in an interval is dated at the end of the interval
  // before it: the last moment a decision could have caused it.
  std::vector<SimSwitch> recorded;
  std::vector<SimSwitch> policy;  // the policy run's switches
};

struct SimResult {
  double duration_ns = 0;
  double start_ns = 0;  // the start of the trace's first interval, on its clock
  double interval_ns = 0;
  std::vector<SimGroup> groups;
  SimGroup total;
  // Per interval and column: time and page-cache bytes at its end.
  std::vector<std::array<double, kSimColumns>> time_per_interval;
  std::vector<std::array<double, kSimColumns>> dram_per_interval;
  std::vector<SimHitCheck> hits;    // replay of the recorded modes
  std::vector<SimFileModes> modes;  // options.modes: every file, in order of first appearance
  std::vector<std::string> notes;   // e.g. which media figures were used per mount
};

// Replays `trace`. Fails (returns false, *error) only when a mount has no
// media figures and options.media names none, or options.media is unknown.
bool Simulate(const Trace& trace, const Policy& policy, const SimOptions& options, SimResult* out,
              std::string* error);

}  // namespace daxpolicy::policy
