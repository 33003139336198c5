// SPDX-License-Identifier: Apache-2.0
#include "plugins/driver/inode_flag_driver.h"

#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>

namespace daxpolicy::driver {

namespace {

constexpr int kEnoioctlcmd = 515;  // kernel-internal errno some paths leak as-is

Blocked Refuse(Blocker blocker, int err, std::string_view reason) {
  return Blocked{blocker, err, std::string(reason)};
}

}  // namespace

Blocked BlockedForSetError(int err, int fd, uint32_t xflags, const KernelVersion& kernel) {
  switch (err) {
    case EPERM:
      if (xflags & (FS_XFLAG_IMMUTABLE | FS_XFLAG_APPEND)) {
        return Refuse(Blocker::kImmutable, err, kReasonImmutable);
      }
      return Refuse(Blocker::kNotOwner, err, kReasonNotOwner);
    case EINVAL: {
      struct statfs sfs {};
      if (fstatfs(fd, &sfs) == 0 && sfs.f_type == XFS_SUPER_MAGIC) {
        return Refuse(Blocker::kRefusedByFilesystem, err,
                      kernel.AtLeast(6, 2) ? kReasonXfsV4 : kReasonXfsReflinkOrV4);
      }
      return Refuse(Blocker::kRefusedByFilesystem, err, kReasonInvalidKind);
    }
    case EOPNOTSUPP: {
      // The inode flags name the ext4 feature that excludes DAX (EXT4_DAX_MUT_EXCL).
      int iflags = 0;
      if (ioctl(fd, FS_IOC_GETFLAGS, &iflags) == 0) {
        if (iflags & FS_JOURNAL_DATA_FL) {
          return Refuse(Blocker::kRefusedByFilesystem, err, kReasonExt4JournalData);
        }
        if (iflags & FS_ENCRYPT_FL) {
          return Refuse(Blocker::kRefusedByFilesystem, err, kReasonExt4Encrypted);
        }
        if (iflags & FS_VERITY_FL) {
          return Refuse(Blocker::kRefusedByFilesystem, err, kReasonExt4Verity);
        }
        if (iflags & FS_INLINE_DATA_FL) {
          return Refuse(Blocker::kRefusedByFilesystem, err, kReasonExt4InlineData);
        }
      }
      return Refuse(Blocker::kRefusedByFilesystem, err, kReasonNotSupported);
    }
    case EROFS:
      return Refuse(Blocker::kReadOnly, err, kReasonReadOnly);
    case ENOTTY:
    case kEnoioctlcmd:
      return Refuse(Blocker::kNoFileattr, err, kReasonNoFileattr);
    case ENOENT:
      return Refuse(Blocker::kVanished, err, kReasonVanished);
    default:
      return Blocked{Blocker::kOther, err, OtherReason("FS_IOC_FSSETXATTR", err)};
  }
}

InodeFlagDriver::InodeFlagDriver(KernelVersion kernel, DriverOptions options)
    : kernel_(kernel), options_(options), reader_(options.open) {}

Result<FileFlags> InodeFlagDriver::Read(const FileRef& ref) {
  BlockedOr<FileFlags> flags = reader_.Read(ref);
  if (!flags.ok()) return flags.blocked().ToError();
  return std::move(flags).value();
}

Result<ApplyOutcome> InodeFlagDriver::Apply(const FileRef& ref, DaxState desired,
                                            const ApplyHooks& hooks) {
  if (desired == DaxState::kUnknown) {
    return Error{"desired DAX state must be dax or page-cache", EINVAL};
  }
  ApplyOutcome outcome;
  FileIdentity identity;
  {
    BlockedOr<OpenedFile> opened =
        reader_.opener().OpenForIoctl(ref.scope_root_fd, ref.path, ref.expected);
    if (!opened.ok()) return BlockedOutcome(opened.blocked());
    const int fd = opened->fd.get();
    const struct stat& st = opened->st;
    identity = FileIdentity{st.st_dev, st.st_ino};
    outcome.kind = S_ISDIR(st.st_mode) ? FileKind::kDirectory : FileKind::kRegular;
    if (outcome.kind == FileKind::kRegular && st.st_nlink > 1 && !options_.allow_hard_links) {
      return BlockedOutcome(Blocked{Blocker::kHardLinks, EMLINK, HardLinksReason(st.st_nlink)},
                            DaxState::kUnknown, outcome.kind);
    }
    struct fsxattr fsx {};
    if (ioctl(fd, FS_IOC_FSGETXATTR, &fsx) != 0) {
      int err = errno;
      return BlockedOutcome(
          err == ENOTTY || err == kEnoioctlcmd
              ? Refuse(Blocker::kNoFileattr, err, kReasonNoFileattr)
              : Blocked{Blocker::kOther, err, OtherReason("FS_IOC_FSGETXATTR", err)},
          DaxState::kUnknown, outcome.kind);
    }
    const uint32_t xflags_before = fsx.fsx_xflags;
    outcome.physical_before =
        (xflags_before & FS_XFLAG_DAX) ? DaxState::kDax : DaxState::kPageCache;
    outcome.physical_after = outcome.physical_before;
    if (outcome.physical_before == desired) {
      outcome.result = ApplyResult::kUnchanged;
    } else if (xflags_before & (FS_XFLAG_IMMUTABLE | FS_XFLAG_APPEND)) {
      // ext4 refuses (EPERM) while xfs lets CAP_LINUX_IMMUTABLE change the flag of an immutable
      // or append-only inode; such a file is one an admin wants left alone, so refuse on every
      // filesystem.
      return BlockedOutcome(Refuse(Blocker::kImmutable, EPERM, kReasonImmutable),
                            outcome.physical_before, outcome.kind);
    } else {
      if (desired == DaxState::kPageCache && hooks.maps_sync) {
        Result<bool> mapped = hooks.maps_sync(identity.dev, identity.ino);
        if (!mapped.ok() || *mapped) {
          std::string reason(kReasonMapSync);
          if (!mapped.ok()) {
            reason = "cannot tell whether the file is mapped MAP_SYNC: " + mapped.error().message;
          }
          return BlockedOutcome(Blocked{Blocker::kMapSync, EBUSY, reason}, outcome.physical_before,
                                outcome.kind);
        }
      }
      if (hooks.before_change) {
        Result<void> recorded =
            hooks.before_change(identity.dev, identity.ino, ref.path, outcome.physical_before, fd);
        if (!recorded.ok()) return recorded.error();
      }
      if (desired == DaxState::kDax && outcome.kind == FileKind::kRegular &&
          !kernel_.AtLeast(5, 11) && fsync(fd) != 0) {
        int err = errno;
        return BlockedOutcome(
            Blocked{Blocker::kOther, err, OtherReason("fsync before enabling DAX", err)},
            outcome.physical_before, outcome.kind);
      }
      fsx.fsx_xflags = desired == DaxState::kDax ? (xflags_before | FS_XFLAG_DAX)
                                                 : (xflags_before & ~FS_XFLAG_DAX);
      if (ioctl(fd, FS_IOC_FSSETXATTR, &fsx) != 0) {
        int err = errno;
        return BlockedOutcome(BlockedForSetError(err, fd, xflags_before, kernel_),
                              outcome.physical_before, outcome.kind);
      }
      outcome.result = ApplyResult::kChanged;
      outcome.physical_after = desired;
    }
  }  // fd closed before statx: an open fd keeps the old S_DAX alive
  outcome.effective = reader_.ReadEffective(FileRef{ref.scope_root_fd, ref.path, identity});
  return outcome;
}

}  // namespace daxpolicy::driver
