// SPDX-License-Identifier: Apache-2.0
#include "plugins/files/sampler.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "plugins/open_beneath.h"
#include "plugins/unique_fd.h"

namespace daxpolicy::files {
namespace {

constexpr size_t kMaxReportedErrors = 100;
// STATX_MNT_ID: where openat2 is unavailable, the mount is checked on this statx.
constexpr unsigned kStatxMask =
    STATX_TYPE | STATX_INO | STATX_SIZE | STATX_MTIME | STATX_UID | STATX_MNT_ID;

bool KernelAtLeast(int want_major, int want_minor) {
  utsname u{};
  if (uname(&u) != 0) return false;
  int major = 0;
  int minor = 0;
  if (std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
  return major > want_major || (major == want_major && minor >= want_minor);
}

// NAME_MAX is 255: every name fits a stack buffer, so no allocation per file.
bool CopyName(std::string_view name, char (&buf)[256]) {
  if (name.empty() || name.size() >= sizeof(buf)) return false;
  std::memcpy(buf, name.data(), name.size());
  buf[name.size()] = '\0';
  return true;
}

uint32_t ClampPages(uint64_t pages) {
  return static_cast<uint32_t>(std::min<uint64_t>(pages, UINT32_MAX));
}

}  // namespace

FileSampler::FileSampler() : FileSampler(Options()) {}

FileSampler::FileSampler(Options options, uint64_t page_size)
    : options_(options),
      cache_(page_size),
      effective_trusted_(KernelAtLeast(5, 8)),
      euid_(geteuid()),
      proc_fd_dir_(options.procfs_root + "/self/fd") {}

SampleStatus FileSampler::Count(SampleStatus status, int err, std::string_view name) {
  switch (status) {
    case SampleStatus::kOk:
      ++stats_.sampled;
      break;
    case SampleStatus::kVanished:
      ++stats_.vanished;
      break;
    case SampleStatus::kReplaced:
      ++stats_.replaced;
      break;
    case SampleStatus::kError:
      ++stats_.errors;
      if (stats_.first_errors.size() < kMaxReportedErrors) {
        stats_.first_errors.push_back({std::string(name), err});
      }
      break;
  }
  return status;
}

SampleStatus FileSampler::SampleFile(int dirfd, std::string_view name, policy::FileRecord* record,
                                     int* err) {
  return Sample(dirfd, nullptr, name, record, err);
}

SampleStatus FileSampler::SampleFile(int dirfd, const MountIdentity& dir_mount,
                                     std::string_view name, policy::FileRecord* record, int* err) {
  return Sample(dirfd, &dir_mount, name, record, err);
}

SampleStatus FileSampler::Sample(int dirfd, const MountIdentity* dir_mount, std::string_view name,
                                 policy::FileRecord* record, int* err) {
  char cname[256];
  if (!CopyName(name, cname)) {
    if (err) *err = ENAMETOOLONG;
    return Count(SampleStatus::kError, ENAMETOOLONG, name);
  }
  // 1. Pin the inode with O_PATH: no open() method of the file runs, so a fifo, socket or
  //    device node swapped in after the directory was read is looked at, never opened.
  //    Without openat2 the mount is checked below, on the statx this needs anyway.
  bool check_mount = false;
  UniqueFd pinned(
      OpenBeneathLeavingMount(dirfd, cname, O_PATH | O_NOFOLLOW | O_CLOEXEC, &check_mount));
  if (!pinned.valid()) {
    const int e = errno;
    if (err) *err = e;
    switch (e) {
      case ENOENT:
        return Count(SampleStatus::kVanished, e, name);
      case ELOOP:  // became a symlink
      case EXDEV:  // became a mount point
      case ENOTDIR:
        return Count(SampleStatus::kReplaced, e, name);
      default:
        return Count(SampleStatus::kError, e, name);
    }
  }
  struct statx stx {};
  if (statx(pinned.get(), "", AT_EMPTY_PATH, kStatxMask, &stx) != 0) {
    const int e = errno;
    if (err) *err = e;
    return Count(SampleStatus::kError, e, name);
  }
  if (check_mount) {
    struct statx dir {};
    if (dir_mount == nullptr && statx(dirfd, "", AT_EMPTY_PATH, STATX_MNT_ID, &dir) != 0) {
      const int e = errno;
      if (err) *err = e;
      return Count(SampleStatus::kError, e, name);
    }
    if (!(dir_mount != nullptr ? *dir_mount : MountIdentity::Of(dir)).Holds(stx)) {
      if (err) *err = EXDEV;  // became a mount point (a bind mount over the file included)
      return Count(SampleStatus::kReplaced, EXDEV, name);
    }
  }
  if (!S_ISREG(stx.stx_mode) || stx.stx_ino != record->ino) {
    const int e = S_ISLNK(stx.stx_mode) ? ELOOP : 0;  // became a symlink
    if (err) *err = e;
    return Count(SampleStatus::kReplaced, e, name);
  }
  // 2. Reopen that very inode through its /proc/self/fd magic link: whatever the name points
  //    to by now, the link resolves to the pinned regular file.
  char proc[80];
  std::snprintf(proc, sizeof proc, "%s/%d", proc_fd_dir_.c_str(), pinned.get());
  constexpr int kFlags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
  UniqueFd fd;
  if (noatime_allowed_) {
    fd.Reset(open(proc, kFlags | O_NOATIME));
    // O_NOATIME needs ownership or CAP_FOWNER; without them stop asking for it.
    if (!fd.valid() && errno == EPERM) noatime_allowed_ = false;
  }
  if (!fd.valid() && !noatime_allowed_) fd.Reset(open(proc, kFlags));
  if (!fd.valid()) {
    const int e = errno;
    if (err) *err = e;
    if (e == ENOENT) return Count(SampleStatus::kVanished, e, name);
    return Count(SampleStatus::kError, e, name);
  }
  pinned.Reset();
  // The reopened fd is the pinned inode (the magic link names it, not the path), so the
  // statx above is its own: size and mtime as of just before the open.
  return SampleOpen(fd.get(), stx, record);
}

SampleStatus FileSampler::SampleOpen(int fd, const struct statx& stx, policy::FileRecord* record) {
  if (stx.stx_ino != record->ino) return Count(SampleStatus::kReplaced, 0, "");
  uint16_t available =
      record->available & ~(policy::kHaveSize | policy::kHaveEffective | policy::kHavePhysical |
                            policy::kHaveCache | policy::kHaveEvictedOnly);
  record->size = stx.stx_size;
  record->mtime_ns =
      static_cast<int64_t>(stx.stx_mtime.tv_sec) * 1'000'000'000 + stx.stx_mtime.tv_nsec;
  available |= policy::kHaveSize;
  if (effective_trusted_ || (stx.stx_attributes_mask & STATX_ATTR_DAX)) {
    record->effective = (stx.stx_attributes & STATX_ATTR_DAX) ? policy::DaxState::kDax
                                                              : policy::DaxState::kPageCache;
    available |= policy::kHaveEffective;
  } else {
    record->effective = policy::DaxState::kUnknown;
  }
  if (options_.physical) {
    fsxattr fsx{};
    if (ioctl(fd, FS_IOC_FSGETXATTR, &fsx) == 0) {
      record->physical =
          (fsx.fsx_xflags & FS_XFLAG_DAX) ? policy::DaxState::kDax : policy::DaxState::kPageCache;
      available |= policy::kHavePhysical;
    } else {
      record->physical = policy::DaxState::kUnknown;
    }
  }
  const bool regular = S_ISREG(stx.stx_mode);
  if (options_.cache && regular) {
    if (record->effective == policy::DaxState::kDax) {
      // fsdax keeps its entries as xarray value entries, which cachestat counts
      // as evicted shadows and mincore as absent: no page-cache numbers apply.
      ++stats_.cache_skipped_dax;
    } else {
      const bool trusted_owner = euid_ == 0 || stx.stx_uid == euid_;
      Result<CacheCounts> counts = cache_.Probe(fd, stx.stx_size, trusted_owner);
      if (counts.ok()) {
        record->cache_pages = ClampPages(counts->cache);
        record->dirty_pages = ClampPages(counts->dirty);
        record->recently_evicted_pages = ClampPages(counts->recently_evicted);
        available |= policy::kHaveCache;
        if (!counts->have_evicted) available |= policy::kHaveEvictedOnly;
      } else {
        ++stats_.cache_unavailable;
      }
    }
  }
  if (!(available & policy::kHaveCache)) {
    record->cache_pages = 0;
    record->dirty_pages = 0;
    record->recently_evicted_pages = 0;
  }
  record->available = available;
  return Count(SampleStatus::kOk, 0, "");
}

}  // namespace daxpolicy::files
