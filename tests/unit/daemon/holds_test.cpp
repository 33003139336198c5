// SPDX-License-Identifier: Apache-2.0
// The hold table: precedence of several holds on one file, who may release and list what,
// the limits per user and the end of holds whose scope went away.

#include "daemon/holds.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace daxpolicy::daemon {
namespace {

using policy::DaxState;

Caller User(uid_t uid, std::string sender) {
  Caller c;
  c.uid = uid;
  c.sender = std::move(sender);
  return c;
}

HoldTarget File(uint64_t ino, uid_t owner = 1000) {
  HoldTarget t;
  t.dev = 42;
  t.ino = ino;
  t.uid = owner;
  return t;  // no handle: Prune keeps it while its scope exists
}

std::vector<HoldInfo> Listed(const HoldTable& table, const Caller& caller) {
  std::vector<HoldInfo> out;
  table.ForEach(caller, [&](const HoldInfo& h) { out.push_back(h); });
  return out;
}

TEST(AHoldTable, LetsAPageCacheHoldWinOverADaxHoldOnTheSameFile) {
  HoldTable table;
  const Caller a = User(1000, ":1.1"), b = User(1001, ":1.2");
  uint32_t dax = table.Add(File(7), "/s/f", DaxState::kDax, "fast", a).cookie;
  ASSERT_NE(dax, 0u);
  EXPECT_EQ(table.effective().at({42, 7}).mode, DaxState::kDax);
  uint32_t pc = table.Add(File(7), "/s/f", DaxState::kPageCache, "safe", b).cookie;
  ASSERT_NE(pc, 0u);
  // The later page-cache hold wins; the dax hold stays listed, not in effect.
  EXPECT_EQ(table.effective().at({42, 7}).mode, DaxState::kPageCache);
  EXPECT_EQ(table.effective().at({42, 7}).cookie, pc);
  auto all = Listed(table, User(0, ":1.0"));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_FALSE(all[0].in_effect);
  EXPECT_TRUE(all[1].in_effect);
  // A second dax hold does not beat it either; the page-cache hold ending restores dax,
  // with the oldest dax hold's reason.
  uint32_t dax2 = table.Add(File(7), "/s/f", DaxState::kDax, "later", a).cookie;
  EXPECT_EQ(table.effective().at({42, 7}).mode, DaxState::kPageCache);
  ASSERT_TRUE(table.Release(pc, b));
  EXPECT_EQ(table.effective().at({42, 7}).mode, DaxState::kDax);
  EXPECT_EQ(table.effective().at({42, 7}).cookie, dax);
  ASSERT_TRUE(table.Release(dax, a));
  EXPECT_EQ(table.effective().at({42, 7}).cookie, dax2);
  ASSERT_TRUE(table.Release(dax2, a));
  EXPECT_TRUE(table.effective().empty());
  auto ended = table.TakeEnded();
  ASSERT_EQ(ended.size(), 3u);
  EXPECT_EQ(ended[0].cookie, pc);
  EXPECT_EQ(ended[0].why, "released");
  EXPECT_TRUE(table.TakeEnded().empty());
}

TEST(AHoldTable, LetsOnlyRootTheHolderOrItsConnectionReleaseAndListAHold) {
  HoldTable table;
  const Caller a = User(1000, ":1.1");
  uint32_t c = table.Add(File(7), "/s/f", DaxState::kDax, "", a).cookie;
  EXPECT_FALSE(table.Release(c, User(1001, ":1.5")));
  EXPECT_FALSE(table.Release(c + 1, User(1001, ":1.5")));  // unknown: the same answer
  EXPECT_TRUE(Listed(table, User(1001, ":1.5")).empty());
  EXPECT_EQ(Listed(table, User(1000, ":1.9")).size(), 1u);  // same uid, other connection
  EXPECT_EQ(Listed(table, User(0, ":1.0")).size(), 1u);
  EXPECT_TRUE(table.Release(c, User(1000, ":1.9")));
  c = table.Add(File(7), "/s/f", DaxState::kDax, "", a).cookie;
  EXPECT_TRUE(table.Release(c, User(0, ":1.0")));
}

TEST(AHoldTable, RefusesHoldsBeyondTheLimitPerUserButNotOthers) {
  HoldTable table;
  const Caller flood = User(65534, ":1.1");
  for (size_t i = 0; i < kMaxHoldsPerUid; ++i) {
    ASSERT_NE(table.Add(File(i + 1), "/s/f", DaxState::kDax, "", flood).cookie, 0u) << i;
  }
  auto refused = table.Add(File(1), "/s/f", DaxState::kDax, "", flood);
  EXPECT_EQ(refused.cookie, 0u);
  EXPECT_EQ(refused.error, "uid 65534 already has " + std::to_string(kMaxHoldsPerUid) +
                               " holds, the limit per user; release some first");
  EXPECT_NE(table.Add(File(1), "/s/f", DaxState::kDax, "", User(1000, ":1.2")).cookie, 0u);
  EXPECT_NE(table.Add(File(1), "/s/f", DaxState::kDax, "", User(0, ":1.3")).cookie, 0u);
  // Leaving the bus ends all of them and frees the quota.
  EXPECT_EQ(table.ReleaseOwner(":1.1"), kMaxHoldsPerUid);
  EXPECT_NE(table.Add(File(1), "/s/f", DaxState::kDax, "", flood).cookie, 0u);
}

TEST(AHoldTable, EndsHoldsWhoseScopeIsGone) {
  HoldTable table;
  table.Add(File(7), "/s/f", DaxState::kDax, "", User(1000, ":1.1"));
  EXPECT_EQ(table.Prune([](uint64_t) { return 3; }), 0u);  // handle-less: kept
  EXPECT_EQ(table.Prune([](uint64_t) { return -1; }), 1u);
  auto ended = table.TakeEnded();
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].why, "scope gone");
  EXPECT_TRUE(table.effective().empty());
}

TEST(AHoldTable, LooksUpTheScopeOfAFilesystemOncePerPrune) {
  HoldTable table;
  for (uint64_t ino = 1; ino <= 3; ++ino) {
    table.Add(File(ino), "/s/f" + std::to_string(ino), DaxState::kDax, "", User(1000, ":1.1"));
  }
  int lookups = 0;
  auto scope_gone = [&](uint64_t) {
    ++lookups;
    return -1;
  };
  EXPECT_EQ(table.Prune(scope_gone), 3u);
  EXPECT_EQ(lookups, 1);
}

}  // namespace
}  // namespace daxpolicy::daemon
