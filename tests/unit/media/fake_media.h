// SPDX-License-Identifier: Apache-2.0
#pragma once

// Builders for fake NVDIMM topologies and fake sysfs trees shared by the media
// tests.

#include <filesystem>
#include <string>

#include "plugins/media/topology.h"

namespace daxpolicy::media::testing {

// The committed fixture: one fsdax namespace (pmem0 259:0, partition 259:1),
// loop0 7:0, HMAT on nodes 0 and 1, memory tiers 4 and 22.
std::filesystem::path FsdaxHmatSysfs();

// ndbus0 with DIMM nmem0 (healthy SMART), region0 (target node 1, numa node 0)
// holding fsdax namespace0.0 on pmem0, as the fixture describes.
Topology OneFsdaxNamespace();

// Healthy SMART answer: health 0, 30 C, spares 100%, life used 5%.
SmartData HealthySmart();

// Creates <root>/dev/block/MAJ:MIN -> <root>/devices/virtual/block/<name> with
// queue/dax = dax, and <root>/block/<name>.
void AddBlockDevice(const std::filesystem::path& root, const std::string& name, unsigned major,
                    unsigned minor, bool dax);

// Creates <root>/devices/system/node/node<N> (no HMAT attributes).
void AddNode(const std::filesystem::path& root, int node);

}  // namespace daxpolicy::media::testing
