// SPDX-License-Identifier: Apache-2.0
// When an early cycle runs after files were created or written: bounded delay,
// rate-limited by the cost of the cycles, nothing seen during a cycle lost.

#include "daemon/early_cycle.h"

#include <gtest/gtest.h>

namespace daxpolicy::daemon {
namespace {

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kSecond = 1000 * kMs;

// A cycle at `start_ns` that took `busy_ns`, all of it on the CPU.
void Cycle(EarlyCycles& e, int64_t start_ns, int64_t busy_ns) {
  e.CycleStarted();
  e.CycleEnded(start_ns + busy_ns, busy_ns);
}

TEST(EarlyCycles, AreNotDueWithoutActivity) {
  EarlyCycles e;
  EXPECT_EQ(e.Due(), std::nullopt);
  Cycle(e, 10 * kSecond, 20 * kMs);
  EXPECT_EQ(e.Due(), std::nullopt);
}

TEST(EarlyCycles, StartTheDelayAfterTheFirstActivityHoweverMuchFollows) {
  EarlyCycles e;
  Cycle(e, 0, 20 * kMs);
  e.Activity(10 * kSecond);
  ASSERT_EQ(e.Due(), 10 * kSecond + 200 * kMs);
  // More files meanwhile: the same cycle decides them, no later.
  e.Activity(10 * kSecond + 150 * kMs);
  e.Activity(10 * kSecond + 199 * kMs);
  EXPECT_EQ(e.Due(), 10 * kSecond + 200 * kMs);
}

TEST(EarlyCycles, CoverTheActivitySeenBeforeACycleStarted) {
  EarlyCycles e;
  e.Activity(1 * kSecond);
  e.CycleStarted();
  EXPECT_EQ(e.Due(), std::nullopt);
  e.CycleEnded(1 * kSecond + 230 * kMs, 30 * kMs);
  EXPECT_EQ(e.Due(), std::nullopt);
}

TEST(EarlyCycles, RunAgainAfterACycleForWhatItMayHaveMissed) {
  EarlyCycles e;
  e.CycleStarted();
  e.Activity(5 * kSecond + 10 * kMs);  // maybe after the cycle read the events
  EXPECT_EQ(e.Due(), std::nullopt);    // not while it runs
  e.CycleEnded(5 * kSecond + 40 * kMs, 40 * kMs);
  // The quiet time after a cycle (500 ms) is longer than the delay here.
  EXPECT_EQ(e.Due(), 5 * kSecond + 540 * kMs);
}

TEST(EarlyCycles, WaitAtLeastTheMinimumQuietTimeAfterACycle) {
  EarlyCycles e;
  Cycle(e, 0, 10 * kMs);
  e.Activity(100 * kMs);
  EXPECT_EQ(e.Due(), 510 * kMs);
  // Long after: only the delay.
  Cycle(e, 510 * kMs, 10 * kMs);
  e.Activity(3 * kSecond);
  EXPECT_EQ(e.Due(), 3 * kSecond + 200 * kMs);
}

TEST(EarlyCycles, LeaveNineTimesAnExpensiveCycleIdleAfterIt) {
  EarlyCycles e;
  Cycle(e, 0, 300 * kMs);  // 300 ms busy: 2.7 s quiet
  e.Activity(400 * kMs);
  EXPECT_EQ(e.Due(), 3 * kSecond);
}

TEST(EarlyCycles, LeaveOnlyTheMinimumQuietTimeAfterAScheduledWalk) {
  // The first cycle, or a periodic walk of a million files: 2 s of CPU.
  EarlyCycles e;
  e.CycleStarted();
  e.CycleEnded(2 * kSecond, 2 * kSecond, /*scheduled_walk=*/true);
  e.Activity(2 * kSecond + 100 * kMs);
  EXPECT_EQ(e.Due(), 2 * kSecond + 500 * kMs);
  // The same cycle asked for by activity (a lost event queue) holds back 18 s.
  e.CycleStarted();
  e.CycleEnded(5 * kSecond, 2 * kSecond);
  e.Activity(5 * kSecond + 100 * kMs);
  EXPECT_EQ(e.Due(), 23 * kSecond);
}

TEST(EarlyCycles, DoNotHoldBackForTheTimeACycleSpentWaiting) {
  // 3 s long (an fsync on a slow device), 20 ms of CPU: the minimum quiet time.
  EarlyCycles e;
  e.CycleStarted();
  e.CycleEnded(3 * kSecond, 20 * kMs);
  e.Activity(3 * kSecond + 100 * kMs);
  EXPECT_EQ(e.Due(), 3 * kSecond + 500 * kMs);
}

TEST(EarlyCycles, KeepAStormOfCreatesToATenthOfACore) {
  // Files created every millisecond for a minute, each cycle 50 ms: cycles
  // run back to back as soon as they are due, as the service runs them.
  EarlyCycles e;
  int64_t busy = 0;
  int cycles = 0;
  int64_t now = 0;
  int64_t worst_wait = 0;  // from a file's creation to the start of the cycle that sees it
  int64_t oldest = -1;
  for (; now < 60 * kSecond; now += kMs) {
    e.Activity(now);
    if (oldest < 0) oldest = now;
    std::optional<int64_t> due = e.Due();
    if (due && *due <= now) {
      worst_wait = std::max(worst_wait, now - oldest);
      oldest = -1;
      Cycle(e, now, 50 * kMs);
      busy += 50 * kMs;
      ++cycles;
      now += 50 * kMs;
    }
  }
  EXPECT_LE(busy * 10, now + 50 * kMs) << cycles << " cycles";
  EXPECT_GE(cycles, 60);  // still about one a second: new files keep being decided
  EXPECT_LE(worst_wait, 500 * kMs);
}

TEST(EarlyCycles, AreDueWhenAWaitEndsNotBeforeTheQuietTime) {
  EarlyCycles e;
  Cycle(e, 0, 20 * kMs);
  e.WaitEnds(2 * kSecond);
  e.WaitEnds(5 * kSecond);  // the sooner one counts
  EXPECT_EQ(e.Due(), 2 * kSecond);
  EXPECT_FALSE(e.activity());
  // A cycle evaluates the deferred files again: their waits are its to report.
  Cycle(e, 2 * kSecond, 300 * kMs);
  EXPECT_EQ(e.Due(), std::nullopt);
  e.WaitEnds(2 * kSecond + 400 * kMs);  // after the quiet time: 2.3 s + 2.7 s
  EXPECT_EQ(e.Due(), 5 * kSecond);
  // Activity sooner than the wait: the activity's cycle.
  Cycle(e, 5 * kSecond, 10 * kMs);
  e.WaitEnds(20 * kSecond);
  e.Activity(6 * kSecond);
  EXPECT_TRUE(e.activity());
  EXPECT_EQ(e.Due(), 6 * kSecond + 200 * kMs);
}

TEST(EarlyCycles, SaturateTheQuietTimeOfAnEndlessCycle) {
  EarlyCycles e;
  Cycle(e, 0, INT64_MAX / 2);
  e.Activity(INT64_MAX / 2 + 1);
  ASSERT_TRUE(e.Due().has_value());
  EXPECT_GT(*e.Due(), INT64_MAX / 2);
}

TEST(EarlyCycles, FollowTheirOptions) {
  EarlyCycles e({.delay_ns = 300 * kMs, .min_quiet_ns = 1 * kSecond, .quiet_per_busy = 4});
  Cycle(e, 0, 400 * kMs);  // 1.6 s quiet
  e.Activity(500 * kMs);
  EXPECT_EQ(e.Due(), 2 * kSecond);
  e.Activity(5 * kSecond);  // still the first activity: 500 ms
  Cycle(e, 2 * kSecond, 100 * kMs);
  e.Activity(5 * kSecond);
  EXPECT_EQ(e.Due(), 5 * kSecond + 300 * kMs);
}

}  // namespace
}  // namespace daxpolicy::daemon
