// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The access telemetry source: per interval, the files under scope that were
/// read or written, and the figures the policy reads from them
/// (file.read_bytes_rate, file.write_bytes_rate, file.reuse,
/// file.cache_hit_ratio, system.cache_hit_ratio). Definitions are in
/// daxpolicy.yaml(5).

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "plugins/access/access_tracer.h"
#include "plugins/telemetry.h"
#include "policy/snapshot.h"

namespace daxpolicy::access {

/// Turns one interval's counts into the snapshot's access fields (pure).
/// `window_ns` is the time the counts cover; `mount_reasons[i]` is
/// CoverageOf() for snap->mounts[i].
void FillSnapshot(const AccessCounts& counts, int64_t window_ns, bool misses_traced,
                  const std::vector<std::string>& mount_reasons, policy::Snapshot* snap);

/// Clears every access field and sets why there are no figures.
void ClearSnapshot(const std::string& why, policy::Snapshot* snap);

/// Tracing runs but this cycle has no figures (`why`): marks the covered files
/// kHaveAccess with no figures and sets SystemSample::access_withheld.
void WithholdSnapshot(const std::string& why, const std::vector<std::string>& mount_reasons,
                      policy::Snapshot* snap);

class AccessSource final : public plugins::TelemetrySource {
 public:
  struct Options {
    uint32_t max_files = 65536;  ///< files counted per interval before overflow
    /// The kernel probe; tests pass a fake offer.
    std::function<KernelOffer()> probe = ProbeKernel;
    /// The file system type check of a mount point (xfs or not); tests may fake it.
    std::function<bool(const std::string& mount_point)> is_xfs;
    /// Programs whose attach fails as if refused (AccessTracer::Options; tests).
    std::set<std::string> refuse_attach;
  };
  explicit AccessSource(Options options);
  ~AccessSource() override;

  std::string_view Name() const override { return "access"; }
  /// One engine cycle: the interval ending at ctx.mono_ns, errors counted under Name().
  void Sample(plugins::SampleContext& ctx) override;
  /// One interval: keeps the in-kernel device filter on the snapshot's mounts,
  /// drains the counters and fills the access fields of `snap`. Counts dropped
  /// because the counting map was full are added to *errors (they make the
  /// interval's figures too low, so the figures of that interval are withheld).
  void Sample(policy::Snapshot* snap, int64_t now_ns, uint64_t* errors);

  /// "" when access tracing works for every mount; otherwise why not.
  std::string Degraded() const override;

 private:
  bool EnsureStarted();
  Options options_;
  Plan plan_;
  bool tried_ = false;
  std::unique_ptr<AccessTracer> tracer_;
  std::string failure_;                                    // why the tracer is not running
  std::vector<std::string> problems_;                      // partial coverage, overflow
  std::vector<std::pair<uint64_t, std::string>> devices_;  // (st_dev, mount point) last set
  std::vector<std::string> mount_reasons_;
  int64_t window_start_ns_ = -1;
};

}  // namespace daxpolicy::access
