// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Turning SMART answers and bad-block counts into policy::MediaHealth.

#include <string>
#include <vector>

#include "plugins/media/topology.h"
#include "policy/snapshot.h"

namespace daxpolicy::media {

/// A health verdict and the facts behind it ("nmem1: health critical", "life
/// used 95%"). `reasons` is empty only for a plain kOk.
struct HealthAssessment {
  policy::MediaHealth health = policy::MediaHealth::kUnknown;
  std::vector<std::string> reasons;
};

/// "ok" | "warning" | "critical" | "unknown" (the policy's media.health values).
const char* HealthName(policy::MediaHealth health);

/// Thresholds at which a healthy-looking DIMM is still reported as kWarning.
struct HealthThresholds {
  unsigned life_used_warning_percent = 90;
  unsigned spares_warning_percent = 10;  ///< warn when fewer spares remain
};

/// One DIMM. SMART health state: non-critical -> kWarning, critical or fatal ->
/// kCritical, 0 -> kOk; high wear or few spares raise kOk to kWarning. No SMART
/// (unsupported, failed, or no health field) -> kUnknown with the reason.
HealthAssessment AssessDimm(const DimmInfo& dimm, const HealthThresholds& thresholds = {});

/// Worst of the given DIMMs: kCritical > kWarning > kUnknown > kOk, so one
/// DIMM without SMART makes an otherwise healthy set unknown. Known bad blocks
/// raise kOk/kUnknown to kWarning. No DIMMs at all -> kUnknown (e.g. a
/// memmap=/e820 pmem region) unless bad blocks make it kWarning.
HealthAssessment CombineHealth(const std::vector<const DimmInfo*>& dimms, uint64_t badblocks,
                               const HealthThresholds& thresholds = {});

}  // namespace daxpolicy::media
