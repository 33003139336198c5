// SPDX-License-Identifier: Apache-2.0
#include "plugins/files/close_watcher.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <unordered_set>

#include "plugins/files/fanotify_events.h"
#include "plugins/open_beneath.h"

namespace daxpolicy::files {
namespace {

constexpr size_t kBufferBytes = 64 * 1024;
constexpr unsigned kMaxHandleBytes = 128;  // MAX_HANDLE_SZ in the kernel
constexpr uint64_t kCloseMask = FAN_CLOSE_WRITE | FAN_CLOSE_NOWRITE;
#ifndef FAN_MARK_EVICTABLE
#define FAN_MARK_EVICTABLE 0x00000200
#endif

// The magic link of an fd: marking through it names exactly the inode the fd holds.
std::string FdLink(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

Error MarkError(int err, const std::string& what) {
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
    default:
      return ErrnoError(err, what);
  }
}

}  // namespace

Result<std::unique_ptr<CloseWatcher>> CloseWatcher::Create(pid_t ignore_pid, bool evictable_marks) {
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
  watcher->evictable_ = evictable_marks;
  return watcher;
}

Result<void> CloseWatcher::WatchFilesystem(const std::string& path) {
  UniqueFd dir(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_DIRECTORY));
  if (!dir.valid()) return ErrnoError(errno, "open " + path + " for a fanotify mark");
  if (evictable_) {
    // Can this filesystem report FID events? Mark the directory itself and unmark it.
    if (fanotify_mark(fd_.get(), FAN_MARK_ADD | FAN_MARK_EVICTABLE, kCloseMask, dir.get(),
                      nullptr) == 0) {
      fanotify_mark(fd_.get(), FAN_MARK_REMOVE, kCloseMask, dir.get(), nullptr);
      return {};
    }
    if (errno != EINVAL) return MarkError(errno, "fanotify_mark on " + path);
    evictable_ = false;  // before Linux 5.19: watch whole filesystems instead
  }
  if (fanotify_mark(fd_.get(), FAN_MARK_ADD | FAN_MARK_FILESYSTEM, kCloseMask, dir.get(),
                    nullptr) != 0) {
    const int err = errno;
    const std::string what = "fanotify_mark(FAN_MARK_FILESYSTEM) on " + path;
    if (err == EINVAL) return ErrnoError(err, what + ": filesystem marks need Linux 4.20 or later");
    return MarkError(err, what);
  }
  return {};
}

Result<void> CloseWatcher::TrackPinned(int pinned_fd, int dirfd, const std::string& what,
                                       uint64_t token) {
  alignas(file_handle) unsigned char storage[sizeof(file_handle) + kMaxHandleBytes];
  auto* handle = reinterpret_cast<file_handle*>(storage);
  handle->handle_bytes = kMaxHandleBytes;
  int mount_id = 0;
  if (name_to_handle_at(pinned_fd, "", handle, &mount_id, AT_EMPTY_PATH) != 0) {
    return ErrnoError(errno, "name_to_handle_at " + what);
  }
  // fanotify reports the fsid that statfs(2) gives for the filesystem.
  struct statfs sfs {};
  if (fstatfs(pinned_fd, &sfs) != 0) return ErrnoError(errno, "fstatfs " + what);
  std::string key;
  MakeHandleKey(&sfs.f_fsid, handle->handle_type, handle->f_handle, handle->handle_bytes, &key);
  if (auto it = key_by_token_.find(token); it != key_by_token_.end() && it->second == key) {
    return {};  // already tracked and marked
  }
  Untrack(token);
  if (evictable_) {
    // Removing the mark later needs open_by_handle_at, which wants a real fd on the
    // filesystem: an O_PATH one (as scope roots are opened) fails with EBADF, and a regular
    // file's would hold that file open. So the directory is opened for reading, once per
    // filesystem, and dropped once nothing is tracked, so it does not keep a filesystem busy.
    std::string fsid(reinterpret_cast<const char*>(&sfs.f_fsid), 8);
    if (mount_fds_.find(fsid) == mount_fds_.end()) {
      struct statfs dir_sfs {};
      if (fstatfs(dirfd, &dir_sfs) == 0 && std::memcmp(&dir_sfs.f_fsid, &sfs.f_fsid, 8) == 0) {
        UniqueFd dir(openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (dir.valid()) mount_fds_.emplace(std::move(fsid), std::move(dir));
      }
    }
    if (fanotify_mark(fd_.get(), FAN_MARK_ADD | FAN_MARK_EVICTABLE, kCloseMask, AT_FDCWD,
                      FdLink(pinned_fd).c_str()) != 0) {
      return MarkError(errno, "fanotify_mark " + what);
    }
  }
  if (auto it = token_by_key_.find(key); it != token_by_key_.end()) {
    key_by_token_.erase(it->second);
  }
  token_by_key_[key] = token;
  key_by_token_[token] = std::move(key);
  return {};
}

Result<void> CloseWatcher::Track(int dirfd, std::string_view name, uint64_t token) {
  const std::string cname(name);
  UniqueFd pinned(OpenBeneath(dirfd, cname.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!pinned.valid()) return ErrnoError(errno, "open " + cname + " for a close watch");
  return TrackPinned(pinned.get(), dirfd, cname, token);
}

void CloseWatcher::RemoveMark(const std::string& key) {
  if (!evictable_) return;
  // ESTALE: the file is gone, and its mark with it.
  UniqueFd file = OpenByHandleKey(mount_fds_, key, O_PATH | O_CLOEXEC);
  if (!file.valid()) return;
  fanotify_mark(fd_.get(), FAN_MARK_REMOVE, kCloseMask, AT_FDCWD, FdLink(file.get()).c_str());
}

bool CloseWatcher::Untrack(uint64_t token) {
  auto it = key_by_token_.find(token);
  if (it == key_by_token_.end()) return false;
  RemoveMark(it->second);
  token_by_key_.erase(it->second);
  key_by_token_.erase(it);
  if (key_by_token_.empty()) mount_fds_.clear();
  return true;
}

Result<DrainResult> CloseWatcher::Drain() {
  DrainResult result;
  std::unordered_set<uint64_t> seen;
  Result<bool> more = ReadFanotifyEvents(
      fd_.get(), &buffer_, kMaxReadsPerDrain,
      [&](const fanotify_event_metadata& meta, const FanotifyFid* fid) {
        ++result.events;
        if (meta.mask & FAN_Q_OVERFLOW) {
          result.overflow = true;
          return;
        }
        if (meta.pid == ignore_pid_) {
          ++result.ignored_own;
          return;
        }
        if (fid != nullptr) {
          MakeHandleKey(fid->fsid, fid->handle_type, fid->handle, fid->handle_bytes, &scratch_key_);
        }
        auto it = fid != nullptr ? token_by_key_.find(scratch_key_) : token_by_key_.end();
        if (it == token_by_key_.end()) {
          ++result.untracked;
        } else if (seen.insert(it->second).second) {
          result.closed.push_back({it->second, (meta.mask & FAN_CLOSE_WRITE) != 0});
        } else if (meta.mask & FAN_CLOSE_WRITE) {
          for (CloseEvent& e : result.closed) {
            if (e.token == it->second) e.wrote = true;
          }
        }
      });
  if (!more.ok()) return more.error();
  result.more = *more;
  return result;
}

}  // namespace daxpolicy::files
