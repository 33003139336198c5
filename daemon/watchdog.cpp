// SPDX-License-Identifier: Apache-2.0
#include "daemon/watchdog.h"

namespace daxpolicy::daemon {

namespace {
std::string Seconds(int64_t ns) { return std::to_string(ns / 1'000'000'000) + "s"; }
}  // namespace

std::optional<std::string> CycleWatchdog::Stuck(int64_t now_ns) const {
  if (!running_ || now_ns - started_ns_ <= bound_ns_) return std::nullopt;
  return "cycle stuck: running for " + Seconds(now_ns - started_ns_) + ", more than the " +
         Seconds(bound_ns_) +
         " allowed (--cycle-timeout); no flag changes until it ends, watchdog keep-alive stopped";
}

}  // namespace daxpolicy::daemon
