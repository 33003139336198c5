// SPDX-License-Identifier: Apache-2.0
#include "plugins/media/health.h"

#include <ndctl/libndctl.h>

#include <cstdio>

namespace daxpolicy::media {
namespace {

using policy::MediaHealth;

int Rank(MediaHealth h) {
  switch (h) {
    case MediaHealth::kOk:
      return 0;
    case MediaHealth::kUnknown:
      return 1;
    case MediaHealth::kWarning:
      return 2;
    case MediaHealth::kCritical:
      return 3;
  }
  return 1;
}

void Raise(HealthAssessment* a, MediaHealth h) {
  if (Rank(h) > Rank(a->health)) a->health = h;
}

}  // namespace

const char* HealthName(MediaHealth health) {
  return policy::MediaHealthName(health).data();  // literals: NUL-terminated
}

HealthAssessment AssessDimm(const DimmInfo& dimm, const HealthThresholds& thresholds) {
  HealthAssessment a;
  const std::string& name = dimm.devname;
  if (!dimm.smart || !dimm.smart->health_bits) {
    a.health = MediaHealth::kUnknown;
    std::string why = !dimm.smart_unavailable_reason.empty() ? dimm.smart_unavailable_reason
                      : dimm.smart ? "SMART answer has no valid health state"
                                   : "no SMART data";
    a.reasons.push_back(name + ": " + why);
    return a;
  }
  const SmartData& s = *dimm.smart;
  unsigned bits = *s.health_bits;
  if (bits & ND_SMART_FATAL_HEALTH) {
    a.health = MediaHealth::kCritical;
    a.reasons.push_back(name + ": health fatal");
  } else if (bits & ND_SMART_CRITICAL_HEALTH) {
    a.health = MediaHealth::kCritical;
    a.reasons.push_back(name + ": health critical");
  } else if (bits & ND_SMART_NON_CRITICAL_HEALTH) {
    a.health = MediaHealth::kWarning;
    a.reasons.push_back(name + ": health non-critical");
  } else {
    a.health = MediaHealth::kOk;
  }
  if (s.life_used_percent && *s.life_used_percent >= thresholds.life_used_warning_percent) {
    Raise(&a, MediaHealth::kWarning);
    a.reasons.push_back(name + ": life used " + std::to_string(*s.life_used_percent) + "%");
  }
  if (s.spares_percent && *s.spares_percent < thresholds.spares_warning_percent) {
    Raise(&a, MediaHealth::kWarning);
    a.reasons.push_back(name + ": spares " + std::to_string(*s.spares_percent) + "%");
  }
  // Unsafe shutdowns risk lost writes but do not wear the media: reported in
  // the report's DIMM list, not a health change.
  return a;
}

HealthAssessment CombineHealth(const std::vector<const DimmInfo*>& dimms, uint64_t badblocks,
                               const HealthThresholds& thresholds) {
  HealthAssessment out;
  if (dimms.empty()) {
    out.health = MediaHealth::kUnknown;
    out.reasons.push_back("no DIMMs behind this device (no SMART source)");
  } else {
    out.health = MediaHealth::kOk;
    for (const DimmInfo* d : dimms) {
      HealthAssessment a = AssessDimm(*d, thresholds);
      Raise(&out, a.health);
      for (auto& r : a.reasons) out.reasons.push_back(std::move(r));
    }
  }
  if (badblocks > 0) {
    Raise(&out, MediaHealth::kWarning);
    out.reasons.push_back(std::to_string(badblocks) + " bad-block range(s)");
  }
  return out;
}

}  // namespace daxpolicy::media
