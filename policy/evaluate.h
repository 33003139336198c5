// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Evaluate(Policy, Snapshot, RuleState, holds, now) -> Decisions.
///
/// Pure and deterministic: time is passed in, RuleState (the only memory:
/// sustained conditions, the last switch of each file, the switch budget) is
/// updated only here.

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "policy/policy.h"
#include "policy/snapshot.h"

namespace daxpolicy::policy {

// Identity of a file across scans and renames.
struct FileKey {
  uint64_t dev = 0;
  uint64_t ino = 0;
  auto operator<=>(const FileKey&) const = default;
};
// The device of a file's mount (0 when the record names no known mount) and
// the file's identity.
inline uint64_t DevOf(const Snapshot& snapshot, const FileRecord& f) {
  return f.mount < snapshot.mounts.size() ? snapshot.mounts[f.mount].dev : 0;
}
inline FileKey KeyOf(const Snapshot& snapshot, const FileRecord& f) {
  return FileKey{DevOf(snapshot, f), f.ino};
}
struct FileKeyHash {
  size_t operator()(const FileKey& k) const {
    return static_cast<size_t>(k.ino * 0x9E3779B97F4A7C15ull ^ (k.dev + 0x632BE59BD9B4E019ull));
  }
};

// An application's request (over D-Bus) to keep a file in one mode.
struct Hold {
  DaxState mode = DaxState::kUnknown;  // kDax or kPageCache
  std::string reason;
  uint32_t cookie = 0;
};
using Holds = std::unordered_map<FileKey, Hold, FileKeyHash>;

enum class FileState : uint8_t { kUnmanaged, kInSync, kPending, kDeferred, kObserved, kBlocked };
std::string_view FileStateName(FileState s);  // contract names: "in-sync", "pending", ...
std::string_view DaxStateName(DaxState s);    // "dax", "page-cache", "unknown"

// Why a file is in the state it is in; rendered by ReasonText().
enum class Reason : uint8_t {
  kNone,
  kOutsideScopes,
  kProtected,
  kNoRuleDefaultKeep,
  kRuleSaysKeep,
  kPhysicalUnknown,
  kEffectiveBlocked,  // the mount's effective_blocked_reason
  kWaitingForHolders,
  kFor,
  kMinDwell,
  kBudget,
  kObserveMode,
  kAutoNoAccess,   // dax: auto without access figures for the file
  kAutoNoMedia,    // dax: auto without media parameters for the file's mount
  kAutoUndecided,  // dax: auto: neither mode wins by the margin
};

struct Decision {
  uint32_t file = 0;                      // index into Snapshot::files
  int32_t rule = -1;                      // index into Policy::rules; -1: none (defaults or a hold)
  bool held = false;                      // an application hold decided the desired state
  bool by_auto = false;                   // dax: auto (the cost model) decided the desired state
  DaxState desired = DaxState::kUnknown;  // kUnknown: keep (leave as it is)
  FileState state = FileState::kUnmanaged;
  Reason reason = Reason::kNone;
  bool apply = false;   // the caller should switch the physical flag to `desired`
  int64_t wait_ns = 0;  // for kFor / kMinDwell: time left before the change may happen
};

struct RuleCounters {
  uint64_t matched = 0;         // files this rule decided
  uint64_t suppressed_for = 0;  // wanted changes held back, by reason
  uint64_t suppressed_min_dwell = 0;
  uint64_t suppressed_budget = 0;
  uint64_t suppressed_observe = 0;
};

struct Decisions {
  std::vector<Decision> files;      // one per Snapshot::files entry, same order
  std::vector<RuleCounters> rules;  // one per Policy::rules entry
  RuleCounters defaults;            // changes decided by defaults.dax or holds
  uint64_t rule_checks = 0;         // (file, rule) pairs tried
  uint64_t applies = 0;
  uint64_t auto_to_dax = 0;  // applies decided by dax: auto, by direction
  uint64_t auto_to_page_cache = 0;
};

struct EvalOptions {
  Mode mode = Mode::kEnforce;
  int64_t now_ns = 0;  // monotonic clock
};

// Per-file memory of past evaluations. Only files with something to remember
// have an entry (a sustained condition in progress or a recent switch).
class RuleState;
Decisions Evaluate(const Policy& policy, const Snapshot& snapshot, RuleState& state,
                   const Holds& holds, const EvalOptions& options);

// Decides only `files` (indices into snapshot.files, ascending), handing each
// decision to `each`: the caller keeps, for the others, the decision of an
// earlier evaluation whose inputs have not changed since (the caller's to
// know). The counters count the listed files only. RuleState entries of files
// not listed are kept as they are; those of `gone` (files no longer in the
// snapshot) are dropped.
Decisions EvaluateFiles(const Policy& policy, const Snapshot& snapshot, RuleState& state,
                        const Holds& holds, const EvalOptions& options,
                        const std::vector<uint32_t>& files, const std::vector<FileKey>& gone,
                        const std::function<void(const Decision&)>& each);

class RuleState {
 public:
  size_t TrackedFilesForTest() const { return files_.size(); }
  size_t RecentSwitchesForTest() const { return switches_.size(); }

 private:
  friend class Evaluator;
  friend Decisions BeginRound(const Policy&, const EvalOptions&, RuleState&);
  friend Decisions Evaluate(const Policy&, const Snapshot&, RuleState&, const Holds&,
                            const EvalOptions&, const std::function<void(const Decision&)>&);
  friend Decisions EvaluateFiles(const Policy&, const Snapshot&, RuleState&, const Holds&,
                                 const EvalOptions&, const std::vector<uint32_t>&,
                                 const std::vector<FileKey>&,
                                 const std::function<void(const Decision&)>&);
  struct PerFile {
    int64_t last_switch_ns = 0;
    bool switched = false;
    uint64_t for_rule = 0;  // Rule::id whose condition is being timed; 0 = none
    int64_t for_since_ns = 0;
    uint32_t seen_round = 0;
  };
  std::unordered_map<FileKey, PerFile, FileKeyHash> files_;
  std::deque<int64_t> switches_;  // times of switches in the last minute
  uint32_t round_ = 0;
};

Decisions Evaluate(const Policy& policy, const Snapshot& snapshot, RuleState& state,
                   const Holds& holds, const EvalOptions& options);
// The same evaluation, handing each file's decision to `each` in file order
// instead of keeping them (Decisions::files stays empty): a caller that keeps
// less than a whole Decision per file never holds them all.
Decisions Evaluate(const Policy& policy, const Snapshot& snapshot, RuleState& state,
                   const Holds& holds, const EvalOptions& options,
                   const std::function<void(const Decision&)>& each);

// Text for a decision's reason, e.g. "condition of rule 'x' has held for 1m of 5m".
std::string ReasonText(const Policy& policy, const Snapshot& snapshot, const Decision& d);

// Everything explain shows for one file.
struct RuleTrace {
  std::string name;
  std::string where;        // policy file:line:col
  bool kind_ok = true;      // file type matched
  bool path_ok = true;      // some path pattern matched
  std::string path_detail;  // which pattern matched, or that none did
  bool size_ok = true;
  std::string size_detail;  // "4 GiB >= 1 MiB: true"
  Tri when = Tri::kTrue;    // kTrue when there is no condition
  std::vector<ComparisonTrace> comparisons;
  bool matched = false;  // everything above held
  bool winner = false;
};

struct Explanation {
  std::string path;
  std::string scope;         // "" when outside every scope
  std::string protected_by;  // protect pattern, "" when none
  std::vector<RuleTrace> rules;
  Decision decision;
  std::string reason;       // ReasonText()
  std::string hold_reason;  // when a hold decided
  std::string cost;         // dax: auto: both estimates, their terms and the margin
};

// The media figures the cost model uses for the file at `path`: a cost.mounts
// entry (preset, then explicit figures) over what the probe measured, DRAM
// defaults for what neither gives. nullopt with *why when the media's read
// latency is unknown or a figure is out of range.
std::optional<MediaParams> MediaParamsFor(const Policy& policy, const Snapshot& snapshot,
                                          const FileRecord& f, std::string_view path,
                                          std::string* why);

// The cost model's input for one file of a snapshot (the last interval).
CostInput CostInputFor(const Policy& policy, const Snapshot& snapshot, const FileRecord& f);

// Explains the file at index `file` as Evaluate would decide it right now (does
// not change `state`).
Explanation Explain(const Policy& policy, const Snapshot& snapshot, const RuleState& state,
                    const Holds& holds, const EvalOptions& options, uint32_t file);

// Human-readable rendering of an Explanation (the D-Bus Explain() text).
std::string FormatExplanation(const Explanation& e, const Snapshot& snapshot);

}  // namespace daxpolicy::policy
