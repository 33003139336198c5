// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <errno.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

namespace daxpolicy {

/// How every lookup below a scope root resolves: never follows a symlink or a magic link,
/// never crosses into another mount (a scope is one filesystem) and never leaves dirfd.
inline constexpr uint64_t kResolveBeneath =
    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

/// openat2 returns EAGAIN when a concurrent rename or mount might have let a lookup escape;
/// retrying is the documented answer. After this many tries the EAGAIN is returned.
inline constexpr int kOpenBeneathRetries = 64;

/// openat2(dirfd, name, flags, kResolveBeneath) (Linux 5.6+), retried on EAGAIN and EINTR.
/// Returns the fd, or -1 with errno set (ELOOP: a symlink, EXDEV: a mount or an escape,
/// ENOSYS: no openat2).
inline int OpenBeneath(int dirfd, const char* name, uint64_t flags) {
  open_how how{};
  how.flags = flags;
  how.resolve = kResolveBeneath;
  int fd = -1;
  for (int attempt = 0; attempt < kOpenBeneathRetries; ++attempt) {
    fd = static_cast<int>(syscall(SYS_openat2, dirfd, name, &how, sizeof how));
    if (fd >= 0 || (errno != EAGAIN && errno != EINTR)) break;
  }
  return fd;
}

}  // namespace daxpolicy
