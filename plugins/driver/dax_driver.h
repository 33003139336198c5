// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The DAX driver interface: read a file's DAX state and change its physical DAX flag.
/// Implementations: InodeFlagDriver (the kernel switch, FS_IOC_FSSETXATTR FS_XFLAG_DAX),
/// ObserveDriver (reads real state, changes nothing) and FakeDriver (in-memory, for tests).
/// Drivers are plain classes, constructed explicitly; there is no static registration.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "plugins/driver/blocked.h"
#include "plugins/driver/safe_open.h"
#include "policy/result.h"
#include "policy/snapshot.h"

namespace daxpolicy::driver {

using policy::DaxState;
using policy::FileKind;

/// A file as the scan saw it: a path relative to an open scope root, and its identity.
struct FileRef {
  int scope_root_fd = -1;  ///< an fd of the scope root directory (O_PATH is fine); not owned
  std::string path;        ///< relative to the scope root; "" = the root itself
  FileIdentity expected;   ///< dev + ino from the scan; ino 0 = do not check
};

/// What Read() found.
struct FileFlags {
  FileKind kind = FileKind::kRegular;
  DaxState physical = DaxState::kUnknown;   ///< FS_XFLAG_DAX (FS_IOC_FSGETXATTR)
  DaxState effective = DaxState::kUnknown;  ///< STATX_ATTR_DAX, read holding no fd of the file
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint32_t xflags = 0;  ///< all fsx_xflags, e.g. FS_XFLAG_IMMUTABLE
  uint64_t links = 0;   ///< st_nlink

  /// The change was accepted but the kernel has not re-instantiated the inode yet (someone
  /// holds it open or mapped). Directories never report effective DAX.
  bool Pending() const { return kind == FileKind::kRegular && physical != effective; }
};

/// Callbacks the daemon gives Apply().
struct ApplyHooks {
  /// Called after the flag was read from the opened file and right before it is changed,
  /// with the flag as it was and that fd (-1 for drivers without one), so the journal can
  /// identify the very file. The daemon records `original_physical` durably here; if this
  /// fails nothing is changed and Apply() returns the error. `path` is FileRef::path. Unset =
  /// nothing to record.
  std::function<Result<void>(uint64_t dev, uint64_t ino, std::string_view path,
                             DaxState original_physical, int fd)>
      before_change;
  /// Asked before turning DAX off: true when a process maps the file MAP_SYNC (the daemon
  /// reads VmFlags "sf" in <procfs>/PID/smaps). True refuses with Blocker::kMapSync; an error
  /// refuses too (safety first) with the error's message. Unset = nobody does.
  std::function<Result<bool>(uint64_t dev, uint64_t ino)> maps_sync;
};

enum class ApplyResult : uint8_t {
  kChanged,    ///< the physical flag was changed
  kUnchanged,  ///< the physical flag already had the desired value
  kObserved,   ///< a change was wanted and only recorded (observe driver)
  kBlocked,    ///< refused; see blocker and reason
};

/// "changed", "unchanged", "observed", "blocked".
std::string_view ApplyResultName(ApplyResult result);

/// What Apply() did. Per-file refusals are outcomes (kBlocked), not errors.
struct ApplyOutcome {
  ApplyResult result = ApplyResult::kBlocked;
  FileKind kind = FileKind::kRegular;
  DaxState physical_before = DaxState::kUnknown;  ///< kUnknown when refused before reading it
  DaxState physical_after = DaxState::kUnknown;   ///< as left by Apply()
  DaxState effective = DaxState::kUnknown;        ///< re-read after the fd was closed
  Blocker blocker = Blocker::kNone;
  int error_code = 0;  ///< errno behind the refusal (see Blocked)
  std::string reason;  ///< stable human-readable text when blocked, else ""

  bool blocked() const { return result == ApplyResult::kBlocked; }
  /// Physical is as desired but not yet effective (regular files only).
  bool Pending() const {
    return !blocked() && kind == FileKind::kRegular && physical_after != effective;
  }
};

/// One DAX driver. Not thread-safe unless an implementation says so, except
/// ReadEffective() (see there).
class DaxDriver {
 public:
  virtual ~DaxDriver() = default;
  /// Stable name: "inode-flag", "observe", "fake".
  virtual std::string_view Name() const = 0;
  /// Reads kind, identity, physical and effective state. Fails (Error.code = errno, message =
  /// a stable reason from blocked.h) when the file cannot be opened safely.
  virtual Result<FileFlags> Read(const FileRef& ref) = 0;
  /// Brings the physical flag to `desired` (kDax or kPageCache). Returns an Error only when a
  /// hook failed or `desired` is kUnknown; every per-file refusal is an ApplyOutcome.
  virtual Result<ApplyOutcome> Apply(const FileRef& ref, DaxState desired,
                                     const ApplyHooks& hooks) = 0;
  /// STATX_ATTR_DAX of the file holding no fd of it (a close event's re-check);
  /// kUnknown if it cannot be read or the path now names another inode. The
  /// default asks Read(). Must be safe to call while another thread is in
  /// Apply() or Read(): the engine re-checks closed files on its event loop
  /// while a cycle applies on its worker (the kernel-backed drivers read
  /// through their const FlagReader).
  virtual DaxState ReadEffective(const FileRef& ref);
};

/// Reads DAX state through a SafeOpener; shared by the kernel-backed drivers and restore.
class FlagReader {
 public:
  explicit FlagReader(SafeOpenOptions options = {});

  /// Kind, identity, physical (FS_IOC_FSGETXATTR on a briefly held fd) and effective (statx
  /// after that fd was closed).
  BlockedOr<FileFlags> Read(const FileRef& ref) const;
  /// STATX_ATTR_DAX of the file, holding no fd of it; kUnknown if it cannot be read or the
  /// path now names another inode.
  DaxState ReadEffective(const FileRef& ref) const;

  const SafeOpener& opener() const { return opener_; }

 private:
  SafeOpener opener_;
};

/// Converts a refusal into an ApplyOutcome.
ApplyOutcome BlockedOutcome(const Blocked& blocked, DaxState physical_before = DaxState::kUnknown,
                            FileKind kind = FileKind::kRegular);

}  // namespace daxpolicy::driver
