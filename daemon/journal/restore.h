// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Undoing the daemon's changes from its journal; works offline, without the daemon (which
/// must not be running: both take the journal's lock).

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/journal/journal.h"
#include "plugins/driver/inode_flag_driver.h"
#include "plugins/driver/kernel_version.h"
#include "policy/result.h"

namespace daxpolicy::journal {

enum class RestoreStatus : uint8_t {
  kRestored,         ///< the physical flag was set back to the original
  kAlreadyOriginal,  ///< the flag already had its original value
  kVanished,         ///< the file (or its scope root) no longer exists
  kReplaced,         ///< the path names another inode now; nothing was touched
  kFailed,           ///< refused or failed; see error_code and detail
  kNotRecorded,      ///< a requested path the journal knows nothing about
  kLeftAsIs,         ///< a file that may have inherited the daemon's flag; cannot tell (detail)
};

/// "restored", "already original", "vanished", "replaced; not touched", "failed",
/// "not in journal", "left as is".
std::string_view RestoreStatusName(RestoreStatus status);

struct RestoreItem {
  std::string path;  ///< absolute, raw bytes (use PrintablePath to print); the current name
  RestoreStatus status = RestoreStatus::kFailed;
  policy::DaxState original = policy::DaxState::kUnknown;
  int error_code = 0;  ///< errno for kFailed (and the driver's code for other refusals)
  std::string detail;  ///< the driver's reason when not restored, else ""
};

struct RestoreRequest {
  /// Restore every recorded file; otherwise only `paths` (absolute, as recorded).
  bool all = false;
  std::vector<std::string> paths;
  driver::KernelVersion kernel = driver::KernelVersion::Running();
  /// Safe-open settings (procfs root). Hard-linked files are restored too: the daemon changed
  /// that very inode, so setting it back is always an undo.
  driver::SafeOpenOptions open;
  JournalOptions journal;

  /// Every recorded file (`restore --all`).
  static RestoreRequest AllFiles() {
    RestoreRequest r;
    r.all = true;
    return r;
  }
  /// Only these absolute paths (`restore PATH...`).
  static RestoreRequest Paths(std::vector<std::string> paths) {
    RestoreRequest r;
    r.paths = std::move(paths);
    return r;
  }
};

struct RestoreReport {
  /// Journal files found torn or corrupt, now or by an earlier open (Journal::Damage()):
  /// originals recorded there may be lost, so the restore is not complete.
  std::vector<std::string> journal_problems;
  /// Notes that do not make the restore incomplete (e.g. an old journal without scopes).
  std::vector<std::string> notes;
  /// Set when dropping the restored entries from the journal failed (the flags are restored;
  /// a later restore reports them as already original).
  std::string journal_error;
  std::vector<RestoreItem> items;  ///< in journal order, then unknown requested paths

  size_t Count(RestoreStatus status) const;
  /// No item failed and the journal was updated.
  bool ok() const;
  /// Every original is back: only restored and already-original items (a vanished file's
  /// original cannot be set back), no journal damage and no journal error. `daxpolicyctl restore`
  /// exits 1 otherwise.
  bool Complete() const;
  /// Human-readable report, one line per file ("restored: /srv/pmem/a (original: dax)"), paths
  /// escaped with PrintablePath, then problems and a summary line.
  std::string Format() const;
};

/// For each selected journal entry: refuses it when its scope root is not one of the scope
/// roots the journal recorded for its policy (journals without any: a root under /proc, /sys
/// or /dev, or not absolute); opens the file safely under its scope root and checks that it is
/// the recorded file (filesystem UUID, file handle with the inode generation; dev + ino for
/// old entries). A file renamed within its scope is found by its handle and restored under its
/// new name; one whose handle no longer opens is kVanished; one moved out of the scope is
/// kFailed; a path naming another file without a handle to tell is kReplaced (never touched).
/// Sets the physical flag back to the original. For a directory it then looks at the files
/// created in it (and in subdirectories created in it) after the daemon changed it: those
/// still carrying the flag they inherited are set back too, and those whose birth time is
/// unknown are reported kLeftAsIs. Finally drops restored / already-original / vanished
/// entries from the journal in one atomic write. Fails only if the journal cannot be opened
/// (e.g. locked by the daemon, or a state directory that is not trusted).
Result<RestoreReport> Restore(const std::string& state_dir, const RestoreRequest& request);

}  // namespace daxpolicy::journal
