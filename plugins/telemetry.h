// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The one interface through which measurements reach the policy: every
/// telemetry source fills part of the cycle's working policy::Snapshot.
///
/// Sources today (built in daemon/wiring.cpp, run in this order every cycle):
///   "files"  (files::FileSource)   scans the scopes and samples the files
///                                  (all of them in a full walk, else those
///                                  fanotify tree events and access figures
///                                  name): the file table, size, mtime, page
///                                  cache, physical and effective DAX state;
///   "system" (host::SystemSource)  memory pressure, page-cache ratio;
///   "access" (access::AccessSource) per-file read and write rates and cache
///                                  hit ratios counted with eBPF;
///   "media"  (media::MediaSource)  devices behind the mounts, health, latency.
/// The first source builds the file table (Snapshot::files); sources after it
/// see every file already scanned and may fill fields of each FileRecord
/// (marking them in FileRecord::available) and of Snapshot::system.
///
/// Adding a source: implement TelemetrySource (a Name() for metrics and logs,
/// Sample(), and Degraded() when something it needs is missing) and append it
/// to EngineParts::sources in daemon/wiring.cpp. Nothing else changes: the
/// engine runs every source on the cycle's worker thread, one after the other,
/// counts the errors a source reports in daxpolicy_sampler_errors_total
/// {source=...}, shows its Degraded() text in the Degraded property and sets
/// daxpolicy_degraded{kind=<its Name()>} while that text is not empty.
///
/// Threads: Sample() runs on the engine's worker thread; Degraded() is called
/// right after Sample() on the same thread (the engine publishes the text with
/// the cycle's view), so a source needs no locking of its own.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "plugins/media/media_plugin.h"
#include "policy/snapshot.h"

namespace daxpolicy::plugins {

/// One scope root of the policy as the engine set it up (daemon/scopes.cpp).
struct ScopeInfo {
  std::string path;          ///< absolute, as in the policy
  int root_fd = -1;          ///< O_PATH directory of the root (owned by the engine), -1 if unusable
  bool usable = false;       ///< opened and nothing mounted over it: walk it
  uint16_t mount = 0;        ///< index into Snapshot::mounts
  uint64_t dev = 0;          ///< st_dev of the root
  uint64_t mount_id = 0;     ///< statx STATX_MNT_ID of the root (0 = unknown)
  std::string flag_blocked;  ///< why the per-file DAX flag cannot work here ("" = it can)
  media::MountInput media;   ///< the mount for the media source; mount_point "" when unknown
};

/// The scopes of the running policy. A new policy makes a new ScopeList with a
/// higher generation (sources that keep per-scope state rebuild it then).
struct ScopeList {
  uint64_t generation = 0;
  std::vector<ScopeInfo> list;
  /// True for paths the file table must not contain (protect patterns, the
  /// media probe directories): neither they nor, for a directory, anything below.
  std::function<bool(std::string_view abs_path, bool is_dir)> excluded;
};

/// What a source gets for one cycle.
struct SampleContext {
  SampleContext(policy::Snapshot& snap, const ScopeList& scope_list)
      : snapshot(snap), scopes(scope_list) {}
  /// The snapshot being built; Snapshot::mounts is set up already.
  policy::Snapshot& snapshot;
  /// The snapshot of the previous cycle under the same scopes (immutable; the
  /// published view shares it), or nullptr: the file source scans from it.
  const policy::Snapshot* previous = nullptr;
  /// When the cycle began.
  int64_t mono_ns = 0;
  int64_t wall_ns = 0;
  const ScopeList& scopes;
  /// The file table must be rebuilt from a full walk (a reload, the rescan
  /// interval, lost close events).
  bool full_scan = false;
  /// Minimum time between media latency probes (policy daemon.probe_interval).
  int64_t probe_interval_ns = 0;

  // --- Outputs ---
  /// Set by the file source: the walk was a full one.
  bool scanned_full = false;
  /// The media report the daemon shows (GetMedia, metrics); set by the media source.
  media::MediaReport* media_report = nullptr;

  /// Counts `n` errors of `source` (a Name(), or a finer name such as "scan",
  /// "sample", "cache") in daxpolicy_sampler_errors_total.
  void CountError(std::string_view source, uint64_t n = 1) {
    if (n != 0) errors[std::string(source)] += n;
  }
  std::map<std::string, uint64_t> errors;
};

class TelemetrySource {
 public:
  virtual ~TelemetrySource() = default;
  /// Stable, short: "files", "system", "media", "access".
  virtual std::string_view Name() const = 0;
  /// Fills this source's part of ctx.snapshot. Must not fail the cycle: fields
  /// it cannot read stay unavailable (FileRecord::available, SystemSample::have_*)
  /// and the error is counted with ctx.CountError().
  virtual void Sample(SampleContext& ctx) = 0;
  /// Why this source works only in part ("" when it works), for Degraded.
  virtual std::string Degraded() const { return {}; }
};

}  // namespace daxpolicy::plugins
