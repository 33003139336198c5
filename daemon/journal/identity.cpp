// SPDX-License-Identifier: Apache-2.0
#include "daemon/journal/identity.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>

namespace daxpolicy::journal {

namespace {

// A generic VFS ioctl since Linux 6.9 (ext4, xfs, btrfs, ...); older kernels answer ENOTTY,
// and the uapi headers of older distributions do not have it yet.
struct FsUuid2 {
  uint8_t len;
  uint8_t uuid[16];
};
constexpr unsigned long kFsIocGetFsUuid = _IOR(0x15, 0, FsUuid2);
constexpr unsigned kMaxHandleBytes = 128;  // MAX_HANDLE_SZ

}  // namespace

std::string FsUuidOf(int fd) {
  FsUuid2 u{};
  if (ioctl(fd, kFsIocGetFsUuid, &u) != 0 || u.len == 0 || u.len > sizeof u.uuid) return "";
  bool all_zero = true;
  for (uint8_t i = 0; i < u.len; ++i) all_zero &= u.uuid[i] == 0;
  if (all_zero) return "";  // no UUID (e.g. tmpfs)
  return std::string(reinterpret_cast<const char*>(u.uuid), u.len);
}

Result<void> FillIdentity(int fd, const std::string& fs_uuid, JournalEntry* entry) {
  struct statx sx {};
  if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_INO | STATX_BTIME, &sx) != 0) {
    return ErrnoError(errno, "statx");
  }
  entry->key = FileKey{makedev(sx.stx_dev_major, sx.stx_dev_minor), sx.stx_ino};
  entry->id.fs_uuid = fs_uuid;
  entry->id.btime_ns =
      (sx.stx_mask & STATX_BTIME)
          ? static_cast<int64_t>(sx.stx_btime.tv_sec) * 1'000'000'000 + sx.stx_btime.tv_nsec
          : 0;
  alignas(file_handle) unsigned char storage[sizeof(file_handle) + kMaxHandleBytes];
  auto* handle = reinterpret_cast<file_handle*>(storage);
  handle->handle_bytes = kMaxHandleBytes;
  int mount_id = 0;
  if (name_to_handle_at(fd, "", handle, &mount_id, AT_EMPTY_PATH) == 0) {
    entry->id.handle_type = static_cast<uint32_t>(handle->handle_type);
    entry->id.handle.assign(reinterpret_cast<const char*>(handle->f_handle), handle->handle_bytes);
  } else {
    entry->id.handle_type = 0;
    entry->id.handle.clear();
  }
  return {};
}

bool SameFile(const JournalEntry& recorded, const JournalEntry& current) {
  if (!recorded.id.fs_uuid.empty() && !current.id.fs_uuid.empty()) {
    if (recorded.id.fs_uuid != current.id.fs_uuid) return false;
  } else if (recorded.key.dev != current.key.dev) {
    return false;
  }
  if (!recorded.id.handle.empty() && !current.id.handle.empty()) {
    return recorded.id.handle_type == current.id.handle_type &&
           recorded.id.handle == current.id.handle;
  }
  if (recorded.key.ino != current.key.ino) return false;
  return recorded.id.btime_ns == 0 || current.id.btime_ns == 0 ||
         recorded.id.btime_ns == current.id.btime_ns;
}

}  // namespace daxpolicy::journal
