// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Changes to the trees under scope, as they happen: fanotify filesystem marks
/// in FAN_REPORT_DFID_NAME mode (Linux 5.9+), read into FsEvents for a
/// ChangeTable (plugins/files/change_table.h).

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "plugins/files/change_table.h"
#include "plugins/unique_fd.h"
#include "policy/result.h"

namespace daxpolicy::files {

/// What one TreeEventSource::Drain() read.
struct TreeDrain {
  /// Stopped after the per-call bound with events still queued: call again
  /// (the fd stays readable) after other work had its turn.
  bool more = false;
  uint64_t events = 0;       ///< events read, of any kind
  uint64_t ignored_own = 0;  ///< caused by the ignored pid (the daemon itself)
  bool overflow = false;     ///< the kernel's queue overflowed: events were lost
};

/// What the engine needs of tree events (TreeWatcher; fakes in tests).
class TreeEventSource {
 public:
  virtual ~TreeEventSource() = default;
  /// Starts reporting changes on the whole filesystem holding `path` (a scope root).
  virtual Result<void> WatchFilesystem(const std::string& path) = 0;
  /// Readable when Drain() has something; -1 when there is no fd to wait on.
  virtual int fd() const = 0;
  /// Appends the queued events to *out (an overflow as FsEvent::overflow).
  virtual Result<TreeDrain> Drain(std::vector<FsEvent>* out) = 0;
  /// The path of the directory whose handle is `dir_key` (FsEvent::dir_key), now.
  virtual DirResolution ResolveDir(std::string_view dir_key) = 0;
};

/// At most this many read()s of the fanotify fd per Drain() call (64 KiB each).
inline constexpr int kMaxTreeReadsPerDrain = 16;

/// The fanotify events it asks for: entries created, removed, renamed away and
/// to, data written, attributes changed, closed after writing; on directories too.
uint64_t TreeEventMask();

/// fanotify with FAN_REPORT_DFID_NAME and FAN_MARK_FILESYSTEM marks: every
/// change on a marked filesystem is reported as (parent directory handle, name),
/// so the watcher never opens the changed files (it is never a holder of one)
/// and a rename needs no cookie pairing: each side names its own directory.
/// Needs CAP_SYS_ADMIN (filesystem marks) and, to turn handles into paths,
/// CAP_DAC_READ_SEARCH (open_by_handle_at).
///
/// Reads (opens, read(2), mmap faults) are not asked for: they reach the
/// daemon through the access source, and a filesystem mark on them would cost
/// every reader on the filesystem. Events of the ignored pid (the daemon's own
/// flag changes, probe files and journal) are counted and dropped. The kernel's
/// queue is bounded (fs.fanotify.max_queued_events, 16384 by default): beyond
/// it the kernel drops events and queues one FAN_Q_OVERFLOW, reported as an
/// FsEvent with `overflow` set.
class TreeWatcher final : public TreeEventSource {
 public:
  /// Opens the fanotify group. Fails with EPERM without CAP_SYS_ADMIN and
  /// EINVAL before Linux 5.9 (no FAN_REPORT_DFID_NAME).
  static Result<std::unique_ptr<TreeWatcher>> Create(pid_t ignore_pid,
                                                     std::string procfs_root = "/proc");

  /// Adds a FAN_MARK_FILESYSTEM mark on the filesystem holding `path` and
  /// keeps a directory fd there to resolve handles. Harmless twice. Errors:
  /// EPERM, ENODEV (no fsid, e.g. FUSE), EXDEV (fsid not unique, e.g. a btrfs
  /// subvolume), EOPNOTSUPP (no file handles).
  Result<void> WatchFilesystem(const std::string& path) override;
  int fd() const override { return fd_.get(); }
  /// Reads at most kMaxTreeReadsPerDrain buffers. Errors only for read()
  /// failures other than EAGAIN and for a metadata version it does not know.
  Result<TreeDrain> Drain(std::vector<FsEvent>* out) override;
  /// open_by_handle_at on the marked filesystem, then the fd's path: kGone when
  /// the handle is stale or the directory was removed.
  DirResolution ResolveDir(std::string_view dir_key) override;

 private:
  TreeWatcher(UniqueFd fd, pid_t ignore_pid, std::string procfs)
      : fd_(std::move(fd)),
        ignore_pid_(ignore_pid),
        proc_fd_dir_(std::move(procfs) + "/self/fd/") {}

  UniqueFd fd_;
  pid_t ignore_pid_;
  std::string proc_fd_dir_;
  // fsid (8 bytes) -> a directory on that filesystem, opened for reading
  // (open_by_handle_at refuses O_PATH fds).
  std::unordered_map<std::string, UniqueFd> mount_fds_;
  std::vector<char> buffer_;
};

}  // namespace daxpolicy::files
