// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <vector>

#include "plugins/driver/dax_driver.h"
#include "plugins/driver/inode_flag_driver.h"

namespace daxpolicy::driver {

/// A change the observe driver would have made.
struct Observation {
  std::string path;  ///< FileRef::path
  uint64_t dev = 0;
  uint64_t ino = 0;
  FileKind kind = FileKind::kRegular;
  DaxState from = DaxState::kUnknown;
  DaxState to = DaxState::kUnknown;
};

/// Observe mode: reads the real state exactly like InodeFlagDriver (same safe opening, same
/// refusals, same MAP_SYNC question) but changes nothing and never calls before_change.
/// Wanted changes come back as ApplyResult::kObserved and are kept in memory.
class ObserveDriver : public DaxDriver {
 public:
  explicit ObserveDriver(DriverOptions options = {});

  std::string_view Name() const override { return "observe"; }
  Result<FileFlags> Read(const FileRef& ref) override;
  Result<ApplyOutcome> Apply(const FileRef& ref, DaxState desired,
                             const ApplyHooks& hooks) override;
  DaxState ReadEffective(const FileRef& ref) override { return reader_.ReadEffective(ref); }

  /// Every observed change since construction or the last Clear(), oldest first.
  const std::vector<Observation>& observations() const { return observations_; }
  void Clear() { observations_.clear(); }

 private:
  DriverOptions options_;
  FlagReader reader_;
  std::vector<Observation> observations_;
};

}  // namespace daxpolicy::driver
