// SPDX-License-Identifier: Apache-2.0
#include "plugins/driver/blocked.h"

#include <cerrno>
#include <cstring>

namespace daxpolicy::driver {

std::string_view BlockerName(Blocker blocker) {
  switch (blocker) {
    case Blocker::kNone:
      return "none";
    case Blocker::kInvalidPath:
      return "invalid-path";
    case Blocker::kVanished:
      return "vanished";
    case Blocker::kReplaced:
      return "replaced";
    case Blocker::kEscapesScope:
      return "escapes-scope";
    case Blocker::kNotRegularOrDirectory:
      return "not-regular-or-directory";
    case Blocker::kHardLinks:
      return "hard-links";
    case Blocker::kAccessDenied:
      return "access-denied";
    case Blocker::kNotOwner:
      return "not-owner";
    case Blocker::kImmutable:
      return "immutable";
    case Blocker::kRefusedByFilesystem:
      return "refused-by-filesystem";
    case Blocker::kReadOnly:
      return "read-only";
    case Blocker::kNoFileattr:
      return "no-fileattr";
    case Blocker::kMapSync:
      return "map-sync";
    case Blocker::kNoSafeReopen:
      return "no-safe-reopen";
    case Blocker::kOther:
      return "other";
  }
  return "other";
}

std::string NotRegularOrDirectoryReason(std::string_view kind) {
  return "not a regular file or directory (" + std::string(kind) + "): never opened";
}

std::string HardLinksReason(uint64_t links) {
  return "has " + std::to_string(links) + " hard links: other names may lie outside the scope";
}

std::string ErrnoName(int err) {
  // strerrorname_np needs glibc 2.32; bookworm has 2.36.
  const char* name = strerrordesc_np(err) != nullptr ? strerrorname_np(err) : nullptr;
  if (err == 515) return "ENOIOCTLCMD";  // kernel-internal, never in userspace headers
  return name != nullptr ? std::string(name) : "errno " + std::to_string(err);
}

std::string OtherReason(std::string_view what, int err) {
  return std::string(what) + " failed: " + std::strerror(err) + " (" + ErrnoName(err) + ")";
}

}  // namespace daxpolicy::driver
