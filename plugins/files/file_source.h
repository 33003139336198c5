// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The "files" telemetry source: walks the scopes (Scanner) and samples every
/// file in the same pass (FileSampler).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "plugins/files/sampler.h"
#include "plugins/files/scanner.h"
#include "plugins/telemetry.h"

namespace daxpolicy::files {

class FileSource final : public plugins::TelemetrySource {
 public:
  /// Gets each reported scan error: the path (raw bytes) and what failed.
  using ErrorLog = std::function<void(std::string_view path, std::string_view what)>;
  explicit FileSource(ErrorLog log = {}, ScanLimits limits = {});
  std::string_view Name() const override { return "files"; }
  /// Builds ctx.snapshot's file table from ctx.previous (incremental unless
  /// ctx.full_scan or the scanner's own schedule says full). Errors are counted
  /// as "scan" (walking), "sample" (per file) and "cache" (page-cache numbers).
  void Sample(plugins::SampleContext& ctx) override;

 private:
  ErrorLog log_;
  ScanLimits limits_;
  uint64_t generation_ = 0;
  std::unique_ptr<Scanner> scanner_;
  FileSampler sampler_;
};

}  // namespace daxpolicy::files
