// SPDX-License-Identifier: Apache-2.0
#include "plugins/files/close_watcher.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "plugins/unique_fd.h"
#include "tests/support/test_support.h"

namespace daxpolicy::files {
namespace {

namespace fs = std::filesystem;
using ::daxpolicy::testing::FsType;
using ::daxpolicy::testing::InChild;
using ::daxpolicy::testing::IsRoot;
using ::daxpolicy::testing::LoopFs;
using ::daxpolicy::testing::WriteFile;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::IsEmpty;

void OpenAndClose(const fs::path& path, int flags) {
  const int fd = open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) _exit(3);
  close(fd);
}

class ACloseWatcher : public ::testing::Test {
 protected:
  void SetUp() override {
    DAXPOLICY_REQUIRE(IsRoot(), "root (CAP_SYS_ADMIN) for fanotify filesystem marks");
    const std::optional<std::string> why = LoopFs::Unavailable();
    DAXPOLICY_REQUIRE(!why.has_value(), why.value_or(""));
    std::string error;
    fs_ = LoopFs::Create(FsType::kXfs, &error);
    ASSERT_NE(fs_, nullptr) << error;
    dir_ = fs_->mount_point() / "watched";
    fs::create_directory(dir_);
    WriteFile(dir_ / "pending", "p");
    WriteFile(dir_ / "other", "o");
    Result<std::unique_ptr<CloseWatcher>> watcher = CloseWatcher::Create(getpid());
    ASSERT_TRUE(watcher.ok()) << watcher.error().message;
    watcher_ = std::move(*watcher);
    Result<void> marked = watcher_->WatchFilesystem(fs_->mount_point().string());
    ASSERT_TRUE(marked.ok()) << marked.error().message;
    // Opened as the engine opens scope roots: O_PATH.
    dirfd_.Reset(open(dir_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(dirfd_.valid());
  }

  DrainResult Drain() {
    Result<DrainResult> r = watcher_->Drain();
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? std::move(*r) : DrainResult();
  }

  std::unique_ptr<LoopFs> fs_;
  fs::path dir_;
  std::unique_ptr<CloseWatcher> watcher_;
  UniqueFd dirfd_;
};

TEST_F(ACloseWatcher, ReportsATrackedFileClosedByAnotherProcess) {
  ASSERT_TRUE(watcher_->Track(dirfd_.get(), "pending", 42).ok());
  InChild([&] { OpenAndClose(dir_ / "pending", O_RDONLY); });

  pollfd pfd{watcher_->fd(), POLLIN, 0};
  ASSERT_EQ(poll(&pfd, 1, 0), 1);  // the event is queued once close() returned
  const DrainResult result = Drain();
  EXPECT_THAT(result.closed, ElementsAre(Field(&CloseEvent::token, 42u)));
  EXPECT_FALSE(result.closed[0].wrote);
  EXPECT_FALSE(result.overflow);
  EXPECT_THAT(Drain().closed, IsEmpty());
}

TEST_F(ACloseWatcher, TellsAWritingCloseAndNeverReadsEventsOfUntrackedFiles) {
  ASSERT_TRUE(watcher_->Track(dirfd_.get(), "pending", 7).ok());
  InChild([&] {
    OpenAndClose(dir_ / "pending", O_WRONLY);
    OpenAndClose(dir_ / "other", O_RDONLY);
  });
  const DrainResult result = Drain();
  ASSERT_THAT(result.closed, ElementsAre(Field(&CloseEvent::token, 7u)));
  EXPECT_TRUE(result.closed[0].wrote);
  EXPECT_EQ(result.untracked, 0u);
  EXPECT_EQ(result.events, 1u);
}

// A process opening and closing files in a loop, outside the scope and next to a pending
// file, on the same filesystem: the daemon must not even read those events (only the
// pending files are marked), so the flood costs it nothing.
TEST_F(ACloseWatcher, ReadsNoEventForACloseFloodOfOtherFilesOnTheSameFilesystem) {
  const fs::path outside = fs_->mount_point() / "outside";
  fs::create_directory(outside);
  WriteFile(outside / "busy", "b");
  ASSERT_TRUE(watcher_->Track(dirfd_.get(), "pending", 3).ok());
  (void)Drain();
  InChild([&] {
    for (int i = 0; i < 20000; ++i) {
      OpenAndClose(outside / "busy", i % 2 ? O_RDONLY : O_WRONLY);
      OpenAndClose(dir_ / "other", O_RDONLY);
    }
  });
  uint64_t events = 0;
  for (;;) {
    const DrainResult result = Drain();
    events += result.events;
    if (!result.more) break;
  }
  EXPECT_EQ(events, 0u);
  InChild([&] { OpenAndClose(dir_ / "pending", O_RDONLY); });
  EXPECT_THAT(Drain().closed, ElementsAre(Field(&CloseEvent::token, 3u)));
}

// The mark must not pin the inode: a pending DAX switch takes effect only when the kernel
// evicts the inode after its last close. With nobody holding the file, dropping the inode
// cache evicts it (and its evictable mark with it), so a later close reports nothing.
TEST_F(ACloseWatcher, DoesNotPinTheTrackedInode) {
  ASSERT_TRUE(watcher_->Track(dirfd_.get(), "pending", 9).ok());
  dirfd_.Reset();
  sync();
  // Page cache and dentries hold an inode too: drop them all, a few times (an inode used
  // recently survives one pass of the shrinker).
  for (int i = 0; i < 4; ++i) std::ofstream("/proc/sys/vm/drop_caches") << "3" << std::endl;
  InChild([&] { OpenAndClose(dir_ / "pending", O_RDONLY); });
  EXPECT_EQ(Drain().events, 0u) << "the tracked inode stayed in memory: the mark pins it";
}

TEST_F(ACloseWatcher, IgnoresItsOwnProcessesCloses) {
  ASSERT_TRUE(watcher_->Track(dirfd_.get(), "pending", 1).ok());
  {
    UniqueFd fd(open((dir_ / "pending").c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
  }
  const DrainResult result = Drain();
  EXPECT_THAT(result.closed, IsEmpty());
  EXPECT_GE(result.ignored_own, 1u);
}

TEST_F(ACloseWatcher, StopsReportingAnUntrackedFileAndSeesANewInodeAsADifferentFile) {
  ASSERT_TRUE(watcher_->Track(dirfd_.get(), "pending", 5).ok());
  EXPECT_TRUE(watcher_->Untrack(5));
  EXPECT_FALSE(watcher_->Untrack(5));
  ASSERT_TRUE(watcher_->Track(dirfd_.get(), "other", 6).ok());
  // Replace "other" by a new inode under the same name: the tracked handle is stale.
  WriteFile(dir_ / "new", "n");
  fs::rename(dir_ / "new", dir_ / "other");
  (void)Drain();
  InChild([&] {
    OpenAndClose(dir_ / "pending", O_RDONLY);
    OpenAndClose(dir_ / "other", O_RDONLY);
  });
  const DrainResult result = Drain();
  EXPECT_THAT(result.closed, IsEmpty());
  EXPECT_EQ(result.events, 0u) << "the untracked file's mark was left behind";
}

TEST_F(ACloseWatcher, ReportsAQueueOverflowSoTheCallerRescans) {
  int max_events = 16384;
  std::ifstream("/proc/sys/fs/fanotify/max_queued_events") >> max_events;
  ASSERT_LE(max_events, 200000) << "queue limit too large to overflow in a test";
  // Distinct files: repeated closes of one file by one process may be merged.
  const int files = max_events + 100;
  // The files stay open here, so their inodes (and evictable marks) cannot be evicted before
  // the child closes them; the watcher ignores this process's own closes.
  rlimit nofile{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &nofile), 0);
  const rlim_t needed = static_cast<rlim_t>(files) + 256;
  if (nofile.rlim_cur < needed) {
    ASSERT_GE(nofile.rlim_max, needed) << "RLIMIT_NOFILE too low to hold the tracked files open";
    nofile.rlim_cur = needed;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &nofile), 0);
  }
  fs::create_directory(dir_ / "many");
  std::vector<UniqueFd> held;
  held.reserve(files);
  for (int i = 0; i < files; ++i) {
    held.emplace_back(
        open((dir_ / "many" / std::to_string(i)).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
    ASSERT_TRUE(held.back().valid());
  }
  for (int i = 0; i < files; ++i) {
    ASSERT_TRUE(watcher_->Track(dirfd_.get(), "many/" + std::to_string(i), 1000 + i).ok());
  }
  (void)Drain();  // our own creations
  InChild([&] {
    for (int i = 0; i < files; ++i) OpenAndClose(dir_ / "many" / std::to_string(i), O_RDONLY);
  });
  // The queue is read in bounded portions: the first call leaves work for later ones.
  DrainResult result = Drain();
  EXPECT_TRUE(result.more);
  int calls = 1;
  for (DrainResult next = result; next.more; ++calls) {
    next = Drain();
    result.overflow |= next.overflow;
    result.events += next.events;
    result.more = next.more;
  }
  EXPECT_GT(calls, 1);
  EXPECT_TRUE(result.overflow);
  EXPECT_LE(result.events, static_cast<uint64_t>(max_events) + 1);
}

// Before Linux 5.19 there are no evictable marks: the watcher marks the whole filesystem,
// reads every close on it and matches tracked files by handle.
TEST_F(ACloseWatcher, FallsBackToAFilesystemMarkWithoutEvictableMarks) {
  Result<std::unique_ptr<CloseWatcher>> created = CloseWatcher::Create(getpid(), false);
  ASSERT_TRUE(created.ok()) << created.error().message;
  watcher_ = std::move(*created);
  Result<void> marked = watcher_->WatchFilesystem(fs_->mount_point().string());
  ASSERT_TRUE(marked.ok()) << marked.error().message;
  const fs::path outside = fs_->mount_point() / "outside";
  fs::create_directory(outside);
  WriteFile(outside / "busy", "b");
  (void)Drain();
  ASSERT_TRUE(watcher_->Track(dirfd_.get(), "pending", 11).ok());
  InChild([&] {
    OpenAndClose(dir_ / "pending", O_WRONLY);
    OpenAndClose(dir_ / "other", O_RDONLY);
    OpenAndClose(outside / "busy", O_RDONLY);
  });
  DrainResult result = Drain();
  ASSERT_THAT(result.closed, ElementsAre(Field(&CloseEvent::token, 11u)));
  EXPECT_TRUE(result.closed[0].wrote);
  EXPECT_EQ(result.untracked, 2u) << "every close on the filesystem is read";

  EXPECT_TRUE(watcher_->Untrack(11));
  InChild([&] { OpenAndClose(dir_ / "pending", O_RDONLY); });
  result = Drain();
  EXPECT_THAT(result.closed, IsEmpty());
  EXPECT_EQ(result.untracked, 1u);
}

// ext4's file handles are 8 bytes, so its FID records leave every second event's metadata at
// an offset that is not 8-byte aligned in the read buffer (52 after the first): both closes
// must be read out of one buffer intact (and without a misaligned read under UBSan).
TEST(ACloseWatcherOnExt4, ReadsEventsPackedAtFourByteAlignment) {
  DAXPOLICY_REQUIRE(IsRoot(), "root (CAP_SYS_ADMIN) for fanotify marks");
  const std::optional<std::string> why = LoopFs::Unavailable();
  DAXPOLICY_REQUIRE(!why.has_value(), why.value_or(""));
  std::string error;
  std::unique_ptr<LoopFs> fs = LoopFs::Create(FsType::kExt4, &error, 64);
  ASSERT_NE(fs, nullptr) << error;
  const fs::path dir = fs->mount_point();
  WriteFile(dir / "a", "a");
  WriteFile(dir / "b", "b");
  Result<std::unique_ptr<CloseWatcher>> watcher = CloseWatcher::Create(getpid());
  ASSERT_TRUE(watcher.ok()) << watcher.error().message;
  ASSERT_TRUE((*watcher)->WatchFilesystem(dir.string()).ok());
  UniqueFd dirfd(open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE((*watcher)->Track(dirfd.get(), "a", 1).ok());
  ASSERT_TRUE((*watcher)->Track(dirfd.get(), "b", 2).ok());
  InChild([&] {
    OpenAndClose(dir / "a", O_RDONLY);
    OpenAndClose(dir / "b", O_WRONLY);
  });
  Result<DrainResult> result = (*watcher)->Drain();
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->events, 2u);
  EXPECT_THAT(result->closed,
              ElementsAre(Field(&CloseEvent::token, 1u), Field(&CloseEvent::token, 2u)));
  ASSERT_EQ(result->closed.size(), 2u);
  EXPECT_FALSE(result->closed[0].wrote);
  EXPECT_TRUE(result->closed[1].wrote);
}

TEST(ACloseWatcherMark, ExplainsAFilesystemThatCannotBeMarked) {
  DAXPOLICY_REQUIRE(IsRoot(), "root (CAP_SYS_ADMIN) for fanotify");
  Result<std::unique_ptr<CloseWatcher>> watcher = CloseWatcher::Create(getpid());
  ASSERT_TRUE(watcher.ok()) << watcher.error().message;
  Result<void> marked = (*watcher)->WatchFilesystem("/nonexistent-daxpolicy-path");
  ASSERT_FALSE(marked.ok());
  EXPECT_EQ(marked.error().code, ENOENT);
  EXPECT_THAT(marked.error().message, ::testing::HasSubstr("/nonexistent-daxpolicy-path"));
}

}  // namespace
}  // namespace daxpolicy::files
