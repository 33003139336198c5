// SPDX-License-Identifier: Apache-2.0
// Evaluate(): rule precedence, hysteresis over simulated time, holds, protect, explain.

#include "policy/evaluate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "policy/loader.h"
#include "tests/unit/policy/snapshot_builder.h"

namespace daxpolicy::policy {
namespace {

using testing::SnapshotBuilder;
constexpr int64_t kSec = kNanosPerSecond;

Policy Load(const std::string& rules, const std::string& extra = "") {
  std::string text =
      "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nprotect: [/srv/pmem/keep/**]\n" + extra +
      "rules:\n" + rules;
  LoadResult r = LoadPolicy({"p.yaml", text});
  EXPECT_TRUE(r.errors.empty()) << (r.errors.empty() ? "" : r.errors[0].ToString());
  return r.policy ? std::move(*r.policy) : Policy{};
}

const char* kRules = R"(  - name: big-logs
    match: { path: "/srv/pmem/logs/**", size: ">= 1GiB" }
    dax: on
  - name: all-logs
    match: { path: "/srv/pmem/logs/**" }
    dax: off
  - name: keep-tmp
    match: { path: "/srv/pmem/tmp/**" }
    dax: keep
  - name: log-dirs
    match: { path: "/srv/pmem/logs", type: directory }
    dax: on
)";

struct PrecedenceCase {
  const char* path;
  uint64_t size;
  bool dir;
  int rule;  // expected winning rule index, -1 none
  DaxState desired;
  FileState state;
};

TEST(RulePrecedence, FirstMatchingRuleWins) {
  Policy p = Load(kRules, "defaults: { dax: off }\n");
  const PrecedenceCase cases[] = {
      {"/srv/pmem/logs/huge.log", 2ull << 30, false, 0, DaxState::kDax, FileState::kPending},
      {"/srv/pmem/logs/small.log", 100, false, 1, DaxState::kPageCache, FileState::kInSync},
      {"/srv/pmem/tmp/x", 2ull << 30, false, 2, DaxState::kUnknown, FileState::kUnmanaged},
      {"/srv/pmem/logs", 4096, true, 3, DaxState::kDax, FileState::kInSync},
      {"/srv/pmem/other", 10, false, -1, DaxState::kPageCache, FileState::kInSync},
      {"/srv/pmem/keep/x", 2ull << 30, false, -1, DaxState::kUnknown, FileState::kUnmanaged},
  };
  for (const PrecedenceCase& c : cases) {
    SnapshotBuilder b;
    uint32_t i = c.dir ? b.Dir(c.path) : b.File(c.path, c.size);
    RuleState rs;
    Decisions d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 1000 * kSec});
    ASSERT_EQ(d.files.size(), 1u);
    EXPECT_EQ(d.files[i].rule, c.rule) << c.path;
    EXPECT_EQ(d.files[i].desired, c.desired) << c.path;
    EXPECT_EQ(d.files[i].state, c.state) << c.path;
    EXPECT_EQ(d.files[i].apply, c.state == FileState::kPending || (c.dir && c.rule == 3)) << c.path;
  }
}

TEST(RulePrecedence, CountsMatchesAndRuleChecks) {
  Policy p = Load(kRules);
  SnapshotBuilder b;
  b.File("/srv/pmem/logs/a", 10);
  b.File("/srv/pmem/logs/b", 3ull << 30);
  b.File("/srv/pmem/other", 10);
  RuleState rs;
  Decisions d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 0});
  EXPECT_EQ(d.rules[0].matched, 1u);
  EXPECT_EQ(d.rules[1].matched, 1u);
  EXPECT_EQ(d.rules[2].matched, 0u);
  EXPECT_EQ(d.rule_checks, 2u + 1u + 4u);
  EXPECT_EQ(d.applies, 1u);  // b to DAX; a is already page cache
}

TEST(ProtectedFiles, AreNeverTouchedEvenWhenHeld) {
  Policy p = Load("  - name: all\n    dax: on\n");
  SnapshotBuilder b;
  uint32_t f = b.File("/srv/pmem/keep/data", 10);
  Holds holds{{FileKey{42, b.at(f).ino}, Hold{DaxState::kDax, "app", 1}}};
  RuleState rs;
  Decisions d = Evaluate(p, b.snapshot(), rs, holds, {Mode::kEnforce, 0});
  EXPECT_EQ(d.files[f].state, FileState::kUnmanaged);
  EXPECT_EQ(d.files[f].reason, Reason::kProtected);
  EXPECT_FALSE(d.files[f].apply);
}

TEST(FilesOutsideTheScopes, AreUnmanaged) {
  Policy p = Load("  - name: all\n    dax: on\n");
  SnapshotBuilder b;
  uint32_t f = b.File("/srv/other/x", 10);
  RuleState rs;
  Decisions d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 0});
  EXPECT_EQ(d.files[f].reason, Reason::kOutsideScopes);
  EXPECT_FALSE(d.files[f].apply);
}

// A sustained condition: `for: 5m` over simulated time, no sleeps.
TEST(ASustainedRule, FiresOnlyAfterItsConditionHeldForItsDuration) {
  Policy p = Load(R"(  - name: cold
    when: "file.cache_resident_ratio < 0.5"
    for: 5m
    dax: on
)");
  SnapshotBuilder b;
  uint32_t f = b.File("/srv/pmem/a", 4096 * 10, DaxState::kPageCache, DaxState::kPageCache);
  RuleState rs;
  struct Step {
    int64_t t;          // seconds
    uint32_t resident;  // pages of 10
    FileState state;
    bool apply;
  } steps[] = {
      {0, 2, FileState::kDeferred, false},     // condition starts holding
      {120, 2, FileState::kDeferred, false},   // 2m of 5m
      {200, 8, FileState::kUnmanaged, false},  // condition breaks: no rule, default keep
      {210, 2, FileState::kDeferred, false},   // starts over
      {500, 2, FileState::kDeferred, false},   // 4m50s
      {510, 2, FileState::kPending, true},     // 5m: switch
  };
  for (const Step& s : steps) {
    b.Cache(f, s.resident);
    Decisions d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, s.t * kSec});
    EXPECT_EQ(d.files[f].state, s.state) << "t=" << s.t;
    EXPECT_EQ(d.files[f].apply, s.apply) << "t=" << s.t;
    if (s.state == FileState::kDeferred) {
      EXPECT_EQ(d.files[f].reason, Reason::kFor);
      EXPECT_EQ(d.rules[0].suppressed_for, 1u);
    }
  }
}

TEST(ASustainedRule, ExplainsHowLongItStillWaits) {
  Policy p = Load("  - name: hot\n    when: \"file.size > 0\"\n    for: 5m\n    dax: on\n");
  SnapshotBuilder b;
  uint32_t f = b.File("/srv/pmem/a", 100);
  RuleState rs;
  Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 0});
  Decisions d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 90 * kSec});
  EXPECT_EQ(d.files[f].wait_ns, 210 * kSec);
  EXPECT_EQ(ReasonText(p, b.snapshot(), d.files[f]),
            "the condition of rule 'hot' has held for 1m30s of the required 5m0s");
}

TEST(MinDwell, StopsAFileFromFlippingBackTooSoon) {
  Policy p = Load(R"(  - name: big
    when: "file.size >= 1MiB"
    dax: on
  - name: small
    dax: off
)",
                  "defaults: { min_dwell: 10m }\n");
  SnapshotBuilder b;
  uint32_t f = b.File("/srv/pmem/a", 2 << 20);
  RuleState rs;
  Decisions d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 0});
  ASSERT_TRUE(d.files[f].apply);  // to DAX at t=0
  b.at(f).physical = DaxState::kDax;
  b.at(f).effective = DaxState::kDax;
  // A cycle in sync in between: the switch must still be remembered.
  d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 30 * kSec});
  EXPECT_EQ(d.files[f].state, FileState::kInSync);
  b.at(f).size = 100;  // now it wants page cache again
  d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 60 * kSec});
  EXPECT_EQ(d.files[f].state, FileState::kDeferred);
  EXPECT_EQ(d.files[f].reason, Reason::kMinDwell);
  EXPECT_EQ(d.files[f].wait_ns, 540 * kSec);
  EXPECT_EQ(d.rules[1].suppressed_min_dwell, 1u);
  d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 600 * kSec});
  EXPECT_TRUE(d.files[f].apply);
  // Once min_dwell passed and nothing is pending, the state forgets the file.
  b.at(f).physical = DaxState::kPageCache;
  b.at(f).effective = DaxState::kPageCache;
  d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 1300 * kSec});
  EXPECT_EQ(rs.TrackedFilesForTest(), 0u);
}

TEST(TheSwitchBudget, LimitsSwitchesPerSlidingMinute) {
  Policy p = Load("  - name: all\n    dax: on\n", "defaults: { max_switches_per_minute: 3 }\n");
  SnapshotBuilder b;
  for (int i = 0; i < 5; ++i) b.File("/srv/pmem/f" + std::to_string(i), 10);
  RuleState rs;
  Decisions d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 0});
  EXPECT_EQ(d.applies, 3u);
  EXPECT_EQ(d.files[3].state, FileState::kDeferred);
  EXPECT_EQ(d.files[3].reason, Reason::kBudget);
  EXPECT_EQ(d.files[4].reason, Reason::kBudget);
  EXPECT_EQ(d.rules[0].suppressed_budget, 2u);
  for (int i = 0; i < 3; ++i) b.at(i).physical = DaxState::kDax;
  d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 59 * kSec});
  EXPECT_EQ(d.applies, 0u);  // the window still holds three switches
  d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 60 * kSec});
  EXPECT_EQ(d.applies, 2u);
  EXPECT_EQ(rs.RecentSwitchesForTest(), 2u);
}

TEST(ObserveMode, ReportsWantedChangesWithoutApplyingThem) {
  Policy p = Load("  - name: all\n    dax: on\n");
  SnapshotBuilder b;
  uint32_t f = b.File("/srv/pmem/a", 10);
  RuleState rs;
  Decisions d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kObserve, 0});
  EXPECT_EQ(d.files[f].state, FileState::kObserved);
  EXPECT_EQ(d.files[f].desired, DaxState::kDax);
  EXPECT_FALSE(d.files[f].apply);
  EXPECT_EQ(d.rules[0].suppressed_observe, 1u);
  EXPECT_EQ(rs.RecentSwitchesForTest(), 0u);
}

TEST(ApplicationHolds, OverrideRulesAndSkipSustainAndDwellButNotTheBudget) {
  Policy p = Load("  - name: slow\n    when: \"file.size > 0\"\n    for: 1h\n    dax: on\n",
                  "defaults: { max_switches_per_minute: 1 }\n");
  SnapshotBuilder b;
  uint32_t f = b.File("/srv/pmem/a", 10, DaxState::kDax, DaxState::kDax);
  uint32_t g = b.File("/srv/pmem/b", 10, DaxState::kDax, DaxState::kDax);
  Holds holds{{FileKey{42, b.at(f).ino}, Hold{DaxState::kPageCache, "db wants cache", 7}},
              {FileKey{42, b.at(g).ino}, Hold{DaxState::kPageCache, "db wants cache", 8}}};
  RuleState rs;
  Decisions d = Evaluate(p, b.snapshot(), rs, holds, {Mode::kEnforce, 0});
  EXPECT_TRUE(d.files[f].held);
  EXPECT_EQ(d.files[f].desired, DaxState::kPageCache);
  EXPECT_TRUE(d.files[f].apply);
  EXPECT_EQ(d.files[g].reason, Reason::kBudget);
}

TEST(ApplicationHolds, AreIgnoredWhenThePolicySaysSo) {
  Policy p = Load("  - name: all\n    dax: on\n", "daemon: { holds: ignore }\n");
  SnapshotBuilder b;
  uint32_t f = b.File("/srv/pmem/a", 10, DaxState::kDax, DaxState::kDax);
  Holds holds{{FileKey{42, b.at(f).ino}, Hold{DaxState::kPageCache, "x", 1}}};
  RuleState rs;
  Decisions d = Evaluate(p, b.snapshot(), rs, holds, {Mode::kEnforce, 0});
  EXPECT_FALSE(d.files[f].held);
  EXPECT_EQ(d.files[f].state, FileState::kInSync);
}

TEST(EffectiveState, IsPendingWhileHeldAndBlockedWhenTheDeviceCannotDoDax) {
  Policy p = Load("  - name: all\n    dax: on\n");
  SnapshotBuilder b;
  uint32_t f = b.File("/srv/pmem/a", 10, DaxState::kDax, DaxState::kPageCache);
  RuleState rs;
  Decisions d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 0});
  EXPECT_EQ(d.files[f].state, FileState::kPending);
  EXPECT_EQ(d.files[f].reason, Reason::kWaitingForHolders);
  b.EffectiveBlocked("device loop3 cannot do DAX (/sys/block/loop3/queue/dax is 0)");
  d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 0});
  EXPECT_EQ(d.files[f].state, FileState::kBlocked);
  EXPECT_EQ(ReasonText(p, b.snapshot(), d.files[f]),
            "device loop3 cannot do DAX (/sys/block/loop3/queue/dax is 0)");
  b.at(f).available &= ~kHavePhysical;
  d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 0});
  EXPECT_EQ(d.files[f].state, FileState::kBlocked);
  EXPECT_EQ(d.files[f].reason, Reason::kPhysicalUnknown);
}

TEST(Evaluation, IsDeterministicForTheSameInputs) {
  Policy p = Load(kRules, "defaults: { dax: on, max_switches_per_minute: 2 }\n");
  SnapshotBuilder b;
  for (int i = 0; i < 20; ++i) b.File("/srv/pmem/logs/f" + std::to_string(i), i * 1000);
  RuleState r1, r2;
  Decisions a = Evaluate(p, b.snapshot(), r1, {}, {Mode::kEnforce, 5});
  Decisions c = Evaluate(p, b.snapshot(), r2, {}, {Mode::kEnforce, 5});
  ASSERT_EQ(a.files.size(), c.files.size());
  for (size_t i = 0; i < a.files.size(); ++i) {
    EXPECT_EQ(a.files[i].state, c.files[i].state);
    EXPECT_EQ(a.files[i].apply, c.files[i].apply);
  }
}

TEST(Evaluation, HandsEachDecisionInFileOrderWithoutKeepingThem) {
  Policy p = Load(kRules + std::string("  - name: slow\n    when: \"file.size > 0\"\n    for: 5m\n"
                                       "    dax: on\n"),
                  "defaults: { dax: on, max_switches_per_minute: 2 }\n");
  SnapshotBuilder b;
  for (int i = 0; i < 20; ++i) b.File("/srv/pmem/logs/f" + std::to_string(i), i * 1000);
  for (int i = 0; i < 3; ++i) b.File("/srv/pmem/logs/big" + std::to_string(i), 2ull << 30);
  for (int i = 0; i < 5; ++i) b.File("/srv/pmem/other/f" + std::to_string(i), 10);
  b.File("/srv/pmem/keep/x", 10);
  RuleState kept, streamed;
  for (int64_t t : {0, 90}) {
    const EvalOptions at{Mode::kEnforce, t * kSec};
    Decisions all = Evaluate(p, b.snapshot(), kept, {}, at);
    std::vector<Decision> seen;
    Decisions counts =
        Evaluate(p, b.snapshot(), streamed, {}, at, [&](const Decision& d) { seen.push_back(d); });
    EXPECT_TRUE(counts.files.empty());
    ASSERT_EQ(seen.size(), all.files.size());
    for (size_t i = 0; i < seen.size(); ++i) {
      const Decision& x = seen[i];
      const Decision& y = all.files[i];
      EXPECT_EQ(x.file, i);
      EXPECT_EQ(std::tie(x.file, x.rule, x.held, x.by_auto, x.desired, x.state, x.reason, x.apply,
                         x.wait_ns),
                std::tie(y.file, y.rule, y.held, y.by_auto, y.desired, y.state, y.reason, y.apply,
                         y.wait_ns))
          << "t=" << t << " file " << i;
    }
    // Applies, budget waits and sustained-condition waits are all among them.
    if (t == 0) {
      EXPECT_EQ(all.applies, 2u);
      EXPECT_TRUE(std::any_of(seen.begin(), seen.end(),
                              [](const Decision& d) { return d.reason == Reason::kBudget; }));
    }
    EXPECT_TRUE(std::any_of(seen.begin(), seen.end(), [&](const Decision& d) {
      return d.reason == Reason::kFor && d.wait_ns == (t == 0 ? 300 : 210) * kSec;
    }));
    EXPECT_EQ(counts.applies, all.applies);
    EXPECT_EQ(counts.rule_checks, all.rule_checks);
    ASSERT_EQ(counts.rules.size(), all.rules.size());
    for (size_t r = 0; r < all.rules.size(); ++r) {
      EXPECT_EQ(counts.rules[r].matched, all.rules[r].matched);
      EXPECT_EQ(counts.rules[r].suppressed_for, all.rules[r].suppressed_for);
      EXPECT_EQ(counts.rules[r].suppressed_budget, all.rules[r].suppressed_budget);
    }
    EXPECT_EQ(streamed.TrackedFilesForTest(), kept.TrackedFilesForTest());
  }
}

TEST(Explain, NamesTheWinnerTheLosersAndEveryConditionsLiveValue) {
  Policy p = Load(R"(  - name: reread-heavy
    match: { path: "/srv/pmem/db/**/*.sst", size: ">= 1MiB" }
    when: "media.latency_ratio >= 2 && file.cache_resident_ratio >= 0.8"
    dax: off
  - name: large
    when: "file.size >= 1GiB && system.mem_pressure > 10"
    dax: on
  - name: everything
    dax: on
)");
  SnapshotBuilder b;
  uint32_t f = b.File("/srv/pmem/db/x/a.sst", 2ull << 30, DaxState::kDax, DaxState::kDax);
  b.Media(300, 1.5);
  b.Cache(f, 1);
  RuleState rs;
  Explanation e = Explain(p, b.snapshot(), rs, {}, {Mode::kEnforce, 0}, f);
  ASSERT_EQ(e.rules.size(), 3u);
  EXPECT_FALSE(e.rules[0].matched);
  EXPECT_EQ(e.rules[0].when, Tri::kFalse);
  EXPECT_EQ(e.rules[1].when, Tri::kUnknown);
  EXPECT_TRUE(e.rules[2].winner);
  EXPECT_EQ(e.decision.rule, 2);
  std::string text = FormatExplanation(e, b.snapshot());
  EXPECT_NE(text.find("rule 'everything' (p.yaml:12:5): MATCHED, decides this file"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("media.latency_ratio >= 2  ->  false (1.5 vs 2)"), std::string::npos) << text;
  EXPECT_NE(text.find("size 2 GiB >= 1 MiB: true"), std::string::npos) << text;
  EXPECT_NE(text.find("rule 'large' (p.yaml:9:5): no match (its condition is unknown: some data is "
                      "unavailable)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("unavailable: system.mem_pressure: PSI is unavailable"), std::string::npos)
      << text;
  EXPECT_NE(text.find("state:     in-sync"), std::string::npos) << text;
  // Explain is read-only.
  EXPECT_EQ(rs.TrackedFilesForTest(), 0u);
}

TEST(Explain, ShowsTheAccessFiguresWithTheirWindow) {
  Policy p = Load(R"(  - name: everything
    dax: on
)");
  SnapshotBuilder b;
  uint32_t f = b.File("/srv/pmem/db/a.sst", 4 << 20, DaxState::kPageCache, DaxState::kPageCache);
  RuleState rs;
  Snapshot& snap = b.snapshot();
  snap.system.access_unavailable = "access tracing is unavailable: no BTF";
  std::string text = FormatExplanation(Explain(p, snap, rs, {}, {Mode::kEnforce, 0}, f), snap);
  EXPECT_NE(text.find("  access:    unavailable: access tracing is unavailable: no BTF\n"),
            std::string::npos)
      << text;

  snap.system.access_unavailable.clear();
  snap.system.access_window_ns = 10'000'000'000;
  FileRecord& r = snap.files[f];
  r.available |= kHaveAccess | kHaveHitRatio;
  r.read_bytes_rate = 2 << 20;
  r.write_bytes_rate = 0;
  r.cache_hit_ratio = 0.98f;
  text = FormatExplanation(Explain(p, snap, rs, {}, {Mode::kEnforce, 0}, f), snap);
  EXPECT_NE(text.find("  access:    read 2 MiB/s, reuse 5, cache hit ratio 0.98, write 0 B/s "
                      "(window 10s)\n"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace daxpolicy::policy
