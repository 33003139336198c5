// SPDX-License-Identifier: Apache-2.0
// The journal and restore against real files on loop-mounted xfs.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>

#include "daemon/journal/journal.h"
#include "daemon/journal/restore.h"
#include "plugins/driver/inode_flag_driver.h"
#include "tests/support/test_support.h"

namespace daxpolicy::journal {
namespace {

namespace fs = std::filesystem;
using driver::DaxState;
using testing::FsType;
using testing::LoopFs;

bool HasDaxFlag(const fs::path& p) {
  std::optional<bool> flag = testing::ReadDaxFlag(p);
  EXPECT_TRUE(flag.has_value()) << p;
  return flag.value_or(false);
}

void SetDaxFlag(const fs::path& p, bool on) {
  std::string error;
  ASSERT_TRUE(testing::WriteDaxFlag(p, on, &error)) << error;
}

driver::FileIdentity IdentityOf(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(lstat(p.c_str(), &st), 0) << p;
  return driver::FileIdentity{st.st_dev, st.st_ino};
}

#define REQUIRE_LOOP_FS(fs_var, type)                                            \
  DAXPOLICY_REQUIRE(!LoopFs::Unavailable(), LoopFs::Unavailable().value_or("")); \
  std::string loop_error;                                                        \
  std::unique_ptr<LoopFs> fs_var = LoopFs::Create(type, &loop_error, 512);       \
  ASSERT_TRUE(fs_var) << loop_error

TEST(ARestore, UndoesEveryChangeAndReportsWhatItCouldNot) {
  REQUIRE_LOOP_FS(loop, FsType::kXfs);
  const fs::path scope = loop->mount_point() / "scope";
  const fs::path state = loop->mount_point() / "state";
  fs::create_directories(scope / "d");
  const std::vector<std::string> names = {"a",    "b",       "new\nline", "\xff\xfe",
                                          "gone", "swapped", "reset",     "d"};
  for (const std::string& n : names) {
    if (n != "d") testing::WriteFile(scope / n, "x");
  }
  SetDaxFlag(scope / "b", true);  // starts with DAX
  daxpolicy::UniqueFd root(open(scope.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  {
    auto j = Journal::Open(state);
    ASSERT_TRUE(j.ok()) << j.error().message;
    driver::InodeFlagDriver drv(driver::KernelVersion::Running());
    driver::ApplyHooks hooks;
    hooks.before_change = (*j)->BeforeChangeHook(scope);
    for (const std::string& n : names) {
      bool dax = HasDaxFlag(scope / n);
      Result<driver::ApplyOutcome> out =
          drv.Apply(driver::FileRef{root.get(), n, IdentityOf(scope / n)},
                    dax ? DaxState::kPageCache : DaxState::kDax, hooks);
      ASSERT_TRUE(out.ok());
      ASSERT_EQ(out->result, driver::ApplyResult::kChanged) << n << ": " << out->reason;
      // A second change keeps the first original.
      Result<driver::ApplyOutcome> back =
          drv.Apply(driver::FileRef{root.get(), n, IdentityOf(scope / n)},
                    dax ? DaxState::kDax : DaxState::kPageCache, hooks);
      ASSERT_TRUE(back.ok());
      out = drv.Apply(driver::FileRef{root.get(), n, IdentityOf(scope / n)},
                      dax ? DaxState::kPageCache : DaxState::kDax, hooks);
      ASSERT_TRUE(out.ok());
    }
    EXPECT_EQ((*j)->size(), names.size());
  }
  fs::remove(scope / "gone");
  fs::remove(scope / "swapped");
  testing::WriteFile(scope / "swapped", "impostor");
  SetDaxFlag(scope / "reset", false);  // someone set it back by hand

  // The daemon's lock keeps restore out.
  {
    auto daemon = Journal::Open(state);
    ASSERT_TRUE(daemon.ok());
    Result<RestoreReport> locked = Restore(state, RestoreRequest::AllFiles());
    ASSERT_FALSE(locked.ok());
    EXPECT_NE(locked.error().message.find("is locked by another process"), std::string::npos);
  }

  RestoreRequest some = RestoreRequest::Paths(
      {(scope / "a").string(), scope.string() + "/new\nline/", "/srv/not-recorded"});
  Result<RestoreReport> first = Restore(state, some);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->Count(RestoreStatus::kRestored), 2u);
  EXPECT_EQ(first->Count(RestoreStatus::kNotRecorded), 1u);
  EXPECT_FALSE(HasDaxFlag(scope / "a"));
  EXPECT_FALSE(HasDaxFlag(scope / "new\nline"));
  EXPECT_TRUE(HasDaxFlag(scope / "b") == false) << "b was not requested: still flipped";

  Result<RestoreReport> rest = Restore(state, RestoreRequest::AllFiles());
  ASSERT_TRUE(rest.ok()) << rest.error().message;
  const RestoreReport& r = *rest;
  EXPECT_TRUE(r.ok()) << r.Format();
  EXPECT_EQ(r.Count(RestoreStatus::kRestored), 3u) << r.Format();  // b, \xff\xfe, d
  EXPECT_EQ(r.Count(RestoreStatus::kAlreadyOriginal), 1u);         // reset
  EXPECT_EQ(r.Count(RestoreStatus::kVanished), 1u);                // gone
  EXPECT_EQ(r.Count(RestoreStatus::kReplaced), 1u);                // swapped
  EXPECT_TRUE(HasDaxFlag(scope / "b"));
  EXPECT_FALSE(HasDaxFlag(scope / "\xff\xfe"));
  EXPECT_FALSE(HasDaxFlag(scope / "d"));
  EXPECT_FALSE(HasDaxFlag(scope / "swapped")) << "an impostor is never touched";
  const std::string text = r.Format();
  EXPECT_NE(text.find("restored: " + scope.string() + "/b (original: dax)\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("restored: " + scope.string() + "/\\xff\\xfe (original: page-cache)\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("replaced; not touched: " + scope.string() +
                      "/swapped (original: page-cache): replaced since scan: the path now names "
                      "a different file\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("already original: " + scope.string() + "/reset (original: page-cache)\n"),
            std::string::npos);
  EXPECT_NE(text.find("3 restored, 1 already original, 1 vanished, 1 replaced, 0 failed\n"),
            std::string::npos)
      << text;

  // Only the replaced file's entry stays; its original is still on record.
  auto after = Journal::Open(state);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ((*after)->size(), 1u);
  EXPECT_EQ((*after)->Entries()[0].path, "swapped");
}

// SIGKILLs a program that records originals in batches and flips flags over 10,000 files, at
// random moments, 20 times; then restore must bring every file back to its original flag.
TEST(AJournal, LetsRestoreUndoEverythingAfterRepeatedSigkills) {
  REQUIRE_LOOP_FS(loop, FsType::kXfs);
  const fs::path scope = loop->mount_point() / "scope";
  const fs::path state = loop->mount_point() / "state";
  fs::create_directories(scope);
  constexpr int kFiles = 10000;
  std::vector<bool> original(kFiles);
  for (int i = 0; i < kFiles; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "f%05d", i);
    testing::WriteFile(scope / name, "");
    original[i] = i % 3 == 0;
    if (original[i]) SetDaxFlag(scope / name, true);
  }
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> moment(1, 3 * kFiles);
  std::uniform_int_distribution<int> nth_write(1, 100);
  const char* const kSteps[] = {"created", "written", "synced", "renamed", "removing"};
  const std::string program = testing::BinaryPath("journal_stress");
  int total_lines = 0;
  auto started = std::chrono::steady_clock::now();
  for (int run = 0; run < 20; ++run) {
    // Odd runs: killed by the test at a random progress line. Even runs: the program kills
    // itself inside the journal's write protocol, cycling through its steps (temp file
    // created, written, synced, renamed; a compaction removing old segments, which first
    // happens after about 128 segment writes), at a random occurrence.
    const int target = moment(rng);
    const char* step = kSteps[(run / 2) % 5];
    const std::string nth =
        std::to_string(std::string(step) == "removing" ? 1 + nth_write(rng) % 3 : nth_write(rng));
    int pipefd[2];
    ASSERT_EQ(pipe2(pipefd, O_CLOEXEC), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      dup2(pipefd[1], STDOUT_FILENO);
      if (run % 2) {
        execl(program.c_str(), program.c_str(), state.c_str(), scope.c_str(),
              std::to_string(kFiles).c_str(), "500", nullptr);
      } else {
        execl(program.c_str(), program.c_str(), state.c_str(), scope.c_str(),
              std::to_string(kFiles).c_str(), "500", nth.c_str(), step, nullptr);
      }
      _exit(127);
    }
    close(pipefd[1]);
    int lines = 0;
    char buf[4096];
    while (run % 2 == 0 || lines < target) {
      ssize_t n = read(pipefd[0], buf, sizeof buf);
      if (n <= 0) break;
      for (ssize_t k = 0; k < n; ++k) lines += buf[k] == '\n';
    }
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    close(pipefd[0]);
    ASSERT_TRUE(WIFSIGNALED(status))
        << "run " << run << " exited with " << WEXITSTATUS(status) << " (seed " << seed << ")";
    total_lines += lines;
  }
  auto killed = std::chrono::steady_clock::now();
  Result<RestoreReport> report = Restore(state, RestoreRequest::AllFiles());
  auto restored = std::chrono::steady_clock::now();
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_TRUE(report->ok()) << report->Format();
  EXPECT_EQ(report->Count(RestoreStatus::kFailed), 0u);
  EXPECT_EQ(report->Count(RestoreStatus::kReplaced), 0u);
  EXPECT_EQ(report->Count(RestoreStatus::kVanished), 0u);
  int wrong = 0;
  for (int i = 0; i < kFiles; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "f%05d", i);
    if (HasDaxFlag(scope / name) != original[i]) ++wrong;
  }
  EXPECT_EQ(wrong, 0) << "seed " << seed;
  auto after = Journal::Open(state);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ((*after)->size(), 0u);
  size_t torn = 0;
  if (fs::exists(state / "corrupt")) {
    for (auto& e : fs::directory_iterator(state / "corrupt")) torn += e.exists();
  }
  // Kills at "created", "written" and "synced" (two runs each) leave a torn temp file.
  EXPECT_GE(torn, 6u) << "seed " << seed;
  using ms = std::chrono::milliseconds;
  std::cout << "seed " << seed << ": " << total_lines << " progress lines over 20 runs in "
            << std::chrono::duration_cast<ms>(killed - started).count() << " ms; restore of "
            << report->items.size() << " entries (" << report->Count(RestoreStatus::kRestored)
            << " restored, " << report->Count(RestoreStatus::kAlreadyOriginal)
            << " already original) in " << std::chrono::duration_cast<ms>(restored - killed).count()
            << " ms; " << torn << " torn temp files moved aside\n";
}

}  // namespace
}  // namespace daxpolicy::journal
