// SPDX-License-Identifier: Apache-2.0
// TreeWatcher on a loop-mounted xfs: changes made by another process reach a
// ChangeTable as the paths they concern; the watcher's own process is ignored;
// an overflowed queue asks for a full walk.

#include "plugins/files/tree_watcher.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "plugins/files/change_table.h"
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
using ::testing::IsEmpty;
using ::testing::Pair;

void Append(const fs::path& path, const std::string& data) {
  std::ofstream out(path, std::ios::app);
  out << data;
}

class ATreeWatcher : public ::testing::Test {
 protected:
  void SetUp() override {
    DAXPOLICY_REQUIRE(IsRoot(), "root (CAP_SYS_ADMIN) for fanotify filesystem marks");
    const std::optional<std::string> why = LoopFs::Unavailable();
    DAXPOLICY_REQUIRE(!why.has_value(), why.value_or(""));
    std::string error;
    fs_ = LoopFs::Create(FsType::kXfs, &error);
    ASSERT_NE(fs_, nullptr) << error;
    root_ = fs_->mount_point() / "scope";
    fs::create_directories(root_ / "d1");
    fs::create_directories(root_ / "d2");
    fs::create_directories(fs_->mount_point() / "outside");
    WriteFile(root_ / "d1" / "kept", "k");
    WriteFile(root_ / "d1" / "moved", "m");
    WriteFile(root_ / "d1" / "removed", "r");
    WriteFile(root_ / "d2" / "rewritten", "w");
    WriteFile(fs_->mount_point() / "outside" / "o", "o");
    Result<std::unique_ptr<TreeWatcher>> w = TreeWatcher::Create(getpid());
    ASSERT_TRUE(w.ok()) << w.error().message;
    watcher_ = std::move(*w);
    Result<void> marked = watcher_->WatchFilesystem(root_.string());
    ASSERT_TRUE(marked.ok()) << marked.error().message;
    table_ = std::make_unique<ChangeTable>(
        std::vector<std::string>{root_.string()},
        [this](std::string_view key) { return watcher_->ResolveDir(key); });
  }

  // Reads everything queued into the table and takes the result.
  ChangeSet DrainAndTake(TreeDrain* total = nullptr) {
    std::vector<FsEvent> events;
    TreeDrain sum;
    for (;;) {
      Result<TreeDrain> r = watcher_->Drain(&events);
      EXPECT_TRUE(r.ok()) << r.error().message;
      if (!r.ok()) break;
      sum.events += r->events;
      sum.ignored_own += r->ignored_own;
      sum.overflow = sum.overflow || r->overflow;
      if (!r->more) break;
    }
    for (const FsEvent& e : events) table_->Add(e);
    if (total) *total = sum;
    return table_->Take();
  }

  std::string P(const std::string& rel) const { return (root_ / rel).string(); }

  std::unique_ptr<LoopFs> fs_;
  fs::path root_;
  std::unique_ptr<TreeWatcher> watcher_;
  std::unique_ptr<ChangeTable> table_;
};

TEST_F(ATreeWatcher, ReportsCreatesRenamesRemovesAndRewritesOfOtherProcesses) {
  InChild([&] {
    WriteFile(root_ / "d1" / "created", "c");
    fs::rename(root_ / "d1" / "moved", root_ / "d2" / "arrived");
    fs::remove(root_ / "d1" / "removed");
    Append(root_ / "d2" / "rewritten", "more");
    WriteFile(fs_->mount_point() / "outside" / "o", "changed");
  });
  TreeDrain drain;
  ChangeSet set = DrainAndTake(&drain);
  ASSERT_EQ(set.scopes.size(), 1u);
  EXPECT_FALSE(set.scopes[0].full_walk) << set.scopes[0].why;
  EXPECT_THAT(
      set.scopes[0].paths,
      ElementsAre(Pair(P("d1/created"), PathChange::kNew), Pair(P("d1/moved"), PathChange::kGone),
                  Pair(P("d1/removed"), PathChange::kGone), Pair(P("d2/arrived"), PathChange::kNew),
                  Pair(P("d2/rewritten"), PathChange::kDirty)));
  EXPECT_GE(set.outside, 1u);  // the filesystem mark sees outside the scope too
  EXPECT_FALSE(drain.overflow);
}

TEST_F(ATreeWatcher, ReportsDirectoryTreesCreatedMovedAndRemoved) {
  InChild([&] {
    fs::create_directories(root_ / "new" / "sub");
    WriteFile(root_ / "new" / "sub" / "f", "f");
    fs::rename(root_ / "d1", root_ / "d2" / "d1-moved");
    Append(root_ / "d2" / "d1-moved" / "kept", "x");
    fs::remove(root_ / "d2" / "rewritten");
    fs::remove(root_ / "d2" / "d1-moved" / "removed");
  });
  ChangeSet set = DrainAndTake();
  ASSERT_EQ(set.scopes.size(), 1u);
  EXPECT_FALSE(set.scopes[0].full_walk) << set.scopes[0].why;
  EXPECT_THAT(set.scopes[0].gone_dirs, ElementsAre(P("d1")));
  EXPECT_THAT(set.scopes[0].walk_dirs, ElementsAre(P("d2/d1-moved"), P("new")));
  EXPECT_THAT(set.scopes[0].paths, ElementsAre(Pair(P("d2/rewritten"), PathChange::kGone)));

  // A later change inside the moved tree is found under its new path.
  InChild([&] { Append(root_ / "d2" / "d1-moved" / "kept", "y"); });
  set = DrainAndTake();
  EXPECT_THAT(set.scopes[0].paths, ElementsAre(Pair(P("d2/d1-moved/kept"), PathChange::kDirty)));
}

TEST_F(ATreeWatcher, ReportsAttributeChanges) {
  // chmod goes through notify_change, which sends FAN_ATTRIB. (FS_IOC_FSSETXATTR,
  // the DAX flag's ioctl, sends no event at all on Linux 6.18: a flag changed
  // by someone else is found by the reconciliation walk.)
  InChild([&] {
    if (chmod((root_ / "d1" / "kept").c_str(), 0600) != 0) _exit(4);
  });
  ChangeSet set = DrainAndTake();
  EXPECT_THAT(set.scopes[0].paths, ElementsAre(Pair(P("d1/kept"), PathChange::kDirty)));
}

TEST_F(ATreeWatcher, IgnoresItsOwnProcess) {
  WriteFile(root_ / "d1" / "mine", "m");
  fs::rename(root_ / "d1" / "moved", root_ / "d2" / "mine-too");
  std::string error;
  ASSERT_TRUE(daxpolicy::testing::WriteDaxFlag(root_ / "d1" / "kept", true, &error)) << error;
  TreeDrain drain;
  ChangeSet set = DrainAndTake(&drain);
  EXPECT_TRUE(set.empty());
  EXPECT_GT(drain.ignored_own, 0u);
  EXPECT_EQ(drain.events, drain.ignored_own);
}

TEST_F(ATreeWatcher, ReportsAnOverflowAsAFullWalk) {
  // More creates than the kernel queues (fs.fanotify.max_queued_events).
  uint64_t limit = 16384;
  std::ifstream("/proc/sys/fs/fanotify/max_queued_events") >> limit;
  const uint64_t n = limit + 100;
  InChild([&] {
    const int dir = open((root_ / "d2").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) _exit(3);
    for (uint64_t i = 0; i < n; ++i) {
      const int fd = openat(dir, ("f" + std::to_string(i)).c_str(),
                            O_CREAT | O_EXCL | O_RDONLY | O_CLOEXEC, 0644);
      if (fd < 0) _exit(4);
      close(fd);
    }
    close(dir);
  });
  TreeDrain drain;
  ChangeSet set = DrainAndTake(&drain);
  EXPECT_TRUE(drain.overflow);
  EXPECT_EQ(set.overflows, 1u);
  ASSERT_EQ(set.scopes.size(), 1u);
  EXPECT_TRUE(set.scopes[0].full_walk);
  EXPECT_EQ(set.scopes[0].why, "the kernel's event queue overflowed");
  EXPECT_THAT(set.scopes[0].paths, IsEmpty());
}

TEST_F(ATreeWatcher, ResolvesARemovedDirectoryAsGone) {
  InChild([&] {
    fs::create_directories(root_ / "tmp");
    WriteFile(root_ / "tmp" / "f", "f");
  });
  std::vector<FsEvent> events;
  ASSERT_TRUE(watcher_->Drain(&events).ok());
  std::string tmp_key;
  for (const FsEvent& e : events) {
    if (e.name == "f") tmp_key = e.dir_key;
  }
  ASSERT_FALSE(tmp_key.empty());
  DirResolution r = watcher_->ResolveDir(tmp_key);
  EXPECT_EQ(r.status, DirResolution::kFound);
  EXPECT_EQ(r.path, P("tmp"));
  fs::remove_all(root_ / "tmp");
  EXPECT_EQ(watcher_->ResolveDir(tmp_key).status, DirResolution::kGone);
}

}  // namespace
}  // namespace daxpolicy::files
