// SPDX-License-Identifier: Apache-2.0
#pragma once

// Whether the daemon is healthy enough to send the systemd watchdog its keep-alive.
//
// The event loop keeps answering D-Bus while a cycle runs on the worker thread, so a loop
// that merely runs proves nothing about enforcement: a worker hung in /proc, an ioctl or
// fsync would stop every flag change while the unit looked healthy. The keep-alive is sent
// only while no cycle has been running for longer than the bound (--cycle-timeout); past
// it the daemon stops sending WATCHDOG=1, says in STATUS= what is stuck, and systemd
// restarts it after WatchdogSec=.

#include <cstdint>
#include <optional>
#include <string>

namespace daxpolicy::daemon {

inline constexpr int64_t kDefaultCycleTimeoutNs = 300'000'000'000;  // 5 minutes

class CycleWatchdog {
 public:
  explicit CycleWatchdog(int64_t bound_ns) : bound_ns_(bound_ns) {}
  // Times are CLOCK_MONOTONIC nanoseconds.
  void CycleStarted(int64_t now_ns) {
    running_ = true;
    started_ns_ = now_ns;
  }
  void CycleEnded() { running_ = false; }
  int64_t bound_ns() const { return bound_ns_; }
  // nullopt while healthy; otherwise what is stuck, for STATUS= and the log.
  std::optional<std::string> Stuck(int64_t now_ns) const;

 private:
  int64_t bound_ns_;
  bool running_ = false;
  int64_t started_ns_ = 0;
};

}  // namespace daxpolicy::daemon
