// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The typed policy: what policy.yaml and policy.d/*.yaml say, validated.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "policy/cost.h"
#include "policy/expr.h"
#include "policy/glob.h"
#include "policy/units.h"

namespace daxpolicy::policy {

inline constexpr const char* kApiVersion = "daxpolicy/v1";

enum class DaxSetting : uint8_t { kKeep, kOn, kOff, kAuto };
enum class Mode : uint8_t { kEnforce, kObserve };
enum class HoldsPolicy : uint8_t { kHonor, kIgnore };
enum class MatchKind : uint8_t { kFile, kDirectory, kAny };

std::string_view DaxSettingName(DaxSetting s);  // "keep", "on", "off", "auto"
std::string_view ModeName(Mode m);              // "enforce", "observe"
std::optional<Mode> ModeByName(std::string_view name);

struct SourceLocation {
  std::string file;
  int line = 0;                  // 1-based, 0 = unknown
  int column = 0;                // 1-based
  std::string ToString() const;  // "file:line:col"
};

struct SizeMatch {
  CmpOp op = CmpOp::kGe;
  uint64_t bytes = 0;
};

struct Rule {
  std::string name;
  std::vector<Glob> paths;  // empty: every file in the scopes
  std::optional<SizeMatch> size;
  MatchKind kind = MatchKind::kFile;
  std::optional<Expr> when;
  int64_t for_ns = 0;  // the match and condition must hold this long
  DaxSetting dax = DaxSetting::kKeep;
  SourceLocation where;
  uint64_t id = 0;  // stable hash of the name: survives reloads
};

struct ProtectEntry {
  Glob glob;
  SourceLocation where;
};

struct DaemonSettings {
  int64_t interval_ns = 10 * kNanosPerSecond;
  Mode mode = Mode::kEnforce;
  std::string metrics_listen = "127.0.0.1:9847";  // "off": no exporter
  SourceLocation metrics_listen_where;            // of daemon.metrics.listen; line 0: not set
  HoldsPolicy holds = HoldsPolicy::kHonor;
  int64_t rescan_ns = 600 * kNanosPerSecond;  // full rescan, the fallback for missed events
  int64_t probe_interval_ns = 600 * kNanosPerSecond;
  std::string probe_dir = ".daxpolicy-probe";  // relative to each DAX-capable mount's root
  SourceLocation probe_dir_where;              // of daemon.probe.dir; line 0 when not set
  // daemon.record: record a trace from start, into a new file under the state
  // directory, of at most this many bytes; 0: no recording at start.
  uint64_t record_max_bytes = 0;
};

struct Defaults {
  DaxSetting dax = DaxSetting::kKeep;
  int64_t min_dwell_ns = 600 * kNanosPerSecond;
  uint32_t max_switches_per_minute = 120;
};

// `cost.mounts[]`: the figures of the media under one directory, for media the
// probe cannot reach or to correct what it measured.
struct CostMount {
  std::string path;    // absolute, normalized
  std::string preset;  // MediaPreset name, "" = start from what the probe measured
  MediaParams set;     // figures given explicitly; 0 = not given
  SourceLocation where;
};

struct Policy {
  DaemonSettings daemon;
  std::vector<std::string> scopes;  // absolute, normalized, not nested
  std::vector<ProtectEntry> protect;
  Defaults defaults;
  std::vector<Rule> rules;
  CostSettings cost;  // `cost:`, used by dax: auto
  std::vector<CostMount> cost_mounts;
  std::vector<std::string> sources;  // files it was loaded from, in order

  // The scope containing path, or nullptr. O(log scopes) once indexed.
  const std::string* ScopeOf(std::string_view path) const;
  // The first protect entry matching path, or nullptr. Once indexed, only the
  // patterns whose literal prefix is path or one of its parents are tried.
  const ProtectEntry* ProtectedBy(std::string_view path) const;
  // True when some scope is `dir` or lies below it.
  bool HasScopeWithin(std::string_view dir) const;
  // The cost.mounts entry with the longest path containing `path`, or nullptr.
  const CostMount* CostMountOf(std::string_view path) const;
  // True when some rule's condition reads `var` (telemetry that costs something
  // is only gathered for every file when a rule needs it).
  bool UsesVariable(Var var) const;

  // Builds the lookup tables above; the loader calls it. Whoever changes scopes
  // or protect afterwards calls it again (until then lookups scan every entry).
  void BuildIndex();

  // Indexes of `scopes` in PathOrder (below), and of `protect` by literal prefix.
  std::vector<uint32_t> scope_order_;
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::vector<uint32_t>, StringHash, std::equal_to<>>
      protect_by_prefix_;
  size_t indexed_protect_ = 0;
};

// Orders paths so that every directory is directly followed by what lies below
// it: byte order, except that '/' sorts before every other byte.
bool PathOrder(std::string_view a, std::string_view b);

}  // namespace daxpolicy::policy
