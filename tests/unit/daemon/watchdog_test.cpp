// SPDX-License-Identifier: Apache-2.0
// The cycle watchdog: healthy while no cycle runs past the bound, stuck (with what) after.

#include "daemon/watchdog.h"

#include <gtest/gtest.h>

namespace daxpolicy::daemon {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

TEST(ACycleWatchdog, IsHealthyWhileNoCycleRunsPastTheBound) {
  CycleWatchdog w(10 * kSecond);
  EXPECT_EQ(w.Stuck(0), std::nullopt);
  EXPECT_EQ(w.Stuck(1000 * kSecond), std::nullopt);  // idle for long: fine
  w.CycleStarted(100 * kSecond);
  EXPECT_EQ(w.Stuck(105 * kSecond), std::nullopt);
  EXPECT_EQ(w.Stuck(110 * kSecond), std::nullopt);
  w.CycleEnded();
  EXPECT_EQ(w.Stuck(500 * kSecond), std::nullopt);
}

TEST(ACycleWatchdog, SaysWhatIsStuckOnceACycleRunsPastTheBound) {
  CycleWatchdog w(10 * kSecond);
  w.CycleStarted(100 * kSecond);
  auto stuck = w.Stuck(112 * kSecond);
  ASSERT_TRUE(stuck.has_value());
  EXPECT_EQ(*stuck,
            "cycle stuck: running for 12s, more than the 10s allowed (--cycle-timeout); no flag "
            "changes until it ends, watchdog keep-alive stopped");
  w.CycleEnded();
  EXPECT_EQ(w.Stuck(113 * kSecond), std::nullopt);
}

}  // namespace
}  // namespace daxpolicy::daemon
