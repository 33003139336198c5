// SPDX-License-Identifier: Apache-2.0
// The engine's cycle split across threads, as the daemon runs it: RunWork on a
// worker thread while the loop thread reads the published view, changes the
// mode, cancels or reloads. On a real loop-mounted xfs with dax=inode, so the
// per-file flag really changes (the loop device has no DAX, so a file switched
// to DAX is "blocked" on its effective state, and one kept on the page cache is
// in sync).

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "daemon/engine.h"
#include "daemon/wiring.h"
#include "policy/loader.h"
#include "tests/fakes/fakes.h"
#include "tests/support/test_support.h"

namespace daxpolicy::daemon {
namespace {

using ::daxpolicy::testing::LoopFs;
using ::daxpolicy::testing::ReadDaxFlag;
using ::daxpolicy::testing::TempDir;
using ::daxpolicy::testing::WriteFile;

policy::Policy MakePolicy(const std::string& scope, const std::string& dax_rule) {
  std::string text =
      "apiVersion: daxpolicy/v1\n"
      "daemon: { interval: 1s, mode: enforce }\n"
      "scopes: [ " +
      scope +
      " ]\n"
      "defaults: { dax: keep, min_dwell: 0s, max_switches_per_minute: 10000 }\n"
      "rules:\n"
      "  - name: " +
      dax_rule +
      "\n"
      "    match: { path: \"" +
      scope +
      "/d*\" }\n"
      "    dax: on\n"
      "  - name: rest-on-page-cache\n"
      "    match: { path: \"" +
      scope +
      "/**\" }\n"
      "    dax: off\n";
  policy::LoadResult loaded = policy::LoadPolicy({"test.yaml", text});
  EXPECT_TRUE(loaded.errors.empty()) << loaded.errors.front().ToString();
  return *loaded.policy;
}

class EngineWorker : public ::testing::Test {
 protected:
  void SetUp() override {
    DAXPOLICY_REQUIRE(!LoopFs::Unavailable(), LoopFs::Unavailable().value_or(""));
    std::string error;
    fs_ = LoopFs::Create(testing::FsType::kXfs, &error, 300);
    ASSERT_NE(fs_, nullptr) << error;
    root_ = fs_->mount_point().string();
    WriteFile(root_ + "/plain", "x");
    options_.state_dir = state_.path().string();
    policy::Policy policy = MakePolicy(root_, "d-to-dax");
    // The real parts, on a clock the test moves.
    EngineParts parts = MakeEngineParts(options_, policy);
    parts.clock = clock_;
    auto engine = Engine::Create(options_, std::move(policy), std::move(parts));
    ASSERT_TRUE(engine.ok()) << engine.error().message;
    engine_ = std::move(*engine);
    engine_->RunCycle();
    ASSERT_EQ(engine_->ManagedFiles(), 1u);
  }

  std::shared_ptr<fakes::FakeClock> clock_ = std::make_shared<fakes::FakeClock>();

  std::unique_ptr<LoopFs> fs_;
  std::string root_;
  TempDir state_;
  Options options_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineWorker, QueriesAnswerFromTheLastViewUntilTheCycleEnds) {
  WriteFile(root_ + "/d-new", "y");
  CycleJobPtr job = engine_->BeginCycle();
  ASSERT_NE(job, nullptr);
  EXPECT_TRUE(engine_->cycle_running());
  EXPECT_EQ(engine_->BeginCycle(), nullptr) << "one job at a time";

  std::atomic<bool> done{false};
  std::thread worker([&] {
    engine_->RunWork(*job);
    done = true;
  });
  // The loop thread keeps answering while the work runs, from the last view.
  int answered = 0;
  do {
    auto plain = engine_->GetFile(root_ + "/plain");
    ASSERT_TRUE(plain.ok());
    EXPECT_EQ(plain.value->state, policy::FileState::kInSync);
    auto fresh = engine_->GetFile(root_ + "/d-new");
    ASSERT_FALSE(fresh.ok());
    EXPECT_NE(fresh.failure->message.find("has not been scanned yet"), std::string::npos)
        << fresh.failure->message;
    EXPECT_EQ(engine_->ManagedFiles(), 1u);
    size_t listed = 0;
    engine_->ForEachFile(std::nullopt, [&listed](const FileView&) { ++listed; });
    EXPECT_EQ(listed, 1u);
    ++answered;
  } while (!done);
  worker.join();
  EXPECT_GE(answered, 1);

  // The work changed the flag, but nothing is published before EndCycle.
  EXPECT_EQ(ReadDaxFlag(root_ + "/d-new"), true);
  EXPECT_FALSE(engine_->GetFile(root_ + "/d-new").ok());

  CycleReport report = engine_->EndCycle(std::move(job));
  EXPECT_FALSE(engine_->cycle_running());
  EXPECT_EQ(report.applied, 1u);
  auto fresh = engine_->GetFile(root_ + "/d-new");
  ASSERT_TRUE(fresh.ok()) << fresh.failure->message;
  EXPECT_EQ(fresh.value->rule, "d-to-dax");
  EXPECT_EQ(fresh.value->physical, policy::DaxState::kDax);
  // The loop device cannot do DAX: the flag is set, the effective state is not.
  EXPECT_EQ(fresh.value->state, policy::FileState::kBlocked);
  EXPECT_EQ(engine_->ManagedFiles(), 2u);
  EXPECT_EQ(engine_->counters().transitions.at({"d-to-dax", "dax", "changed"}), 1u);
}

TEST_F(EngineWorker, SwitchingToObserveStopsAJobThatIsOut) {
  WriteFile(root_ + "/d-file", "y");
  CycleJobPtr job = engine_->BeginCycle();
  ASSERT_NE(job, nullptr);
  engine_->SetMode(policy::Mode::kObserve);  // arrives over D-Bus while the job is out
  std::thread worker([&] { engine_->RunWork(*job); });
  worker.join();
  CycleReport report = engine_->EndCycle(std::move(job));
  EXPECT_EQ(report.applied, 0u);
  EXPECT_EQ(ReadDaxFlag(root_ + "/d-file"), false);
  auto file = engine_->GetFile(root_ + "/d-file");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file.value->state, policy::FileState::kObserved);

  engine_->SetMode(policy::Mode::kEnforce);
  report = engine_->RunCycle();
  EXPECT_EQ(report.applied, 1u);
  EXPECT_EQ(ReadDaxFlag(root_ + "/d-file"), true);
}

TEST_F(EngineWorker, ACancelledJobChangesNothingAndTheNextOneDoes) {
  WriteFile(root_ + "/d-file", "y");
  CycleJobPtr job = engine_->BeginCycle();
  ASSERT_NE(job, nullptr);
  engine_->Cancel();  // SIGTERM while the job is out
  std::thread worker([&] { engine_->RunWork(*job); });
  worker.join();
  EXPECT_EQ(engine_->EndCycle(std::move(job)).applied, 0u);
  EXPECT_EQ(ReadDaxFlag(root_ + "/d-file"), false);

  EXPECT_EQ(engine_->RunCycle().applied, 1u);
  EXPECT_EQ(ReadDaxFlag(root_ + "/d-file"), true);
}

TEST_F(EngineWorker, AReloadDuringAJobTakesEffectWhenItEnds) {
  WriteFile(root_ + "/d-file", "y");
  engine_->RunCycle();
  ASSERT_EQ(engine_->GetFile(root_ + "/d-file").value->rule, "d-to-dax");

  CycleJobPtr job = engine_->BeginCycle();
  ASSERT_NE(job, nullptr);
  std::thread worker([&] { engine_->RunWork(*job); });
  engine_->ReplacePolicy(MakePolicy(root_, "renamed-rule"));
  // The generation and the policy the next cycle uses change at once...
  EXPECT_EQ(engine_->generation(), 2u);
  EXPECT_EQ(engine_->policy().rules.front().name, "renamed-rule");
  // ...while answers still come from the view made under the old one.
  EXPECT_EQ(engine_->GetFile(root_ + "/d-file").value->rule, "d-to-dax");
  worker.join();
  engine_->EndCycle(std::move(job));
  EXPECT_EQ(engine_->GetFile(root_ + "/d-file").value->rule, "d-to-dax")
      << "the job ran under the old policy";
  // Metrics already carry the series of the new policy's rules only.
  EngineGauges gauges = engine_->Gauges();
  EXPECT_EQ(gauges.rule_matched.count("renamed-rule"), 1u);
  EXPECT_EQ(gauges.rule_matched.count("d-to-dax"), 0u);

  engine_->RunCycle();
  auto file = engine_->GetFile(root_ + "/d-file");
  ASSERT_TRUE(file.ok()) << file.failure->message;
  EXPECT_EQ(file.value->rule, "renamed-rule");
  EXPECT_EQ(engine_->ManagedFiles(), 2u);
}

TEST_F(EngineWorker, AReloadSignalsOnlyTheFilesWhoseStateChanged) {
  WriteFile(root_ + "/d-file", "y");
  ASSERT_EQ(engine_->RunCycle().changes.size(), 1u);  // d-file: blocked

  // The same rules under another name: nothing changes for any file.
  engine_->ReplacePolicy(MakePolicy(root_, "renamed-rule"));
  CycleReport report = engine_->RunCycle();
  EXPECT_TRUE(report.full_scan);
  EXPECT_TRUE(report.changes.empty()) << report.changes.front().path;
  EXPECT_EQ(engine_->GetFile(root_ + "/d-file").value->rule, "renamed-rule");

  // A policy that sends everything to DAX: only the file that was on the page cache moves.
  std::string text = "apiVersion: daxpolicy/v1\nscopes: [ " + root_ +
                     " ]\n"
                     "defaults: { dax: keep, min_dwell: 0s }\n"
                     "rules:\n  - name: all-to-dax\n    match: { path: \"" +
                     root_ + "/**\" }\n    dax: on\n";
  policy::LoadResult loaded = policy::LoadPolicy({"all.yaml", text});
  ASSERT_TRUE(loaded.policy) << loaded.errors.front().ToString();
  engine_->ReplacePolicy(std::move(*loaded.policy));
  report = engine_->RunCycle();
  ASSERT_EQ(report.changes.size(), 1u);
  EXPECT_EQ(report.changes.front().path, root_ + "/plain");
  EXPECT_EQ(report.changes.front().state, policy::FileState::kBlocked);
  EXPECT_EQ(report.changes.front().rule, "all-to-dax");
}

TEST_F(EngineWorker, RuleTimersCarryFromCycleToCycle) {
  // `for` is timed across cycles: the timer lives in the published view
  // between them and in the job's copy while one runs.
  std::string text = "apiVersion: daxpolicy/v1\nscopes: [ " + root_ +
                     " ]\n"
                     "defaults: { dax: keep, min_dwell: 0s }\n"
                     "rules:\n  - name: slow-to-dax\n    match: { path: \"" +
                     root_ +
                     "/d*\" }\n    when: \"file.size >= 1B\"\n    for: 10m\n"
                     "    dax: on\n";
  policy::LoadResult loaded = policy::LoadPolicy({"for.yaml", text});
  ASSERT_TRUE(loaded.policy) << loaded.errors.front().ToString();
  engine_->ReplacePolicy(std::move(*loaded.policy));
  WriteFile(root_ + "/d-file", "y");
  const int64_t minute = int64_t{60} * 1'000'000'000;
  for (int64_t step : {0, 4, 4}) {  // at 0, 4 and 8 minutes
    clock_->Advance(step * minute);
    CycleJobPtr job = engine_->BeginCycle();
    std::thread worker([&] { engine_->RunWork(*job); });
    worker.join();
    engine_->EndCycle(std::move(job));
    auto file = engine_->GetFile(root_ + "/d-file");
    ASSERT_TRUE(file.ok());
    EXPECT_EQ(file.value->state, policy::FileState::kDeferred);
    EXPECT_EQ(ReadDaxFlag(root_ + "/d-file"), false);
  }
  clock_->Advance(3 * minute);  // 11 minutes
  EXPECT_EQ(engine_->RunCycle().applied, 1u);
  EXPECT_EQ(ReadDaxFlag(root_ + "/d-file"), true);
}

TEST_F(EngineWorker, AHoldTakenWhileAJobIsOutActsFromTheNextCycle) {
  WriteFile(root_ + "/held", "y");
  engine_->RunCycle();
  ASSERT_EQ(ReadDaxFlag(root_ + "/held"), false);

  CycleJobPtr job = engine_->BeginCycle();
  ASSERT_NE(job, nullptr);
  Caller root;
  root.sender = ":1.1";
  root.uid = 0;
  auto cookie = engine_->AddHold(root_ + "/held", policy::DaxState::kDax, "test", root);
  ASSERT_TRUE(cookie.ok()) << cookie.failure->message;
  std::thread worker([&] { engine_->RunWork(*job); });
  worker.join();
  engine_->EndCycle(std::move(job));
  EXPECT_EQ(ReadDaxFlag(root_ + "/held"), false) << "the job copied the holds at its start";

  engine_->RunCycle();
  EXPECT_EQ(ReadDaxFlag(root_ + "/held"), true);
  auto file = engine_->GetFile(root_ + "/held");
  ASSERT_TRUE(file.ok());
  EXPECT_NE(file.value->reason.find("application hold: test"), std::string::npos)
      << file.value->reason;
}

// A state directory the journal cannot use, or a damaged journal, shows in Degraded from the
// start (not at the first change), and nothing is changed meanwhile.
TEST(EngineJournal, ReportsAnUnusableOrDamagedStateDirectoryInDegraded) {
  DAXPOLICY_REQUIRE(!LoopFs::Unavailable(), LoopFs::Unavailable().value_or(""));
  std::string error;
  auto fs = LoopFs::Create(testing::FsType::kXfs, &error, 300);
  ASSERT_NE(fs, nullptr) << error;
  const std::string root = fs->mount_point().string();
  WriteFile(root + "/d-file", "x");
  TempDir state;
  ASSERT_EQ(chmod(state.path().c_str(), 0777), 0);  // others could rewrite the journal
  Options options;
  options.state_dir = state.path().string();
  {
    policy::Policy policy = MakePolicy(root, "d-to-dax");
    auto engine = Engine::Create(options, policy, MakeEngineParts(options, policy));
    ASSERT_TRUE(engine.ok());
    const std::string degraded = (*engine)->Degraded();
    EXPECT_NE(degraded.find("state journal unavailable: state directory " + options.state_dir +
                            " is writable by group or others"),
              std::string::npos)
        << degraded;
    (*engine)->RunCycle();
    EXPECT_EQ(ReadDaxFlag(root + "/d-file"), false) << "changed without a journal";
  }
  ASSERT_EQ(chmod(state.path().c_str(), 0700), 0);
  WriteFile(state.path() / "segment-0000000000000001.djnl", "garbage");
  policy::Policy policy = MakePolicy(root, "d-to-dax");
  auto engine = Engine::Create(options, policy, MakeEngineParts(options, policy));
  ASSERT_TRUE(engine.ok());
  const std::string degraded = (*engine)->Degraded();
  EXPECT_NE(degraded.find("state journal " + options.state_dir + " is damaged"), std::string::npos)
      << degraded;
}

}  // namespace
}  // namespace daxpolicy::daemon
