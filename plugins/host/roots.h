// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Where the host readers find procfs and sysfs. Production code uses the
/// defaults; tests point both at fake trees in a temporary directory.

#include <filesystem>

namespace daxpolicy::host {

/// Roots of the pseudo filesystems every reader in daxpolicy::host goes through.
struct Roots {
  std::filesystem::path proc = "/proc";
  std::filesystem::path sys = "/sys";
};

}  // namespace daxpolicy::host
