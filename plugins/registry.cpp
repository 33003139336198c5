// SPDX-License-Identifier: Apache-2.0
#include "plugins/registry.h"

#include "plugins/driver/inode_flag_driver.h"
#include "plugins/driver/observe_driver.h"

namespace daxpolicy::plugins {

namespace {

driver::DriverOptions Options(const DriverSettings& s) {
  driver::DriverOptions o;
  o.open.procfs_root = s.procfs_root;
  return o;
}

}  // namespace

std::vector<std::string> DriverNames() { return {"inode-flag", "observe"}; }

std::unique_ptr<driver::DaxDriver> MakeDriver(const std::string& name,
                                              const DriverSettings& settings) {
  // The kernel's per-inode switch: FS_XFLAG_DAX on ext4/xfs mounted dax=inode.
  if (name == "inode-flag") {
    return std::make_unique<driver::InodeFlagDriver>(settings.kernel, Options(settings));
  }
  // Reads real state, records wanted changes, changes nothing (observe mode).
  if (name == "observe") return std::make_unique<driver::ObserveDriver>(Options(settings));
  return nullptr;
}

}  // namespace daxpolicy::plugins
