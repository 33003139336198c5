// SPDX-License-Identifier: Apache-2.0
#include "plugins/files/tree_watcher.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstring>

#include "plugins/files/fanotify_events.h"

namespace daxpolicy::files {
namespace {

constexpr size_t kBufferBytes = 64 * 1024;
constexpr std::string_view kDeleted = " (deleted)";

uint32_t ToFsMask(uint64_t mask) {
  uint32_t out = 0;
  if (mask & FAN_CREATE) out |= kFsCreate;
  if (mask & FAN_DELETE) out |= kFsDelete;
  if (mask & FAN_MOVED_FROM) out |= kFsMovedFrom;
  if (mask & FAN_MOVED_TO) out |= kFsMovedTo;
  if (mask & FAN_MODIFY) out |= kFsModify;
  if (mask & FAN_ATTRIB) out |= kFsAttrib;
  if (mask & FAN_CLOSE_WRITE) out |= kFsCloseWrite;
  return out;
}

Error MarkError(int err, const std::string& what) {
  switch (err) {
    case EPERM:
      return ErrnoError(err, what + ": needs CAP_SYS_ADMIN");
    case EINVAL:
      return ErrnoError(err, what + ": filesystem marks with directory events need Linux 5.9");
    case ENODEV:
      return ErrnoError(err,
                        what + ": the filesystem has no fsid, so events cannot name its files");
    case EXDEV:
      return ErrnoError(err, what + ": the filesystem's fsid is not unique (subvolume?)");
    case EOPNOTSUPP:
      return ErrnoError(err, what + ": the filesystem does not support file handles");
    default:
      return ErrnoError(err, what);
  }
}

}  // namespace

uint64_t TreeEventMask() {
  return FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO | FAN_MODIFY | FAN_ATTRIB |
         FAN_CLOSE_WRITE | FAN_ONDIR;
}

Result<std::unique_ptr<TreeWatcher>> TreeWatcher::Create(pid_t ignore_pid,
                                                         std::string procfs_root) {
  const int fd =
      fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME | FAN_CLOEXEC | FAN_NONBLOCK, O_RDONLY);
  if (fd < 0) {
    const int err = errno;
    if (err == EPERM) return ErrnoError(err, "fanotify_init: tree events need CAP_SYS_ADMIN");
    if (err == EINVAL) {
      return ErrnoError(err, "fanotify_init(FAN_REPORT_DFID_NAME): needs Linux 5.9 or later");
    }
    return ErrnoError(err, "fanotify_init");
  }
  std::unique_ptr<TreeWatcher> w(new TreeWatcher(UniqueFd(fd), ignore_pid, std::move(procfs_root)));
  w->buffer_.resize(kBufferBytes);
  return w;
}

Result<void> TreeWatcher::WatchFilesystem(const std::string& path) {
  UniqueFd dir(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_DIRECTORY));
  if (!dir.valid()) return ErrnoError(errno, "open " + path + " for a fanotify mark");
  struct statfs sfs {};
  if (fstatfs(dir.get(), &sfs) != 0) return ErrnoError(errno, "fstatfs " + path);
  std::string fsid(reinterpret_cast<const char*>(&sfs.f_fsid), 8);
  if (fanotify_mark(fd_.get(), FAN_MARK_ADD | FAN_MARK_FILESYSTEM, TreeEventMask(), dir.get(),
                    nullptr) != 0) {
    return MarkError(errno, "fanotify_mark(FAN_MARK_FILESYSTEM) on " + path);
  }
  mount_fds_.try_emplace(std::move(fsid), std::move(dir));
  return {};
}

Result<TreeDrain> TreeWatcher::Drain(std::vector<FsEvent>* out) {
  TreeDrain result;
  Result<bool> more = ReadFanotifyEvents(
      fd_.get(), &buffer_, kMaxTreeReadsPerDrain,
      [&](const fanotify_event_metadata& meta, const FanotifyFid* fid) {
        ++result.events;
        if (meta.mask & FAN_Q_OVERFLOW) {
          result.overflow = true;
          FsEvent e;
          e.overflow = true;
          out->push_back(std::move(e));
          return;
        }
        if (meta.pid == ignore_pid_) {
          ++result.ignored_own;
          return;
        }
        const uint32_t mask = ToFsMask(meta.mask);
        // One directory record per event in this mode.
        if (mask == 0 || fid == nullptr || fid->info_type == FAN_EVENT_INFO_TYPE_FID) return;
        FsEvent e;
        MakeHandleKey(fid->fsid, fid->handle_type, fid->handle, fid->handle_bytes, &e.dir_key);
        e.name = fid->name;
        e.mask = mask;
        e.is_dir = (meta.mask & FAN_ONDIR) != 0;
        out->push_back(std::move(e));
      });
  if (!more.ok()) return more.error();
  result.more = *more;
  return result;
}

DirResolution TreeWatcher::ResolveDir(std::string_view dir_key) {
  if (dir_key.size() < 12) return {DirResolution::kError, "", "a handle too short"};
  UniqueFd dir = OpenByHandleKey(mount_fds_, dir_key, O_PATH | O_CLOEXEC);
  if (!dir.valid()) {
    const int err = errno;
    if (err == ENODEV) {
      return {DirResolution::kError, "", "a handle of a filesystem that is not marked"};
    }
    if (err == ESTALE || err == ENOENT) return {DirResolution::kGone, "", ""};
    return {DirResolution::kError, "", std::string("open_by_handle_at: ") + std::strerror(err)};
  }
  const std::string link = proc_fd_dir_ + std::to_string(dir.get());
  std::string path(4096, '\0');
  const ssize_t n = readlink(link.c_str(), path.data(), path.size());
  if (n < 0) {
    return {DirResolution::kError, "", "readlink " + link + ": " + std::strerror(errno)};
  }
  if (static_cast<size_t>(n) == path.size()) {
    return {DirResolution::kError, "", "a directory path longer than 4095 bytes"};
  }
  path.resize(static_cast<size_t>(n));
  struct stat st {};
  if (path.size() > kDeleted.size() &&
      path.compare(path.size() - kDeleted.size(), kDeleted.size(), kDeleted) == 0 &&
      fstat(dir.get(), &st) == 0 && st.st_nlink == 0) {
    return {DirResolution::kGone, "", ""};  // removed, still held by someone
  }
  if (path.empty() || path.front() != '/') {
    return {DirResolution::kError, "", "a directory outside this process's root"};
  }
  return {DirResolution::kFound, std::move(path), ""};
}

}  // namespace daxpolicy::files
