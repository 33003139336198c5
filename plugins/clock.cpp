// SPDX-License-Identifier: Apache-2.0
#include "plugins/clock.h"

#include <time.h>

namespace daxpolicy::plugins {

namespace {

int64_t Read(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

int64_t SystemClock::MonotonicNs() const { return Read(CLOCK_MONOTONIC); }
int64_t SystemClock::WallNs() const { return Read(CLOCK_REALTIME); }
int64_t SystemClock::WallCoarseNs() const { return Read(CLOCK_REALTIME_COARSE); }

const SystemClock& SystemClock::Get() {
  static const SystemClock clock;
  return clock;
}

}  // namespace daxpolicy::plugins
