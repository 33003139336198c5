// SPDX-License-Identifier: Apache-2.0
#include "daemon/early_cycle.h"

#include <algorithm>

namespace daxpolicy::daemon {

void EarlyCycles::Activity(int64_t now_ns) {
  if (!pending_since_ns_) pending_since_ns_ = now_ns;
}

void EarlyCycles::WaitEnds(int64_t at_ns) {
  if (!wait_ends_ns_ || at_ns < *wait_ends_ns_) wait_ends_ns_ = at_ns;
}

void EarlyCycles::CycleStarted() {
  running_ = true;
  pending_since_ns_.reset();
  wait_ends_ns_.reset();
}

void EarlyCycles::CycleEnded(int64_t now_ns, int64_t cpu_ns, bool scheduled_walk) {
  if (!running_) return;
  running_ = false;
  const int64_t busy = scheduled_walk ? 0 : std::max<int64_t>(0, cpu_ns);
  // Saturates: a cycle of hours times the factor stays far from overflowing.
  const int64_t quiet = busy > INT64_MAX / 16 / std::max<int64_t>(1, options_.quiet_per_busy)
                            ? INT64_MAX / 16
                            : std::max(options_.min_quiet_ns, busy * options_.quiet_per_busy);
  quiet_until_ns_ = now_ns + quiet;
}

std::optional<int64_t> EarlyCycles::Due() const {
  if (running_ || (!pending_since_ns_ && !wait_ends_ns_)) return std::nullopt;
  int64_t due = INT64_MAX;
  if (pending_since_ns_) due = *pending_since_ns_ + options_.delay_ns;
  if (wait_ends_ns_) due = std::min(due, *wait_ends_ns_);
  return std::max(due, quiet_until_ns_);
}

}  // namespace daxpolicy::daemon
