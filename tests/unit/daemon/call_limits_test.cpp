// SPDX-License-Identifier: Apache-2.0
// The per-user limit on D-Bus method calls, on a clock the test passes in.

#include "daemon/bus/call_limits.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>

namespace daxpolicy::bus {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

// A bus that knows the uid of each name and counts how often it was asked.
struct FakeBus {
  FakeBus() = default;
  explicit FakeBus(std::map<std::string, uid_t> known) : uids(std::move(known)) {}
  std::map<std::string, uid_t> uids;
  int asked = 0;
  CallLimiter::UidLookup For(const std::string& sender) {
    return [this, sender]() -> std::optional<uid_t> {
      ++asked;
      auto it = uids.find(sender);
      if (it == uids.end()) return std::nullopt;
      return it->second;
    };
  }
};

int Admitted(CallLimiter& limiter, FakeBus& bus, const std::string& sender, int calls, int64_t at) {
  int n = 0;
  for (int i = 0; i < calls; ++i) {
    if (!limiter.Admit(sender, at, bus.For(sender))) ++n;
  }
  return n;
}

TEST(ACallLimiter, AdmitsABurstThenRefusesWithAClearMessage) {
  FakeBus bus({{":1.5", 65534}});
  CallLimiter limiter(10, 5);
  EXPECT_EQ(Admitted(limiter, bus, ":1.5", 10, 0), 10);
  auto refused = limiter.Admit(":1.5", 0, bus.For(":1.5"));
  ASSERT_TRUE(refused);
  EXPECT_EQ(*refused,
            "too many calls from uid 65534: at most 5 per second after a burst of 10; try again "
            "later");
  // The uid was asked of the bus once, not once per call.
  EXPECT_EQ(bus.asked, 1);
}

TEST(ACallLimiter, RefillsAtItsRateUpToTheBurst) {
  FakeBus bus({{":1.5", 1000}});
  CallLimiter limiter(10, 5);
  EXPECT_EQ(Admitted(limiter, bus, ":1.5", 20, 0), 10);
  // 5 per second: after 1 s, 5 more; after a long pause, never more than the burst.
  EXPECT_EQ(Admitted(limiter, bus, ":1.5", 20, kSecond), 5);
  EXPECT_EQ(Admitted(limiter, bus, ":1.5", 20, kSecond + kSecond / 5), 1);
  EXPECT_EQ(Admitted(limiter, bus, ":1.5", 20, 100 * kSecond), 10);
  // A clock that goes back gives nothing.
  EXPECT_EQ(Admitted(limiter, bus, ":1.5", 20, 50 * kSecond), 0);
}

TEST(ACallLimiter, CountsEveryConnectionOfAUserTogether) {
  FakeBus bus({{":1.1", 1000}, {":1.2", 1000}, {":1.3", 1001}});
  CallLimiter limiter(10, 5);
  EXPECT_EQ(Admitted(limiter, bus, ":1.1", 6, 0), 6);
  EXPECT_EQ(Admitted(limiter, bus, ":1.2", 6, 0), 4);
  // Another user is not held up by the first one's flood.
  EXPECT_EQ(Admitted(limiter, bus, ":1.3", 10, 0), 10);
}

TEST(ACallLimiter, NeverLimitsRoot) {
  FakeBus bus({{":1.9", 0}});
  CallLimiter limiter(10, 5);
  EXPECT_EQ(Admitted(limiter, bus, ":1.9", 1000, 0), 1000);
}

TEST(ACallLimiter, LetsACallerOfUnknownUidThroughToTheMethodsOwnChecks) {
  FakeBus bus;
  CallLimiter limiter(1, 1);
  EXPECT_EQ(Admitted(limiter, bus, ":1.7", 3, 0), 3);
  EXPECT_EQ(bus.asked, 3);  // asked again each time: nothing wrong is remembered
  EXPECT_EQ(limiter.remembered_senders(), 0u);
}

TEST(ACallLimiter, AsksTheBusAgainForANameThatLeftButKeepsTheUsersCount) {
  FakeBus bus({{":1.5", 1000}});
  CallLimiter limiter(10, 5);
  EXPECT_EQ(Admitted(limiter, bus, ":1.5", 10, 0), 10);
  EXPECT_EQ(limiter.KnownUid(":1.5"), 1000u);
  limiter.Forget(":1.5");
  EXPECT_EQ(limiter.remembered_senders(), 0u);
  EXPECT_EQ(limiter.KnownUid(":1.5"), std::nullopt);
  // Leaving the bus and coming back does not reset the user's budget.
  EXPECT_EQ(Admitted(limiter, bus, ":1.5", 1, 0), 0);
  EXPECT_EQ(bus.asked, 2);
}

TEST(ACallLimiter, RemembersABoundedNumberOfNames) {
  FakeBus bus;
  CallLimiter limiter(1'000'000, 1);
  for (size_t i = 0; i < kMaxRememberedSenders + 10; ++i) {
    const std::string name = ":1." + std::to_string(i);
    bus.uids[name] = 1000;
    ASSERT_FALSE(limiter.Admit(name, 0, bus.For(name)));
  }
  EXPECT_LE(limiter.remembered_senders(), kMaxRememberedSenders);
  EXPECT_GE(limiter.remembered_senders(), kMaxRememberedSenders / 2);
  // The newest names are still known: no new question to the bus.
  const int asked = bus.asked;
  const std::string newest = ":1." + std::to_string(kMaxRememberedSenders + 9);
  ASSERT_FALSE(limiter.Admit(newest, 0, bus.For(newest)));
  EXPECT_EQ(bus.asked, asked);
}

}  // namespace
}  // namespace daxpolicy::bus
