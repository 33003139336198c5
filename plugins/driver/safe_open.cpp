// SPDX-License-Identifier: Apache-2.0
#include "plugins/driver/safe_open.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "plugins/open_beneath.h"

namespace daxpolicy::driver {

namespace {

Blocked Refuse(Blocker blocker, int err, std::string_view reason) {
  return Blocked{blocker, err, std::string(reason)};
}

Blocked FromOpenErrno(int err, std::string_view what) {
  switch (err) {
    case ENOENT:
      return Refuse(Blocker::kVanished, err, kReasonVanished);
    case ELOOP:
    case EXDEV:
      return Refuse(Blocker::kEscapesScope, err, kReasonEscapes);
    case ENOTDIR:
      return Refuse(Blocker::kReplaced, err, kReasonReplaced);
    case EACCES:
      return Refuse(Blocker::kAccessDenied, err, kReasonAccess);
    default:
      return Blocked{Blocker::kOther, err, OtherReason(what, err)};
  }
}

// Splits a relative path into components; false when the path could name something outside
// the scope lexically or is malformed.
bool SplitPath(std::string_view path, std::vector<std::string_view>* out) {
  out->clear();
  if (path.empty()) return true;
  if (path.front() == '/' || path.find('\0') != std::string_view::npos) return false;
  size_t start = 0;
  for (;;) {
    size_t slash = path.find('/', start);
    std::string_view comp = path.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (comp.empty() || comp == "." || comp == "..") return false;
    out->push_back(comp);
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

uint64_t DevOf(const struct statx& sx) { return makedev(sx.stx_dev_major, sx.stx_dev_minor); }

int Statx(int dirfd, const char* name, int flags, unsigned mask, struct statx* sx) {
  return static_cast<int>(syscall(SYS_statx, dirfd, name, flags, mask, sx));
}

BlockedOr<OpenedFile> DupWithStat(int fd) {
  OpenedFile opened;
  opened.fd.Reset(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!opened.fd.valid()) return Blocked{Blocker::kOther, errno, OtherReason("dup", errno)};
  if (fstat(opened.fd.get(), &opened.st) != 0) {
    return Blocked{Blocker::kOther, errno, OtherReason("fstat", errno)};
  }
  return opened;
}

bool SameFile(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino &&
         (a.st_mode & S_IFMT) == (b.st_mode & S_IFMT);
}

}  // namespace

std::string_view FileTypeName(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "regular file";
    case S_IFDIR:
      return "directory";
    case S_IFIFO:
      return "fifo";
    case S_IFSOCK:
      return "socket";
    case S_IFCHR:
      return "character device";
    case S_IFBLK:
      return "block device";
    case S_IFLNK:
      return "symlink";
    default:
      return "unknown file type";
  }
}

SafeOpener::SafeOpener(SafeOpenOptions options)
    : options_(std::move(options)), openat2_usable_(options_.use_openat2) {}

BlockedOr<OpenedFile> SafeOpener::OpenPath(int root_fd, std::string_view path) const {
  std::vector<std::string_view> comps;
  if (!SplitPath(path, &comps)) return Refuse(Blocker::kInvalidPath, EINVAL, kReasonInvalidPath);
  if (comps.empty()) return DupWithStat(root_fd);
  if (openat2_usable_.load(std::memory_order_relaxed)) {
    BlockedOr<OpenedFile> r = OpenPathOpenat2(root_fd, path);
    if (r.ok() || r.blocked().error_code != ENOSYS) return r;
    openat2_usable_.store(false, std::memory_order_relaxed);
  }
  return OpenPathWalk(root_fd, path);
}

BlockedOr<OpenedFile> SafeOpener::OpenPathOpenat2(int root_fd, std::string_view path) const {
  std::string name(path);
  const int fd = OpenBeneath(root_fd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOSYS) return Blocked{Blocker::kOther, ENOSYS, OtherReason("openat2", ENOSYS)};
    return FromOpenErrno(err, "openat2");
  }
  OpenedFile opened;
  opened.fd.Reset(fd);
  if (fstat(fd, &opened.st) != 0) return FromOpenErrno(errno, "fstat");
  return opened;
}

// Kernels without openat2: each component is opened relative to the fd of its parent with
// O_NOFOLLOW, so a symlink is never followed, and its mount (mount id where statx reports it,
// else st_dev) is compared with the root's. Because every step starts from an fd the daemon
// holds, a concurrent rename can at worst make it see a file that was inside the scope at the
// moment it was looked up; the identity check against the scan then catches replacement.
BlockedOr<OpenedFile> SafeOpener::OpenPathWalk(int root_fd, std::string_view path) const {
  std::vector<std::string_view> comps;
  if (!SplitPath(path, &comps)) return Refuse(Blocker::kInvalidPath, EINVAL, kReasonInvalidPath);
  struct statx root_sx {};
  if (Statx(root_fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_MNT_ID, &root_sx) != 0) {
    return FromOpenErrno(errno, "statx of the scope root");
  }
  UniqueFd cur;
  int cur_fd = root_fd;
  for (size_t i = 0; i < comps.size(); ++i) {
    const bool last = i + 1 == comps.size();
    std::string name(comps[i]);
    int flags = O_PATH | O_NOFOLLOW | O_CLOEXEC | (last ? 0 : O_DIRECTORY);
    int fd = openat(cur_fd, name.c_str(), flags);
    if (fd < 0) {
      int err = errno;
      if (err == ENOTDIR || err == ELOOP) {
        struct stat st {};
        if (fstatat(cur_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
          return Refuse(Blocker::kEscapesScope, ELOOP, kReasonEscapes);
        }
      }
      return FromOpenErrno(err, "openat");
    }
    UniqueFd next(fd);
    struct statx sx {};
    if (Statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_MNT_ID, &sx) !=
        0) {
      return FromOpenErrno(errno, "statx");
    }
    bool same_mount = DevOf(sx) == DevOf(root_sx);
    if ((sx.stx_mask & STATX_MNT_ID) && (root_sx.stx_mask & STATX_MNT_ID)) {
      same_mount = same_mount && sx.stx_mnt_id == root_sx.stx_mnt_id;
    }
    if (!same_mount) return Refuse(Blocker::kEscapesScope, EXDEV, kReasonEscapes);
    cur = std::move(next);
    cur_fd = cur.get();
  }
  OpenedFile opened;
  opened.fd = std::move(cur);
  if (fstat(opened.fd.get(), &opened.st) != 0) return FromOpenErrno(errno, "fstat");
  return opened;
}

BlockedOr<ParentDir> SafeOpener::OpenParent(int root_fd, std::string_view path) const {
  std::vector<std::string_view> comps;
  if (!SplitPath(path, &comps)) return Refuse(Blocker::kInvalidPath, EINVAL, kReasonInvalidPath);
  ParentDir parent;
  size_t slash = path.rfind('/');
  std::string_view dir_part = slash == std::string_view::npos ? "" : path.substr(0, slash);
  parent.name = comps.empty() ? "" : std::string(comps.back());
  BlockedOr<OpenedFile> dir = OpenPath(root_fd, dir_part);
  if (!dir.ok()) return dir.blocked();
  if (!S_ISDIR(dir->st.st_mode)) return Refuse(Blocker::kReplaced, ENOTDIR, kReasonReplaced);
  parent.dir = std::move(dir->fd);
  return parent;
}

// Getting a real fd without ever opening a fifo, socket or device node:
//  1. Open O_PATH (no open() method of the file runs, no blocking, no side effects) and fstat
//     it: kind and identity are now facts about one pinned inode.
//  2. Directories: openat(opath_fd, ".", O_DIRECTORY) reopens that same inode; O_DIRECTORY
//     would fail on anything else anyway.
//  3. Regular files: open <procfs>/self/fd/N. That magic link resolves to the very file the
//     O_PATH fd holds, not to whatever the name points to now, so a rename race between the
//     check and the open cannot substitute a fifo or device. Re-opening the last component by
//     name relative to its parent would leave exactly that window, so without procfs regular
//     files are refused instead (the daemon needs procfs for holders and MAP_SYNC anyway).
//  4. fstat the new fd and compare kind and identity once more (cheap; protects against a
//     wrong procfs root).
BlockedOr<OpenedFile> SafeOpener::OpenForIoctl(int root_fd, std::string_view path,
                                               const FileIdentity& expected) const {
  BlockedOr<OpenedFile> pinned = OpenPath(root_fd, path);
  if (!pinned.ok()) return pinned;
  const struct stat& st = pinned->st;
  if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
    return Blocked{Blocker::kNotRegularOrDirectory, EINVAL,
                   NotRegularOrDirectoryReason(FileTypeName(st.st_mode))};
  }
  if (expected.ino != 0 && (st.st_dev != expected.dev || st.st_ino != expected.ino)) {
    return Refuse(Blocker::kReplaced, ESTALE, kReasonReplaced);
  }
  OpenedFile real;
  if (S_ISDIR(st.st_mode)) {
    real.fd.Reset(openat(pinned->fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOCTTY));
    if (!real.fd.valid()) return FromOpenErrno(errno, "open");
  } else {
    std::string proc = options_.procfs_root + "/self/fd/" + std::to_string(pinned->fd.get());
    real.fd.Reset(open(proc.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!real.fd.valid()) {
      int err = errno;
      if (err == ENOENT || err == ENOTDIR) {
        std::string reason(kReasonNoSafeReopen);
        reason.replace(reason.find("<root>"), 6, options_.procfs_root);
        return Blocked{Blocker::kNoSafeReopen, ENOSYS, reason};
      }
      return FromOpenErrno(err, "open");
    }
  }
  if (fstat(real.fd.get(), &real.st) != 0) return FromOpenErrno(errno, "fstat");
  if (!SameFile(real.st, st)) return Refuse(Blocker::kReplaced, ESTALE, kReasonReplaced);
  return real;
}

BlockedOr<struct statx> SafeOpener::StatNoHold(int root_fd, std::string_view path,
                                               const FileIdentity& expected) const {
  struct statx sx {};
  const unsigned mask = STATX_BASIC_STATS;
  if (path.empty()) {
    if (Statx(root_fd, "", AT_EMPTY_PATH, mask, &sx) != 0) return FromOpenErrno(errno, "statx");
  } else {
    BlockedOr<ParentDir> parent = OpenParent(root_fd, path);
    if (!parent.ok()) return parent.blocked();
    if (Statx(parent->dir.get(), parent->name.c_str(),
              AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_STATX_SYNC_AS_STAT, mask, &sx) != 0) {
      return FromOpenErrno(errno, "statx");
    }
  }
  if (expected.ino != 0 && (DevOf(sx) != expected.dev || sx.stx_ino != expected.ino)) {
    return Refuse(Blocker::kReplaced, ESTALE, kReasonReplaced);
  }
  return sx;
}

}  // namespace daxpolicy::driver
