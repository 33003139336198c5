// SPDX-License-Identifier: Apache-2.0
// The engine with fake parts (tests/fakes): no root, no sleeps, time moves
// only when a test moves the fake clock. Files are empty files in a temporary
// directory (queries look them up with lstat); their DAX flags live in the
// fake driver, their telemetry in the fake file source.

#include "daemon/engine.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "policy/loader.h"
#include "policy/trace.h"
#include "tests/fakes/fakes.h"
#include "tests/support/test_support.h"

namespace daxpolicy::daemon {
namespace {

using ::daxpolicy::testing::TempDir;
using ::daxpolicy::testing::WriteFile;
using policy::DaxState;
using policy::FileState;

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kMinute = 60 * kSecond;

class EngineTest : public ::testing::Test {
 protected:
  // A policy over the temporary scope: `defaults` and `rules` are YAML.
  policy::Policy MakePolicy(
      const std::string& rules,
      const std::string& defaults = "{ dax: keep, min_dwell: 0s, max_switches_per_minute: 10000 }",
      const std::string& daemon = "{ interval: 1s, mode: enforce }") {
    std::string text = "apiVersion: daxpolicy/v1\ndaemon: " + daemon + "\nscopes: [ " + root_ +
                       " ]\ndefaults: " + defaults + "\nrules:\n" + rules;
    policy::LoadResult loaded = policy::LoadPolicy({"test.yaml", text});
    EXPECT_TRUE(loaded.errors.empty()) << loaded.errors.front().ToString();
    return *loaded.policy;
  }

  // "  - name: N\n    match: { path: "<root>/<glob>" }\n    dax: on|off\n" + extra lines.
  std::string Rule(const std::string& name, const std::string& glob, const std::string& dax,
                   const std::string& extra = "") {
    return "  - name: " + name + "\n    match: { path: \"" + root_ + "/" + glob + "\" }\n" + extra +
           "    dax: " + dax + "\n";
  }

  void Start(policy::Policy policy, bool observe = false) {
    options_.observe = observe;
    auto engine = Engine::Create(options_, std::move(policy), parts_.Take());
    ASSERT_TRUE(engine.ok()) << engine.error().message;
    engine_ = std::move(*engine);
  }

  // A regular file with its flags on the fake disk and its telemetry.
  void AddFile(const std::string& relative, DaxState physical, DaxState effective,
               fakes::FakeFile telemetry = {}) {
    WriteFile(root_ + "/" + relative, "");
    struct stat st {};
    ASSERT_EQ(lstat((root_ + "/" + relative).c_str(), &st), 0);
    driver::FileFlags flags;
    flags.kind = policy::FileKind::kRegular;
    flags.physical = physical;
    flags.effective = effective;
    flags.dev = st.st_dev;
    flags.ino = st.st_ino;
    flags.links = 1;
    parts_.disk->SetFile(relative, flags);
    if (telemetry.mtime_ns == 0) telemetry.mtime_ns = parts_.clock->WallNs() - kMinute;
    parts_.files->files[relative] = telemetry;
  }

  // The file is no longer held: its effective state follows the physical flag.
  void Release(const std::string& relative) {
    parts_.disk->SetHeld(relative, false);
    driver::FileFlags flags = *parts_.disk->Find(relative);
    flags.effective = flags.physical;
    parts_.disk->SetFile(relative, flags);
  }

  FileView Get(const std::string& relative) {
    auto r = engine_->GetFile(root_ + "/" + relative);
    EXPECT_TRUE(r.ok()) << (r.failure ? r.failure->message : "");
    return r.ok() ? *r.value : FileView{};
  }

  DaxState Physical(const std::string& relative) { return parts_.disk->Find(relative)->physical; }

  std::string Explain(const std::string& relative) {
    auto r = engine_->Explain(root_ + "/" + relative);
    EXPECT_TRUE(r.ok()) << (r.failure ? r.failure->message : "");
    return r.ok() ? *r.value : "";
  }

  TempDir dir_;
  std::string root_ = dir_.path().string();
  fakes::FakeParts parts_;
  Options options_;
  std::unique_ptr<Engine> engine_;
};

// ---------------------------------------------------------------------------
// Every state, one file each.

struct StateCase {
  const char* name;
  DaxState physical;
  DaxState effective;
  bool held_open;          // the driver keeps the effective state (someone holds the file)
  bool refuse;             // the driver refuses the change
  bool observe;            // observe mode
  const char* rule_extra;  // extra rule lines
  FileState want;
  DaxState want_physical;
  const char* want_reason;  // part of GetFile's reason
};

class EngineStates : public EngineTest, public ::testing::WithParamInterface<StateCase> {};

TEST_P(EngineStates, OneCycleGivesTheState) {
  const StateCase& c = GetParam();
  Start(MakePolicy(Rule("db-on-dax", "db*", "on", c.rule_extra)), c.observe);
  AddFile("db.sst", c.physical, c.effective, {.size = 4096});
  AddFile("other.log", DaxState::kPageCache, DaxState::kPageCache);
  if (c.held_open) parts_.disk->SetHeld("db.sst", true);
  if (c.refuse) {
    parts_.disk->Block("db.sst", driver::Blocked{driver::Blocker::kImmutable, EPERM,
                                                 "the file is immutable (chattr +i)"});
  }
  engine_->RunCycle();
  FileView v = Get("db.sst");
  EXPECT_EQ(v.state, c.want) << policy::FileStateName(v.state);
  EXPECT_EQ(Physical("db.sst"), c.want_physical);
  EXPECT_NE(v.reason.find(c.want_reason), std::string::npos) << v.reason;
  EXPECT_EQ(Get("other.log").state, FileState::kUnmanaged);
  EXPECT_FALSE(Get("other.log").managed);
}

INSTANTIATE_TEST_SUITE_P(
    All, EngineStates,
    ::testing::Values(StateCase{"InSync", DaxState::kDax, DaxState::kDax, false, false, false, "",
                                FileState::kInSync, DaxState::kDax, ""},
                      StateCase{"Switched", DaxState::kPageCache, DaxState::kPageCache, false,
                                false, false, "", FileState::kInSync, DaxState::kDax, ""},
                      StateCase{"Pending", DaxState::kPageCache, DaxState::kPageCache, true, false,
                                false, "", FileState::kPending, DaxState::kDax, ""},
                      StateCase{"Deferred", DaxState::kPageCache, DaxState::kPageCache, false,
                                false, false, "    when: \"file.size >= 1B\"\n    for: 10m\n",
                                FileState::kDeferred, DaxState::kPageCache,
                                "of the required 10m0s"},
                      StateCase{"Observed", DaxState::kPageCache, DaxState::kPageCache, false,
                                false, true, "", FileState::kObserved, DaxState::kPageCache, ""},
                      StateCase{"Blocked", DaxState::kPageCache, DaxState::kPageCache, false, true,
                                false, "", FileState::kBlocked, DaxState::kPageCache, "immutable"}),
    [](const ::testing::TestParamInfo<StateCase>& info) { return std::string(info.param.name); });

// The published view and the cycle's working snapshot share the records that
// did not change (issue: two full tables of every file at each cycle's peak).
TEST_F(EngineTest, ACycleSharesTheUnchangedRecordsWithTheView) {
  Start(MakePolicy(Rule("big-on-dax", "*", "on", "    when: \"file.size >= 1MiB\"\n")));
  // Three chunks of records: 2.5 chunks of files in one directory.
  const size_t n = policy::FileTable::kChunkRecords * 5 / 2;
  for (size_t i = 0; i < n; ++i) {
    AddFile("f" + std::to_string(1000 + i), DaxState::kPageCache, DaxState::kPageCache,
            {.size = 4096});
  }
  CycleReport first = engine_->RunCycle();
  ASSERT_EQ(first.files, n);
  EXPECT_EQ(first.table_chunks, 3u);
  EXPECT_EQ(first.shared_chunks, 0u);
  // Nothing changed: the new table is the view's.
  CycleReport idle = engine_->RunCycle();
  EXPECT_EQ(idle.table_chunks, 3u);
  EXPECT_EQ(idle.shared_chunks, 3u);
  // One file grows past the rule's size: its chunk alone is new, and the view
  // shows it while the records of the other chunks are the ones shared.
  parts_.files->files["f1300"].size = 2 << 20;
  CycleReport changed = engine_->RunCycle();
  EXPECT_EQ(changed.shared_chunks, 2u);
  EXPECT_EQ(changed.applied, 1u);
  EXPECT_EQ(Get("f1300").state, FileState::kInSync);
  EXPECT_EQ(Get("f1300").physical, DaxState::kDax);
  EXPECT_EQ(Get("f1299").physical, DaxState::kPageCache);
  EXPECT_EQ(Get("f1000").state, FileState::kUnmanaged);
  // The switch itself is a change the next cycle samples (the flag): then idle again.
  engine_->RunCycle();
  EXPECT_EQ(engine_->RunCycle().shared_chunks, 3u);
}

TEST_F(EngineTest, AScopeWhereTheFlagCannotWorkBlocksWithoutAskingTheDriver) {
  parts_.mounts->flag_blocked[root_] = "ext4 mounted without dax=inode";
  Start(MakePolicy(Rule("all", "**", "on")));
  AddFile("a", DaxState::kPageCache, DaxState::kPageCache);
  engine_->RunCycle();
  FileView v = Get("a");
  EXPECT_EQ(v.state, FileState::kBlocked);
  EXPECT_EQ(v.reason, "ext4 mounted without dax=inode");
  EXPECT_TRUE(parts_.disk->calls().empty());
  EXPECT_NE(engine_->Degraded().find("per-file DAX cannot work"), std::string::npos);
}

TEST_F(EngineTest, ADeviceWithoutDaxBlocksTheEffectiveState) {
  parts_.mounts->effective_blocked[root_] = "device loop0 cannot do DAX";
  Start(MakePolicy(Rule("all", "**", "on")));
  AddFile("a", DaxState::kPageCache, DaxState::kPageCache);
  parts_.disk->SetHeld("a", true);  // the kernel keeps page cache: the device has no DAX
  engine_->RunCycle();
  EXPECT_EQ(Physical("a"), DaxState::kDax);
  EXPECT_EQ(Get("a").state, FileState::kBlocked);
  EXPECT_NE(Explain("a").find("device loop0 cannot do DAX"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Time: for, min_dwell, budget.

TEST_F(EngineTest, ForWaitsItsTimeOnTheClock) {
  Start(MakePolicy(Rule("slow", "d*", "on", "    when: \"file.size >= 1B\"\n    for: 10m\n")));
  AddFile("d1", DaxState::kPageCache, DaxState::kPageCache, {.size = 1});
  for (int minutes : {0, 4, 8}) {
    if (minutes) parts_.clock->Advance(4 * kMinute);
    engine_->RunCycle();
    EXPECT_EQ(Get("d1").state, FileState::kDeferred) << minutes;
    EXPECT_EQ(Physical("d1"), DaxState::kPageCache);
  }
  EXPECT_EQ(engine_->counters().suppressed.at({"slow", "for"}), 3u);
  parts_.clock->Advance(2 * kMinute);  // 10 minutes
  EXPECT_EQ(engine_->RunCycle().applied, 1u);
  EXPECT_EQ(Physical("d1"), DaxState::kDax);
  EXPECT_EQ(Get("d1").state, FileState::kInSync);
}

TEST_F(EngineTest, ReportsWhenTheSoonestWaitEnds) {
  // The daemon runs a cycle then rather than at the next interval.
  Start(MakePolicy(Rule("slow", "d*", "on", "    when: \"file.size >= 1B\"\n    for: 10m\n")));
  AddFile("d1", DaxState::kPageCache, DaxState::kPageCache, {.size = 1});
  EXPECT_EQ(engine_->RunCycle().next_wait_ns, 10 * kMinute);
  parts_.clock->Advance(4 * kMinute);
  AddFile("d2", DaxState::kPageCache, DaxState::kPageCache, {.size = 1});
  EXPECT_EQ(engine_->RunCycle().next_wait_ns, 6 * kMinute);  // d1's, not d2's 10 minutes
  parts_.clock->Advance(6 * kMinute);
  CycleReport r = engine_->RunCycle();
  EXPECT_EQ(r.applied, 1u);
  EXPECT_EQ(r.next_wait_ns, 4 * kMinute);  // d2's
  parts_.clock->Advance(4 * kMinute);
  r = engine_->RunCycle();
  EXPECT_EQ(r.applied, 1u);
  EXPECT_EQ(r.next_wait_ns, 0);  // nothing waits
}

TEST_F(EngineTest, ExplainCountsWaitsFromTheClocksNow) {
  Start(MakePolicy(Rule("slow", "d*", "on", "    when: \"file.size >= 1B\"\n    for: 10m\n")));
  AddFile("d1", DaxState::kPageCache, DaxState::kPageCache, {.size = 1});
  engine_->RunCycle();
  parts_.clock->Advance(4 * kMinute);
  // No cycle since: the published state is 4 minutes old, the explanation is not.
  std::string text = Explain("d1");
  EXPECT_NE(text.find("has held for 4m0s of the required 10m0s"), std::string::npos) << text;
  EXPECT_EQ(text.find("held for -"), std::string::npos) << text;
}

TEST_F(EngineTest, ExplainCountsMinDwellFromTheClocksNow) {
  Start(MakePolicy(
      Rule("big", "d*", "on", "    when: \"file.size >= 1MiB\"\n") + Rule("small", "d*", "off"),
      "{ dax: keep, min_dwell: 10m, max_switches_per_minute: 10000 }"));
  AddFile("d1", DaxState::kPageCache, DaxState::kPageCache, {.size = 2 << 20});
  engine_->RunCycle();
  ASSERT_EQ(Physical("d1"), DaxState::kDax);
  parts_.files->files["d1"].size = 1;  // shrinks: wants page cache back
  parts_.clock->Advance(1 * kMinute);
  engine_->RunCycle();
  EXPECT_EQ(Get("d1").state, FileState::kDeferred);
  EXPECT_NE(Get("d1").reason.find("next switch possible in 9m0s"), std::string::npos)
      << Get("d1").reason;
  parts_.clock->Advance(3 * kMinute);
  std::string text = Explain("d1");
  EXPECT_NE(text.find("next switch possible in 6m0s"), std::string::npos) << text;
  parts_.clock->Advance(6 * kMinute);
  engine_->RunCycle();
  EXPECT_EQ(Physical("d1"), DaxState::kPageCache);
  EXPECT_EQ(engine_->counters().suppressed.at({"small", "min_dwell"}), 1u);
}

TEST_F(EngineTest, TheSwitchBudgetDefersTheRestUntilAMinuteHasPassed) {
  Start(MakePolicy(Rule("all", "**", "on"),
                   "{ dax: keep, min_dwell: 0s, max_switches_per_minute: 2 }"));
  for (const char* f : {"a", "b", "c", "d", "e"}) {
    AddFile(f, DaxState::kPageCache, DaxState::kPageCache);
  }
  EXPECT_EQ(engine_->RunCycle().applied, 2u);
  EngineGauges g = engine_->Gauges();
  EXPECT_EQ(g.files_by_state[FileState::kDeferred], 3u);
  parts_.clock->Advance(30 * kSecond);
  EXPECT_EQ(engine_->RunCycle().applied, 0u);
  std::string text = Explain("e");
  EXPECT_NE(text.find("retry in 30s"), std::string::npos) << text;
  parts_.clock->Advance(31 * kSecond);
  EXPECT_EQ(engine_->RunCycle().applied, 2u);
  parts_.clock->Advance(61 * kSecond);
  EXPECT_EQ(engine_->RunCycle().applied, 1u);
  EXPECT_EQ(engine_->PendingFiles(), 0u);
  EXPECT_EQ(engine_->Gauges().files_by_state[FileState::kInSync], 5u);
}

// ---------------------------------------------------------------------------
// Holds.

TEST_F(EngineTest, AHoldWinsOverTheRulesUntilReleased) {
  Start(MakePolicy(Rule("all", "**", "off")));
  AddFile("a", DaxState::kPageCache, DaxState::kPageCache);
  engine_->RunCycle();
  const Caller app{":1.7", 0, 4242, 0, {}};
  auto cookie = engine_->AddHold(root_ + "/a", DaxState::kDax, "benchmark", app);
  ASSERT_TRUE(cookie.ok()) << cookie.failure->message;
  engine_->RunCycle();
  EXPECT_EQ(Physical("a"), DaxState::kDax);
  EXPECT_NE(Get("a").reason.find("application hold: benchmark"), std::string::npos);
  std::vector<HoldInfo> holds;
  engine_->ForEachHold(app, [&](const HoldInfo& h) { holds.push_back(h); });
  ASSERT_EQ(holds.size(), 1u);
  EXPECT_EQ(holds[0].owner, ":1.7");
  EXPECT_TRUE(holds[0].in_effect);
  EXPECT_EQ(engine_->counters().transitions.at({"", "dax", "changed"}), 1u);

  EXPECT_EQ(engine_->ReleaseHoldsOf(":1.7"), 1u);
  EXPECT_FALSE(engine_->ReleaseHold(*cookie.value, app));
  engine_->RunCycle();
  EXPECT_EQ(Physical("a"), DaxState::kPageCache);
  holds.clear();
  engine_->ForEachHold(app, [&](const HoldInfo& h) { holds.push_back(h); });
  EXPECT_TRUE(holds.empty());
}

TEST_F(EngineTest, AHoldNeedsAScannedFileAndAMode) {
  Start(MakePolicy(Rule("all", "**", "off")));
  AddFile("a", DaxState::kPageCache, DaxState::kPageCache);
  const Caller app{":1.1", 0, 1, 0, {}};
  auto early = engine_->AddHold(root_ + "/a", DaxState::kDax, "r", app);
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.failure->error, ApiError::kNotManaged);
  EXPECT_NE(early.failure->message.find("not been scanned yet"), std::string::npos);
  engine_->RunCycle();
  auto bad = engine_->AddHold(root_ + "/a", DaxState::kUnknown, "r", app);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.failure->error, ApiError::kInvalidArgument);
  auto outside = engine_->AddHold("/elsewhere/x", DaxState::kDax, "r", app);
  ASSERT_FALSE(outside.ok());
  EXPECT_EQ(outside.failure->error, ApiError::kNotManaged);
}

// ---------------------------------------------------------------------------
// Pending files, holders, close events.

TEST_F(EngineTest, APendingFileReportsItsHoldersAndACloseEventSettlesIt) {
  Start(MakePolicy(Rule("all", "**", "on")));
  AddFile("a", DaxState::kPageCache, DaxState::kPageCache);
  parts_.disk->SetHeld("a", true);
  const driver::FileFlags& flags = *parts_.disk->Find("a");
  parts_.holders->holders[{flags.dev, flags.ino}] = {
      host::Holder{4242, "postgres", true, true, false}};
  CycleReport r = engine_->RunCycle();
  ASSERT_EQ(r.pending.size(), 1u);
  EXPECT_EQ(r.pending[0].path, root_ + "/a");
  ASSERT_EQ(r.pending[0].holders.size(), 1u);
  EXPECT_EQ(r.pending[0].holders[0].pid, 4242u);
  EXPECT_EQ(r.pending[0].holders[0].command, "postgres");
  EXPECT_EQ(engine_->PendingFiles(), 1u);
  EXPECT_EQ(Get("a").holders.size(), 1u);
  EXPECT_NE(Explain("a").find("4242 (postgres)"), std::string::npos);
  ASSERT_EQ(parts_.watcher->tracked.count("a"), 1u);

  // Not closed yet: nothing changes.
  EXPECT_TRUE(engine_->OnCloseEvents().empty());
  // The holder closes it: the kernel switches, the close event tells at once.
  Release("a");
  parts_.watcher->Close("a");
  std::vector<StateChange> changes = engine_->OnCloseEvents();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].state, FileState::kInSync);
  EXPECT_EQ(changes[0].effective, DaxState::kDax);
  EXPECT_EQ(engine_->PendingFiles(), 0u);
  EXPECT_EQ(Get("a").state, FileState::kInSync);
  EXPECT_EQ(Get("a").effective, DaxState::kDax);
  EXPECT_EQ(parts_.watcher->tracked.count("a"), 0u);
  EXPECT_EQ(engine_->Gauges().files_by_effective[DaxState::kDax], 1u);
  // The next cycle finds the same: no second signal.
  EXPECT_TRUE(engine_->RunCycle().changes.empty());
}

TEST_F(EngineTest, ACloseEventWhileAJobIsOutWinsAndIsSignalledOnce) {
  Start(MakePolicy(Rule("all", "**", "on")));
  AddFile("a", DaxState::kPageCache, DaxState::kPageCache);
  parts_.disk->SetHeld("a", true);
  engine_->RunCycle();
  ASSERT_EQ(Get("a").state, FileState::kPending);
  CycleJobPtr job = engine_->BeginCycle();
  engine_->Sample(*job);  // still held when sampled
  Release("a");
  parts_.watcher->Close("a");
  ASSERT_EQ(engine_->OnCloseEvents().size(), 1u);
  engine_->Decide(*job);
  engine_->Journal(*job);
  engine_->Apply(*job);
  engine_->Publish(*job);
  CycleReport r = engine_->EndCycle(std::move(job));
  EXPECT_TRUE(r.changes.empty());
  EXPECT_EQ(Get("a").state, FileState::kInSync);
  EXPECT_TRUE(engine_->RunCycle().changes.empty()) << "already signalled by the close event";
}

TEST_F(EngineTest, LostCloseEventsRecheckEveryPendingFileAndRescan) {
  Start(MakePolicy(Rule("all", "**", "on")));
  AddFile("a", DaxState::kPageCache, DaxState::kPageCache);
  AddFile("b", DaxState::kPageCache, DaxState::kPageCache);
  parts_.disk->SetHeld("a", true);
  parts_.disk->SetHeld("b", true);
  engine_->RunCycle();
  ASSERT_EQ(engine_->PendingFiles(), 2u);
  Release("a");
  Release("b");
  parts_.watcher->overflow = true;
  EXPECT_EQ(engine_->OnCloseEvents().size(), 2u);
  EXPECT_EQ(engine_->PendingFiles(), 0u);
  CycleReport r = engine_->RunCycle();
  EXPECT_TRUE(parts_.files->last_full_scan);
  EXPECT_FALSE(r.scheduled_walk) << "asked for by the lost events, not by the schedule";
}

TEST_F(EngineTest, ReportsTheWalksOfTheScheduleApart) {
  Start(MakePolicy(Rule("all", "**", "on"),
                   "{ dax: keep, min_dwell: 0s, max_switches_per_minute: 10000 }",
                   "{ interval: 1s, mode: enforce, rescan: 1m }"));
  AddFile("a", DaxState::kPageCache, DaxState::kPageCache);
  CycleReport first = engine_->RunCycle();
  EXPECT_TRUE(first.full_scan);
  EXPECT_TRUE(first.scheduled_walk);
  parts_.clock->Advance(10 * kSecond);
  CycleReport second = engine_->RunCycle();
  EXPECT_FALSE(second.full_scan);
  EXPECT_FALSE(second.scheduled_walk);
  // Asked for by a lost event queue: a walk, but not the schedule's.
  parts_.watcher->overflow = true;
  engine_->OnCloseEvents();
  CycleReport asked = engine_->RunCycle();
  EXPECT_TRUE(asked.full_scan);
  EXPECT_FALSE(asked.scheduled_walk);
  parts_.clock->Advance(kMinute);
  CycleReport periodic = engine_->RunCycle();
  EXPECT_TRUE(periodic.full_scan);
  EXPECT_TRUE(periodic.scheduled_walk);
}

TEST_F(EngineTest, ProcIsWalkedAtMostOncePerCycle) {
  Start(MakePolicy(Rule("on", "on-*", "on") + Rule("off", "off-*", "off")));
  AddFile("on-held", DaxState::kPageCache, DaxState::kPageCache);
  AddFile("on-already-pending", DaxState::kDax, DaxState::kPageCache);
  AddFile("off-a", DaxState::kDax, DaxState::kDax);
  parts_.disk->SetHeld("on-held", true);
  engine_->RunCycle();
  // Newly pending (after apply and already so), pending from before, MAP_SYNC
  // users of files losing DAX: one pass.
  EXPECT_EQ(parts_.holders->calls, 1);
  EXPECT_EQ(engine_->PendingFiles(), 2u);
  AddFile("off-b", DaxState::kDax, DaxState::kDax);
  engine_->RunCycle();
  EXPECT_EQ(parts_.holders->calls, 2);
  EXPECT_EQ(parts_.holders->last_asked.size(), 3u);  // two pending, one losing DAX
}

TEST_F(EngineTest, RulesReadingHoldersGetThemFromTheSameSinglePass) {
  Start(MakePolicy(Rule("busy", "**", "on", "    when: \"file.holders >= 1\"\n")));
  AddFile("a", DaxState::kPageCache, DaxState::kPageCache);
  AddFile("b", DaxState::kPageCache, DaxState::kPageCache);
  const driver::FileFlags& flags = *parts_.disk->Find("a");
  parts_.holders->holders[{flags.dev, flags.ino}] = {host::Holder{7, "app", true, false, false}};
  parts_.disk->SetHeld("a", true);
  engine_->RunCycle();
  EXPECT_EQ(parts_.holders->calls, 1);
  EXPECT_EQ(Physical("a"), DaxState::kDax);
  EXPECT_EQ(Physical("b"), DaxState::kPageCache);
  EXPECT_EQ(Get("a").state, FileState::kPending);
  EXPECT_EQ(Get("a").holders.size(), 1u);
}

TEST_F(EngineTest, AMapSyncUserKeepsDaxAndAnUnreadableProcRefusesToo) {
  Start(MakePolicy(Rule("all", "**", "off")));
  AddFile("a", DaxState::kDax, DaxState::kDax);
  AddFile("b", DaxState::kDax, DaxState::kDax);
  const driver::FileFlags& flags = *parts_.disk->Find("a");
  parts_.holders->holders[{flags.dev, flags.ino}] = {host::Holder{9, "pmemkv", false, true, true}};
  engine_->RunCycle();
  EXPECT_EQ(Physical("a"), DaxState::kDax);
  EXPECT_EQ(Get("a").state, FileState::kBlocked);
  EXPECT_EQ(Physical("b"), DaxState::kPageCache);

  parts_.holders->fail = true;
  AddFile("c", DaxState::kDax, DaxState::kDax);
  engine_->RunCycle();
  EXPECT_EQ(Physical("c"), DaxState::kDax) << "safety first: unknown MAP_SYNC users";
  EXPECT_EQ(engine_->counters().sampler_errors.at("holders"), 1u);
}

// ---------------------------------------------------------------------------
// Reload, mode, cancel.

TEST_F(EngineTest, AReloadDuringACycleTakesEffectWhenItEnds) {
  Start(MakePolicy(Rule("all", "**", "on")));
  AddFile("a", DaxState::kPageCache, DaxState::kPageCache);
  CycleJobPtr job = engine_->BeginCycle();
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(engine_->BeginCycle(), nullptr) << "one job at a time";
  engine_->Sample(*job);
  engine_->Decide(*job);
  engine_->ReplacePolicy(MakePolicy(Rule("none", "**", "off")));
  EXPECT_EQ(engine_->generation(), 2u);
  engine_->Journal(*job);
  engine_->Apply(*job);
  engine_->Publish(*job);
  engine_->EndCycle(std::move(job));
  EXPECT_EQ(Physical("a"), DaxState::kDax) << "the job ran under the policy it began with";
  EXPECT_EQ(Get("a").rule, "all");
  CycleReport r = engine_->RunCycle();
  EXPECT_TRUE(r.full_scan) << "a new policy starts from a full scan";
  EXPECT_EQ(Physical("a"), DaxState::kPageCache);
  EXPECT_EQ(Get("a").rule, "none");
  ASSERT_EQ(r.changes.size(), 1u);
  EXPECT_EQ(r.changes[0].rule, "none");
}

// A reload prepares its scopes off the loop (PrepareScopes touches no part but the mount
// inspector); the loop swaps them in and marks each filesystem for close events once,
// at the end of the job that was out. Degraded lists a bounded number of scope problems.
TEST_F(EngineTest, AReloadsPreparedScopesAreMarkedOncePerFilesystemWhenSwappedIn) {
  Start(MakePolicy(Rule("all", "**", "on")));
  std::string text = "apiVersion: daxpolicy/v1\nscopes:\n";
  for (const char* d : {"a", "b", "c"}) {
    ASSERT_EQ(mkdir((root_ + "/" + d).c_str(), 0700), 0);
    text += "  - " + root_ + "/" + d + "\n";
  }
  const size_t kMissing = Engine::kDegradedScopeProblems + 5;
  for (size_t i = 0; i < kMissing; ++i) text += "  - " + root_ + "/gone" + std::to_string(i) + "\n";
  policy::LoadResult loaded = policy::LoadPolicy({"test.yaml", text});
  ASSERT_TRUE(loaded.errors.empty()) << loaded.errors.front().ToString();
  auto next = std::make_shared<const policy::Policy>(std::move(*loaded.policy));
  parts_.watcher->watched.clear();

  std::shared_ptr<ScopeSet> scopes = engine_->PrepareScopes(next);
  ASSERT_EQ(scopes->scopes.list.size(), 3 + kMissing);
  EXPECT_TRUE(parts_.watcher->watched.empty()) << "nothing is marked before the swap";
  EXPECT_EQ(engine_->Degraded().find("gone"), std::string::npos);
  CycleJobPtr job = engine_->BeginCycle();
  ASSERT_NE(job, nullptr);
  engine_->ReplacePolicy(next, scopes);
  EXPECT_EQ(engine_->generation(), 2u);
  EXPECT_TRUE(parts_.watcher->watched.empty()) << "the job out still uses the old scopes";
  engine_->RunWork(*job);
  engine_->EndCycle(std::move(job));
  EXPECT_EQ(parts_.watcher->watched, (std::set<std::string>{root_ + "/a"}));

  const std::string degraded = engine_->Degraded();
  size_t listed = 0;
  for (size_t at = degraded.find("cannot be opened"); at != std::string::npos;
       at = degraded.find("cannot be opened", at + 1)) {
    ++listed;
  }
  EXPECT_EQ(listed, Engine::kDegradedScopeProblems) << degraded;
  EXPECT_NE(degraded.find("and 5 more scope problems"), std::string::npos) << degraded;
}

TEST_F(EngineTest, AReloadSignalsOnlyFilesWhoseStateChanged) {
  Start(MakePolicy(Rule("x", "x*", "on") + Rule("y", "y*", "on")));
  AddFile("x1", DaxState::kPageCache, DaxState::kPageCache);
  AddFile("y1", DaxState::kPageCache, DaxState::kPageCache);
  EXPECT_EQ(engine_->RunCycle().changes.size(), 2u);
  engine_->ReplacePolicy(MakePolicy(Rule("x", "x*", "on") + Rule("y", "y*", "off")));
  CycleReport r = engine_->RunCycle();
  ASSERT_EQ(r.changes.size(), 1u);
  EXPECT_EQ(r.changes[0].path, root_ + "/y1");
}

TEST_F(EngineTest, ACycleSignalsOnlyChangedFilesWhileOthersComeAndGo) {
  Start(MakePolicy(Rule("all", "**", "on")));
  // Created in reverse: identity order is the reverse of the table's (path) order.
  for (const char* name : {"e", "d", "c", "b"}) AddFile(name, DaxState::kDax, DaxState::kDax);
  EXPECT_EQ(engine_->RunCycle().changes.size(), 4u);
  // "b" goes, "a" comes first in the table (every index moves), "d" loses
  // effective DAX on disk; "c" and "e" stay as they were.
  parts_.files->files.erase("b");
  AddFile("a", DaxState::kDax, DaxState::kDax);
  driver::FileFlags d = *parts_.disk->Find("d");
  d.effective = DaxState::kPageCache;
  parts_.disk->SetFile("d", d);
  CycleReport r = engine_->RunCycle();
  std::vector<std::string> changed;
  for (const StateChange& c : r.changes) changed.push_back(c.path);
  std::sort(changed.begin(), changed.end());
  EXPECT_EQ(changed, (std::vector<std::string>{root_ + "/a", root_ + "/d"}));
  EXPECT_EQ(Get("d").state, FileState::kPending);
  EXPECT_TRUE(engine_->RunCycle().changes.empty());
}

TEST_F(EngineTest, CancelStopsChangesAndTheNextCycleMakesThem) {
  Start(MakePolicy(Rule("all", "**", "on")));
  AddFile("a", DaxState::kPageCache, DaxState::kPageCache);
  CycleJobPtr job = engine_->BeginCycle();
  engine_->Sample(*job);
  engine_->Decide(*job);
  engine_->Journal(*job);
  engine_->Cancel();
  engine_->Apply(*job);
  engine_->Publish(*job);
  engine_->EndCycle(std::move(job));
  EXPECT_EQ(Physical("a"), DaxState::kPageCache);
  EXPECT_EQ(Get("a").state, FileState::kObserved);
  EXPECT_EQ(parts_.observe->applies, 1);
  engine_->RunCycle();
  EXPECT_EQ(Physical("a"), DaxState::kDax);
}

TEST_F(EngineTest, ObserveModeSetDuringACycleStopsItsChanges) {
  Start(MakePolicy(Rule("all", "**", "on")));
  AddFile("a", DaxState::kPageCache, DaxState::kPageCache);
  CycleJobPtr job = engine_->BeginCycle();
  engine_->Sample(*job);
  engine_->Decide(*job);
  engine_->Journal(*job);
  engine_->SetMode(policy::Mode::kObserve);
  engine_->Apply(*job);
  engine_->Publish(*job);
  engine_->EndCycle(std::move(job));
  EXPECT_EQ(Physical("a"), DaxState::kPageCache);
  engine_->RunCycle();
  EXPECT_EQ(Physical("a"), DaxState::kPageCache);
  EXPECT_EQ(Get("a").state, FileState::kObserved);
  EXPECT_EQ(parts_.journal->opens, 1) << "the journal opened for the first enforce cycle only";
}

// ---------------------------------------------------------------------------
// Journal.

TEST_F(EngineTest, NoJournalNoChange) {
  parts_.journal->fail_open = true;
  Start(MakePolicy(Rule("all", "**", "on")));
  EXPECT_NE(engine_->Degraded().find("state journal unavailable"), std::string::npos)
      << "shown from the start";
  AddFile("a", DaxState::kPageCache, DaxState::kPageCache);
  AddFile("b", DaxState::kPageCache, DaxState::kPageCache);
  engine_->RunCycle();
  EXPECT_EQ(Physical("a"), DaxState::kPageCache);
  EXPECT_EQ(Get("a").state, FileState::kBlocked);
  EXPECT_NE(Get("b").reason.find("state journal unavailable: state directory is read-only"),
            std::string::npos)
      << Get("b").reason;
  EXPECT_EQ(engine_->counters().sampler_errors.at("journal"), 1u);

  parts_.journal->fail_open = false;
  parts_.journal->fail_record = true;
  engine_->RunCycle();
  EXPECT_EQ(Physical("a"), DaxState::kPageCache);
  EXPECT_NE(Get("a").reason.find("cannot record original flags: disk full"), std::string::npos);
  EXPECT_EQ(engine_->counters().sampler_errors.at("journal"), 2u);

  parts_.journal->fail_record = false;
  engine_->RunCycle();
  EXPECT_EQ(Physical("a"), DaxState::kDax);
  EXPECT_EQ(Physical("b"), DaxState::kDax);
  ASSERT_EQ(parts_.journal->recorded.size(), 2u);
  EXPECT_EQ(parts_.journal->settled, 1);
  EXPECT_EQ(parts_.journal->scopes, std::vector<std::string>{root_});
  EXPECT_EQ(parts_.journal->recorded[0].scope_root, root_);
  EXPECT_EQ(parts_.journal->recorded[0].path, "a");
  EXPECT_EQ(parts_.journal->recorded[0].original, DaxState::kPageCache);
}

TEST_F(EngineTest, ABlockedFileIsTriedEveryCycleButItsOriginalIsRecordedOnlyWhenItChanges) {
  Start(MakePolicy(Rule("all", "**", "on")));
  AddFile("a", DaxState::kPageCache, DaxState::kPageCache);
  parts_.disk->Block("a", driver::Blocked{driver::Blocker::kImmutable, EPERM,
                                          "the file is immutable (chattr +i)"});
  engine_->RunCycle();
  EXPECT_EQ(Get("a").state, FileState::kBlocked);
  // The first try: in the batch, like any file (SettleBatch forgets it again).
  EXPECT_EQ(parts_.journal->recorded.size(), 1u);
  for (int cycle = 0; cycle < 3; ++cycle) {
    engine_->RunCycle();
    EXPECT_EQ(Get("a").state, FileState::kBlocked);
  }
  EXPECT_EQ(parts_.disk->calls().size(), 4u) << "tried again every cycle";
  EXPECT_EQ(parts_.journal->recorded.size(), 1u) << "not written to the journal at every retry";
  EXPECT_TRUE(parts_.journal->hooked.empty());
  // The block goes: the change records the original through the hook first.
  parts_.disk->Unblock("a");
  engine_->RunCycle();
  EXPECT_EQ(Physical("a"), DaxState::kDax);
  EXPECT_EQ(parts_.journal->recorded.size(), 1u);
  ASSERT_EQ(parts_.journal->hooked.size(), 1u);
  EXPECT_EQ(parts_.journal->hooked[0].path, "a");
  EXPECT_EQ(parts_.journal->hooked[0].original, DaxState::kPageCache);
}

// How many times the captured log says a switch was refused.
size_t BlockedEntries(const std::string& log) {
  size_t n = 0;
  for (size_t at = log.find("cannot switch"); at != std::string::npos;
       at = log.find("cannot switch", at + 1)) {
    ++n;
  }
  return n;
}

TEST_F(EngineTest, ARefusedFileStaysBlockedWithItsReasonUntilMinDwellAllowsTheNextTry) {
  // A refused try counts as a switch: min_dwell spaces the tries. Meanwhile
  // the file shows as blocked with the refusal (not as deferred), and it is
  // logged once, not at every try.
  Start(MakePolicy(Rule("all", "**", "on"),
                   "{ dax: keep, min_dwell: 10m, max_switches_per_minute: 10000 }"));
  AddFile("a", DaxState::kPageCache, DaxState::kPageCache);
  const std::string immutable = "the file is immutable (chattr +i)";
  parts_.disk->Block("a", driver::Blocked{driver::Blocker::kImmutable, EPERM, immutable});
  ::testing::internal::CaptureStderr();
  engine_->RunCycle();
  EXPECT_EQ(Get("a").state, FileState::kBlocked);
  EXPECT_EQ(Get("a").reason, immutable);
  for (int minutes = 3; minutes <= 9; minutes += 3) {
    parts_.clock->Advance(3 * kMinute);
    engine_->RunCycle();
    const FileView v = Get("a");
    EXPECT_EQ(v.state, FileState::kBlocked) << minutes << " minutes after the try";
    EXPECT_EQ(v.reason, immutable + "; tried again in " + std::to_string(10 - minutes) + "m0s");
    EngineGauges g = engine_->Gauges();
    EXPECT_EQ(g.files_by_state[FileState::kBlocked], 1u);
    EXPECT_EQ(g.files_by_state[FileState::kDeferred], 0u);
  }
  // explain says what GetFileState says, counted from the clock's now.
  parts_.clock->Advance(30 * kSecond);
  const std::string text = Explain("a");
  EXPECT_NE(text.find("state:     blocked (" + immutable + "; tried again in 30s)"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("last apply: refused"), std::string::npos) << text;
  EXPECT_EQ(parts_.disk->calls().size(), 1u) << "not tried again before min_dwell has passed";
  parts_.clock->Advance(30 * kSecond);
  engine_->RunCycle();
  EXPECT_EQ(parts_.disk->calls().size(), 2u) << "tried again once min_dwell has passed";
  EXPECT_EQ(Get("a").state, FileState::kBlocked);
  EXPECT_EQ(Get("a").reason, immutable);
  EXPECT_EQ(BlockedEntries(::testing::internal::GetCapturedStderr()), 1u);
  // The block goes: the next try, min_dwell later, switches it.
  parts_.disk->Unblock("a");
  parts_.clock->Advance(10 * kMinute);
  engine_->RunCycle();
  EXPECT_EQ(Physical("a"), DaxState::kDax);
  EXPECT_EQ(Get("a").state, FileState::kInSync);
}

TEST_F(EngineTest, ARefusalForAnotherReasonIsLoggedAgain) {
  Start(MakePolicy(Rule("all", "**", "on")));
  AddFile("a", DaxState::kPageCache, DaxState::kPageCache);
  parts_.disk->Block("a", driver::Blocked{driver::Blocker::kImmutable, EPERM, "immutable"});
  ::testing::internal::CaptureStderr();
  engine_->RunCycle();
  engine_->RunCycle();
  parts_.disk->Block("a", driver::Blocked{driver::Blocker::kReadOnly, EROFS, "read-only"});
  engine_->RunCycle();
  engine_->RunCycle();
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(BlockedEntries(log), 2u) << log;
  EXPECT_NE(log.find("read-only"), std::string::npos) << log;
  EXPECT_EQ(Get("a").reason, "read-only");
}

TEST_F(EngineTest, AWaitingRefusedFileIsNotShownBlockedWhenItNoLongerWantsThatModeOrInObserveMode) {
  Start(MakePolicy(Rule("big", "a", "on", "    when: \"file.size >= 1MiB\"\n") +
                       Rule("small", "a", "off") + Rule("all", "b", "on"),
                   "{ dax: keep, min_dwell: 10m, max_switches_per_minute: 10000 }"));
  AddFile("a", DaxState::kPageCache, DaxState::kPageCache, {.size = 2 << 20});
  AddFile("b", DaxState::kPageCache, DaxState::kPageCache);
  parts_.disk->Block("a", driver::Blocked{driver::Blocker::kImmutable, EPERM, "immutable"});
  parts_.disk->Block("b", driver::Blocked{driver::Blocker::kImmutable, EPERM, "immutable"});
  engine_->RunCycle();
  EXPECT_EQ(Get("a").state, FileState::kBlocked);
  // Someone else switched a to DAX, and the policy now wants the page cache
  // back: that change waits for min_dwell, it was never refused.
  driver::FileFlags flags = *parts_.disk->Find("a");
  flags.physical = flags.effective = DaxState::kDax;
  parts_.disk->SetFile("a", flags);
  parts_.files->files["a"].size = 1;
  parts_.clock->Advance(1 * kMinute);
  engine_->RunCycle();
  EXPECT_EQ(Get("a").state, FileState::kDeferred) << Get("a").reason;
  EXPECT_NE(Get("a").reason.find("min_dwell"), std::string::npos) << Get("a").reason;
  EXPECT_EQ(Get("b").state, FileState::kBlocked) << Get("b").reason;
  // Observe mode tries nothing: b does not wait for a try.
  engine_->SetMode(policy::Mode::kObserve);
  parts_.clock->Advance(1 * kMinute);
  engine_->RunCycle();
  EXPECT_EQ(Get("b").state, FileState::kDeferred) << Get("b").reason;
}

TEST_F(EngineTest, ManyRefusedFilesStayInTheBatchOfOriginals) {
  // Left out one by one, 65 files that all become changeable at once would
  // each cost a journal write of their own.
  Start(MakePolicy(Rule("all", "**", "on")));
  constexpr int kFiles = 65;
  for (int n = 0; n < kFiles; ++n) {
    const std::string name = "f" + std::to_string(n);
    AddFile(name, DaxState::kPageCache, DaxState::kPageCache);
    parts_.disk->Block(name, driver::Blocked{driver::Blocker::kImmutable, EPERM, "immutable"});
  }
  engine_->RunCycle();
  engine_->RunCycle();
  EXPECT_EQ(parts_.journal->recorded.size(), 2u * kFiles);
  for (int n = 0; n < kFiles; ++n) parts_.disk->Unblock("f" + std::to_string(n));
  engine_->RunCycle();
  EXPECT_EQ(Physical("f64"), DaxState::kDax);
  EXPECT_EQ(parts_.journal->recorded.size(), 3u * kFiles);
  EXPECT_TRUE(parts_.journal->hooked.size() == kFiles) << "every change passes the hook";
}

// ---------------------------------------------------------------------------
// Telemetry sources.

TEST_F(EngineTest, SourceErrorsAreCountedByNameAndDegradedIsShown) {
  Start(MakePolicy(Rule("all", "**", "keep")));
  AddFile("a", DaxState::kPageCache, DaxState::kPageCache, {.sample_fails = true});
  parts_.system->fail = true;
  parts_.system->degraded = "PSI disabled";
  engine_->RunCycle();
  EXPECT_EQ(engine_->counters().sampler_errors.at("system"), 1u);
  EXPECT_EQ(engine_->counters().sampler_errors.at("sample"), 1u);
  EXPECT_NE(engine_->Degraded().find("PSI disabled"), std::string::npos);
  parts_.system->degraded.clear();
  engine_->RunCycle();
  EXPECT_EQ(engine_->Degraded().find("PSI disabled"), std::string::npos);
}

TEST_F(EngineTest, SystemTelemetryReachesTheRules) {
  Start(MakePolicy(Rule("pressure", "**", "on", "    when: \"system.mem_pressure > 50\"\n")));
  AddFile("a", DaxState::kPageCache, DaxState::kPageCache);
  engine_->RunCycle();
  EXPECT_EQ(Physical("a"), DaxState::kPageCache);
  parts_.system->values.have_mem_pressure = true;
  parts_.system->values.mem_pressure = 80;
  engine_->RunCycle();
  EXPECT_EQ(Physical("a"), DaxState::kDax);
}

// ---------------------------------------------------------------------------
// A cycle evaluates only the files whose decision may have changed.

TEST_F(EngineTest, AnUnchangedCycleEvaluatesNoFileAndKeepsEveryState) {
  Start(MakePolicy(Rule("on", "d*", "on") + Rule("off", "p*", "off")));
  AddFile("d1", DaxState::kPageCache, DaxState::kPageCache);
  AddFile("d2", DaxState::kDax, DaxState::kDax);
  AddFile("p1", DaxState::kPageCache, DaxState::kPageCache);
  AddFile("x1", DaxState::kPageCache, DaxState::kPageCache);
  parts_.disk->SetHeld("d1", true);
  EXPECT_EQ(engine_->RunCycle().decided, 4u);
  const EngineGauges before = engine_->Gauges();
  for (int i = 0; i < 3; ++i) {
    parts_.clock->Advance(kSecond);
    CycleReport r = engine_->RunCycle();
    EXPECT_EQ(r.decided, 0u) << i;
    EXPECT_TRUE(r.changes.empty());
    EXPECT_EQ(r.applied, 0u);
  }
  EXPECT_EQ(Get("d1").state, FileState::kPending);
  EXPECT_EQ(Get("d2").state, FileState::kInSync);
  EXPECT_EQ(Get("p1").state, FileState::kInSync);
  EXPECT_EQ(Get("x1").state, FileState::kUnmanaged);
  const EngineGauges after = engine_->Gauges();
  EXPECT_EQ(after.files_by_state, before.files_by_state);
  EXPECT_EQ(after.files_by_effective, before.files_by_effective);
  EXPECT_EQ(after.rule_matched, before.rule_matched);
  // The holder closes: the sample changes, so the file is evaluated again.
  Release("d1");
  CycleReport r = engine_->RunCycle();
  EXPECT_EQ(r.decided, 1u);
  EXPECT_EQ(Get("d1").state, FileState::kInSync);
}

TEST_F(EngineTest, ObservedFilesKeptAsTheyWereAreStillCounted) {
  Start(MakePolicy(Rule("on", "**", "on")), /*observe=*/true);
  AddFile("a", DaxState::kPageCache, DaxState::kPageCache);
  AddFile("b", DaxState::kPageCache, DaxState::kPageCache);
  engine_->RunCycle();
  parts_.clock->Advance(kSecond);
  EXPECT_EQ(engine_->RunCycle().decided, 0u);
  EXPECT_EQ(engine_->counters().suppressed.at({"on", "observe"}), 4u);
  EXPECT_EQ(Get("a").state, FileState::kObserved);
}

// Why a file is evaluated again: each case reaches a steady state (cycles
// that evaluate nothing), then changes one thing. Files: d1 (size 1) and the
// bystanders x1, x2, all page-cache.
enum class Step {
  kCycle,
  kSize2,
  kSize1,
  kNewFile,
  kRename,
  kAdvanceMinute,
  kPressure,
  kMedia,
  kObserve,
  kReload,
  kHold,
  kAccessWithheld,  // access tracing covers every file, its figures withheld
  kAccessFigures    // the figures come (every file read at 0 B/s)
};

struct DueCase {
  const char* name;
  const char* rules;     // "%" stands for the scope root
  const char* defaults;  // "" for the fixture's
  std::vector<Step> settle;
  Step change;
  int64_t d1_age_minutes;
  uint64_t want_decided;  // files evaluated in the cycle after the change
  const char* file;       // the file to check afterwards
  FileState want_state;
  DaxState want_physical;
};

void PrintTo(const DueCase& c, std::ostream* os) { *os << c.name; }

class EngineDue : public EngineTest, public ::testing::WithParamInterface<DueCase> {
 protected:
  std::string Expand(std::string text) {
    for (size_t at = text.find('%'); at != std::string::npos; at = text.find('%', at)) {
      text.replace(at, 1, root_);
      at += root_.size();
    }
    return text;
  }
  void Do(Step step) {
    switch (step) {
      case Step::kCycle:
        engine_->RunCycle();
        return;
      case Step::kSize2:
        parts_.files->files["d1"].size = 2;
        return;
      case Step::kSize1:
        parts_.files->files["d1"].size = 1;
        return;
      case Step::kNewFile:
        AddFile("d2", DaxState::kPageCache, DaxState::kPageCache, {.size = 1});
        return;
      case Step::kRename: {
        // x1 becomes d3 (the same inode under a name a rule matches).
        ASSERT_EQ(std::rename((root_ + "/x1").c_str(), (root_ + "/d3").c_str()), 0);
        driver::FileFlags flags = *parts_.disk->Find("x1");
        parts_.disk->SetFile("d3", flags);
        parts_.files->files["d3"] = parts_.files->files["x1"];
        parts_.files->files.erase("x1");
        return;
      }
      case Step::kAdvanceMinute:
        parts_.clock->Advance(kMinute);
        return;
      case Step::kPressure:
        parts_.system->values.have_mem_pressure = true;
        parts_.system->values.mem_pressure = 80;
        return;
      case Step::kMedia:
        parts_.system->media[0].read_latency_ns = 300;
        parts_.system->media[0].latency_ratio = 3;
        return;
      case Step::kObserve:
        engine_->SetMode(policy::Mode::kObserve);
        return;
      case Step::kReload:
        engine_->ReplacePolicy(Policy());
        return;
      case Step::kHold: {
        const Caller app{":1.7", 0, 4242, 0, {}};
        ASSERT_TRUE(engine_->AddHold(root_ + "/x1", DaxState::kDax, "test", app).ok());
        return;
      }
      case Step::kAccessWithheld:
        for (auto& [path, file] : parts_.files->files) file.access = true;
        parts_.system->values.access_withheld = true;
        parts_.system->values.access_unavailable = "its first window is not complete";
        return;
      case Step::kAccessFigures:
        parts_.system->values.access_withheld = false;
        parts_.system->values.access_unavailable.clear();
        parts_.system->values.access_window_ns = 1'000'000'000;
        return;
    }
  }
  policy::Policy Policy() {
    const DueCase& c = GetParam();
    return *c.defaults ? MakePolicy(Expand(c.rules), c.defaults) : MakePolicy(Expand(c.rules));
  }
};

TEST_P(EngineDue, TheFileIsEvaluatedAgainAndOnlyTheFilesConcerned) {
  const DueCase& c = GetParam();
  policy::MediaSample media;
  media.name = "pmem0";
  media.have_latency = true;
  media.read_latency_ns = 100;
  media.latency_ratio = 1;
  parts_.system->media = {media};
  Start(Policy());
  AddFile("d1", DaxState::kPageCache, DaxState::kPageCache,
          {.size = 1, .mtime_ns = parts_.clock->WallNs() - c.d1_age_minutes * kMinute});
  AddFile("x1", DaxState::kPageCache, DaxState::kPageCache, {.size = 1});
  AddFile("x2", DaxState::kPageCache, DaxState::kPageCache, {.size = 1});
  EXPECT_EQ(engine_->RunCycle().decided, 3u);
  for (Step s : c.settle) Do(s);
  Do(c.change);
  CycleReport r = engine_->RunCycle();
  EXPECT_EQ(r.decided, c.want_decided);
  FileView v = Get(c.file);
  EXPECT_EQ(v.state, c.want_state) << policy::FileStateName(v.state) << ": " << v.reason;
  EXPECT_EQ(Physical(c.file), c.want_physical);
}

constexpr DaxState kDax = DaxState::kDax;
constexpr DaxState kPc = DaxState::kPageCache;
const char* const kBigOn =
    "  - name: big\n    match: { path: \"%/d*\" }\n"
    "    when: \"file.size >= 2B\"\n    dax: on\n";

INSTANTIATE_TEST_SUITE_P(
    Reasons, EngineDue,
    ::testing::Values(
        // Its sample changed (a written file; a tree event names it).
        DueCase{"SampleChanged",
                kBigOn,
                "",
                {Step::kCycle},
                Step::kSize2,
                0,
                1,
                "d1",
                FileState::kInSync,
                kDax},
        DueCase{"NewFile",
                kBigOn,
                "",
                {Step::kCycle},
                Step::kNewFile,
                0,
                1,
                "d2",
                FileState::kUnmanaged,
                kPc},
        DueCase{"Renamed",
                "  - name: d\n    match: { path: \"%/d*\" }\n    dax: on\n",
                "",
                {Step::kCycle},
                Step::kRename,
                0,
                1,
                "d3",
                FileState::kInSync,
                kDax},
        // for: deferred every cycle until it has held long enough.
        DueCase{"ForExpires",
                "  - name: slow\n    match: { path: \"%/d*\" }\n    when: \"file.size >= 1B\"\n"
                "    for: 3m\n    dax: on\n",
                "",
                {Step::kCycle, Step::kAdvanceMinute, Step::kCycle, Step::kAdvanceMinute},
                Step::kAdvanceMinute,
                0,
                1,
                "d1",
                FileState::kInSync,
                kDax},
        // min_dwell: switched to DAX, then wanted back sooner than it allows.
        DueCase{"MinDwellExpires",
                "  - name: big\n    match: { path: \"%/d*\" }\n    when: \"file.size >= 2B\"\n"
                "    dax: on\n  - name: small\n    match: { path: \"%/d*\" }\n    dax: off\n",
                "{ dax: keep, min_dwell: 2m, max_switches_per_minute: 10000 }",
                {Step::kSize2, Step::kCycle, Step::kSize1, Step::kCycle, Step::kAdvanceMinute,
                 Step::kCycle},
                Step::kAdvanceMinute,
                0,
                1,
                "d1",
                FileState::kInSync,
                kPc},
        // The budget: one switch a minute, three files want one.
        DueCase{"BudgetRefills",
                "  - name: all\n    match: { path: \"%/**\" }\n    dax: on\n",
                "{ dax: keep, min_dwell: 0s, max_switches_per_minute: 1 }",
                {Step::kCycle, Step::kAdvanceMinute, Step::kCycle},
                Step::kAdvanceMinute,
                0,
                1,
                "x2",
                FileState::kInSync,
                kDax},
        // file.age crosses the threshold with nothing else changing.
        DueCase{"AgeCrossesTheThreshold",
                "  - name: cold\n    match: { path: \"%/**\" }\n    when: \"file.age >= 1h\"\n"
                "    dax: on\n",
                "",
                {Step::kCycle},
                Step::kAdvanceMinute,
                59,
                1,
                "d1",
                FileState::kInSync,
                kDax},
        // A system figure changed: only files the rule that reads it (or a
        // later one) decided; x1, x2 are decided by an earlier rule.
        DueCase{"SystemFigureChanged",
                "  - name: x\n    match: { path: \"%/x*\" }\n    dax: keep\n"
                "  - name: pressure\n    match: { path: \"%/d*\" }\n"
                "    when: \"system.mem_pressure > 50\"\n    dax: on\n",
                "",
                {Step::kCycle},
                Step::kPressure,
                0,
                1,
                "d1",
                FileState::kInSync,
                kDax},
        // Access figures come for files whose records stay the same (read at
        // 0 B/s): only files the rule that reads them (or a later one) decided.
        DueCase{"AccessFiguresCome",
                "  - name: x\n    match: { path: \"%/x*\" }\n    dax: keep\n"
                "  - name: unread\n    match: { path: \"%/d*\" }\n"
                "    when: \"file.read_bytes_rate < 1024\"\n    dax: on\n",
                "",
                {Step::kAccessWithheld, Step::kCycle, Step::kCycle},
                Step::kAccessFigures,
                0,
                1,
                "d1",
                FileState::kInSync,
                kDax},
        DueCase{"MediaFigureChanged",
                "  - name: x\n    match: { path: \"%/x*\" }\n    dax: keep\n"
                "  - name: slow-media\n    match: { path: \"%/d*\" }\n"
                "    when: \"media.latency_ratio > 2\"\n    dax: on\n",
                "",
                {Step::kCycle},
                Step::kMedia,
                0,
                1,
                "d1",
                FileState::kInSync,
                kDax},
        // Every file: the mode, the policy, the holds.
        DueCase{"ModeChanged",
                kBigOn,
                "",
                {Step::kSize2, Step::kCycle, Step::kSize1, Step::kCycle},
                Step::kObserve,
                0,
                3,
                "d1",
                FileState::kUnmanaged,
                kDax},
        DueCase{"PolicyReloaded",
                kBigOn,
                "",
                {Step::kCycle},
                Step::kReload,
                0,
                3,
                "d1",
                FileState::kUnmanaged,
                kPc},
        DueCase{"HoldAdded",
                kBigOn,
                "",
                {Step::kCycle},
                Step::kHold,
                0,
                3,
                "x1",
                FileState::kInSync,
                kDax}),
    [](const ::testing::TestParamInfo<DueCase>& info) { return std::string(info.param.name); });

TEST_F(EngineTest, AVanishedFileLeavesTheViewAndListingsFollowTheState) {
  Start(MakePolicy(Rule("all", "**", "on")));
  AddFile("a", DaxState::kDax, DaxState::kDax);
  AddFile("b", DaxState::kPageCache, DaxState::kPageCache);
  parts_.disk->SetHeld("b", true);
  engine_->RunCycle();
  std::vector<std::string> pending;
  engine_->ForEachFile(FileState::kPending, [&](const FileView& v) { pending.push_back(v.path); });
  EXPECT_EQ(pending, std::vector<std::string>{root_ + "/b"});
  EXPECT_EQ(engine_->ManagedFiles(), 2u);
  parts_.files->files.erase("a");
  engine_->RunCycle();
  EXPECT_EQ(engine_->ManagedFiles(), 1u);
  auto gone = engine_->GetFile(root_ + "/a");
  EXPECT_FALSE(gone.ok());
}

TEST_F(EngineTest, EachCycleHandsItsSnapshotToTheRecorderWhileItRecords) {
  AddFile("cached", DaxState::kPageCache, DaxState::kPageCache, {8192, 0, 2});
  AddFile("idle", DaxState::kPageCache, DaxState::kPageCache, {4096, 0, 0});
  daemon::EngineParts parts = parts_.Take();
  parts.recorder = std::make_unique<TraceRecorder>();
  TraceRecorder* recorder = parts.recorder.get();
  auto engine = Engine::Create(options_, MakePolicy(Rule("all", "**", "keep")), std::move(parts));
  ASSERT_TRUE(engine.ok()) << engine.error().message;
  engine_ = std::move(*engine);
  EXPECT_EQ(engine_->recorder(), recorder);
  engine_->RunCycle();  // not recording: nothing to write to

  TempDir out;
  const std::string path = (out.path() / "cycles.trace").string();
  auto sink = CreateTraceFile(path);
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  ASSERT_TRUE(recorder->Start(std::move(*sink), path, kDefaultTraceMaxBytes, "test").ok());
  parts_.clock->Advance(kSecond);
  const int64_t first = parts_.clock->MonotonicNs();
  engine_->RunCycle();
  parts_.clock->Advance(kSecond);
  engine_->RunCycle();
  EXPECT_EQ(recorder->Status().intervals, 2u);

  std::string error;
  auto trace = policy::ParseTrace(::daxpolicy::testing::ReadFile(path), &error);
  ASSERT_TRUE(trace) << error;
  EXPECT_EQ(trace->interval_ns, kSecond);
  ASSERT_EQ(trace->intervals.size(), 2u);
  EXPECT_EQ(trace->intervals[0].t_ns, first);
  EXPECT_EQ(trace->intervals[1].t_ns, first + kSecond);
  ASSERT_EQ(trace->intervals[1].files.size(), 1u);  // the idle file is left out
  EXPECT_EQ(trace->paths[trace->intervals[1].files[0].path], root_ + "/cached");
  EXPECT_EQ(trace->intervals[1].files[0].resident_bytes, 8192);
}

TEST_F(EngineTest, CreateRefusesMissingParts) {
  daemon::EngineParts parts = parts_.Take();
  parts.clock = nullptr;
  auto engine = Engine::Create(options_, MakePolicy(Rule("all", "**", "on")), std::move(parts));
  ASSERT_FALSE(engine.ok());
  EXPECT_NE(engine.error().message.find("no clock"), std::string::npos);
}

}  // namespace
}  // namespace daxpolicy::daemon
