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
  /// Drain() stopped after its per-call bound with events still queued: call it again (the
  /// fd stays readable), after other work had its turn.
  bool more = false;
  std::vector<CloseEvent> closed;  ///< one per tracked file, even if closed many times
  /// The kernel queue overflowed (FAN_Q_OVERFLOW) and events were lost: the
  /// caller must re-check every pending file (rescan).
  bool overflow = false;
  uint64_t events = 0;       ///< events read, of any kind
  uint64_t ignored_own = 0;  ///< caused by the ignored pid (the daemon's own samples)
  uint64_t untracked = 0;    ///< closes of files nobody tracks
};

/// At most this many read()s of the fanotify fd per Drain() call (64 KiB each).
inline constexpr int kMaxReadsPerDrain = 4;

/// fanotify in FID mode (FAN_REPORT_FID, Linux 5.1+). Needs CAP_SYS_ADMIN. Events carry a
/// file handle instead of an open fd, so the watcher never opens the files itself and never
/// becomes a holder.
///
/// What is marked: only the tracked (pending) files themselves, with evictable inode marks
/// (FAN_MARK_EVICTABLE, Linux 5.19+). An evictable mark does not pin the inode, so the kernel
/// can still evict it after the last close, which is what makes a pending DAX switch take
/// effect. Closes of any other file, in the scopes or not, never reach the daemon, so a
/// process opening and closing files in a loop costs it nothing. On kernels without
/// evictable marks, WatchFilesystem() falls back to a filesystem mark (Linux 4.20+): every
/// close on that filesystem is then read and matched by handle, which costs the daemon CPU
/// under a close flood (bounded per Drain() call).
///
/// Identification: Track() records the file's handle (name_to_handle_at) and its
/// filesystem id (fstatfs f_fsid, the same value fanotify reports); an event
/// matches when fsid, handle type and handle bytes are equal. This works on every
/// filesystem that supports file handles, without decoding fs-specific handle
/// layouts (ext4 and xfs encode inode and generation differently, and xfs
/// switches formats for 64-bit inode numbers), and the generation inside the
/// handle means a recycled inode number never matches a stale entry.
/// What the engine needs of close events (CloseWatcher; fakes in tests).
class CloseEventSource {
 public:
  virtual ~CloseEventSource() = default;
  /// Starts watching closes on the filesystem holding `path` (a scope root).
  virtual Result<void> WatchFilesystem(const std::string& path) = 0;
  /// Reports closes of `name` in dirfd as `token`.
  virtual Result<void> Track(int dirfd, std::string_view name, uint64_t token) = 0;
  /// Stops reporting `token`; false if it was not tracked.
  virtual bool Untrack(uint64_t token) = 0;
  /// Readable when Drain() has something; -1 when there is no fd to wait on.
  virtual int fd() const = 0;
  virtual Result<DrainResult> Drain() = 0;
};

class CloseWatcher final : public CloseEventSource {
 public:
  /// Opens the fanotify group. Events whose pid is `ignore_pid` (normally
  /// getpid()) are counted and dropped. Fails with EPERM without CAP_SYS_ADMIN.
  /// `evictable_marks` false never tries FAN_MARK_EVICTABLE and watches whole filesystems,
  /// as on kernels before 5.19 (tests of that fallback run on any kernel).
  static Result<std::unique_ptr<CloseWatcher>> Create(pid_t ignore_pid,
                                                      bool evictable_marks = true);

  /// Prepares close events for files on the filesystem holding `path` (a directory, e.g. a
  /// scope root): checks that the filesystem can report them (a mark is added on the
  /// directory and removed again) and, only on kernels without evictable marks, adds a
  /// FAN_MARK_FILESYSTEM mark. Calling it twice for one filesystem is harmless.
  /// Errors: EPERM (needs CAP_SYS_ADMIN), ENODEV (the filesystem has no fsid, e.g.
  /// FUSE), EXDEV (the fsid is not unique, e.g. a btrfs subvolume), EOPNOTSUPP
  /// (no file handles).
  Result<void> WatchFilesystem(const std::string& path) override;

  /// Starts reporting closes of `name` (a path relative to dirfd, resolved beneath it without
  /// following symlinks or crossing mounts) as `token`, marking that file.
  /// Tracking the same file again replaces its token.
  Result<void> Track(int dirfd, std::string_view name, uint64_t token) override;
  /// Stops reporting the file tracked as `token` and removes its mark (if the file still
  /// exists). False if it was not tracked.
  bool Untrack(uint64_t token) override;
  size_t tracked() const { return token_by_key_.size(); }

  /// The fanotify fd, non-blocking, for the event loop (readable = Drain()).
  int fd() const override { return fd_.get(); }

  /// Reads queued events, at most kMaxReadsPerDrain buffers (DrainResult::more says when
  /// some are left). Errors only for read() failures other than EAGAIN.
  Result<DrainResult> Drain() override;

 private:
  CloseWatcher(UniqueFd fd, pid_t ignore_pid) : fd_(std::move(fd)), ignore_pid_(ignore_pid) {}
  Result<void> TrackPinned(int pinned_fd, int dirfd, const std::string& what, uint64_t token);
  void RemoveMark(const std::string& key);

  UniqueFd fd_;
  pid_t ignore_pid_;
  bool evictable_ = true;  // false: the kernel has no FAN_MARK_EVICTABLE (before 5.19)
  // Per fsid (8 bytes): a directory on that filesystem, opened for reading (open_by_handle_at
  // refuses O_PATH fds), to reopen a tracked file by its handle when removing its mark.
  std::unordered_map<std::string, UniqueFd> mount_fds_;
  std::string scratch_key_;
  // Key: fsid (8 bytes) + handle type (4 bytes) + handle bytes.
  std::unordered_map<std::string, uint64_t> token_by_key_;
  std::unordered_map<uint64_t, std::string> key_by_token_;
  std::vector<char> buffer_;
};

}  // namespace daxpolicy::files
