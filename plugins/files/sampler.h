// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Per-file telemetry: size, mtime, effective and physical DAX state, page cache.

#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "plugins/files/cache_stat.h"
#include "plugins/open_beneath.h"
#include "policy/snapshot.h"

namespace daxpolicy::files {

/// What happened to one record during sampling.
enum class SampleStatus : uint8_t {
  kOk,        ///< sampled; the record's `available` bits say which fields are valid
  kVanished,  ///< the name no longer exists (ENOENT)
  kReplaced,  ///< the name now refers to another inode, a non-regular file, a symlink or a mount
  kError,     ///< another error (errno in the out-parameter)
};

struct SampleError {
  std::string path;
  int err = 0;
};

/// Counters of a sampling pass.
struct SampleStats {
  uint64_t sampled = 0;
  uint64_t vanished = 0;
  uint64_t replaced = 0;
  uint64_t errors = 0;
  uint64_t cache_skipped_dax = 0;         ///< effective DAX: no page-cache numbers by design
  uint64_t cache_unavailable = 0;         ///< cachestat/mincore failed (e.g. EPERM)
  std::vector<SampleError> first_errors;  ///< at most 100, with paths
};

/// Fills the telemetry fields of FileRecords. For each regular file it costs
/// openat2(O_PATH) + statx + open(/proc/self/fd/N) + ioctl(FS_IOC_FSGETXATTR) + cachestat +
/// two closes; a directory fd opened by the caller is reused for every file in it.
///
/// A name is first resolved to an O_PATH fd with
/// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_XDEV (openat2, Linux 5.6+), so a name
/// that became a symlink or a mount point is refused by the kernel; the type and inode are
/// checked on that fd. Where openat2 is unavailable the name is opened with
/// openat(O_PATH|O_NOFOLLOW) and its mount compared with the directory's on that same statx,
/// so the per-file cost stays the same. Only a regular file is then opened for real, through the
/// <procfs>/self/fd/N magic link of the O_PATH fd, which reopens the very inode checked: a
/// fifo, socket or device node swapped in under the name at any moment is never opened
/// (opening one can block or have side effects in its driver). The real open is
/// O_RDONLY|O_NONBLOCK|O_NOATIME|O_CLOEXEC|O_NOCTTY, so the access time is not touched. The
/// open fd makes the daemon a holder for the few microseconds of the sample; close events it
/// causes must be filtered by pid (CloseWatcher does). Without procfs every file sample
/// fails with an error (nothing is opened).
class FileSampler {
 public:
  struct Options {
    bool physical = true;               ///< read FS_XFLAG_DAX with FS_IOC_FSGETXATTR
    bool cache = true;                  ///< read page-cache numbers (cachestat, mincore fallback)
    std::string procfs_root = "/proc";  ///< reopens regular files via <root>/self/fd/N
  };

  FileSampler();
  explicit FileSampler(Options options, uint64_t page_size = 0);

  /// Samples the regular file `name` (one path component) in the directory dirfd.
  /// `record->ino` is the expected identity; a different inode is kReplaced and
  /// leaves the record untouched. On kError, *err (if given) holds the errno.
  SampleStatus SampleFile(int dirfd, std::string_view name, policy::FileRecord* record,
                          int* err = nullptr);
  /// Same, for a dirfd the caller knows to be on the mount `dir_mount` (as the scanner knows
  /// of every directory it walks): where openat2 is unavailable, a file's mount is then
  /// compared with it instead of with a statx of dirfd per file.
  SampleStatus SampleFile(int dirfd, const MountIdentity& dir_mount, std::string_view name,
                          policy::FileRecord* record, int* err = nullptr);

  /// Samples an already open fd (e.g. a directory the scanner opened) whose statx
  /// result `stx` the caller already has: size, mtime, effective and physical
  /// state; page cache only for regular files.
  SampleStatus SampleOpen(int fd, const struct statx& stx, policy::FileRecord* record);

  /// Counters accumulated by SampleFile/SampleOpen since the last ResetStats().
  const SampleStats& stats() const { return stats_; }
  void ResetStats() { stats_ = SampleStats(); }

  CacheProbe& cache_probe() { return cache_; }

 private:
  SampleStatus Sample(int dirfd, const MountIdentity* dir_mount, std::string_view name,
                      policy::FileRecord* record, int* err);
  SampleStatus Count(SampleStatus status, int err, std::string_view name);

  Options options_;
  CacheProbe cache_;
  bool effective_trusted_;  // kernel >= 5.8: STATX_ATTR_DAX is meaningful even without its mask bit
  bool noatime_allowed_ = true;
  uint32_t euid_;
  std::string proc_fd_dir_;  // "<procfs>/self/fd"
  SampleStats stats_;
};

}  // namespace daxpolicy::files
