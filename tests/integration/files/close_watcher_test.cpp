// SPDX-License-Identifier: Apache-2.0
#include "plugins/files/close_watcher.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "plugins/unique_fd.h"
#include "tests/support/test_support.h"

namespace daxpolicy::files {
namespace {

namespace fs = std::filesystem;
using ::daxpolicy::testing::FsType;
using ::daxpolicy::testing::IsRoot;
using ::daxpolicy::testing::LoopFs;
using ::daxpolicy::testing::WriteFile;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::IsEmpty;

// Runs `body` in a child process (a different pid than the watcher's) and waits.
template <class F>
void InChild(F body) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    body();
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

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
    dirfd_.Reset(open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
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

TEST_F(ACloseWatcher, TellsAWritingCloseAndCountsUntrackedFiles) {
  ASSERT_TRUE(watcher_->Track(dirfd_.get(), "pending", 7).ok());
  InChild([&] {
    OpenAndClose(dir_ / "pending", O_WRONLY);
    OpenAndClose(dir_ / "other", O_RDONLY);
  });
  const DrainResult result = Drain();
  ASSERT_THAT(result.closed, ElementsAre(Field(&CloseEvent::token, 7u)));
  EXPECT_TRUE(result.closed[0].wrote);
  EXPECT_EQ(result.untracked, 1u);
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
  EXPECT_EQ(result.untracked, 2u);
}

TEST_F(ACloseWatcher, ReportsAQueueOverflowSoTheCallerRescans) {
  int max_events = 16384;
  std::ifstream("/proc/sys/fs/fanotify/max_queued_events") >> max_events;
  ASSERT_LE(max_events, 200000) << "queue limit too large to overflow in a test";
  // Distinct files: repeated closes of one file by one process may be merged.
  const int files = max_events + 100;
  fs::create_directory(dir_ / "many");
  for (int i = 0; i < files; ++i) {
    UniqueFd fd(
        open((dir_ / "many" / std::to_string(i)).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
    ASSERT_TRUE(fd.valid());
  }
  (void)Drain();  // our own creations
  InChild([&] {
    for (int i = 0; i < files; ++i) OpenAndClose(dir_ / "many" / std::to_string(i), O_RDONLY);
  });
  const DrainResult result = Drain();
  EXPECT_TRUE(result.overflow);
  EXPECT_LE(result.events, static_cast<uint64_t>(max_events) + 1);
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
