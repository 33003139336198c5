// SPDX-License-Identifier: Apache-2.0
#include "plugins/driver/dax_driver.h"

#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <cerrno>

namespace daxpolicy::driver {

std::string_view ApplyResultName(ApplyResult result) {
  switch (result) {
    case ApplyResult::kChanged:
      return "changed";
    case ApplyResult::kUnchanged:
      return "unchanged";
    case ApplyResult::kObserved:
      return "observed";
    case ApplyResult::kBlocked:
      return "blocked";
  }
  return "blocked";
}

FlagReader::FlagReader(SafeOpenOptions options) : opener_(std::move(options)) {}

BlockedOr<FileFlags> FlagReader::Read(const FileRef& ref) const {
  FileFlags flags;
  {
    BlockedOr<OpenedFile> opened = opener_.OpenForIoctl(ref.scope_root_fd, ref.path, ref.expected);
    if (!opened.ok()) return opened.blocked();
    struct fsxattr fsx {};
    if (ioctl(opened->fd.get(), FS_IOC_FSGETXATTR, &fsx) != 0) {
      int err = errno;
      if (err == ENOTTY || err == 515 /* ENOIOCTLCMD */) {
        return Blocked{Blocker::kNoFileattr, err, std::string(kReasonNoFileattr)};
      }
      return Blocked{Blocker::kOther, err, OtherReason("FS_IOC_FSGETXATTR", err)};
    }
    flags.kind = S_ISDIR(opened->st.st_mode) ? FileKind::kDirectory : FileKind::kRegular;
    flags.physical = (fsx.fsx_xflags & FS_XFLAG_DAX) ? DaxState::kDax : DaxState::kPageCache;
    flags.xflags = fsx.fsx_xflags;
    flags.dev = opened->st.st_dev;
    flags.ino = opened->st.st_ino;
    flags.links = opened->st.st_nlink;
  }  // fd closed: it would hold the inode
  flags.effective = ReadEffective(FileRef{ref.scope_root_fd, ref.path, {flags.dev, flags.ino}});
  return flags;
}

DaxState DaxDriver::ReadEffective(const FileRef& ref) {
  Result<FileFlags> flags = Read(ref);
  return flags.ok() && flags->kind == FileKind::kRegular ? flags->effective : DaxState::kUnknown;
}

DaxState FlagReader::ReadEffective(const FileRef& ref) const {
  BlockedOr<struct statx> sx = opener_.StatNoHold(ref.scope_root_fd, ref.path, ref.expected);
  if (!sx.ok()) return DaxState::kUnknown;
  return (sx->stx_attributes & STATX_ATTR_DAX) ? DaxState::kDax : DaxState::kPageCache;
}

ApplyOutcome BlockedOutcome(const Blocked& blocked, DaxState physical_before, FileKind kind) {
  ApplyOutcome outcome;
  outcome.result = ApplyResult::kBlocked;
  outcome.kind = kind;
  outcome.physical_before = physical_before;
  outcome.physical_after = physical_before;
  outcome.blocker = blocked.blocker;
  outcome.error_code = blocked.error_code;
  outcome.reason = blocked.reason;
  return outcome;
}

}  // namespace daxpolicy::driver
