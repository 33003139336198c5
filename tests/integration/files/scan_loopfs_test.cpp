// SPDX-License-Identifier: Apache-2.0
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "plugins/files/cache_stat.h"
#include "plugins/files/sampler.h"
#include "plugins/files/scanner.h"
#include "plugins/unique_fd.h"
#include "tests/support/test_support.h"
#include "tests/unit/files/files_test_util.h"

namespace daxpolicy::files {
namespace {

namespace fs = std::filesystem;
using ::daxpolicy::files::testing::OpenSpy;
using ::daxpolicy::files::testing::PathSet;
using ::daxpolicy::files::testing::RecordsByPath;
using ::daxpolicy::testing::FsType;
using ::daxpolicy::testing::FsTypeName;
using ::daxpolicy::testing::IsRoot;
using ::daxpolicy::testing::LoopFs;
using ::daxpolicy::testing::TempDir;
using ::daxpolicy::testing::WriteFile;
using ::testing::Contains;
using ::testing::IsEmpty;
using ::testing::Key;
using ::testing::Not;

constexpr int kDirs = 5;
constexpr int kFilesPerDir = 10;

class ScanOnLoopFs : public ::testing::TestWithParam<FsType> {
 protected:
  void SetUp() override {
    DAXPOLICY_REQUIRE(IsRoot(), "root for loop mounts");
    const std::optional<std::string> why = LoopFs::Unavailable();
    DAXPOLICY_REQUIRE(!why.has_value(), why.value_or(""));
    std::string error;
    fs_ = LoopFs::Create(GetParam(), &error);
    ASSERT_NE(fs_, nullptr) << error;
    root_ = fs_->mount_point() / "scope";
    for (int d = 0; d < kDirs; ++d) {
      fs::create_directories(root_ / ("d" + std::to_string(d)));
      for (int f = 0; f < kFilesPerDir; ++f) {
        WriteFile(root_ / ("d" + std::to_string(d)) / ("f" + std::to_string(f)), "data");
      }
    }
  }
  void TearDown() override {
    for (auto it = mounts_.rbegin(); it != mounts_.rend(); ++it) umount2(it->c_str(), MNT_DETACH);
  }

  ScanScope Scope() const {
    ScanScope scope;
    scope.path = root_.string();
    scope.mount = 1;
    struct stat st {};
    stat(root_.c_str(), &st);
    scope.dev = st.st_dev;
    return scope;
  }
  Scanner MakeScanner() const {
    ScanLimits limits;
    limits.racy_window_ns = 0;  // multigrain timestamps (6.13+) on xfs and ext4
    limits.full_rescan_every = 0;
    return Scanner({Scope()}, nullptr, limits);
  }
  std::string P(const std::string& rel) const { return (root_ / rel).string(); }

  std::unique_ptr<LoopFs> fs_;
  fs::path root_;
  std::vector<std::string> mounts_;
};

TEST_P(ScanOnLoopFs, CountsFilesAndRereadsOnlyChangedDirectories) {
  Scanner scanner = MakeScanner();
  policy::Snapshot snap;
  ScanStats first = scanner.Scan(&snap);
  EXPECT_THAT(first.errors, IsEmpty());
  EXPECT_EQ(first.files, static_cast<uint64_t>(kDirs * kFilesPerDir));
  EXPECT_EQ(first.directories, static_cast<uint64_t>(kDirs));
  EXPECT_EQ(first.dirs_read, kDirs + 1u);

  ScanStats same = scanner.Scan(&snap);
  EXPECT_EQ(same.dirs_read, 0u);
  EXPECT_EQ(same.dirs_reused, kDirs + 1u);
  EXPECT_EQ(same.files, first.files);

  WriteFile(root_ / "d1" / "added", "+");
  fs::remove(root_ / "d3" / "f0");
  fs::rename(root_ / "d4" / "f1", root_ / "d4" / "renamed");
  ScanStats changed = scanner.Scan(&snap);
  EXPECT_EQ(changed.dirs_read, 3u);
  EXPECT_EQ(changed.dirs_reused, kDirs - 2u);
  const auto paths = PathSet(snap);
  EXPECT_THAT(paths, Contains(P("d1/added")));
  EXPECT_THAT(paths, Not(Contains(P("d3/f0"))));
  EXPECT_THAT(paths, Not(Contains(P("d4/f1"))));
  EXPECT_THAT(paths, Contains(P("d4/renamed")));
  EXPECT_EQ(changed.files, first.files);

  // A directory moved into another one: both parents change, its own list is reused.
  fs::rename(root_ / "d2", root_ / "d0" / "d2-moved");
  ScanStats moved = scanner.Scan(&snap);
  EXPECT_EQ(moved.dirs_read, 3u);  // the scope root, d0, and d2 (rename moved its ctime)
  EXPECT_THAT(PathSet(snap), Contains(P("d0/d2-moved/f9")));
  EXPECT_EQ(moved.files, first.files);
}

TEST_P(ScanOnLoopFs, NeverFollowsSymlinksOutOfTheScope) {
  TempDir outside;
  WriteFile(outside.path() / "secret", "s");
  fs::create_directory(outside.path() / "tree");
  WriteFile(outside.path() / "tree" / "deeper", "d");
  fs::create_directory_symlink(outside.path() / "tree", root_ / "d0" / "dirlink");
  fs::create_symlink(outside.path() / "secret", root_ / "d0" / "filelink");
  OpenSpy spy((outside.path() / "secret").string());
  ASSERT_TRUE(spy.ok());

  Scanner scanner = MakeScanner();
  FileSampler sampler;
  policy::Snapshot snap;
  const ScanStats stats = scanner.Scan(&snap, ScanMode::kFull, &sampler);
  EXPECT_EQ(stats.skipped_symlinks, 2u);
  EXPECT_EQ(spy.Opens(), 0);
  for (const auto& [path, rec] : RecordsByPath(snap)) {
    EXPECT_EQ(path.find("link"), std::string::npos) << path;
    EXPECT_EQ(path.find(outside.path().string()), std::string::npos) << path;
  }
}

TEST_P(ScanOnLoopFs, SkipsFifosAndDeviceNodesWithoutOpeningThem) {
  ASSERT_EQ(mkfifo(P("d0/fifo").c_str(), 0600), 0);
  ASSERT_EQ(mknod(P("d0/null-dev").c_str(), S_IFCHR | 0600, makedev(1, 3)), 0);
  ASSERT_EQ(mknod(P("d0/blk-dev").c_str(), S_IFBLK | 0600, makedev(7, 200)), 0);
  OpenSpy fifo_spy(P("d0/fifo"));
  OpenSpy dev_spy(P("d0/null-dev"));
  ASSERT_TRUE(fifo_spy.ok() && dev_spy.ok());

  Scanner scanner = MakeScanner();
  FileSampler sampler;
  policy::Snapshot snap;
  // A blocking open of a fifo without a writer would hang this call.
  const ScanStats stats = scanner.Scan(&snap, ScanMode::kFull, &sampler);
  EXPECT_EQ(stats.skipped_fifos, 1u);
  EXPECT_EQ(stats.skipped_devices, 2u);
  EXPECT_EQ(fifo_spy.Opens(), 0);
  EXPECT_EQ(dev_spy.Opens(), 0);
  EXPECT_EQ(stats.files, static_cast<uint64_t>(kDirs * kFilesPerDir));
}

TEST_P(ScanOnLoopFs, ScansAndSamplesNamesWithNewlinesAndNonUtf8Bytes) {
  const std::string odd_dir = "new\nline-\xff";
  const std::string odd_file = "\x80\xfe\n.bin";
  fs::create_directory(root_ / odd_dir);
  WriteFile(root_ / odd_dir / odd_file, "odd");

  Scanner scanner = MakeScanner();
  FileSampler sampler;
  policy::Snapshot snap;
  const ScanStats stats = scanner.Scan(&snap, ScanMode::kFull, &sampler);
  EXPECT_THAT(stats.errors, IsEmpty());
  EXPECT_EQ(sampler.stats().errors, 0u);
  const auto records = RecordsByPath(snap);
  ASSERT_THAT(records, Contains(Key(P(odd_dir + "/" + odd_file))));
  const policy::FileRecord& rec = records.at(P(odd_dir + "/" + odd_file));
  EXPECT_EQ(rec.size, 3u);
  EXPECT_TRUE(rec.available & policy::kHaveCache);
}

TEST_P(ScanOnLoopFs, DoesNotEnterAnotherFilesystemOrABindMountBelowTheScope) {
  fs::create_directory(root_ / "tmpfs-here");
  ASSERT_EQ(mount("tmpfs", P("tmpfs-here").c_str(), "tmpfs", 0, "size=1m"), 0);
  mounts_.push_back(P("tmpfs-here"));
  WriteFile(root_ / "tmpfs-here" / "foreign", "f");
  // Same filesystem, same st_dev, but another mount: only the mount id differs.
  fs::create_directory(root_ / "bind-here");
  ASSERT_EQ(mount(P("d0").c_str(), P("bind-here").c_str(), nullptr, MS_BIND, nullptr), 0);
  mounts_.push_back(P("bind-here"));

  Scanner scanner = MakeScanner();
  FileSampler sampler;
  policy::Snapshot snap;
  const ScanStats stats = scanner.Scan(&snap, ScanMode::kFull, &sampler);
  EXPECT_EQ(stats.skipped_other_mount, 2u);
  const auto paths = PathSet(snap);
  EXPECT_THAT(paths, Not(Contains(P("tmpfs-here"))));
  EXPECT_THAT(paths, Not(Contains(P("bind-here"))));
  EXPECT_THAT(paths, Not(Contains(P("bind-here/f0"))));
  EXPECT_EQ(stats.files, static_cast<uint64_t>(kDirs * kFilesPerDir));

  // Mounted over a directory after a scan, without touching the parent's timestamps.
  umount2(P("bind-here").c_str(), MNT_DETACH);
  mounts_.pop_back();
  (void)scanner.Scan(&snap);
  ASSERT_THAT(PathSet(snap), Contains(P("bind-here")));
  ASSERT_EQ(mount(P("d1").c_str(), P("bind-here").c_str(), nullptr, MS_BIND, nullptr), 0);
  mounts_.push_back(P("bind-here"));
  const ScanStats again = scanner.Scan(&snap);
  EXPECT_THAT(PathSet(snap), Not(Contains(P("bind-here/f0"))));
  EXPECT_EQ(again.files, static_cast<uint64_t>(kDirs * kFilesPerDir));
}

// A bind mount of another directory of the same filesystem over the scope root itself, after
// the first scan: same st_dev, only the mount id differs. Nothing on it may become a record.
TEST_P(ScanOnLoopFs, NeverManagesABindMountOverTheScopeRoot) {
  const fs::path elsewhere = fs_->mount_point() / "elsewhere";
  fs::create_directories(elsewhere);
  WriteFile(elsewhere / "not-in-scope", "x");
  Scanner scanner = MakeScanner();  // the scope gives the device only, like at setup
  FileSampler sampler;
  policy::Snapshot snap;
  const ScanStats first = scanner.Scan(&snap, ScanMode::kFull, &sampler);
  ASSERT_EQ(first.files, static_cast<uint64_t>(kDirs * kFilesPerDir));
  for (int round = 0; round < 2; ++round) {
    ASSERT_EQ(mount(elsewhere.c_str(), root_.c_str(), nullptr, MS_BIND, nullptr), 0);
    mounts_.push_back(root_);
    for (const ScanMode mode : {ScanMode::kIncremental, ScanMode::kFull}) {
      const ScanStats stats = scanner.Scan(&snap, mode, &sampler);
      EXPECT_THAT(PathSet(snap), Not(Contains(P("not-in-scope"))));
      EXPECT_EQ(stats.files, 0u);
      ASSERT_EQ(stats.errors.size(), 1u);
      EXPECT_EQ(stats.errors[0].err, EXDEV);
    }
    umount2(root_.c_str(), MNT_DETACH);
    mounts_.pop_back();
    EXPECT_EQ(scanner.Scan(&snap, ScanMode::kFull, &sampler).files,
              static_cast<uint64_t>(kDirs * kFilesPerDir));
  }
}

TEST_P(ScanOnLoopFs, MeasuresACachedFileAndAFreshOneDifferently) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  WriteFile(root_ / "cached", std::string(32 * page, 'c'));
  WriteFile(root_ / "fresh", std::string(32 * page, 'f'));
  for (const char* name : {"cached", "fresh"}) {
    UniqueFd fd(open(P(name).c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_EQ(fsync(fd.get()), 0);
    ASSERT_EQ(posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED), 0);
  }
  {
    UniqueFd fd(open(P("cached").c_str(), O_RDONLY | O_CLOEXEC));
    std::string buf(32 * page, '\0');
    ASSERT_EQ(pread(fd.get(), buf.data(), buf.size(), 0), static_cast<ssize_t>(buf.size()));
  }
  Scanner scanner = MakeScanner();
  FileSampler sampler;
  policy::Snapshot snap;
  (void)scanner.Scan(&snap, ScanMode::kFull, &sampler);
  const auto records = RecordsByPath(snap);
  const policy::FileRecord& cached = records.at(P("cached"));
  const policy::FileRecord& fresh = records.at(P("fresh"));
  ASSERT_TRUE(cached.available & policy::kHaveCache);
  ASSERT_TRUE(fresh.available & policy::kHaveCache);
  EXPECT_FALSE(cached.available & policy::kHaveEvictedOnly);
  EXPECT_EQ(cached.cache_pages, 32u);
  EXPECT_EQ(fresh.cache_pages, 0u);
  EXPECT_EQ(cached.dirty_pages, 0u);

  // The same through the mincore fallback, called directly.
  for (const auto& [name, want] : {std::pair{"cached", 32u}, std::pair{"fresh", 0u}}) {
    UniqueFd fd(open(P(name).c_str(), O_RDONLY | O_CLOEXEC));
    Result<CacheCounts> counts = MincoreFd(fd.get(), 32 * page, page, true);
    ASSERT_TRUE(counts.ok()) << counts.error().message;
    EXPECT_EQ(counts->cache, want) << name;
  }
  FileSampler fallback;
  fallback.cache_probe().ForceMincoreForTest();
  (void)scanner.Scan(&snap, ScanMode::kFull, &fallback);
  const auto via_mincore = RecordsByPath(snap);
  EXPECT_TRUE(via_mincore.at(P("cached")).available & policy::kHaveEvictedOnly);
  EXPECT_EQ(via_mincore.at(P("cached")).cache_pages, 32u);
  EXPECT_EQ(via_mincore.at(P("fresh")).cache_pages, 0u);
}

TEST_P(ScanOnLoopFs, ReportsThePhysicalDaxFlagOfFilesAndDirectories) {
  for (const char* name : {"d0/f0", "d1"}) {
    UniqueFd fd(open(P(name).c_str(), O_RDONLY | O_CLOEXEC));
    fsxattr fsx{};
    ASSERT_EQ(ioctl(fd.get(), FS_IOC_FSGETXATTR, &fsx), 0);
    fsx.fsx_xflags |= FS_XFLAG_DAX;
    ASSERT_EQ(ioctl(fd.get(), FS_IOC_FSSETXATTR, &fsx), 0) << name << ": " << strerror(errno);
  }
  Scanner scanner = MakeScanner();
  FileSampler sampler;
  policy::Snapshot snap;
  (void)scanner.Scan(&snap, ScanMode::kFull, &sampler);
  const auto records = RecordsByPath(snap);
  EXPECT_EQ(records.at(P("d0/f0")).physical, policy::DaxState::kDax);
  EXPECT_EQ(records.at(P("d0/f1")).physical, policy::DaxState::kPageCache);
  EXPECT_EQ(records.at(P("d1")).physical, policy::DaxState::kDax);
  EXPECT_TRUE(records.at(P("d1")).available & policy::kHavePhysical);
  // A loop device cannot do DAX: the flag is set but not effective (pending forever).
  EXPECT_EQ(records.at(P("d0/f0")).effective, policy::DaxState::kPageCache);
  EXPECT_TRUE(records.at(P("d0/f0")).available & policy::kHaveEffective);
}

INSTANTIATE_TEST_SUITE_P(AllFilesystems, ScanOnLoopFs,
                         ::testing::Values(FsType::kXfs, FsType::kXfsReflink, FsType::kExt4),
                         [](const ::testing::TestParamInfo<FsType>& info) {
                           std::string name = FsTypeName(info.param);
                           std::erase(name, '-');
                           return name;
                         });

}  // namespace
}  // namespace daxpolicy::files
