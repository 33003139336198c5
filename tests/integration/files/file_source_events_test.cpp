// SPDX-License-Identifier: Apache-2.0
// FileSource with the real TreeWatcher on a loop-mounted xfs: what another
// process creates, renames, removes and rewrites is in the next cycle's table
// without a walk; an overflowed queue makes one walk that loses nothing; the
// source's own process does not make it sample anything.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "plugins/files/file_source.h"
#include "plugins/files/tree_watcher.h"
#include "tests/support/test_support.h"
#include "tests/unit/files/files_test_util.h"

namespace daxpolicy::files {
namespace {

namespace fs = std::filesystem;
using ::daxpolicy::files::testing::RecordsByPath;
using ::daxpolicy::testing::FsType;
using ::daxpolicy::testing::InChild;
using ::daxpolicy::testing::IsRoot;
using ::daxpolicy::testing::LoopFs;
using ::daxpolicy::testing::WriteFile;
using ::testing::Contains;
using ::testing::Key;
using ::testing::Not;

class AFileSourceOnXfs : public ::testing::Test {
 protected:
  void SetUp() override {
    DAXPOLICY_REQUIRE(IsRoot(), "root (CAP_SYS_ADMIN) for fanotify filesystem marks");
    const std::optional<std::string> why = LoopFs::Unavailable();
    DAXPOLICY_REQUIRE(!why.has_value(), why.value_or(""));
    std::string error;
    fs_ = LoopFs::Create(FsType::kXfs, &error);
    ASSERT_NE(fs_, nullptr) << error;
    root_ = fs_->mount_point() / "scope";
    for (int d = 0; d < 4; ++d) {
      fs::create_directories(root_ / ("d" + std::to_string(d)));
      for (int f = 0; f < 50; ++f) {
        WriteFile(root_ / ("d" + std::to_string(d)) / ("f" + std::to_string(f)), "x");
      }
    }
    plugins::ScopeInfo scope;
    scope.path = root_.string();
    scope.usable = true;
    scopes_.generation = 1;
    scopes_.list.push_back(scope);
    MakeSource(/*drain_thread=*/true);
  }

  void MakeSource(bool drain_thread) {
    source_.reset();
    Result<std::unique_ptr<TreeWatcher>> w = TreeWatcher::Create(getpid());
    ASSERT_TRUE(w.ok()) << w.error().message;
    ScanLimits limits;
    limits.racy_window_ns = 0;
    source_ = std::make_unique<FileSource>(FileSource::ErrorLog{}, limits, std::move(*w), "",
                                           drain_thread);
  }

  // One cycle; every regular file then gets access figures of 0 B/s, as the
  // access source gives them for files nobody read.
  std::map<std::string, policy::FileRecord> Cycle() {
    auto next = std::make_shared<policy::Snapshot>();
    plugins::SampleContext ctx(*next, scopes_);
    ctx.previous = last_.get();
    source_->Sample(ctx);
    errors_ = ctx.errors;
    for (size_t i = 0; i < next->files.size(); ++i) {
      policy::FileRecord& f = next->files[i];
      if (f.kind == policy::FileKind::kRegular) f.available |= policy::kHaveAccess;
    }
    last_ = std::move(next);
    return RecordsByPath(*last_);
  }
  std::string P(const std::string& rel) const { return (root_ / rel).string(); }

  std::unique_ptr<LoopFs> fs_;
  fs::path root_;
  plugins::ScopeList scopes_;
  std::unique_ptr<FileSource> source_;
  std::shared_ptr<policy::Snapshot> last_;
  std::map<std::string, uint64_t> errors_;
};

TEST_F(AFileSourceOnXfs, FollowsChangesOfOtherProcessesWithoutAWalk) {
  EXPECT_EQ(Cycle().size(), 204u);
  EXPECT_EQ(source_->Degraded(), "");
  (void)Cycle();
  EXPECT_TRUE(source_->last_cycle().events);
  EXPECT_EQ(source_->last_cycle().sampled, 0u);

  InChild([&] {
    WriteFile(root_ / "d0" / "new", "new");
    fs::rename(root_ / "d1" / "f1", root_ / "d2" / "moved");
    fs::remove(root_ / "d3" / "f3");
    WriteFile(root_ / "d0" / "f0", "rewritten");
    fs::create_directories(root_ / "sub" / "deeper");
    WriteFile(root_ / "sub" / "deeper" / "g", "g");
  });
  auto records = Cycle();
  EXPECT_TRUE(source_->last_cycle().events);
  EXPECT_EQ(source_->last_cycle().walked_scopes, 0u);
  EXPECT_THAT(records, Contains(Key(P("d0/new"))));
  EXPECT_THAT(records, Contains(Key(P("d2/moved"))));
  EXPECT_THAT(records, Not(Contains(Key(P("d1/f1")))));
  EXPECT_THAT(records, Not(Contains(Key(P("d3/f3")))));
  EXPECT_THAT(records, Contains(Key(P("sub/deeper/g"))));
  EXPECT_EQ(records.at(P("d0/f0")).size, 9u);
  // new, moved, rewritten, g, and the two new directories: nothing else.
  EXPECT_EQ(source_->last_cycle().sampled, 6u);
}

TEST_F(AFileSourceOnXfs, IsNotWokenByItsOwnProcess) {
  (void)Cycle();
  WriteFile(root_ / "d0" / "f0", "mine");
  (void)Cycle();
  EXPECT_TRUE(source_->last_cycle().events);
  EXPECT_EQ(source_->last_cycle().sampled, 0u);
  EXPECT_TRUE(source_->last_cycle().changes.empty());
}

TEST_F(AFileSourceOnXfs, WalksOnceAfterAnOverflowAndLosesNothing) {
  // Without the drain thread, so that the queue surely overflows.
  MakeSource(/*drain_thread=*/false);
  (void)Cycle();
  uint64_t limit = 16384;
  std::ifstream("/proc/sys/fs/fanotify/max_queued_events") >> limit;
  InChild([&] {
    fs::create_directories(root_ / "many");
    const int dir = open((root_ / "many").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) _exit(3);
    for (uint64_t i = 0; i < limit + 100; ++i) {
      const int fd = openat(dir, ("m" + std::to_string(i)).c_str(),
                            O_CREAT | O_EXCL | O_RDONLY | O_CLOEXEC, 0644);
      if (fd < 0) _exit(4);
      close(fd);
    }
    close(dir);
    WriteFile(root_ / "d3" / "after", "a");
  });
  auto records = Cycle();
  EXPECT_EQ(source_->last_cycle().walked_scopes, 1u);
  EXPECT_EQ(errors_["events"], 1u);
  EXPECT_EQ(records.size(), 204u + 1 + (limit + 100) + 1);
  EXPECT_THAT(records, Contains(Key(P("d3/after"))));
  (void)Cycle();
  EXPECT_TRUE(source_->last_cycle().events);
  EXPECT_EQ(source_->last_cycle().walked_scopes, 0u);
}

}  // namespace
}  // namespace daxpolicy::files
