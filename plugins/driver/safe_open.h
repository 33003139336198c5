// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Opening files below a scope root so that no symlink, mount point or rename race can make
/// the daemon act on anything outside the scope, and so that a fifo, socket or device node is
/// never opened for real (opening one can block or have side effects in its driver).

#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "plugins/driver/blocked.h"
#include "plugins/unique_fd.h"

namespace daxpolicy::driver {

/// The identity a scan saw: st_dev and st_ino. ino == 0 means "no expectation" (xfs and ext4
/// never use inode 0), e.g. for a first read of a path.
struct FileIdentity {
  uint64_t dev = 0;
  uint64_t ino = 0;
};

struct SafeOpenOptions {
  /// procfs mount used to reopen an O_PATH fd of a regular file (<root>/self/fd/N).
  std::string procfs_root = "/proc";
  /// false forces the component-by-component O_NOFOLLOW walk (otherwise used only when
  /// openat2 returns ENOSYS, i.e. kernels before 5.6).
  bool use_openat2 = true;
};

/// An open fd and the fstat of what it refers to.
struct OpenedFile {
  UniqueFd fd;
  struct stat st {};
};

/// The O_PATH fd of a path's parent directory and the path's last component ("" for the
/// scope root itself, in which case `dir` refers to the root).
struct ParentDir {
  UniqueFd dir;
  std::string name;
};

/// "fifo", "socket", "character device", "block device", "symlink", "regular file", "directory".
std::string_view FileTypeName(mode_t mode);

/// Opens paths relative to a scope root fd. Paths are relative ("a/b/c", "" = the root itself)
/// and may contain any bytes but NUL (newlines and non-UTF-8 names are fine).
class SafeOpener {
 public:
  explicit SafeOpener(SafeOpenOptions options = {});

  /// An O_PATH fd of `path` (the last component is not followed either: a trailing symlink
  /// yields an fd of the link itself). Resolution never follows a symlink, never crosses a
  /// mount point and never leaves `root_fd`.
  BlockedOr<OpenedFile> OpenPath(int root_fd, std::string_view path) const;

  /// The O_PATH fd of the directory containing `path`, resolved like OpenPath.
  BlockedOr<ParentDir> OpenParent(int root_fd, std::string_view path) const;

  /// A read-only fd fit for FS_IOC_FS[GS]ETXATTR of the regular file or directory at `path`,
  /// whose identity matches `expected` (unless expected.ino is 0). A fifo, socket, device
  /// node or symlink is refused after looking at it through an O_PATH fd only.
  BlockedOr<OpenedFile> OpenForIoctl(int root_fd, std::string_view path,
                                     const FileIdentity& expected) const;

  /// statx of `path` through its parent directory (AT_SYMLINK_NOFOLLOW), holding no fd of the
  /// file itself so that the daemon never delays a DAX switch. Checks `expected`.
  BlockedOr<struct statx> StatNoHold(int root_fd, std::string_view path,
                                     const FileIdentity& expected) const;

  /// False once openat2 returned ENOSYS or when the options disabled it.
  bool using_openat2() const { return openat2_usable_.load(std::memory_order_relaxed); }

 private:
  BlockedOr<OpenedFile> OpenPathOpenat2(int root_fd, std::string_view path) const;
  BlockedOr<OpenedFile> OpenPathWalk(int root_fd, std::string_view path) const;

  SafeOpenOptions options_;
  mutable std::atomic<bool> openat2_usable_;
};

}  // namespace daxpolicy::driver
