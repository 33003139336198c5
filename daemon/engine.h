// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The daemon's core: sample -> decide -> journal -> apply -> publish, and the
/// per-file state that D-Bus, metrics and the CLI show.
///
/// Parts: the engine is given everything it works with (EngineParts, see
/// daemon/engine_parts.h: drivers, telemetry sources, holder finder, close
/// watcher, mount inspector, journal opener, clock). daemon/wiring.cpp builds
/// the daemon's; tests give fakes.
///
/// Threads: the event loop owns the engine. A cycle's slow part runs in
/// RunWork() = Sample(), Record(), Decide(), Journal(), Apply(), Publish(), which may run
/// on a worker thread between BeginCycle() and EndCycle(): it touches only the
/// engine's working state (sources, working snapshot, rule timers, journal,
/// drivers, holder finder) and the job, and reads the published view's
/// immutable part (its snapshot and index). Everything the loop reads (GetFile,
/// Explain, ListFiles, counts, gauges, media, holders, Degraded) comes from the
/// view the last EndCycle() published, so answers never wait for a scan. While
/// a job is out, the loop may call every const method, OnCloseEvents, the hold
/// methods, SetMode, Cancel and ReplacePolicy (which then takes effect at
/// EndCycle); RunCycle does all steps on the calling thread. The clock is read
/// on both threads (Clock implementations are thread-safe), and so is the
/// enforce driver: OnCloseEvents calls its ReadEffective() while the worker
/// may be in its Apply() (DaxDriver::ReadEffective must allow that).

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "daemon/caller.h"
#include "daemon/engine_parts.h"
#include "daemon/holds.h"
#include "daemon/options.h"
#include "daemon/scopes.h"
#include "policy/evaluate.h"
#include "policy/policy.h"
#include "policy/result.h"

namespace daxpolicy::media {
struct MediaReport;
}

namespace daxpolicy::daemon {

using policy::DaxState;
using policy::FileState;

struct HolderInfo {
  uint32_t pid = 0;
  std::string command;
  bool map_sync = false;  // maps the file MAP_SYNC
};

// One file as GetFileState / `daxpolicyctl files` show it.
struct FileView {
  std::string path;
  bool managed = false;
  DaxState desired = DaxState::kUnknown;  // kUnknown: keep
  DaxState physical = DaxState::kUnknown;
  DaxState effective = DaxState::kUnknown;
  FileState state = FileState::kUnmanaged;
  std::string rule;    // winning rule, "" for none
  std::string reason;  // why it is in this state
  std::vector<HolderInfo> holders;
};

// Errors the API reports; the D-Bus layer maps them to the contract's error names
// (kLimitExceeded: LimitExceeded; kFailed: org.freedesktop.DBus.Error.Failed).
enum class ApiError {
  kNotManaged,
  kPermissionDenied,
  kInvalidArgument,
  kPolicyInvalid,
  kLimitExceeded,
  kFailed
};
struct ApiFailure {
  ApiError error;
  std::string message;
};
template <class T>
struct ApiResult {
  std::optional<T> value;
  std::optional<ApiFailure> failure;
  bool ok() const { return value.has_value(); }
};

// Emitted by a cycle for D-Bus signals (StateChanged, SwitchPending).
struct StateChange {
  std::string path;
  FileState state;
  DaxState physical;
  DaxState effective;
  std::string rule;
};
struct PendingSwitch {
  std::string path;
  DaxState desired;
  std::vector<HolderInfo> holders;
};

struct CycleReport {
  int64_t duration_ns = 0;
  bool full_scan = false;
  // The cycle was one of the schedule's full walks (the first one under a
  // policy, then every daemon.rescan), not one asked for by a lost event queue.
  bool scheduled_walk = false;
  uint64_t files = 0;
  // The file table's chunks (policy::FileTable) and how many of them are the
  // chunks of the view this cycle replaces: records that did not change are
  // shared, not copied.
  uint64_t table_chunks = 0;
  uint64_t shared_chunks = 0;
  uint64_t applied = 0;  // physical flags changed
  uint64_t blocked = 0;  // apply refused
  // Files the policy was evaluated for; the others kept their last decision
  // (nothing they depend on changed: see Engine::Decide).
  uint64_t decided = 0;
  // How long after the cycle started the soonest wait of a deferred file
  // (`for`, min_dwell, the switch budget) ends; 0 when none waits.
  int64_t next_wait_ns = 0;
  // At most kMaxReportedChanges (the first cycle finds every managed file
  // new: a list of them all would cost more than the files themselves);
  // unreported_changes counts the rest.
  static constexpr size_t kMaxReportedChanges = 1000;
  std::vector<StateChange> changes;
  uint64_t unreported_changes = 0;
  std::vector<PendingSwitch> pending;
};

// Cumulative counters for metrics (since the daemon started).
struct EngineCounters {
  // (rule, to, result): rule "" for defaults/holds, to "dax"/"page-cache",
  // result "changed" / "blocked" / "failed".
  std::map<std::tuple<std::string, std::string, std::string>, uint64_t> transitions;
  // (rule, reason): reason "for" / "min_dwell" / "budget" / "observe".
  std::map<std::pair<std::string, std::string>, uint64_t> suppressed;
  std::map<std::string, uint64_t> sampler_errors;  // source: "scan", "sample", "system", ...
  // Switches dax: auto decided, by target mode "dax" / "page-cache".
  std::map<std::string, uint64_t> auto_decisions;
  uint64_t cycles = 0;
};

// Numbers of the last cycle, for gauges.
struct EngineGauges {
  std::map<FileState, uint64_t> files_by_state;
  std::map<DaxState, uint64_t> files_by_effective;  // regular managed files
  std::map<std::string, uint64_t> rule_matched;     // by rule name, every rule present
};

// One cycle in flight between BeginCycle() and EndCycle() (opaque).
struct CycleJob;
struct CycleJobDeleter {
  void operator()(CycleJob* job) const;
};
using CycleJobPtr = std::unique_ptr<CycleJob, CycleJobDeleter>;

class Engine {
 public:
  // Sets up the policy's scopes with the given parts; missing hardware or
  // kernel features set Degraded() instead of failing. Fails when a required
  // part (drivers, clock, mount inspector, holder finder, journal opener) is missing.
  static Result<std::unique_ptr<Engine>> Create(const Options& options, policy::Policy policy,
                                                EngineParts parts);
  ~Engine();

  // One whole cycle on the calling thread, at the clock's now.
  CycleReport RunCycle();

  // The same cycle in steps (see the top of this file). BeginCycle and EndCycle
  // run on the loop thread; RunWork, or its steps in this order, on any one
  // thread in between. BeginCycle returns nullptr while a job is already out.
  CycleJobPtr BeginCycle();
  void RunWork(CycleJob& job);
  // Runs every telemetry source into a new working snapshot; finds holders
  // first when a rule reads file.holders.
  void Sample(CycleJob& job);
  // Hands the snapshot Sample made to the trace recorder (which writes only
  // while recording is on).
  void Record(CycleJob& job);
  // Evaluates the policy (rule timers, holds, mode) into per-file decisions,
  // for the files whose decision may have changed: those new to the cycle,
  // renamed or sampled differently; those deferred (`for`, min_dwell, the
  // switch budget) or blocked; those whose file.age crossed a threshold a
  // rule compares it with; those decided by a rule (or a later one) that
  // reads a system or media figure that changed. Every file when the policy,
  // scopes, mounts, mode or holds changed, and in a cycle with a full walk.
  // The others keep their last decision.
  void Decide(CycleJob& job);
  // Records the originals of every file about to change in one durable write;
  // on failure the whole batch is blocked.
  void Journal(CycleJob& job);
  // Changes the flags (one pass over /proc first for MAP_SYNC users and the
  // holders of pending files, unless Sample made it).
  void Apply(CycleJob& job);
  // Builds the view EndCycle publishes: state changes, newly pending files.
  void Publish(CycleJob& job);
  CycleReport EndCycle(CycleJobPtr job);
  bool cycle_running() const { return cycle_running_; }
  // Makes a running RunWork stop applying changes (shutdown); files not yet
  // switched keep their flags and are retried by the next daemon.
  void Cancel() { cancel_ = true; }

  // Re-checks pending files after close events (cheap: statx only).
  std::vector<StateChange> OnCloseEvents();
  int close_watcher_fd() const;  // -1 when there is none

  // The scopes of `policy`, prepared for ReplacePolicy on any thread: it opens the roots
  // and reads the mount table through the mount inspector only (which must allow that
  // beside the loop), so a reload of any size prepares them off the loop thread.
  std::shared_ptr<ScopeSet> PrepareScopes(std::shared_ptr<const policy::Policy> policy) const;
  // A validated policy replaces the running one (SIGHUP, Reload()), with its scopes from
  // PrepareScopes: the loop only marks each new filesystem for close events and swaps
  // pointers. While a job is out, the new scopes are swapped in at its EndCycle; until the
  // first cycle under the new policy ends, queries are answered from the last view.
  void ReplacePolicy(std::shared_ptr<const policy::Policy> policy,
                     std::shared_ptr<ScopeSet> scopes);
  // The same, preparing the scopes on the calling thread.
  void ReplacePolicy(policy::Policy policy);
  // The newest policy (the one the next cycle uses).
  const policy::Policy& policy() const { return *policy_; }
  uint64_t generation() const { return generation_; }
  // Takes effect at once: a job that is out stops changing flags when the mode
  // becomes observe (it never starts when the cycle began in observe).
  void SetMode(policy::Mode mode);
  policy::Mode mode() const { return mode_.load(); }

  ApiResult<FileView> GetFile(const std::string& path) const;
  // The file's decision traced rule by rule, evaluated at the clock's now.
  ApiResult<std::string> Explain(const std::string& path) const;
  // Every tracked file, or only those in `state`, in turn, without building a
  // list: `visit` sees one FileView, reused (rule filled; reason and holders
  // empty: GetFile has them, and a listing of many files must stay cheap).
  void ForEachFile(std::optional<FileState> state,
                   const std::function<void(const FileView&)>& visit) const;

  const media::MediaReport& media() const;
  // "" when everything works. Lists at most kDegradedScopeProblems scope problems, then
  // "and N more scope problems".
  std::string Degraded() const;
  static constexpr size_t kDegradedScopeProblems = 20;
  // The kinds of what Degraded() reports: "scope" (a scope or its mount
  // cannot be used), "journal" (the state journal), "close-events"
  // (fanotify), "access" (eBPF access tracing), "media" (no NVDIMM data).
  std::vector<std::string> DegradedKinds() const;
  uint64_t ManagedFiles() const;
  uint64_t PendingFiles() const;

  // Holds (D-Bus Hold/Release/ListHolds; see daemon/holds.h). AddHold resolves the path
  // once beneath its scope root without following symlinks and checks, on that very file,
  // that a caller other than root owns it.
  ApiResult<uint32_t> AddHold(const std::string& path, DaxState mode, const std::string& reason,
                              const Caller& caller);
  bool ReleaseHold(uint32_t cookie, const Caller& caller);  // false: none of the caller's
  size_t ReleaseHoldsOf(const std::string& owner);          // when a client leaves the bus
  void ForEachHold(const Caller& caller, const std::function<void(const HoldInfo&)>& visit) const;
  std::vector<EndedHold> TakeEndedHolds();

  // The trace recorder (D-Bus StartRecording, StopRecording), nullptr when
  // the parts gave none. Its Start, Stop and Status are for the loop thread.
  TraceRecorder* recorder() const;

  const EngineCounters& counters() const { return counters_; }
  const plugins::Clock& clock() const;
  EngineGauges Gauges() const;

  // Blocked files with their reasons (for the --once summary).
  std::map<FileState, std::vector<std::pair<std::string, std::string>>> Summary() const;

 private:
  friend struct CycleJob;
  struct Impl;
  struct View;
  Engine(Options options, policy::Policy policy, EngineParts parts);
  void SetUpScopes(std::shared_ptr<ScopeSet> prepared);
  std::string ReasonOf(const View& v, uint32_t file) const;
  // Decide's choice: false to evaluate every file; else job.to_decide, with
  // the other decisions carried into job.decisions (and, per rule then the
  // defaults, how many of them observe mode held back).
  bool SelectFiles(CycleJob& job, std::vector<uint32_t>* carried_observe);
  // What Degraded() and DegradedKinds() report: (kind, text), in that order.
  std::vector<std::pair<std::string, std::string>> DegradedParts() const;
  // Validates a path from a client and finds its record in the published view:
  // the one lookup behind GetFile, Explain and AddHold.
  std::optional<ApiFailure> Locate(const std::string& path, uint32_t* index) const;
  std::unique_ptr<Impl> impl_;
  Options options_;
  std::shared_ptr<const policy::Policy> policy_;
  uint64_t generation_ = 1;
  std::atomic<policy::Mode> mode_{policy::Mode::kEnforce};
  std::atomic<bool> cancel_{false};
  bool cycle_running_ = false;
  // ReplacePolicy during a job: the prepared scopes, set up at EndCycle.
  std::shared_ptr<ScopeSet> pending_scopes_;
  EngineCounters counters_;
};

}  // namespace daxpolicy::daemon
