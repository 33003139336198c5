// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Notices when an open file description of a watched file is released
/// (fanotify FAN_CLOSE_WRITE / FAN_CLOSE_NOWRITE), so a pending DAX change can be
/// re-checked right away instead of at the next sampling interval.

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "plugins/unique_fd.h"
#include "policy/result.h"

namespace daxpolicy::files {

/// A tracked file was closed by some process other than the ignored one.
/// A close is per open file description, not per inode: others may still hold
/// the file, so re-check (statx physical vs effective) rather than assume.
struct CloseEvent {
  uint64_t token = 0;  ///< the value given to Track()
  bool wrote = false;  ///< FAN_CLOSE_WRITE (the closed description was open for writing)
};

/// What one Drain() found.
struct DrainResult {
  std::vector<CloseEvent> closed;  ///< one per tracked file, even if closed many times
  /// The kernel queue overflowed (FAN_Q_OVERFLOW) and events were lost: the
  /// caller must re-check every pending file (rescan).
  bool overflow = false;
  uint64_t events = 0;       ///< events read, of any kind
  uint64_t ignored_own = 0;  ///< caused by the ignored pid (the daemon's own samples)
  uint64_t untracked = 0;    ///< closes of files nobody tracks
};

/// fanotify in FID mode (FAN_REPORT_FID, Linux 5.1+) with filesystem marks
/// (Linux 4.20+). Needs CAP_SYS_ADMIN. Events carry a file handle instead of an
/// open fd, so the watcher never opens the files itself and never becomes a
/// holder.
///
/// Identification: Track() records the file's handle (name_to_handle_at) and its
/// filesystem id (fstatfs f_fsid, the same value fanotify reports); an event
/// matches when fsid, handle type and handle bytes are equal. This works on every
/// filesystem that supports file handles, without decoding fs-specific handle
/// layouts (ext4 and xfs encode inode and generation differently, and xfs
/// switches formats for 64-bit inode numbers), and the generation inside the
/// handle means a recycled inode number never matches a stale entry.
class CloseWatcher {
 public:
  /// Opens the fanotify group. Events whose pid is `ignore_pid` (normally
  /// getpid()) are counted and dropped. Fails with EPERM without CAP_SYS_ADMIN.
  static Result<std::unique_ptr<CloseWatcher>> Create(pid_t ignore_pid);

  /// Adds a FAN_MARK_FILESYSTEM mark for closes on the filesystem holding `path`
  /// (a directory, e.g. a scope root). Marking the same filesystem twice is harmless.
  /// Errors: EPERM (needs CAP_SYS_ADMIN), ENODEV (the filesystem has no fsid, e.g.
  /// FUSE), EXDEV (the fsid is not unique, e.g. a btrfs subvolume), EOPNOTSUPP
  /// (no file handles).
  Result<void> WatchFilesystem(const std::string& path);

  /// Starts reporting closes of `name` in dirfd (not following symlinks) as `token`.
  /// Tracking the same file again replaces its token.
  Result<void> Track(int dirfd, std::string_view name, uint64_t token);
  /// Same for an already open fd.
  Result<void> TrackFd(int fd, uint64_t token);
  /// Stops reporting the file tracked as `token`. False if it was not tracked.
  bool Untrack(uint64_t token);
  size_t tracked() const { return token_by_key_.size(); }

  /// The fanotify fd, non-blocking, for the event loop (readable = Drain()).
  int fd() const { return fd_.get(); }

  /// Reads every queued event. Errors only for read() failures other than EAGAIN.
  Result<DrainResult> Drain();

 private:
  CloseWatcher(UniqueFd fd, pid_t ignore_pid) : fd_(std::move(fd)), ignore_pid_(ignore_pid) {}
  Result<void> TrackAt(int dirfd, const char* name, int flags, uint64_t token);

  UniqueFd fd_;
  pid_t ignore_pid_;
  // Key: fsid (8 bytes) + handle type (4 bytes) + handle bytes.
  std::unordered_map<std::string, uint64_t> token_by_key_;
  std::unordered_map<uint64_t, std::string> key_by_token_;
  std::vector<char> buffer_;
};

}  // namespace daxpolicy::files
