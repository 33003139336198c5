// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "plugins/driver/dax_driver.h"
#include "plugins/driver/kernel_version.h"

namespace daxpolicy::driver {

/// Options shared by the kernel-backed drivers.
struct DriverOptions {
  SafeOpenOptions open;
  /// A regular file with st_nlink > 1 has other names the daemon cannot see, possibly outside
  /// every scope; its flag is per inode, so changing it changes the file under all of them.
  /// Such files are refused (Blocker::kHardLinks) unless this is true.
  bool allow_hard_links = false;
};

/// The kernel switch: read-modify-write of fsx_xflags with FS_IOC_FSGETXATTR/FSSETXATTR,
/// changing FS_XFLAG_DAX only. Immutable and append-only files (FS_XFLAG_IMMUTABLE,
/// FS_XFLAG_APPEND) are refused on every filesystem (ext4 refuses them itself; xfs would let
/// CAP_LINUX_IMMUTABLE through). The fd is held
/// only around the ioctls; the effective state is re-read afterwards with statx holding no fd (the
/// daemon's own fd would delay the switch).
class InodeFlagDriver : public DaxDriver {
 public:
  /// `kernel` decides version-dependent behaviour: before 5.11 the file is fsync'ed before
  /// DAX is enabled (an inode evicted right after the flag change could lose buffered data),
  /// and xfs EINVAL is explained as "reflinked file" only before 6.2.
  explicit InodeFlagDriver(KernelVersion kernel, DriverOptions options = {});

  std::string_view Name() const override { return "inode-flag"; }
  Result<FileFlags> Read(const FileRef& ref) override;
  Result<ApplyOutcome> Apply(const FileRef& ref, DaxState desired,
                             const ApplyHooks& hooks) override;
  DaxState ReadEffective(const FileRef& ref) override { return reader_.ReadEffective(ref); }

 private:
  KernelVersion kernel_;
  DriverOptions options_;
  FlagReader reader_;
};

/// The refusal for a failed FS_IOC_FSSETXATTR on `fd` (kept open to ask the filesystem why):
/// EPERM owner/immutable, EINVAL xfs reflink/V4 or wrong kind, EOPNOTSUPP ext4
/// journal-data/encrypted/verity/inline-data, EROFS, ENOTTY/ENOIOCTLCMD, ENOENT, else "other".
/// `xflags` are the flags read before the attempt.
Blocked BlockedForSetError(int err, int fd, uint32_t xflags, const KernelVersion& kernel);

}  // namespace daxpolicy::driver
