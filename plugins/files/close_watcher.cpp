// SPDX-License-Identifier: Apache-2.0
#include "plugins/files/close_watcher.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstring>
#include <unordered_set>

namespace daxpolicy::files {
namespace {

constexpr size_t kBufferBytes = 64 * 1024;
constexpr unsigned kMaxHandleBytes = 128;  // MAX_HANDLE_SZ in the kernel

std::string MakeKey(const void* fsid, int handle_type, const unsigned char* handle,
                    size_t handle_bytes) {
  std::string key(8 + 4 + handle_bytes, '\0');
  std::memcpy(key.data(), fsid, 8);
  std::memcpy(key.data() + 8, &handle_type, 4);
  std::memcpy(key.data() + 12, handle, handle_bytes);
  return key;
}

}  // namespace

Result<std::unique_ptr<CloseWatcher>> CloseWatcher::Create(pid_t ignore_pid) {
  const int fd =
      fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_FID | FAN_CLOEXEC | FAN_NONBLOCK, O_RDONLY);
  if (fd < 0) {
    const int err = errno;
    if (err == EPERM) {
      return ErrnoError(err, "fanotify_init: filesystem-wide close events need CAP_SYS_ADMIN");
    }
    if (err == EINVAL) {
      return ErrnoError(err, "fanotify_init(FAN_REPORT_FID): needs Linux 5.1 or later");
    }
    return ErrnoError(err, "fanotify_init");
  }
  std::unique_ptr<CloseWatcher> watcher(new CloseWatcher(UniqueFd(fd), ignore_pid));
  watcher->buffer_.resize(kBufferBytes);
  return watcher;
}

Result<void> CloseWatcher::WatchFilesystem(const std::string& path) {
  UniqueFd dir(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_DIRECTORY));
  if (!dir.valid()) return ErrnoError(errno, "open " + path + " for a fanotify mark");
  if (fanotify_mark(fd_.get(), FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
                    FAN_CLOSE_WRITE | FAN_CLOSE_NOWRITE, dir.get(), nullptr) != 0) {
    const int err = errno;
    const std::string what = "fanotify_mark(FAN_MARK_FILESYSTEM) on " + path;
    switch (err) {
      case EPERM:
        return ErrnoError(err, what + ": needs CAP_SYS_ADMIN");
      case ENODEV:
        return ErrnoError(err, what +
                                   ": the filesystem has no fsid, so FID-mode events "
                                   "cannot name its files");
      case EXDEV:
        return ErrnoError(err, what + ": the filesystem's fsid is not unique (subvolume?)");
      case EOPNOTSUPP:
        return ErrnoError(err, what + ": the filesystem does not support file handles");
      case EINVAL:
        return ErrnoError(err, what + ": filesystem marks need Linux 4.20 or later");
      default:
        return ErrnoError(err, what);
    }
  }
  return {};
}

Result<void> CloseWatcher::TrackAt(int dirfd, const char* name, int flags, uint64_t token) {
  alignas(file_handle) unsigned char storage[sizeof(file_handle) + kMaxHandleBytes];
  auto* handle = reinterpret_cast<file_handle*>(storage);
  handle->handle_bytes = kMaxHandleBytes;
  int mount_id = 0;
  if (name_to_handle_at(dirfd, name, handle, &mount_id, flags) != 0) {
    return ErrnoError(errno, std::string("name_to_handle_at ") + name);
  }
  // fanotify reports the fsid that statfs(2) gives for the filesystem.
  struct statfs sfs {};
  // For a name, the directory's filesystem: names on another mount are not
  // tracked by callers (the scanner never records them).
  if (fstatfs(dirfd, &sfs) != 0) return ErrnoError(errno, "fstatfs");
  std::string key =
      MakeKey(&sfs.f_fsid, handle->handle_type, handle->f_handle, handle->handle_bytes);
  Untrack(token);
  if (auto it = token_by_key_.find(key); it != token_by_key_.end()) {
    key_by_token_.erase(it->second);
  }
  token_by_key_[key] = token;
  key_by_token_[token] = std::move(key);
  return {};
}

Result<void> CloseWatcher::Track(int dirfd, std::string_view name, uint64_t token) {
  const std::string cname(name);
  return TrackAt(dirfd, cname.c_str(), 0, token);
}

Result<void> CloseWatcher::TrackFd(int fd, uint64_t token) {
  return TrackAt(fd, "", AT_EMPTY_PATH, token);
}

bool CloseWatcher::Untrack(uint64_t token) {
  auto it = key_by_token_.find(token);
  if (it == key_by_token_.end()) return false;
  token_by_key_.erase(it->second);
  key_by_token_.erase(it);
  return true;
}

Result<DrainResult> CloseWatcher::Drain() {
  DrainResult result;
  std::unordered_set<uint64_t> seen;
  for (;;) {
    const ssize_t n = read(fd_.get(), buffer_.data(), buffer_.size());
    if (n < 0) {
      if (errno == EAGAIN) break;
      if (errno == EINTR) continue;
      return ErrnoError(errno, "read fanotify events");
    }
    if (n == 0) break;
    const char* p = buffer_.data();
    ssize_t left = n;
    for (auto* meta = reinterpret_cast<const fanotify_event_metadata*>(p); FAN_EVENT_OK(meta, left);
         meta = FAN_EVENT_NEXT(meta, left)) {
      if (meta->vers != FANOTIFY_METADATA_VERSION) {
        return ErrnoError(EPROTO, "fanotify metadata version mismatch");
      }
      ++result.events;
      if (meta->mask & FAN_Q_OVERFLOW) {
        result.overflow = true;
        continue;
      }
      if (meta->pid == ignore_pid_) {
        ++result.ignored_own;
        continue;
      }
      bool matched = false;
      const char* info = reinterpret_cast<const char*>(meta) + meta->metadata_len;
      const char* end = reinterpret_cast<const char*>(meta) + meta->event_len;
      while (info + sizeof(fanotify_event_info_header) <= end) {
        const auto* hdr = reinterpret_cast<const fanotify_event_info_header*>(info);
        if (hdr->len == 0 || info + hdr->len > end) break;
        if (hdr->info_type == FAN_EVENT_INFO_TYPE_FID) {
          const auto* fid = reinterpret_cast<const fanotify_event_info_fid*>(info);
          const auto* handle = reinterpret_cast<const file_handle*>(fid->handle);
          const std::string key =
              MakeKey(&fid->fsid, handle->handle_type, handle->f_handle, handle->handle_bytes);
          if (auto it = token_by_key_.find(key); it != token_by_key_.end()) {
            matched = true;
            if (seen.insert(it->second).second) {
              result.closed.push_back({it->second, (meta->mask & FAN_CLOSE_WRITE) != 0});
            } else if (meta->mask & FAN_CLOSE_WRITE) {
              for (CloseEvent& e : result.closed) {
                if (e.token == it->second) e.wrote = true;
              }
            }
          }
        }
        info += hdr->len;
      }
      if (!matched) ++result.untracked;
    }
  }
  return result;
}

}  // namespace daxpolicy::files
