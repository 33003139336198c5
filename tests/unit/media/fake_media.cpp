// SPDX-License-Identifier: Apache-2.0
#include "tests/unit/media/fake_media.h"

#include "tests/support/test_support.h"

namespace daxpolicy::media::testing {
namespace fs = std::filesystem;

fs::path FsdaxHmatSysfs() {
  return fs::path(DAXPOLICY_SOURCE_DIR) / "tests/fixtures/media/fsdax-hmat/sys";
}

SmartData HealthySmart() {
  SmartData s;
  s.health_bits = 0;
  s.media_temperature_c = 30;
  s.spares_percent = 100;
  s.life_used_percent = 5;
  s.unsafe_shutdowns = 0;
  return s;
}

Topology OneFsdaxNamespace() {
  Topology t;
  t.buses.push_back({"ndbus0", "ACPI.NFIT"});
  DimmInfo dimm;
  dimm.devname = "nmem0";
  dimm.bus = "ndbus0";
  dimm.smart_supported = true;
  dimm.smart = HealthySmart();
  t.dimms.push_back(dimm);
  RegionInfo region;
  region.devname = "region0";
  region.bus = "ndbus0";
  region.type = "pmem";
  region.size = uint64_t{16} << 30;
  region.numa_node = 0;
  region.target_node = 1;
  region.dimms = {"nmem0"};
  t.regions.push_back(region);
  NamespaceInfo ns;
  ns.devname = "namespace0.0";
  ns.region = "region0";
  ns.mode = "fsdax";
  ns.size = uint64_t{15} << 30;
  ns.numa_node = 0;
  ns.target_node = 1;
  ns.block_device = "pmem0";
  t.namespaces.push_back(ns);
  return t;
}

void AddBlockDevice(const fs::path& root, const std::string& name, unsigned major, unsigned minor,
                    bool dax) {
  fs::path dev = root / "devices/virtual/block" / name;
  fs::create_directories(dev / "queue");
  daxpolicy::testing::WriteFile(dev / "queue/dax", dax ? "1\n" : "0\n");
  fs::create_directories(root / "dev/block");
  fs::create_directories(root / "block");
  fs::create_directory_symlink(
      fs::path("../../devices/virtual/block") / name,
      root / "dev/block" / (std::to_string(major) + ":" + std::to_string(minor)));
  fs::create_directory_symlink(fs::path("../devices/virtual/block") / name, root / "block" / name);
}

void AddNode(const fs::path& root, int node) {
  fs::create_directories(root / "devices/system/node" / ("node" + std::to_string(node)));
}

}  // namespace daxpolicy::media::testing
