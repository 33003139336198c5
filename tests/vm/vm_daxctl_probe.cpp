// SPDX-License-Identifier: Apache-2.0
// vm_daxctl_probe: a small tool for the VM tests (tests/vm/guest/*.sh). It sets and
// clears the per-inode DAX flag, prints the requested and the effective state, holds
// a file open on request, and tries cachestat(2).
//
//   vm_daxctl_probe get PATH        prints "xflag_dax=0|1 statx_dax=0|1 statx_dax_known=0|1"
//   vm_daxctl_probe set PATH        sets FS_XFLAG_DAX (file or directory)
//   vm_daxctl_probe clear PATH      clears FS_XFLAG_DAX
//   vm_daxctl_probe hold PATH       opens PATH, prints "held", waits for EOF on stdin
//   vm_daxctl_probe cachestat PATH  prints "cachestat ok nr_cache=N ..." or
//                                   "cachestat errno=NAME"
//
// Exit status: 0 done, 1 usage, 2 a system call failed (for cachestat: the call
// itself failed, and the errno name is on stdout).

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "plugins/unique_fd.h"
#include "policy/result.h"

namespace daxpolicy::vm {
namespace {

// From include/uapi/linux/stat.h (Linux 5.8+); older userspace headers lack it.
#ifndef STATX_ATTR_DAX
constexpr uint64_t kStatxAttrDax = 0x00200000;
#else
constexpr uint64_t kStatxAttrDax = STATX_ATTR_DAX;
#endif

// cachestat(2) arrived in Linux 6.5; the 6.1 headers of the guest know neither the
// number (x86_64) nor the structures (include/uapi/linux/mman.h).
constexpr long kSysCachestat = 451;
struct CachestatRange {
  uint64_t off;
  uint64_t len;  // 0: up to the end of the file
};
struct Cachestat {
  uint64_t nr_cache;
  uint64_t nr_dirty;
  uint64_t nr_writeback;
  uint64_t nr_evicted;
  uint64_t nr_recently_evicted;
};

enum ExitCode { kDone = 0, kUsage = 1, kSyscallFailed = 2 };

const char* ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "unknown";
}

Result<int> Open(const std::string& path) {
  // O_RDONLY works for directories too; the xattr ioctls need ownership, not write access.
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return ErrnoError(errno, "open " + path);
  return fd;
}

Result<bool> ReadXflagDax(int fd, const std::string& path) {
  fsxattr attr{};
  if (ioctl(fd, FS_IOC_FSGETXATTR, &attr) != 0) {
    return ErrnoError(errno, "FS_IOC_FSGETXATTR " + path);
  }
  return (attr.fsx_xflags & FS_XFLAG_DAX) != 0;
}

Result<void> WriteXflagDax(const std::string& path, bool on) {
  Result<int> fd = Open(path);
  if (!fd) return fd.error();
  daxpolicy::UniqueFd owner(*fd);
  fsxattr attr{};
  if (ioctl(owner.get(), FS_IOC_FSGETXATTR, &attr) != 0) {
    return ErrnoError(errno, "FS_IOC_FSGETXATTR " + path);
  }
  attr.fsx_xflags = on ? (attr.fsx_xflags | FS_XFLAG_DAX) : (attr.fsx_xflags & ~FS_XFLAG_DAX);
  if (ioctl(owner.get(), FS_IOC_FSSETXATTR, &attr) != 0) {
    return ErrnoError(errno, "FS_IOC_FSSETXATTR " + path);
  }
  return {};
}

struct DaxState {
  bool xflag_dax = false;
  bool statx_dax = false;
  bool statx_dax_known = false;  // the filesystem reports the attribute at all
};

Result<DaxState> ReadState(const std::string& path) {
  Result<int> fd = Open(path);
  if (!fd) return fd.error();
  daxpolicy::UniqueFd owner(*fd);
  DaxState state;
  Result<bool> xflag = ReadXflagDax(owner.get(), path);
  if (!xflag) return xflag.error();
  state.xflag_dax = *xflag;
  // By path, not by fd, so this probe's own open file plays no part in what it reports.
  struct statx stx {};
  if (statx(AT_FDCWD, path.c_str(), AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS, &stx) != 0) {
    return ErrnoError(errno, "statx " + path);
  }
  state.statx_dax_known = (stx.stx_attributes_mask & kStatxAttrDax) != 0;
  state.statx_dax = (stx.stx_attributes & kStatxAttrDax) != 0;
  return state;
}

int Fail(const Error& error) {
  std::fprintf(stderr, "vm_daxctl_probe: %s (%s)\n", error.message.c_str(), ErrnoName(error.code));
  return kSyscallFailed;
}

int Get(const std::string& path) {
  Result<DaxState> state = ReadState(path);
  if (!state) return Fail(state.error());
  std::printf("xflag_dax=%d statx_dax=%d statx_dax_known=%d\n", state->xflag_dax ? 1 : 0,
              state->statx_dax ? 1 : 0, state->statx_dax_known ? 1 : 0);
  return kDone;
}

int Hold(const std::string& path) {
  Result<int> fd = Open(path);
  if (!fd) return Fail(fd.error());
  daxpolicy::UniqueFd owner(*fd);
  std::printf("held\n");
  std::fflush(stdout);
  char buffer[64];
  while (true) {
    ssize_t n = read(STDIN_FILENO, buffer, sizeof buffer);
    if (n == 0) break;
    if (n < 0 && errno != EINTR) return Fail(ErrnoError(errno, "read stdin"));
  }
  return kDone;
}

int CachestatCall(const std::string& path) {
  Result<int> fd = Open(path);
  if (!fd) return Fail(fd.error());
  daxpolicy::UniqueFd owner(*fd);
  CachestatRange range{0, 0};
  Cachestat stat{};
  if (syscall(kSysCachestat, owner.get(), &range, &stat, 0) != 0) {
    std::printf("cachestat errno=%s\n", ErrnoName(errno));
    return kSyscallFailed;
  }
  std::printf("cachestat ok nr_cache=%llu nr_dirty=%llu nr_writeback=%llu\n",
              static_cast<unsigned long long>(stat.nr_cache),
              static_cast<unsigned long long>(stat.nr_dirty),
              static_cast<unsigned long long>(stat.nr_writeback));
  return kDone;
}

int Usage() {
  std::fprintf(stderr, "usage: vm_daxctl_probe get|set|clear|hold|cachestat PATH\n");
  return kUsage;
}

int Main(int argc, char** argv) {
  if (argc != 3) return Usage();
  std::string_view command = argv[1];
  std::string path = argv[2];
  if (command == "get") return Get(path);
  if (command == "set" || command == "clear") {
    Result<void> done = WriteXflagDax(path, command == "set");
    return done ? kDone : Fail(done.error());
  }
  if (command == "hold") return Hold(path);
  if (command == "cachestat") return CachestatCall(path);
  return Usage();
}

}  // namespace
}  // namespace daxpolicy::vm

int main(int argc, char** argv) { return daxpolicy::vm::Main(argc, argv); }
