// SPDX-License-Identifier: Apache-2.0
#include "plugins/files/sampler.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <sched.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>

#include "plugins/files/scanner.h"
#include "plugins/open_beneath.h"
#include "plugins/unique_fd.h"
#include "tests/support/test_support.h"
#include "tests/unit/files/files_test_util.h"

namespace daxpolicy::files {
namespace {

namespace fs = std::filesystem;
using ::daxpolicy::files::testing::OpenSpy;
using ::daxpolicy::files::testing::RecordsByPath;
using ::daxpolicy::testing::TempDir;
using ::daxpolicy::testing::WriteFile;

uint64_t InoOf(const fs::path& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return 0;
  return st.st_ino;
}

class AFileSampler : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(tmp_.path() / "data", std::string(3 * 4096 + 5, 'x'));
    dir_.Reset(open(tmp_.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(dir_.valid());
    record_.ino = InoOf(tmp_.path() / "data");
  }

  TempDir tmp_;
  UniqueFd dir_;
  policy::FileRecord record_;
  FileSampler sampler_;
};

TEST_F(AFileSampler, FillsSizeMtimeDaxStateAndCacheOfARegularFile) {
  ASSERT_EQ(sampler_.SampleFile(dir_.get(), "data", &record_), SampleStatus::kOk);
  EXPECT_EQ(record_.size, 3u * 4096 + 5);
  struct stat st {};
  ASSERT_EQ(stat((tmp_.path() / "data").c_str(), &st), 0);
  EXPECT_EQ(record_.mtime_ns, st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec);
  EXPECT_EQ(record_.effective, policy::DaxState::kPageCache);
  EXPECT_TRUE(record_.available & policy::kHaveSize);
  EXPECT_TRUE(record_.available & policy::kHaveEffective);
  EXPECT_TRUE(record_.available & policy::kHaveCache);
  EXPECT_FALSE(record_.available & policy::kHaveEvictedOnly);
  EXPECT_EQ(record_.cache_pages, 4u);  // just written: every page is resident
  EXPECT_EQ(sampler_.stats().sampled, 1u);
}

TEST_F(AFileSampler, MarksCacheNumbersFromTheMincoreFallback) {
  sampler_.cache_probe().ForceMincoreForTest();
  ASSERT_EQ(sampler_.SampleFile(dir_.get(), "data", &record_), SampleStatus::kOk);
  EXPECT_TRUE(record_.available & policy::kHaveCache);
  EXPECT_TRUE(record_.available & policy::kHaveEvictedOnly);
  EXPECT_EQ(record_.recently_evicted_pages, 0u);
  EXPECT_EQ(record_.cache_pages, 4u);
}

TEST_F(AFileSampler, LeavesOutCacheNumbersWhenAskedTo) {
  FileSampler no_cache(FileSampler::Options{.physical = true, .cache = false});
  record_.cache_pages = 99;
  ASSERT_EQ(no_cache.SampleFile(dir_.get(), "data", &record_), SampleStatus::kOk);
  EXPECT_FALSE(record_.available & policy::kHaveCache);
  EXPECT_EQ(record_.cache_pages, 0u);
}

TEST_F(AFileSampler, ReportsAVanishedFile) {
  fs::remove(tmp_.path() / "data");
  int err = 0;
  EXPECT_EQ(sampler_.SampleFile(dir_.get(), "data", &record_, &err), SampleStatus::kVanished);
  EXPECT_EQ(err, ENOENT);
  EXPECT_EQ(sampler_.stats().vanished, 1u);
}

TEST_F(AFileSampler, ReportsAReplacedFileAndLeavesItsRecordAlone) {
  WriteFile(tmp_.path() / "other", "other");
  fs::rename(tmp_.path() / "other", tmp_.path() / "data");
  record_.size = 1234;
  EXPECT_EQ(sampler_.SampleFile(dir_.get(), "data", &record_), SampleStatus::kReplaced);
  EXPECT_EQ(record_.size, 1234u);
  EXPECT_EQ(record_.available, 0);
}

TEST_F(AFileSampler, RefusesToFollowAFileReplacedByASymlink) {
  TempDir outside;
  WriteFile(outside.path() / "target", "t");
  fs::remove(tmp_.path() / "data");
  fs::create_symlink(outside.path() / "target", tmp_.path() / "data");
  record_.ino = InoOf(outside.path() / "target");  // even the target's identity must not match
  int err = 0;
  EXPECT_EQ(sampler_.SampleFile(dir_.get(), "data", &record_, &err), SampleStatus::kReplaced);
  EXPECT_EQ(err, ELOOP);
}

// Without openat2 (hidden by a seccomp filter, as systemd's RestrictSUIDSGID= does, or a
// kernel before 5.6) the sampler still samples, and still refuses a symlink. Run in a child
// that answers openat2 with ENOSYS; its exit code names the first check that failed.
bool HideOpenat2() {
  return ::daxpolicy::testing::RefuseSyscall(SYS_openat2, ENOSYS) &&
         syscall(SYS_openat2, AT_FDCWD, ".", nullptr, 0) == -1 && errno == ENOSYS;
}

int SampleWithoutOpenat2(int dirfd, const char* dir) {
  if (!HideOpenat2()) return 10;
  FileSampler sampler;
  policy::FileRecord record;
  record.ino = InoOf(fs::path(dir) / "data");
  if (sampler.SampleFile(dirfd, "data", &record) != SampleStatus::kOk) return 1;
  if (record.size != 3u * 4096 + 5 || !(record.available & policy::kHaveSize)) return 2;
  if (!(record.available & policy::kHaveEffective)) return 3;
  fs::create_symlink(fs::path(dir) / "data", fs::path(dir) / "link");
  int err = 0;
  if (sampler.SampleFile(dirfd, "link", &record, &err) != SampleStatus::kReplaced) return 4;
  if (err != ELOOP) return 5;
  if (sampler.SampleFile(dirfd, "..", &record) == SampleStatus::kOk) return 6;
  return 0;
}

TEST_F(AFileSampler, SamplesWhereOpenat2IsUnavailable) {
  EXPECT_EXIT(std::exit(SampleWithoutOpenat2(dir_.get(), tmp_.path().c_str())),
              ::testing::ExitedWithCode(0), "");
}

// Without openat2, a file with another file of the same filesystem bind-mounted over it (same
// device, another mount) is refused, by the sampler whether or not it is told the directory's
// mount, and by OpenBeneath. Run in a child with its own mount namespace, so the bind mount
// goes with it; its exit code names the first check that failed.
int RefuseBindMountWithoutOpenat2(const char* dir) {
  const fs::path data = fs::path(dir) / "data";
  const fs::path other = fs::path(dir) / "other";
  WriteFile(other, "other");
  if (unshare(CLONE_NEWNS) != 0) return 20;
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 21;
  if (mount(other.c_str(), data.c_str(), nullptr, MS_BIND, nullptr) != 0) return 22;
  // Opened in the new namespace: a lookup from an fd of the old one would not see the mount.
  UniqueFd dir_fd(open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  const int dirfd = dir_fd.get();
  struct statx dir_stx {};
  if (statx(dirfd, "", AT_EMPTY_PATH, STATX_MNT_ID, &dir_stx) != 0) return 23;
  if (!HideOpenat2()) return 10;
  FileSampler sampler;
  policy::FileRecord record;
  record.ino = InoOf(data);  // the inode the mount shows, so only the mount check can refuse it
  if (record.ino != InoOf(other)) return 24;
  int err = 0;
  if (sampler.SampleFile(dirfd, "data", &record, &err) != SampleStatus::kReplaced) return 1;
  if (err != EXDEV) return 2;
  err = 0;
  if (sampler.SampleFile(dirfd, MountIdentity::Of(dir_stx), "data", &record, &err) !=
      SampleStatus::kReplaced) {
    return 3;
  }
  if (err != EXDEV) return 4;
  if (sampler.SampleFile(dirfd, MountIdentity::Of(dir_stx), "other", &record) !=
      SampleStatus::kOk) {
    return 5;  // the same inode under its own name, on the directory's mount
  }
  errno = 0;
  if (OpenBeneath(dirfd, "data", O_PATH | O_NOFOLLOW | O_CLOEXEC) != -1 || errno != EXDEV) return 6;
  return 0;
}

TEST_F(AFileSampler, RefusesABindMountedFileWhereOpenat2IsUnavailable) {
  DAXPOLICY_REQUIRE(::daxpolicy::testing::IsRoot(), "root (CAP_SYS_ADMIN) for a bind mount");
  EXPECT_EXIT(std::exit(RefuseBindMountWithoutOpenat2(tmp_.path().c_str())),
              ::testing::ExitedWithCode(0), "");
}

// A regular file is exchanged with a fifo (and, as root, a character device) under the same
// name while the sampler and the scanner look at it, tens of thousands of times: the special
// files must never be opened (inotify IN_OPEN counts every real open; O_PATH is not one).
TEST(ASwappedInSpecialFile, IsNeverOpenedBySampleFileOrAScan) {
  TempDir tmp;
  const fs::path dir = tmp.path() / "d";
  fs::create_directories(dir);
  WriteFile(dir / "f", "regular data");
  ASSERT_EQ(mkfifo((dir / "swap-fifo").c_str(), 0600), 0);
  std::vector<std::string> specials = {"swap-fifo"};
  if (geteuid() == 0 && mknod((dir / "swap-dev").c_str(), S_IFCHR | 0600, makedev(1, 3)) == 0) {
    specials.push_back("swap-dev");  // /dev/null's numbers: harmless if the test ever fails
  }
  std::vector<std::unique_ptr<OpenSpy>> spies;
  for (const std::string& name : specials) {
    spies.push_back(std::make_unique<OpenSpy>((dir / name).string()));
    ASSERT_TRUE(spies.back()->ok());
  }
  const uint64_t ino = InoOf(dir / "f");
  UniqueFd dirfd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(dirfd.valid());

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> swaps{0};
  std::thread swapper([&] {
    while (!stop.load()) {
      for (const std::string& name : specials) {
        // Two exchanges: the special file is under "f" in between, then back.
        renameat2(AT_FDCWD, (dir / "f").c_str(), AT_FDCWD, (dir / name).c_str(), RENAME_EXCHANGE);
        renameat2(AT_FDCWD, (dir / "f").c_str(), AT_FDCWD, (dir / name).c_str(), RENAME_EXCHANGE);
        swaps.fetch_add(2);
      }
    }
  });
  FileSampler sampler;
  Scanner scanner({ScanScope{dir.string()}}, nullptr);
  policy::Snapshot snap;
  uint64_t replaced = 0;
  for (int i = 0; i < 40000; ++i) {
    policy::FileRecord rec;
    rec.ino = ino;
    replaced += sampler.SampleFile(dirfd.get(), "f", &rec) == SampleStatus::kReplaced;
    if (i % 8 == 0) scanner.Scan(&snap, ScanMode::kFull, &sampler);
  }
  stop = true;
  swapper.join();
  RecordProperty("swaps", std::to_string(swaps.load()));
  EXPECT_GT(replaced, 0u) << "the swap never raced the sampler: the test proves nothing";
  for (size_t i = 0; i < specials.size(); ++i) {
    EXPECT_EQ(spies[i]->Opens(), 0) << specials[i] << " was opened";
  }
}

}  // namespace
}  // namespace daxpolicy::files
