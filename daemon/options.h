// SPDX-License-Identifier: Apache-2.0
#pragma once

// Command-line options of daxpolicyd (the contract in daxpolicyd(8)).

#include <optional>
#include <string>

#include "daemon/log.h"

namespace daxpolicy::daemon {

struct Options {
  std::string config = "/etc/daxpolicy/policy.yaml";
  std::string config_dir;  // "" = <dir of config>/policy.d
  bool check_config = false;
  bool observe = false;
  bool once = false;
  bool session = false;
  std::string state_dir = "/var/lib/daxpolicy";
  std::optional<std::string> metrics_listen;
  LogLevel log_level = LogLevel::kInfo;
  // A cycle running longer stops the watchdog keep-alive (daemon/watchdog.h).
  int64_t cycle_timeout_ns = 300'000'000'000;
  // Cycles before the interval is up when files are created or written
  // (daemon/early_cycle.h); off only for benchmarks' interval-only baseline.
  bool early_cycles = true;
  // Roots of the kernel's pseudo-filesystems; only tests change them.
  std::string procfs = "/proc";
  std::string sysfs = "/sys";
};

}  // namespace daxpolicy::daemon
