// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>

namespace daxpolicy {

/// How every lookup below a scope root resolves: never follows a symlink or a magic link,
/// never crosses into another mount (a scope is one filesystem) and never leaves dirfd.
inline constexpr uint64_t kResolveBeneath =
    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

/// openat2 returns EAGAIN when a concurrent rename or mount might have let a lookup escape;
/// retrying is the documented answer. After this many tries the EAGAIN is returned.
inline constexpr int kOpenBeneathRetries = 64;

/// Cleared once openat2 answered ENOSYS: a kernel before 5.6, or a seccomp filter that hides
/// it (systemd's RestrictSUIDSGID= does, because it cannot inspect openat2's mode).
inline std::atomic<bool> g_openat2_usable{true};

/// The mount an inode was reached through, as statx reports it: the device, and the mount id
/// where the kernel gives one (STATX_MNT_ID, Linux 5.8+; 0 when it does not).
struct MountIdentity {
  uint64_t dev = 0;
  uint64_t mnt_id = 0;

  static MountIdentity Of(const struct statx& stx) {
    return {makedev(stx.stx_dev_major, stx.stx_dev_minor),
            (stx.stx_mask & STATX_MNT_ID) ? stx.stx_mnt_id : 0};
  }
  /// Whether `stx` (asked with STATX_MNT_ID) is on this mount: the same device, and the same
  /// mount id where both are known (a bind mount of the same filesystem has the same device).
  bool Holds(const struct statx& stx) const {
    if (makedev(stx.stx_dev_major, stx.stx_dev_minor) != dev) return false;
    return mnt_id == 0 || !(stx.stx_mask & STATX_MNT_ID) || stx.stx_mnt_id == mnt_id;
  }
};

/// Without openat2, one name directly below dirfd: openat with O_NOFOLLOW (a symlink is
/// opened as itself with O_PATH, or refused with ELOOP), never "." or "..". Its mount is not
/// checked here (see OpenBeneathLeavingMount).
inline int OpenOneName(int dirfd, const char* name, uint64_t flags) {
  if (name[0] == '\0' || std::strchr(name, '/') != nullptr || std::strcmp(name, ".") == 0 ||
      std::strcmp(name, "..") == 0) {
    errno = ENOSYS;  // a path of several components needs openat2 (or a walk by the caller)
    return -1;
  }
  int fd = -1;
  do {
    fd = openat(dirfd, name, static_cast<int>(flags) | O_NOFOLLOW);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

/// openat2(dirfd, name, flags, kResolveBeneath) (Linux 5.6+), retried on EAGAIN and EINTR.
/// Where openat2 is unavailable, a single name is opened by OpenOneName and *check_mount is
/// set: the caller must then compare the fd's mount with dirfd's (MountIdentity::Holds on a
/// statx of the fd asked with STATX_MNT_ID) before trusting it, which costs nothing where the
/// caller statx's the fd anyway. A path of several components then fails with ENOSYS (the
/// caller walks it). Returns the fd, or -1 with errno set (ELOOP: a symlink, EXDEV: a mount or
/// an escape, ENOSYS: no openat2 for a path of several components).
inline int OpenBeneathLeavingMount(int dirfd, const char* name, uint64_t flags, bool* check_mount) {
  *check_mount = false;
  if (!g_openat2_usable.load(std::memory_order_relaxed)) {
    *check_mount = true;
    return OpenOneName(dirfd, name, flags);
  }
  open_how how{};
  how.flags = flags;
  how.resolve = kResolveBeneath;
  int fd = -1;
  for (int attempt = 0; attempt < kOpenBeneathRetries; ++attempt) {
    fd = static_cast<int>(syscall(SYS_openat2, dirfd, name, &how, sizeof how));
    if (fd >= 0 || (errno != EAGAIN && errno != EINTR)) break;
  }
  if (fd < 0 && errno == ENOSYS) {
    g_openat2_usable.store(false, std::memory_order_relaxed);
    *check_mount = true;
    return OpenOneName(dirfd, name, flags);
  }
  return fd;
}

/// OpenBeneathLeavingMount with the mount check done here where it was left: without openat2
/// a name on another mount than dirfd (a mount point, a bind mount over a file included) is
/// refused with EXDEV, at the cost of a statx of dirfd and one of the fd.
inline int OpenBeneath(int dirfd, const char* name, uint64_t flags) {
  bool check_mount = false;
  const int fd = OpenBeneathLeavingMount(dirfd, name, flags, &check_mount);
  if (fd < 0 || !check_mount) return fd;
  struct statx dir {
  }, file{};
  if (statx(dirfd, "", AT_EMPTY_PATH, STATX_MNT_ID, &dir) != 0 ||
      statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &file) != 0) {
    const int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  if (!MountIdentity::Of(dir).Holds(file)) {
    close(fd);
    errno = EXDEV;
    return -1;
  }
  return fd;
}

}  // namespace daxpolicy
