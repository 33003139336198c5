// SPDX-License-Identifier: Apache-2.0
// Requests for a reload while one is read off the loop thread.

#include "daemon/reload_queue.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace daxpolicy::daemon {
namespace {

using Queue = ReloadQueue<std::string>;

TEST(AReloadQueue, StartsAReloadForTheFirstRequest) {
  Queue q;
  EXPECT_FALSE(q.reading());
  EXPECT_EQ(q.Ask("SIGHUP"), Queue::Asked::kStartNow);
  EXPECT_TRUE(q.reading());
  EXPECT_EQ(q.current(), std::vector<std::string>{"SIGHUP"});
  EXPECT_EQ(q.Finish(), std::vector<std::string>{"SIGHUP"});
  EXPECT_FALSE(q.reading());
  EXPECT_FALSE(q.StartNext());
}

TEST(AReloadQueue, JoinsRequestsMadeWhileOneIsReadIntoOneMoreReload) {
  Queue q;
  ASSERT_EQ(q.Ask(":1.1"), Queue::Asked::kStartNow);
  EXPECT_EQ(q.Ask("SIGHUP"), Queue::Asked::kQueued);
  EXPECT_EQ(q.Ask(":1.2"), Queue::Asked::kQueued);
  EXPECT_EQ(q.queued(), 2u);
  // The first reload answers only the request made before it started reading.
  EXPECT_EQ(q.Finish(), std::vector<std::string>{":1.1"});
  ASSERT_TRUE(q.StartNext());
  EXPECT_TRUE(q.reading());
  EXPECT_EQ(q.queued(), 0u);
  // A request during the second reload waits for a third one.
  EXPECT_EQ(q.Ask(":1.3"), Queue::Asked::kQueued);
  EXPECT_EQ(q.Finish(), (std::vector<std::string>{"SIGHUP", ":1.2"}));
  ASSERT_TRUE(q.StartNext());
  EXPECT_EQ(q.Finish(), std::vector<std::string>{":1.3"});
  EXPECT_FALSE(q.StartNext());
}

TEST(AReloadQueue, RefusesRequestsBeyondItsBound) {
  Queue q;
  ASSERT_EQ(q.Ask("first"), Queue::Asked::kStartNow);
  for (size_t i = 0; i < kMaxWaitingReloads; ++i) {
    ASSERT_EQ(q.Ask("r" + std::to_string(i)), Queue::Asked::kQueued);
  }
  EXPECT_EQ(q.Ask("one too many"), Queue::Asked::kRefused);
  EXPECT_EQ(q.queued(), kMaxWaitingReloads);
}

TEST(AReloadQueue, DoesNotStartTheNextOneBeforeTheCurrentEnds) {
  Queue q;
  ASSERT_EQ(q.Ask("a"), Queue::Asked::kStartNow);
  ASSERT_EQ(q.Ask("b"), Queue::Asked::kQueued);
  EXPECT_FALSE(q.StartNext());
  EXPECT_EQ(q.current(), std::vector<std::string>{"a"});
}

TEST(AReloadQueue, HandsEveryRequestBackWhenTheDaemonStops) {
  Queue q;
  ASSERT_EQ(q.Ask("a"), Queue::Asked::kStartNow);
  ASSERT_EQ(q.Ask("b"), Queue::Asked::kQueued);
  EXPECT_EQ(q.TakeAll(), (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(q.reading());
  EXPECT_EQ(q.Ask("c"), Queue::Asked::kStartNow);
}

}  // namespace
}  // namespace daxpolicy::daemon
