// SPDX-License-Identifier: Apache-2.0
#pragma once

/// What sysfs says about NUMA nodes and block devices: the firmware's (ACPI
/// HMAT) rated latency and bandwidth per memory node, the kernel's memory
/// tiers, and the name behind a block device number. Everything is read below
/// an injectable sysfs root (default "/sys").

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/result.h"

namespace daxpolicy::media {

/// Parses a kernel node/cpu list such as "0-1,3\n" into {0, 1, 3}. "" and
/// "\n" are the empty list.
Result<std::vector<int>> ParseNodeList(std::string_view text);

/// Rated performance from one access class (nodeN/accessK/initiators). Each
/// value is present only when its sysfs attribute was readable.
struct AccessClassPerformance {
  std::optional<uint64_t> read_latency_ns;
  std::optional<uint64_t> write_latency_ns;
  std::optional<uint64_t> read_bandwidth_mbps;   ///< MB/s as the kernel reports it
  std::optional<uint64_t> write_bandwidth_mbps;  ///< MB/s
  /// Initiator nodes these values are valid from (nodeM links in initiators/).
  std::vector<int> initiators;
};

/// One NUMA node as seen in <sys>/devices/system/node/nodeN.
struct NodePerformance {
  int node = -1;
  /// access0: from the best initiator of any kind; access1: from the best CPU.
  std::optional<AccessClassPerformance> access0;
  std::optional<AccessClassPerformance> access1;
  std::optional<int> memory_tier;  ///< N of memory_tierN listing this node
};

/// A memory tier: smaller id = faster memory.
struct MemoryTier {
  int id = -1;
  std::vector<int> nodes;
};

/// All firmware-declared facts found. Absent data is never an error: it says
/// why in the *_unavailable_reason fields.
struct FirmwarePerformance {
  bool hmat_available = false;
  std::string hmat_unavailable_reason;
  bool tiers_available = false;
  std::string tiers_unavailable_reason;
  std::vector<NodePerformance> nodes;  ///< ordered by node number
  std::vector<MemoryTier> tiers;       ///< ordered by tier id

  /// The entry for `node`, or nullptr.
  const NodePerformance* Node(int node) const;
};

/// Reads HMAT access classes and memory tiers below `sysfs_root`.
FirmwarePerformance ReadFirmwarePerformance(const std::filesystem::path& sysfs_root);

/// The kernel names behind a block device number.
struct BlockDeviceName {
  std::string name;  ///< "pmem0p1" / "pmem0" / "loop3"
  std::string disk;  ///< the whole disk: "pmem0" (== name unless a partition)
};

/// Resolves <sys>/dev/block/MAJ:MIN (a symlink into the device tree).
Result<BlockDeviceName> ResolveBlockDevice(const std::filesystem::path& sysfs_root, unsigned major,
                                           unsigned minor);

/// <sys>/block/<disk>/queue/dax: true/false, or nullopt when unreadable.
std::optional<bool> DiskSupportsDax(const std::filesystem::path& sysfs_root,
                                    const std::string& disk);

}  // namespace daxpolicy::media
