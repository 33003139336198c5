// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

/// Without openat2, one name directly below dirfd: openat with O_NOFOLLOW (a symlink is
/// opened as itself with O_PATH, or refused with ELOOP), never "." or "..", and the same
/// mount as dirfd (mount id where statx reports it, else the device), else EXDEV.
inline int OpenOneNameBeneath(int dirfd, const char* name, uint64_t flags) {
  if (name[0] == '\0' || std::strchr(name, '/') != nullptr || std::strcmp(name, ".") == 0 ||
      std::strcmp(name, "..") == 0) {
    errno = ENOSYS;  // a path of several components needs openat2 (or a walk by the caller)
    return -1;
  }
  int fd = -1;
  do {
    fd = openat(dirfd, name, static_cast<int>(flags) | O_NOFOLLOW);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return -1;
  struct statx dir {
  }, file{};
  constexpr unsigned kMask = STATX_MNT_ID;
  if (statx(dirfd, "", AT_EMPTY_PATH, kMask, &dir) != 0 ||
      statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, kMask, &file) != 0) {
    const int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  bool same = dir.stx_dev_major == file.stx_dev_major && dir.stx_dev_minor == file.stx_dev_minor;
  if ((dir.stx_mask & STATX_MNT_ID) && (file.stx_mask & STATX_MNT_ID)) {
    same = same && dir.stx_mnt_id == file.stx_mnt_id;
  }
  if (!same) {
    close(fd);
    errno = EXDEV;
    return -1;
  }
  return fd;
}

/// openat2(dirfd, name, flags, kResolveBeneath) (Linux 5.6+), retried on EAGAIN and EINTR.
/// Where openat2 is unavailable, a single name is opened by OpenOneNameBeneath; a path of
/// several components then fails with ENOSYS (the caller walks it).
/// Returns the fd, or -1 with errno set (ELOOP: a symlink, EXDEV: a mount or an escape,
/// ENOSYS: no openat2 for a path of several components).
inline int OpenBeneath(int dirfd, const char* name, uint64_t flags) {
  if (!g_openat2_usable.load(std::memory_order_relaxed)) {
    return OpenOneNameBeneath(dirfd, name, flags);
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
    return OpenOneNameBeneath(dirfd, name, flags);
  }
  return fd;
}

}  // namespace daxpolicy
