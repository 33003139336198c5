// SPDX-License-Identifier: Apache-2.0
#pragma once

// When a cycle runs before its interval is up: soon after the file source saw
// a file created, moved into a scope or closed after writing, so a new file a
// rule matches is decided within a second instead of up to an interval later,
// but never so often that a storm of creates keeps a core busy.
//
//   - The first such activity not yet covered by a cycle makes a cycle due
//     `delay` later; more activity meanwhile does not push it back (the wait
//     is bounded), it is decided by the same cycle.
//   - That cycle starts no sooner than `min_quiet`, and no sooner than
//     `quiet_per_busy` times the CPU time the last cycle took, after the last
//     cycle ended: however many files are created, early cycles cost at most
//     1 / (1 + quiet_per_busy) of one core (10 % by default) and come at most
//     about twice a second. CPU time, not the cycle's duration: a cycle that
//     mostly waits (an fsync of the journal, a slow device) costs little and
//     does not hold the next one back.
//   - Activity seen while a cycle runs may have come after that cycle read the
//     events: it makes another cycle due after it.
//   - A scheduled walk of the whole tree (the first cycle, and every
//     `daemon.rescan`) is the schedule's cost, not the activity's: it leaves
//     only `min_quiet` after it, so a file created just after the daemon
//     started, or just after a periodic walk of a million files, is still
//     decided within a second. Walks asked for by activity (a lost event
//     queue) count like any other cycle.
//
// A file deferred by a rule's `for:`, min_dwell or the switch budget makes a
// cycle due when its wait ends, under the same quiet time, so it switches
// then rather than at the next interval; the waits themselves are the
// policy's, evaluated by that cycle like by any other. Pure logic: times
// (CLOCK_MONOTONIC ns) are passed in.

#include <cstdint>
#include <optional>

namespace daxpolicy::daemon {

class EarlyCycles {
 public:
  struct Options {
    int64_t delay_ns = 200'000'000;
    int64_t min_quiet_ns = 500'000'000;
    int64_t quiet_per_busy = 9;
  };
  EarlyCycles() : EarlyCycles(Options{}) {}
  explicit EarlyCycles(Options options) : options_(options) {}

  // The file source saw a new or rewritten file in a scope.
  void Activity(int64_t now_ns);
  // A deferred file's wait ends at `at_ns` (after the cycle that found it
  // ended): a cycle is due then.
  void WaitEnds(int64_t at_ns);
  // A cycle, early or not, started: it covers the activity seen before, and
  // the waits (it reports the ones still running).
  void CycleStarted();
  // `cpu_ns`: the CPU time the cycle took (its worker thread and the loop's
  // part); `scheduled_walk`: the cycle was a scheduled walk of the whole tree.
  void CycleEnded(int64_t now_ns, int64_t cpu_ns, bool scheduled_walk = false);
  // When the next early cycle should start, or nullopt when none is due
  // (nothing new, or a cycle is running: ask again when it ends). It may be
  // in the past: start it now.
  std::optional<int64_t> Due() const;

  // Whether activity (rather than a wait alone) calls for the next cycle.
  bool activity() const { return pending_since_ns_.has_value(); }
  const Options& options() const { return options_; }

 private:
  Options options_;
  bool running_ = false;
  // The last cycle's end plus the quiet time after it.
  int64_t quiet_until_ns_ = INT64_MIN;
  // The first activity no cycle covers yet.
  std::optional<int64_t> pending_since_ns_;
  // The soonest end of a wait no cycle evaluated yet.
  std::optional<int64_t> wait_ends_ns_;
};

}  // namespace daxpolicy::daemon
