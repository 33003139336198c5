// SPDX-License-Identifier: Apache-2.0
#pragma once

/// What the D-Bus service needs from the daemon core. The signatures are those of
/// daxpolicy::daemon::Engine (daemon/engine.h), so the daemon implements this by forwarding
/// each call to its Engine; Reload() and LastReloadResult() are the daemon's own (the Engine
/// only swaps in a policy someone else loaded and validated).
///
/// Called only from the thread that runs the bus connection's event loop.

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "daemon/engine.h"
#include "plugins/media/media_plugin.h"
#include "policy/policy.h"

namespace daxpolicy::bus {

using daemon::ApiError;
using daemon::ApiFailure;
using daemon::ApiResult;
using daemon::Caller;
using daemon::EndedHold;
using daemon::FileView;
using daemon::HoldInfo;

class ManagerBackend {
 public:
  virtual ~ManagerBackend() = default;

  /// GetFileState(path). Failure kNotManaged when the daemon does not track the path.
  virtual ApiResult<FileView> GetFile(const std::string& path) const = 0;
  /// Explain(path).
  virtual ApiResult<std::string> Explain(const std::string& path) const = 0;
  /// ListFiles(state); nullopt lists every tracked file. Calls `visit` once per
  /// file (path, desired, physical, effective, state; rule, reason and holders
  /// may be left empty); the FileView is valid only during the call.
  virtual void ListFiles(std::optional<policy::FileState> state,
                         const std::function<void(const FileView&)>& visit) const = 0;

  /// GetMedia(): the devices of the last media refresh.
  virtual const media::MediaReport& media() const = 0;
  /// Property Degraded: "" when everything works.
  virtual std::string Degraded() const = 0;
  /// Property ManagedFiles.
  virtual uint64_t ManagedFiles() const = 0;
  /// Property PendingFiles.
  virtual uint64_t PendingFiles() const = 0;

  /// Hold(path, mode, reason) by `caller` (see daemon/holds.h for identity and precedence).
  /// The backend checks that the caller is root or owns the very file it holds. Returns the
  /// cookie (never 0); kPermissionDenied when not allowed or at a limit.
  virtual ApiResult<uint32_t> AddHold(const std::string& path, policy::DaxState mode,
                                      const std::string& reason, const Caller& caller) = 0;
  /// Release(cookie). False when no hold has this cookie or the caller may not release it
  /// (root, the hold's uid and its bus connection may): the two are not told apart.
  virtual bool ReleaseHold(uint32_t cookie, const Caller& caller) = 0;
  /// Drops every hold of a unique bus name that left the bus; returns how many.
  virtual size_t ReleaseHoldsOf(const std::string& owner) = 0;
  /// ListHolds(): every hold for root, the caller's own (by uid or connection) otherwise.
  virtual void ForEachHold(const Caller& caller,
                           const std::function<void(const HoldInfo&)>& visit) const = 0;
  /// Holds that ended since the last call, for the HoldEnded signal.
  virtual std::vector<EndedHold> TakeEndedHolds() = 0;

  /// Property Mode.
  virtual policy::Mode mode() const = 0;
  /// SetMode(mode) (root only; checked by the bus layer).
  virtual void SetMode(policy::Mode mode) = 0;
  /// Property PolicyGeneration: increases with every accepted policy.
  virtual uint64_t generation() const = 0;

  /// How a reload ended, for whoever asked for it; called once, on the loop thread.
  using ReloadDone = std::function<void(const ApiResult<bool>& result)>;
  /// Reload(): re-reads and validates the policy files and, when valid, replaces the running
  /// policy, exactly like SIGHUP. The files are read and checked off the loop thread, so
  /// the call returns at once and `done` (may be empty) is called when the reload ends,
  /// possibly before Reload returns. A bad policy fails with kPolicyInvalid and its errors as
  /// the message (one "FILE:LINE:COL: message" per line); the running policy stays.
  /// Requests made while a reload is read are joined into one more reload after it (see
  /// daemon/reload_queue.h); beyond kMaxWaitingReloads they fail with kLimitExceeded.
  /// The backend logs each reload once, naming the caller (for SIGHUP: sender "SIGHUP" and
  /// the sending process), and has Reloaded emitted once per reload by the owner of the bus
  /// service (BusService::EmitReloaded), before `done` is called.
  virtual void Reload(const Caller& caller, ReloadDone done) = 0;
  /// Property LastReloadResult: human-readable outcome of the last reload (SIGHUP or bus).
  virtual std::string LastReloadResult() const = 0;

  /// StartRecording(path, max_size) (root only; checked by the bus layer): records a trace
  /// into a new file at `path` ("": a new file under the state directory) of at most
  /// `max_bytes` (0: the default). Returns the file. kInvalidArgument for a bad path or
  /// size, kFailed when the file cannot be created or a recording runs already.
  virtual ApiResult<std::string> StartRecording(const std::string& path, uint64_t max_bytes,
                                                const Caller& caller) = 0;
  /// StopRecording() (root only). kFailed when no recording runs.
  virtual ApiResult<bool> StopRecording(const Caller& caller) = 0;
  /// Properties Recording, RecordingFile, RecordingResult.
  virtual daemon::RecorderStatus Recording() const = 0;
};

}  // namespace daxpolicy::bus
