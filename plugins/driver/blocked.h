// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Why the daemon could not open, read or change a file: a machine-readable kind,
/// the errno behind it and a stable, human-readable reason (shown over D-Bus,
/// asserted by tests; do not reword without updating both).

#include <cstdint>
#include <string>
#include <string_view>

#include "policy/result.h"

namespace daxpolicy::driver {

/// What stopped an operation. kNone only in successful outcomes.
enum class Blocker : uint8_t {
  kNone,
  kInvalidPath,            ///< absolute path, empty component, "." or ".."
  kVanished,               ///< ENOENT: the file is gone
  kReplaced,               ///< the path names another inode than the scan saw (or a non-directory)
  kEscapesScope,           ///< ELOOP/EXDEV: a symlink or a mount point on the way
  kNotRegularOrDirectory,  ///< fifo, socket, device node or symlink: never opened
  kHardLinks,              ///< regular file with more than one name (see DriverOptions)
  kAccessDenied,           ///< EACCES opening the file
  kNotOwner,               ///< EPERM: neither owner nor CAP_FOWNER
  kImmutable,              ///< EPERM on an immutable or append-only inode
  kRefusedByFilesystem,    ///< EINVAL/EOPNOTSUPP: the filesystem refuses DAX for this inode
  kReadOnly,               ///< EROFS
  kNoFileattr,             ///< ENOTTY/ENOIOCTLCMD: no FS_IOC_FS[GS]ETXATTR on this filesystem
  kMapSync,                ///< turning DAX off under a MAP_SYNC mapping
  kNoSafeReopen,           ///< the procfs reopen path is unavailable for a regular file
  kOther,                  ///< any other errno
};

/// Short stable name of a blocker ("vanished", "replaced", ...), for logs and metrics labels.
std::string_view BlockerName(Blocker blocker);

/// A refusal: kind, errno (or the errno listed below for refusals the daemon makes itself) and
/// reason. Self-made refusals use: kReplaced ESTALE, kNotRegularOrDirectory/kInvalidPath EINVAL,
/// kHardLinks EMLINK, kMapSync EBUSY, kNoSafeReopen ENOSYS.
struct Blocked {
  Blocker blocker = Blocker::kOther;
  int error_code = 0;
  std::string reason;

  /// As a daxpolicy::Error (message = reason, code = error_code).
  Error ToError() const { return Error{reason, error_code}; }
};

/// Stable reason texts. Where a text depends on details it is built by the functions below.
inline constexpr std::string_view kReasonInvalidPath =
    "invalid path: must be relative to the scope, without empty, '.' or '..' components";
inline constexpr std::string_view kReasonVanished = "vanished: the file no longer exists (ENOENT)";
inline constexpr std::string_view kReasonReplaced =
    "replaced since scan: the path now names a different file";
inline constexpr std::string_view kReasonEscapes = "path escapes the scope via a symlink or mount";
inline constexpr std::string_view kReasonAccess = "permission denied opening the file (EACCES)";
inline constexpr std::string_view kReasonNotOwner =
    "not permitted: the daemon is not the file's owner and lacks CAP_FOWNER (EPERM)";
inline constexpr std::string_view kReasonImmutable =
    "immutable or append-only file (chattr +i/+a): the kernel refuses flag changes (EPERM)";
inline constexpr std::string_view kReasonReadOnly = "read-only filesystem (EROFS)";
inline constexpr std::string_view kReasonNoFileattr =
    "the filesystem has no FS_IOC_FSSETXATTR support (ENOTTY)";
inline constexpr std::string_view kReasonMapSync =
    "mapped with MAP_SYNC by a process: DAX is never turned off under such a mapping";
inline constexpr std::string_view kReasonNoSafeReopen =
    "cannot reopen the file safely: procfs (<root>/self/fd) is not available";
inline constexpr std::string_view kReasonXfsReflinkOrV4 =
    "xfs refused the DAX flag (EINVAL): a reflinked file (refused before Linux 6.2) or a "
    "V4-format filesystem";
inline constexpr std::string_view kReasonXfsV4 =
    "xfs refused the DAX flag (EINVAL): a V4-format filesystem has no per-inode DAX flag";
inline constexpr std::string_view kReasonInvalidKind =
    "the DAX flag is only valid on regular files and directories (EINVAL)";
inline constexpr std::string_view kReasonExt4JournalData =
    "ext4 refuses DAX on a data-journalled file (chattr +j) (EOPNOTSUPP)";
inline constexpr std::string_view kReasonExt4Encrypted =
    "ext4 refuses DAX on an encrypted file (EOPNOTSUPP)";
inline constexpr std::string_view kReasonExt4Verity =
    "ext4 refuses DAX on an fs-verity file (EOPNOTSUPP)";
inline constexpr std::string_view kReasonExt4InlineData =
    "ext4 refuses DAX on a file with inline data (EOPNOTSUPP)";
inline constexpr std::string_view kReasonNotSupported =
    "the filesystem does not support the DAX flag on this file (EOPNOTSUPP)";

/// "not a regular file or directory (fifo): never opened"; kind is e.g. "fifo", "socket",
/// "character device", "block device", "symlink".
std::string NotRegularOrDirectoryReason(std::string_view kind);
/// "has 3 hard links: other names may lie outside the scope".
std::string HardLinksReason(uint64_t links);
/// "<what> failed: <strerror> (<ERRNO name>)" for errnos without a dedicated reason.
std::string OtherReason(std::string_view what, int err);
/// Name of an errno ("EPERM"), or its number when unknown.
std::string ErrnoName(int err);

/// Either a value or a Blocked refusal: Result with the per-file refusal as its error.
template <class T>
class [[nodiscard]] BlockedOr : public Result<T, Blocked> {
 public:
  using Result<T, Blocked>::Result;
  const Blocked& blocked() const { return this->error(); }
};

}  // namespace daxpolicy::driver
