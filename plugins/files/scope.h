// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <string>

namespace daxpolicy::files {

/// One directory tree to track: everything below `path` on the same mount.
struct ScanScope {
  /// Absolute path of the scope root, no trailing '/'.
  std::string path;
  /// Index into policy::Snapshot::mounts, copied into every FileRecord of this scope.
  uint16_t mount = 0;
  /// st_dev of the scope's filesystem (makedev(major, minor)); 0 = take it from the root at
  /// the first scan.
  uint64_t dev = 0;
  /// statx stx_mnt_id of the scope's mount (Linux 5.8+); 0 = take it from the root at the
  /// first scan. Later scans refuse a root on another mount (something mounted over it).
  uint64_t mount_id = 0;
};

}  // namespace daxpolicy::files
