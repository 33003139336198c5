// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The "system" telemetry source: memory pressure (PSI) and the page-cache
/// share of memory, into Snapshot::system.

#include <string>
#include <string_view>

#include "plugins/host/roots.h"
#include "plugins/telemetry.h"

namespace daxpolicy::host {

class SystemSource final : public plugins::TelemetrySource {
 public:
  explicit SystemSource(Roots roots) : roots_(std::move(roots)) {}
  std::string_view Name() const override { return "system"; }
  /// An unreadable meminfo counts one "system" error.
  void Sample(plugins::SampleContext& ctx) override;

 private:
  Roots roots_;
};

}  // namespace daxpolicy::host
