// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The clocks the daemon reads. Nothing in daemon/ or plugins/ reads a clock
/// except through a Clock: the engine is given one (daemon/wiring.cpp gives
/// SystemClock), and tests give a fake one, so time in tests only moves when a
/// test moves it. The D-Bus service's call limiter and the state journal are
/// given the same clock.

#include <cstdint>

namespace daxpolicy::plugins {

/// One moment on both clocks.
struct Instant {
  int64_t mono_ns = 0;  ///< CLOCK_MONOTONIC
  int64_t wall_ns = 0;  ///< CLOCK_REALTIME, ns since the epoch
};

class Clock {
 public:
  virtual ~Clock() = default;
  /// CLOCK_MONOTONIC in ns: timers, rule timing, durations.
  virtual int64_t MonotonicNs() const = 0;
  /// CLOCK_REALTIME in ns since the epoch: file ages (against mtime).
  virtual int64_t WallNs() const = 0;
  /// The wall clock as filesystems stamp file times with it (CLOCK_REALTIME_COARSE, at
  /// most one tick behind WallNs()): a file created after this reading never has an
  /// earlier birth time. The state journal stamps its records with it, because restore
  /// compares the two. Unless overridden, the wall clock itself.
  virtual int64_t WallCoarseNs() const { return WallNs(); }
  Instant Now() const { return Instant{MonotonicNs(), WallNs()}; }
};

/// The kernel's clocks (clock_gettime). Thread-safe.
class SystemClock final : public Clock {
 public:
  int64_t MonotonicNs() const override;
  int64_t WallNs() const override;
  int64_t WallCoarseNs() const override;
  /// One shared instance, for tools that have no engine to take a clock from.
  static const SystemClock& Get();
};

}  // namespace daxpolicy::plugins
