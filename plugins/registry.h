// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The one place that lists the DAX drivers. Drivers are constructed here,
/// explicitly, by name: there is no static self-registration.

#include <memory>
#include <string>
#include <vector>

#include "plugins/driver/dax_driver.h"
#include "plugins/driver/kernel_version.h"

namespace daxpolicy::plugins {

struct DriverSettings {
  driver::KernelVersion kernel;
  std::string procfs_root = "/proc";
};

/// Names of the drivers this build has: "inode-flag", "observe".
std::vector<std::string> DriverNames();

/// The driver called `name`, or nullptr for an unknown name.
std::unique_ptr<driver::DaxDriver> MakeDriver(const std::string& name,
                                              const DriverSettings& settings);

}  // namespace daxpolicy::plugins
