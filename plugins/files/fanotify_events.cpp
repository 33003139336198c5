// SPDX-License-Identifier: Apache-2.0
#include "plugins/files/fanotify_events.h"

#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

namespace daxpolicy::files {
namespace {

constexpr unsigned kMaxHandleBytes = 128;  // MAX_HANDLE_SZ in the kernel

// Offsets inside a fanotify_event_info_fid record, whose file_handle follows the fsid.
constexpr size_t kHandleAt = offsetof(fanotify_event_info_fid, handle);
constexpr size_t kBytesAt = kHandleAt + offsetof(file_handle, handle_bytes);
constexpr size_t kTypeAt = kHandleAt + offsetof(file_handle, handle_type);
constexpr size_t kDataAt = kHandleAt + offsetof(file_handle, f_handle);

bool IsFidRecord(uint8_t type) {
  return type == FAN_EVENT_INFO_TYPE_FID || type == FAN_EVENT_INFO_TYPE_DFID ||
         type == FAN_EVENT_INFO_TYPE_DFID_NAME;
}

// The first file identity record among the info records in [info, end), if any is well formed.
bool FirstFid(const char* info, const char* end, FanotifyFid* fid) {
  while (info + sizeof(fanotify_event_info_header) <= end) {
    fanotify_event_info_header hdr{};
    std::memcpy(&hdr, info, sizeof hdr);
    if (hdr.len == 0 || info + hdr.len > end) return false;
    if (IsFidRecord(hdr.info_type)) {
      if (hdr.len < kDataAt) return false;  // malformed: too short for a handle
      std::memcpy(&fid->handle_bytes, info + kBytesAt, sizeof fid->handle_bytes);
      if (fid->handle_bytes > hdr.len - kDataAt) return false;  // runs past the record
      fid->info_type = hdr.info_type;
      fid->fsid = info + offsetof(fanotify_event_info_fid, fsid);
      std::memcpy(&fid->handle_type, info + kTypeAt, sizeof fid->handle_type);
      fid->handle = info + kDataAt;
      fid->name = {};
      if (hdr.info_type == FAN_EVENT_INFO_TYPE_DFID_NAME) {
        const char* name = fid->handle + fid->handle_bytes;
        fid->name =
            std::string_view(name, strnlen(name, static_cast<size_t>(info + hdr.len - name)));
      }
      return true;
    }
    info += hdr.len;
  }
  return false;
}

}  // namespace

Result<bool> ReadFanotifyEvents(int fd, std::vector<char>* buffer, int max_reads,
                                const FanotifyEventFn& on_event) {
  for (int reads = 0; reads < max_reads; ++reads) {
    const ssize_t n = read(fd, buffer->data(), buffer->size());
    if (n < 0) {
      if (errno == EAGAIN) return false;
      if (errno == EINTR) continue;
      return ErrnoError(errno, "read fanotify events");
    }
    if (n == 0) return false;
    const char* const buf = buffer->data();
    const size_t total = static_cast<size_t>(n);
    fanotify_event_metadata meta{};
    for (size_t off = 0; total - off >= sizeof meta; off += meta.event_len) {
      std::memcpy(&meta, buf + off, sizeof meta);
      if (meta.event_len < sizeof meta || meta.event_len > total - off) break;
      if (meta.vers != FANOTIFY_METADATA_VERSION) {
        return ErrnoError(EPROTO, "fanotify metadata version mismatch");
      }
      if (meta.fd >= 0) close(meta.fd);  // never in FID mode; do not leak one if it were
      FanotifyFid fid;
      const char* info = buf + off + std::min<size_t>(meta.metadata_len, meta.event_len);
      const bool has_fid = FirstFid(info, buf + off + meta.event_len, &fid);
      on_event(meta, has_fid ? &fid : nullptr);
    }
  }
  return true;
}

void MakeHandleKey(const void* fsid, int handle_type, const void* handle, size_t handle_bytes,
                   std::string* key) {
  key->resize(8 + 4 + handle_bytes);
  std::memcpy(key->data(), fsid, 8);
  std::memcpy(key->data() + 8, &handle_type, 4);
  std::memcpy(key->data() + 12, handle, handle_bytes);
}

UniqueFd OpenByHandleKey(const std::unordered_map<std::string, UniqueFd>& mount_fds,
                         std::string_view key, int flags) {
  if (key.size() < 12) {
    errno = EINVAL;
    return UniqueFd();
  }
  auto mount = mount_fds.find(std::string(key.substr(0, 8)));
  if (mount == mount_fds.end()) {
    errno = ENODEV;
    return UniqueFd();
  }
  alignas(file_handle) unsigned char storage[sizeof(file_handle) + kMaxHandleBytes];
  auto* handle = reinterpret_cast<file_handle*>(storage);
  const size_t bytes = std::min<size_t>(key.size() - 12, kMaxHandleBytes);
  handle->handle_bytes = static_cast<unsigned>(bytes);
  std::memcpy(&handle->handle_type, key.data() + 8, 4);
  std::memcpy(handle->f_handle, key.data() + 12, bytes);
  return UniqueFd(open_by_handle_at(mount->second.get(), handle, flags));
}

}  // namespace daxpolicy::files
