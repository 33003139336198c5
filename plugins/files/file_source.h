// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The "files" telemetry source: walks the scopes (Scanner) and samples every
/// file in the same pass (FileSampler); with tree events (TreeEventSource), a
/// cycle samples again only what changed.

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "plugins/files/change_table.h"
#include "plugins/files/sampler.h"
#include "plugins/files/scanner.h"
#include "plugins/files/tree_watcher.h"
#include "plugins/telemetry.h"

namespace daxpolicy::files {

class FileSource final : public plugins::TelemetrySource {
 public:
  /// Gets each reported scan error: the path (raw bytes) and what failed.
  using ErrorLog = std::function<void(std::string_view path, std::string_view what)>;
  /// `events` may be nullptr (every cycle then walks and samples everything);
  /// `events_problem` says why there are none (shown in Degraded()). With
  /// `drain_thread` and an event source that has an fd, a thread of the source
  /// reads events as they come (at most every kDrainPause), so the kernel's
  /// bounded queue does not overflow between two cycles; otherwise Sample()
  /// reads them.
  explicit FileSource(ErrorLog log = {}, ScanLimits limits = {},
                      std::unique_ptr<TreeEventSource> events = nullptr,
                      std::string events_problem = {}, bool drain_thread = true);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  /// The drain thread waits this long after each read, so events of a busy
  /// filesystem are read in batches (the kernel merges repeats meanwhile).
  static constexpr int kDrainPauseMs = 100;
  std::string_view Name() const override { return "files"; }
  /// Builds ctx.snapshot's file table from ctx.previous.
  ///
  /// Without tree events: incremental unless ctx.full_scan or the scanner's own
  /// schedule says full; every file is sampled.
  ///
  /// With tree events (a filesystem mark per scope, set when the scopes are
  /// new): the first cycle and ctx.full_scan (a reload, the daemon.rescan
  /// reconciliation walk) walk and sample everything; any other cycle reads
  /// only the directories events name and samples only the files they name
  /// (ScanMode::kEvents). A scope whose mark could not be set is walked every
  /// cycle (Degraded() says why); an overflowed queue or a directory handle
  /// that could not be resolved makes the next cycle walk the scopes concerned
  /// (counted as "events" in the error counter).
  ///
  /// Errors are counted as "scan" (walking), "sample" (per file), "cache"
  /// (page-cache numbers) and "events" (a walk instead of events).
  void Sample(plugins::SampleContext& ctx) override;
  std::string Degraded() const override;

  /// Called on the drain thread, after events naming an entry of a scope
  /// created, moved in or closed after writing were read (ChangeTable::Add):
  /// the daemon's cue to run a cycle before the interval is up. Not called
  /// for events Sample() reads itself (that cycle covers them), nor without
  /// a drain thread. Set before the first Sample().
  void SetActivityCue(std::function<void()> cue) { cue_ = std::move(cue); }

  /// What the last Sample() did, for tests and benchmarks.
  struct LastCycle {
    bool events = false;         ///< a cycle from events (ScanMode::kEvents)
    uint64_t walked_scopes = 0;  ///< scopes walked as a whole
    uint64_t sampled = 0;        ///< files and directories sampled
    ChangeSet changes;           ///< what events said (empty without events)
  };
  const LastCycle& last_cycle() const { return last_; }

 private:
  void SetUp(const plugins::ScopeList& scopes);
  // Reads queued tree events into the change table, at most `max_drains`
  // TreeEventSource::Drain() calls; mutex_ held. With `cue`, calls cue_ when
  // an event named something new.
  void DrainLocked(int max_drains, bool cue = false);
  void DrainLoop();

  ErrorLog log_;
  ScanLimits limits_;
  uint64_t generation_ = 0;
  std::unique_ptr<Scanner> scanner_;
  FileSampler sampler_;
  std::unique_ptr<TreeEventSource> events_;
  std::string events_problem_;
  std::unique_ptr<ChangeTable> table_;
  std::function<void()> cue_;
  // Per scanned scope (Scanner order): why its events cannot be used ("" = they can).
  std::vector<std::string> no_events_;
  LastCycle last_;
  // The drain thread and Sample() share the event source, table_ and buffer_.
  std::mutex mutex_;
  std::vector<FsEvent> buffer_;
  bool want_thread_ = false;
  UniqueFd wake_;  // eventfd: stops the drain thread
  std::thread thread_;
};

}  // namespace daxpolicy::files
