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
#include <fstream>
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

// Unmounts and detaches what a test mounted and attached, also when an ASSERT returns early:
// nothing is left behind, and TempDir never removes files of a still mounted filesystem.
// Declare it after the TempDir holding the mount point, so that it runs first.
class MountCleanup {
 public:
  MountCleanup() = default;
  MountCleanup(const MountCleanup&) = delete;
  MountCleanup& operator=(const MountCleanup&) = delete;
  ~MountCleanup() {
    if (!mount_point_.empty()) testing::Run({"umount", mount_point_.string()});
    for (const std::string& device : devices_) testing::Run({"losetup", "-d", device});
  }
  void Attached(const std::string& device) { devices_.push_back(device); }
  void Mounted(const fs::path& mount_point) { mount_point_ = mount_point; }
  // Unmounts now (the test goes on with the filesystem unmounted).
  int Unmount() {
    const int rc = testing::Run({"umount", mount_point_.string()}).exit_code;
    if (rc == 0) mount_point_.clear();
    return rc;
  }

 private:
  fs::path mount_point_;
  std::vector<std::string> devices_;
};

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
  // gone, and swapped: the file the daemon changed is gone (its handle no longer opens).
  EXPECT_EQ(r.Count(RestoreStatus::kVanished), 2u);
  EXPECT_EQ(r.Count(RestoreStatus::kReplaced), 0u);
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
  EXPECT_NE(text.find("vanished: " + scope.string() +
                      "/swapped (original: page-cache): the file the daemon changed no longer "
                      "exists; another file now has its name and is not touched\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("already original: " + scope.string() + "/reset (original: page-cache)\n"),
            std::string::npos);
  EXPECT_NE(text.find("3 restored, 1 already original, 2 vanished, 0 replaced, 0 failed\n"),
            std::string::npos)
      << text;

  // Nothing is left to restore.
  auto after = Journal::Open(state);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ((*after)->size(), 0u);
}

// Changes `names` under `scope` the way the daemon does: batch recorded, then the driver with
// the journal's hook, then SettleBatch.
void ChangeLikeTheDaemon(const fs::path& state, const fs::path& scope,
                         const std::vector<std::string>& names, JournalOptions options = {}) {
  auto j = Journal::Open(state, options);
  ASSERT_TRUE(j.ok()) << j.error().message;
  (*j)->SetScopes({scope.string()});
  daxpolicy::UniqueFd root(open(scope.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  std::vector<JournalEntry> batch;
  std::vector<DaxState> want;
  for (const std::string& n : names) {
    const bool dax = HasDaxFlag(scope / n);
    driver::FileIdentity id = IdentityOf(scope / n);
    batch.push_back(JournalEntry{
        {id.dev, id.ino}, scope.string(), n, dax ? DaxState::kDax : DaxState::kPageCache});
    want.push_back(dax ? DaxState::kPageCache : DaxState::kDax);
  }
  ASSERT_TRUE((*j)->RecordOriginals(batch).ok());
  driver::InodeFlagDriver drv(driver::KernelVersion::Running());
  driver::ApplyHooks hooks;
  hooks.before_change = (*j)->BeforeChangeHook(scope.string());
  for (size_t i = 0; i < names.size(); ++i) {
    Result<driver::ApplyOutcome> out = drv.Apply(
        driver::FileRef{root.get(), names[i], IdentityOf(scope / names[i])}, want[i], hooks);
    ASSERT_TRUE(out.ok());
    ASSERT_EQ(out->result, driver::ApplyResult::kChanged) << names[i] << ": " << out->reason;
  }
  ASSERT_TRUE((*j)->SettleBatch().ok());
}

class ARestoreOnEachFilesystem : public ::testing::TestWithParam<FsType> {};

// A file renamed within its scope is found and restored under its new name; a file deleted
// and replaced by one that reuses its inode number is never touched; a file moved out of the
// scope is refused and makes the restore incomplete.
TEST_P(ARestoreOnEachFilesystem, FollowsRenamesAndNeverTouchesAReusedInode) {
  REQUIRE_LOOP_FS(loop, GetParam());
  const fs::path scope = loop->mount_point() / "scope";
  const fs::path outside = loop->mount_point() / "outside";
  const fs::path state = loop->mount_point() / "state";
  fs::create_directories(scope / "sub");
  fs::create_directories(outside);
  for (const char* n : {"renamed", "reused", "moved-out"}) testing::WriteFile(scope / n, n);
  ChangeLikeTheDaemon(state, scope, {"renamed", "reused", "moved-out"});
  ASSERT_TRUE(HasDaxFlag(scope / "renamed"));

  fs::rename(scope / "renamed", scope / "sub" / "renamed-later");
  fs::rename(scope / "moved-out", outside / "moved-out");
  // Delete "reused" and create files until one gets its inode number back.
  const uint64_t old_ino = IdentityOf(scope / "reused").ino;
  fs::remove(scope / "reused");
  bool reused = false;
  for (int i = 0; i < 20000 && !reused; ++i) {
    const fs::path candidate = scope / ("c" + std::to_string(i));
    testing::WriteFile(candidate, "impostor");
    if (IdentityOf(candidate).ino == old_ino) {
      fs::rename(candidate, scope / "reused");
      reused = true;
    } else {
      fs::remove(candidate);
    }
  }
  ASSERT_TRUE(reused) << "the filesystem never reused the inode number";
  SetDaxFlag(scope / "reused", true);  // the impostor looks exactly like the daemon's change

  Result<RestoreReport> report = Restore(state, RestoreRequest::AllFiles());
  ASSERT_TRUE(report.ok()) << report.error().message;
  const std::string text = report->Format();
  EXPECT_FALSE(HasDaxFlag(scope / "sub" / "renamed-later")) << text;
  EXPECT_NE(text.find("restored: " + scope.string() +
                      "/sub/renamed-later (original: page-cache)"
                      ": renamed from " +
                      scope.string() + "/renamed"),
            std::string::npos)
      << text;
  EXPECT_TRUE(HasDaxFlag(scope / "reused")) << "a reused inode was changed:\n" << text;
  EXPECT_TRUE(HasDaxFlag(outside / "moved-out")) << "a file outside the scope was changed";
  EXPECT_EQ(report->Count(RestoreStatus::kRestored), 1u) << text;
  EXPECT_EQ(report->Count(RestoreStatus::kVanished), 1u) << text;
  EXPECT_EQ(report->Count(RestoreStatus::kFailed), 1u) << text;
  EXPECT_FALSE(report->Complete());
}

// The same filesystem on another block device (a reboot that numbers devices differently):
// every entry still restores, by filesystem UUID (Linux 6.9 or later).
TEST_P(ARestoreOnEachFilesystem, SurvivesADeviceNumberChange) {
  DAXPOLICY_REQUIRE(!LoopFs::Unavailable(), LoopFs::Unavailable().value_or(""));
  testing::TempDir dir;
  const fs::path image = dir.path() / "fs.img";
  const fs::path mnt = dir.path() / "mnt";
  const fs::path state = dir.path() / "state";
  fs::create_directories(mnt);
  {
    std::ofstream(image).close();
    fs::resize_file(image, 512ull << 20);
  }
  const bool xfs = GetParam() != FsType::kExt4;
  ASSERT_EQ(testing::Run(xfs ? std::vector<std::string>{"mkfs.xfs", "-q", image.string()}
                             : std::vector<std::string>{"mkfs.ext4", "-q", "-F", image.string()})
                .exit_code,
            0);
  MountCleanup cleanup;
  auto attach = [&] {
    testing::CommandResult r = testing::Run({"losetup", "--find", "--show", image.string()});
    std::string dev = r.out;
    while (!dev.empty() && dev.back() == '\n') dev.pop_back();
    if (!dev.empty()) cleanup.Attached(dev);
    return dev;
  };
  const std::string first = attach();
  ASSERT_FALSE(first.empty());
  ASSERT_EQ(testing::Run({"mount", "-o", "dax=inode", first, mnt.string()}).exit_code, 0);
  cleanup.Mounted(mnt);
  const fs::path scope = mnt / "scope";
  fs::create_directories(scope);
  testing::WriteFile(scope / "f", "x");
  const uint64_t dev_before = IdentityOf(scope / "f").dev;
  ChangeLikeTheDaemon(state, scope, {"f"});
  ASSERT_EQ(cleanup.Unmount(), 0);
  // Keep the first device attached, so the second attach gets another number.
  const std::string second = attach();
  ASSERT_FALSE(second.empty());
  ASSERT_NE(first, second);
  ASSERT_EQ(testing::Run({"mount", "-o", "dax=inode", second, mnt.string()}).exit_code, 0);
  cleanup.Mounted(mnt);
  EXPECT_NE(IdentityOf(scope / "f").dev, dev_before);
  Result<RestoreReport> report = Restore(state, RestoreRequest::AllFiles());
  const bool dax_after = HasDaxFlag(scope / "f");
  ASSERT_TRUE(report.ok()) << report.error().message;
  if (!driver::KernelVersion::Running().AtLeast(6, 9)) {
    // No FS_IOC_GETFSUUID before Linux 6.9: the file cannot be recognised, so it is left
    // alone, and restore says why.
    EXPECT_EQ(report->Count(RestoreStatus::kFailed), 1u) << report->Format();
    EXPECT_NE(report->Format().find("the filesystem's identity is unknown"), std::string::npos)
        << report->Format();
    EXPECT_TRUE(dax_after);
    EXPECT_FALSE(report->Complete());
    return;
  }
  EXPECT_EQ(report->Count(RestoreStatus::kRestored), 1u) << report->Format();
  EXPECT_FALSE(dax_after);
  EXPECT_TRUE(report->Complete());
}

// Entries naming a scope root the journal's policy never had are refused, even when the
// journal says so (a journal is trusted only as far as its own recorded policy).
TEST_P(ARestoreOnEachFilesystem, RefusesEntriesOutsideTheRecordedScopes) {
  REQUIRE_LOOP_FS(loop, GetParam());
  const fs::path scope = loop->mount_point() / "scope";
  const fs::path other = loop->mount_point() / "other";
  const fs::path state = loop->mount_point() / "state";
  fs::create_directories(scope);
  fs::create_directories(other);
  testing::WriteFile(scope / "in", "x");
  testing::WriteFile(other / "victim", "y");
  ChangeLikeTheDaemon(state, scope, {"in"});
  SetDaxFlag(other / "victim", true);
  {
    auto j = Journal::Open(state);
    ASSERT_TRUE(j.ok());
    driver::FileIdentity id = IdentityOf(other / "victim");
    ASSERT_TRUE(
        (*j)->RecordOriginals(
                {JournalEntry{{id.dev, id.ino}, other.string(), "victim", DaxState::kPageCache}})
            .ok());
  }
  Result<RestoreReport> report = Restore(state, RestoreRequest::AllFiles());
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_TRUE(HasDaxFlag(other / "victim")) << report->Format();
  EXPECT_FALSE(HasDaxFlag(scope / "in"));
  EXPECT_EQ(report->Count(RestoreStatus::kFailed), 1u);
  EXPECT_NE(report->Format().find("is not a scope root of any policy recorded in the journal"),
            std::string::npos)
      << report->Format();
  EXPECT_FALSE(report->Complete());
}

int64_t CoarseNowNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int64_t BirthNs(const fs::path& p) {
  struct statx sx {};
  EXPECT_EQ(statx(AT_FDCWD, p.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BTIME, &sx), 0);
  return static_cast<int64_t>(sx.stx_btime.tv_sec) * 1'000'000'000 + sx.stx_btime.tv_nsec;
}

// Files created in a directory while the daemon had given it DAX inherit the flag; restore of
// the directory sets them back too, and leaves alone files older than the daemon's change.
TEST_P(ARestoreOnEachFilesystem, ResetsFilesThatInheritedTheDaemonsDirectoryFlag) {
  REQUIRE_LOOP_FS(loop, GetParam());
  const fs::path scope = loop->mount_point() / "scope";
  const fs::path state = loop->mount_point() / "state";
  fs::create_directories(scope / "d");
  testing::WriteFile(scope / "d" / "older", "o");
  SetDaxFlag(scope / "d" / "older", true);  // an admin's own choice, before the daemon came
  // The daemon's change must be recorded after "older" was born (coarse clock ticks).
  const int64_t older_born = BirthNs(scope / "d" / "older");
  while (CoarseNowNs() <= older_born) {
  }
  ChangeLikeTheDaemon(state, scope, {"d"});
  ASSERT_TRUE(HasDaxFlag(scope / "d"));
  testing::WriteFile(scope / "d" / "newer", "n");
  fs::create_directories(scope / "d" / "sub");
  testing::WriteFile(scope / "d" / "sub" / "deeper", "n");
  ASSERT_TRUE(HasDaxFlag(scope / "d" / "newer")) << "the kernel did not inherit the flag";
  ASSERT_TRUE(HasDaxFlag(scope / "d" / "sub" / "deeper"));

  Result<RestoreReport> report = Restore(state, RestoreRequest::AllFiles());
  ASSERT_TRUE(report.ok()) << report.error().message;
  const std::string text = report->Format();
  EXPECT_FALSE(HasDaxFlag(scope / "d")) << text;
  EXPECT_FALSE(HasDaxFlag(scope / "d" / "newer")) << text;
  EXPECT_FALSE(HasDaxFlag(scope / "d" / "sub")) << text;
  EXPECT_FALSE(HasDaxFlag(scope / "d" / "sub" / "deeper")) << text;
  EXPECT_TRUE(HasDaxFlag(scope / "d" / "older")) << text;
  EXPECT_NE(text.find("restored: " + scope.string() +
                      "/d/newer (original: page-cache): inherited the flag from " + scope.string() +
                      "/d (created after the daemon changed it)"),
            std::string::npos)
      << text;
  EXPECT_TRUE(report->Complete()) << text;
}

// The batch is recorded from the scan; an admin sets the flag to what the daemon wanted before
// the change. The daemon then changes nothing, and its journal must not keep the scan's value
// (a later restore would undo the admin's chattr).
TEST_P(ARestoreOnEachFilesystem, KeepsAnAdminsChangeMadeBetweenScanAndChange) {
  REQUIRE_LOOP_FS(loop, GetParam());
  const fs::path scope = loop->mount_point() / "scope";
  const fs::path state = loop->mount_point() / "state";
  fs::create_directories(scope);
  testing::WriteFile(scope / "f", "x");
  {
    auto j = Journal::Open(state);
    ASSERT_TRUE(j.ok());
    (*j)->SetScopes({scope.string()});
    driver::FileIdentity id = IdentityOf(scope / "f");
    ASSERT_TRUE((*j)->RecordOriginals(
                        {JournalEntry{{id.dev, id.ino}, scope.string(), "f", DaxState::kPageCache}})
                    .ok());
    SetDaxFlag(scope / "f", true);  // the admin's chattr +x
    daxpolicy::UniqueFd root(open(scope.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    driver::InodeFlagDriver drv(driver::KernelVersion::Running());
    driver::ApplyHooks hooks;
    hooks.before_change = (*j)->BeforeChangeHook(scope.string());
    Result<driver::ApplyOutcome> out =
        drv.Apply(driver::FileRef{root.get(), "f", id}, DaxState::kDax, hooks);
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(out->result, driver::ApplyResult::kUnchanged);
    ASSERT_TRUE((*j)->SettleBatch().ok());
  }
  Result<RestoreReport> report = Restore(state, RestoreRequest::AllFiles());
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(HasDaxFlag(scope / "f")) << "restore undid the admin's change:\n" << report->Format();
}

INSTANTIATE_TEST_SUITE_P(Filesystems, ARestoreOnEachFilesystem,
                         ::testing::Values(FsType::kXfs, FsType::kExt4),
                         [](const ::testing::TestParamInfo<FsType>& info) {
                           return std::string(testing::FsTypeName(info.param));
                         });

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
