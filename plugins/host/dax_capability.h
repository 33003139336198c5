// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Whether the per-file DAX switch works on a mount, and whether a file whose
/// physical flag (FS_XFLAG_DAX) is set can actually run in DAX mode there.
///
/// How the mode appears in mountinfo super options (checked on Linux 6.18 with
/// loop-mounted images, and in the show_options code of both filesystems):
///   - xfs never lists "dax=inode"; it lists "dax=always" or "dax=never" only.
///     When dax=always is requested on a device that cannot do DAX, xfs mounts
///     anyway and lists "dax=never".
///   - ext4 lists "dax=inode" only when it was given explicitly, and
///     "dax=always" / "dax=never" otherwise; a bare "-o dax" is shown as
///     "dax=always". dax=always on a non-DAX device fails the ext4 mount.
///   - Kernels before 5.8 and ext2 list the legacy flag "dax" (= always).
/// So on ext4 and xfs with a kernel >= 5.8 an absent option means dax=inode,
/// the documented default (Documentation/filesystems/dax.rst).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "plugins/host/mount_table.h"
#include "plugins/host/roots.h"
#include "policy/result.h"

namespace daxpolicy::host {

/// What the kernel release offers. Facts: per-file DAX (dax=inode, FS_XFLAG_DAX
/// honoured, STATX_ATTR_DAX) arrived in 5.8; before 5.11 a changed flag takes
/// effect only after the inode is evicted (drop_caches, unmount), from 5.11 on
/// it takes effect once the last holder closes and unmaps the file.
struct KernelDaxSupport {
  int major = 0;
  int minor = 0;
  bool per_file_dax = false;
  std::string per_file_dax_reason;  ///< "" when per_file_dax
  bool switch_on_last_close = false;
  std::string switch_on_last_close_reason;  ///< "" when switch_on_last_close
};

/// Parses a uname(2) release such as "6.1.0-18-amd64" or "5.10.0". Errors on
/// a release that does not start with "<major>.<minor>".
Result<KernelDaxSupport> AssessKernelRelease(std::string_view release);

/// The DAX mode as the mount lists it.
enum class DaxMountOption {
  kAbsent,  ///< no dax option listed
  kInode,   ///< dax=inode
  kAlways,  ///< dax=always
  kNever,   ///< dax=never
  kLegacy,  ///< bare "dax" (same as dax=always)
  kOther,   ///< dax=<something unknown>
};
std::string_view DaxMountOptionName(DaxMountOption option);

/// A yes/no answer with the reason when it is no.
struct Verdict {
  bool ok = false;
  std::string reason;  ///< "" when ok
};

/// Inputs the caller measures itself.
struct DaxCheckInput {
  /// f_bsize from statfs(2) on the mount, bytes; 0 = unknown.
  uint64_t block_size = 0;
  /// sysconf(_SC_PAGESIZE), bytes.
  uint64_t page_size = 4096;
  /// From AssessKernelRelease(uname().release); nullopt = assume >= 5.8.
  std::optional<KernelDaxSupport> kernel;
};

/// Everything learned about one mount, with the two verdicts.
struct MountDaxCapability {
  std::string mount_point;
  std::string fs_type;
  DaxMountOption option = DaxMountOption::kAbsent;
  /// The disk behind the mount (a partition resolved to its disk), e.g. "pmem0";
  /// nullopt when the mount has no block device or it could not be resolved.
  std::optional<std::string> disk;
  /// Value of <sys>/block/<disk>/queue/dax; nullopt when unreadable.
  std::optional<bool> device_dax;
  /// (a) Can FS_XFLAG_DAX be set per file and be honoured by this mount at
  /// all: ext4 or xfs, writable, in dax=inode mode, kernel >= 5.8.
  Verdict per_file_flag;
  /// (b) Can a set flag become effective DAX: the block device is DAX-capable
  /// and the filesystem block size equals the page size.
  Verdict effective;
};

/// The disk name behind major:minor: <sys>/dev/block/MAJ:MIN is resolved; if
/// the target directory holds a "partition" file it is a partition and its
/// parent directory is the disk. Errors name the missing sysfs path.
Result<std::string> ResolveDisk(const Roots& roots, unsigned major, unsigned minor);

/// Reads <sys>/block/<disk>/queue/dax ("1" = DAX-capable, "0" = not). Errors
/// when missing or holding anything else.
Result<bool> ReadDeviceDax(const Roots& roots, std::string_view disk);

/// Assesses a mount from MountTable::Place(). Never fails: every problem ends
/// up as a negative verdict with its reason, naming the mount point and the
/// option, device or sysfs file at fault.
MountDaxCapability AssessMountDax(const MountEntry& mount, const Roots& roots,
                                  const DaxCheckInput& input);

}  // namespace daxpolicy::host
