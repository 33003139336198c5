// SPDX-License-Identifier: Apache-2.0
// daxpolicyd --once on real loop-mounted filesystems (dax=inode): the physical
// flag follows the policy, the loop device keeps the effective state at page
// cache (blocked, with the reason), observe mode changes nothing, and the
// journal restores every original flag even after SIGKILL at random moments.

#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "daemon/journal/restore.h"
#include "tests/support/test_support.h"

namespace daxpolicy::testing {
namespace {

namespace fs = std::filesystem;

// FS_XFLAG_DAX of a path: 1, 0, or -1 when it cannot be read.
int PhysicalDax(const fs::path& p) {
  std::optional<bool> flag = ReadDaxFlag(p);
  return flag ? (*flag ? 1 : 0) : -1;
}

void SetPhysicalDax(const fs::path& p, bool on) {
  std::string error;
  ASSERT_TRUE(WriteDaxFlag(p, on, &error)) << error;
}

class OnceOnLoopFs : public ::testing::TestWithParam<FsType> {
 protected:
  void SetUp() override {
    auto why = LoopFs::Unavailable();
    DAXPOLICY_REQUIRE(!why.has_value(), why.value_or(""));
    std::string error;
    fs_ = LoopFs::Create(GetParam(), &error);
    ASSERT_TRUE(fs_) << error;
    root_ = fs_->mount_point();
    outside_ = std::make_unique<TempDir>();
    WriteFile(outside_->path() / "secret", "outside");
    fs::create_directories(root_ / "db");
    fs::create_directories(root_ / "logs");
    fs::create_directories(root_ / "keep");
    for (int i = 0; i < 3; ++i) WriteFile(root_ / "db" / ("t" + std::to_string(i) + ".sst"), "x");
    WriteFile(root_ / "logs" / "a.log", "log");
    WriteFile(root_ / "keep" / "k.sst", "keep");
    WriteFile(root_ / "db" / "name\nwith newline\xff.sst", "odd");
    ASSERT_EQ(mkfifo((root_ / "db" / "fifo.sst").c_str(), 0600), 0);
    fs::create_symlink(outside_->path() / "secret", root_ / "db" / "link.sst");
    policy_ = state_.path() / "policy.yaml";
    WriteFile(policy_, "apiVersion: daxpolicy/v1\nscopes: [" + root_.string() + "]\nprotect: [\"" +
                           root_.string() +
                           "/keep/**\"]\ndefaults: { dax: keep }\nrules:\n"
                           "  - name: tables\n    match: { path: \"" +
                           root_.string() +
                           "/**/*.sst\" }\n    dax: on\n"
                           "  - name: log-dirs\n    match: { path: \"" +
                           root_.string() + "/logs\", type: directory }\n    dax: on\n");
  }

  CommandResult Once(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv{
        BinaryPath("daxpolicyd"), "--once",      "--config",
        policy_.string(),         "--state-dir", (state_.path() / "state").string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return ::daxpolicy::testing::Run(argv);
  }

  std::unique_ptr<LoopFs> fs_;
  fs::path root_;
  TempDir state_;
  std::unique_ptr<TempDir> outside_;
  fs::path policy_;
};

TEST_P(OnceOnLoopFs, AppliesThePhysicalFlagPerPolicyAndReportsTheDeviceAsBlocking) {
  CommandResult r = Once();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(PhysicalDax(root_ / "db" / ("t" + std::to_string(i) + ".sst")), 1) << i;
  }
  EXPECT_EQ(PhysicalDax(root_ / "db" / "name\nwith newline\xff.sst"), 1);
  EXPECT_EQ(PhysicalDax(root_ / "logs"), 1);            // directory rule
  EXPECT_EQ(PhysicalDax(root_ / "logs" / "a.log"), 0);  // no file rule for it
  EXPECT_EQ(PhysicalDax(root_ / "keep" / "k.sst"), 0);  // protected
  EXPECT_EQ(PhysicalDax(root_ / "db"), 0);
  EXPECT_EQ(PhysicalDax(outside_->path() / "secret"), 0);  // behind a symlink: never touched
  EXPECT_NE(r.out.find("changed 5 physical flag(s), 0 refused"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cannot do DAX (/sys/block/loop"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("blocked " + (root_ / "db" / "t0.sst").string() + ": device loop"),
            std::string::npos)
      << r.out;
  // The second run finds everything as it left it.
  r = Once();
  EXPECT_NE(r.out.find("changed 0 physical flag(s)"), std::string::npos) << r.out;
}

TEST_P(OnceOnLoopFs, ChangesNothingInObserveMode) {
  CommandResult r = Once({"--observe"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("mode observe"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("observed=5"), std::string::npos) << r.out;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(PhysicalDax(root_ / "db" / ("t" + std::to_string(i) + ".sst")), 0);
  }
  EXPECT_EQ(PhysicalDax(root_ / "logs"), 0);
  EXPECT_FALSE(fs::exists(state_.path() / "state"));  // no journal: nothing was changed
}

TEST_P(OnceOnLoopFs, RestoreReturnsEveryOriginalFlag) {
  SetPhysicalDax(root_ / "db" / "t1.sst", true);  // already DAX before the daemon
  ASSERT_EQ(Once().exit_code, 0);
  ASSERT_EQ(PhysicalDax(root_ / "db" / "t0.sst"), 1);
  auto report =
      journal::Restore((state_.path() / "state").string(), journal::RestoreRequest::AllFiles());
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_TRUE(report->ok()) << report->Format();
  EXPECT_EQ(PhysicalDax(root_ / "db" / "t0.sst"), 0);
  EXPECT_EQ(PhysicalDax(root_ / "db" / "t1.sst"), 1);  // its original
  EXPECT_EQ(PhysicalDax(root_ / "logs"), 0);
}

INSTANTIATE_TEST_SUITE_P(Filesystems, OnceOnLoopFs,
                         ::testing::Values(FsType::kXfs, FsType::kXfsReflink, FsType::kExt4),
                         [](const auto& info) {
                           std::string n = FsTypeName(info.param);
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

// SIGKILL the daemon at random moments of runs over 10,000 files, then restore:
// every file is back to its original flag.
TEST(OnceDurability, RestoresEveryOriginalAfterSigkillAtRandomMoments) {
  auto why = LoopFs::Unavailable();
  DAXPOLICY_REQUIRE(!why.has_value(), why.value_or(""));
  std::string error;
  auto lfs = LoopFs::Create(FsType::kXfs, &error, 600);
  ASSERT_TRUE(lfs) << error;
  const fs::path root = lfs->mount_point();
  constexpr int kFiles = 10000;
  std::vector<bool> original(kFiles);
  for (int d = 0; d < 100; ++d) fs::create_directory(root / ("d" + std::to_string(d)));
  for (int i = 0; i < kFiles; ++i) {
    fs::path p = root / ("d" + std::to_string(i % 100)) / ("f" + std::to_string(i));
    int fd = open(p.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    close(fd);
    original[i] = i % 3 == 0;
    if (original[i]) SetPhysicalDax(p, true);
  }
  TempDir state;
  // Two opposite policies, alternated, so every run has 10,000 switches to make
  // and the kill lands in the middle of one.
  fs::path policies[2] = {state.path() / "flip.yaml", state.path() / "flop.yaml"};
  for (int k = 0; k < 2; ++k) {
    WriteFile(policies[k], "apiVersion: daxpolicy/v1\nscopes: [" + root.string() +
                               "]\ndefaults: { max_switches_per_minute: 1000000 }\nrules:\n"
                               "  - name: multiples-of-three\n    match: { path: \"" +
                               root.string() +
                               "/**/f*[0369]\" }\n    dax: " + (k == 0 ? "off" : "on") +
                               "\n  - name: others\n    match: { path: \"" + root.string() +
                               "/**/f*\" }\n    dax: " + (k == 0 ? "on" : "off") + "\n");
  }
  std::mt19937 rng(12345);
  int killed = 0;
  const fs::path log = state.path() / "run.log";
  for (int run = 0; run < 10; ++run) {
    fs::remove(log);  // the previous run's log must not count as this run's progress
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int null = open("/dev/null", O_WRONLY);
      int err = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(null, 1);
      dup2(err, 2);
      std::string bin = BinaryPath("daxpolicyd"), sdir = (state.path() / "state").string();
      execl(bin.c_str(), bin.c_str(), "--once", "--config", policies[run % 2].c_str(),
            "--state-dir", sdir.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    // Kill at a random point of the apply loop, measured by the daemon's own
    // progress (one "switched" log line per file), so a slow build (sanitizers)
    // is killed mid-way just as a fast one.
    const uintmax_t at_bytes = 100 + rng() % 500'000;
    int status = 0;
    bool exited = false;
    for (int waited_ms = 0; waited_ms < 60'000; ++waited_ms) {
      if (waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        break;
      }
      std::error_code ec;
      const uintmax_t size = fs::file_size(log, ec);  // (uintmax_t)-1 when missing
      if (!ec && size >= at_bytes) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!exited) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
    }
    killed += WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  }
  EXPECT_GE(killed, 5) << "most runs must die mid-way for this test to mean anything";
  auto report =
      journal::Restore((state.path() / "state").string(), journal::RestoreRequest::AllFiles());
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(report->Count(journal::RestoreStatus::kFailed), 0u) << report->Format();
  EXPECT_GT(report->Count(journal::RestoreStatus::kRestored), 0u);
  int wrong = 0;
  for (int i = 0; i < kFiles; ++i) {
    fs::path p = root / ("d" + std::to_string(i % 100)) / ("f" + std::to_string(i));
    if (PhysicalDax(p) != (original[i] ? 1 : 0)) ++wrong;
  }
  EXPECT_EQ(wrong, 0);
}

}  // namespace
}  // namespace daxpolicy::testing
