// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Everything the engine works with, handed to Engine::Create. The daemon's
/// parts are built in one place, daemon/wiring.cpp; tests build fakes
/// (tests/fakes/). The engine itself opens no device, walks no /proc and reads
/// no clock.

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/journal/segment.h"
#include "daemon/recorder.h"
#include "daemon/scopes.h"
#include "plugins/clock.h"
#include "plugins/driver/dax_driver.h"
#include "plugins/files/close_watcher.h"
#include "plugins/host/holders.h"
#include "plugins/telemetry.h"
#include "policy/result.h"

namespace daxpolicy::daemon {

/// The durable record of original DAX flags (journal::Journal in the daemon).
class ChangeJournal {
 public:
  virtual ~ChangeJournal() = default;
  /// Records the originals of a batch in one durable write before it is applied.
  virtual Result<size_t> RecordOriginals(const std::vector<journal::JournalEntry>& entries) = 0;
  /// The driver hook that records a file's original right before its change.
  virtual decltype(driver::ApplyHooks::before_change) BeforeChangeHook(std::string scope_root) = 0;
  /// Records the policy's scope roots with the next batch (restore trusts only them).
  virtual void SetScopes(const std::vector<std::string>& scope_roots) = 0;
  /// After a batch: drops the originals of files it did not change after all.
  virtual Result<void> SettleBatch() = 0;
  /// What opening found wrong (logged once).
  virtual std::vector<std::string> Problems() const { return {}; }
  /// Damage found now or earlier (files in corrupt/): shown in Degraded as found
  /// when the journal was opened (at setup and each policy reload).
  virtual std::vector<std::string> Damage() const { return {}; }
  /// Where it lives, for messages.
  virtual std::string StateDir() const { return {}; }
};

/// Opens the journal; called at setup in enforce mode (so a journal that cannot
/// work shows in Degraded from the start) and again before each batch while it fails.
using JournalOpener = std::function<Result<std::unique_ptr<ChangeJournal>>()>;

struct EngineParts {
  /// Changes physical flags (enforce mode): the inode-flag driver.
  std::unique_ptr<driver::DaxDriver> enforce_driver;
  /// Reads state and records wanted changes only (observe mode, cancel).
  std::unique_ptr<driver::DaxDriver> observe_driver;
  /// Fill the cycle's snapshot, in order; the first builds the file table
  /// (see plugins/telemetry.h).
  std::vector<std::unique_ptr<plugins::TelemetrySource>> sources;
  /// Who holds files open or mapped (one pass a cycle at most).
  std::unique_ptr<host::HolderFinder> holders;
  /// Close events of pending files; nullptr when unavailable, with the reason
  /// in close_watcher_problem (pending files are then re-checked every cycle).
  std::unique_ptr<files::CloseEventSource> close_watcher;
  std::string close_watcher_problem;
  /// Scope roots: mounts, DAX capability.
  std::unique_ptr<MountInspector> mounts;
  JournalOpener journal;
  /// Monotonic and wall clock: the only time the engine knows.
  std::shared_ptr<const plugins::Clock> clock;
  /// The system page size (Snapshot::page_size).
  uint32_t page_size = 4096;
  /// Writes each cycle's snapshot to a trace while recording (off until
  /// started); nullptr: the daemon cannot record.
  std::unique_ptr<TraceRecorder> recorder;
};

}  // namespace daxpolicy::daemon
