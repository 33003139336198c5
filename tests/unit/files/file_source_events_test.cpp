// SPDX-License-Identifier: Apache-2.0
// FileSource with tree events from a fake source: a cycle samples again only
// what events name; overflow, a failed mark and ctx.full_scan walk everything.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "plugins/files/file_source.h"
#include "tests/support/test_support.h"
#include "tests/unit/files/files_test_util.h"

namespace daxpolicy::files {
namespace {

namespace fs = std::filesystem;
using ::daxpolicy::files::testing::RecordsByPath;
using ::daxpolicy::testing::TempDir;
using ::daxpolicy::testing::WriteFile;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Key;
using ::testing::Not;

// Directory handles are "K" + the directory's path.
class FakeTreeEvents final : public TreeEventSource {
 public:
  Result<void> WatchFilesystem(const std::string& path) override {
    watched.push_back(path);
    if (!fail_marks.empty()) return ErrnoError(ENODEV, fail_marks);
    return {};
  }
  int fd() const override { return -1; }
  Result<TreeDrain> Drain(std::vector<FsEvent>* out) override {
    TreeDrain d;
    d.events = queued.size();
    for (FsEvent& e : queued) out->push_back(std::move(e));
    queued.clear();
    return d;
  }
  DirResolution ResolveDir(std::string_view key) override {
    return {DirResolution::kFound, std::string(key.substr(1)), ""};
  }

  void Event(const fs::path& path, uint32_t mask, bool is_dir = false) {
    FsEvent e;
    e.dir_key = "K" + path.parent_path().string();
    e.name = path.filename().string();
    e.mask = mask;
    e.is_dir = is_dir;
    queued.push_back(e);
  }
  void Overflow() {
    FsEvent e;
    e.overflow = true;
    queued.push_back(e);
  }

  std::vector<FsEvent> queued;
  std::vector<std::string> watched;
  std::string fail_marks;
};

class AFileSourceWithEvents : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.path() / "scope";
    fs::create_directories(root_ / "a");
    fs::create_directories(root_ / "b");
    WriteFile(root_ / "a" / "one", "1");
    WriteFile(root_ / "a" / "two", "22");
    WriteFile(root_ / "b" / "three", "333");
    plugins::ScopeInfo scope;
    scope.path = root_.string();
    scope.usable = true;
    scopes_.generation = 1;
    scopes_.list.push_back(scope);
    auto events = std::make_unique<FakeTreeEvents>();
    events_ = events.get();
    ScanLimits limits;
    limits.racy_window_ns = 0;
    limits.full_rescan_every = 0;
    source_ = std::make_unique<FileSource>(FileSource::ErrorLog{}, limits, std::move(events));
  }

  // One cycle: builds the next snapshot from the last one, then plays the
  // access source: every regular file has access figures, `read` ones were read.
  std::map<std::string, policy::FileRecord> Cycle(bool full_scan = false,
                                                  const std::set<std::string>& read = {},
                                                  bool access = true, bool withheld = false) {
    auto next = std::make_shared<policy::Snapshot>();
    plugins::SampleContext ctx(*next, scopes_);
    ctx.previous = last_.get();
    ctx.full_scan = full_scan;
    ctx.wall_ns = 1;
    source_->Sample(ctx);
    errors_ = ctx.errors;
    std::string path;
    for (size_t i = 0; i < next->files.size(); ++i) {
      policy::FileRecord& f = next->files[i];
      if (f.kind != policy::FileKind::kRegular || !access) continue;
      f.available |= policy::kHaveAccess;
      next->PathOf(f, &path);
      f.read_bytes_rate = read.count(path) ? 4096.0f : 0.0f;
    }
    next->system.access_withheld = withheld;
    last_ = std::move(next);
    return RecordsByPath(*last_);
  }
  std::string P(const std::string& rel) const { return (root_ / rel).string(); }

  TempDir tmp_;
  fs::path root_;
  plugins::ScopeList scopes_;
  FakeTreeEvents* events_ = nullptr;
  std::unique_ptr<FileSource> source_;
  std::shared_ptr<policy::Snapshot> last_;
  std::map<std::string, uint64_t> errors_;
};

TEST_F(AFileSourceWithEvents, SamplesNothingWhenNothingHappened) {
  auto first = Cycle();
  EXPECT_EQ(first.size(), 5u);  // a, b, and three files
  EXPECT_FALSE(source_->last_cycle().events);
  EXPECT_EQ(events_->watched, std::vector<std::string>{root_.string()});

  auto second = Cycle();
  EXPECT_TRUE(source_->last_cycle().events);
  EXPECT_EQ(source_->last_cycle().sampled, 0u);
  EXPECT_EQ(source_->last_cycle().walked_scopes, 0u);
  EXPECT_EQ(second.size(), 5u);
  EXPECT_EQ(second.at(P("b/three")).size, 3u);
}

TEST_F(AFileSourceWithEvents, SamplesAgainOnlyTheFilesEventsName) {
  (void)Cycle();
  WriteFile(root_ / "a" / "one", "1111");
  WriteFile(root_ / "b" / "three", "3333333");
  events_->Event(root_ / "a" / "one", kFsModify | kFsCloseWrite);
  auto records = Cycle();
  EXPECT_EQ(source_->last_cycle().sampled, 1u);
  EXPECT_EQ(records.at(P("a/one")).size, 4u);
  // No event named it: it keeps what the last sample saw (the reconciliation
  // walk, ctx.full_scan, catches such a change).
  EXPECT_EQ(records.at(P("b/three")).size, 3u);
  records = Cycle(/*full_scan=*/true);
  EXPECT_EQ(records.at(P("b/three")).size, 7u);
  EXPECT_FALSE(source_->last_cycle().events);
}

TEST_F(AFileSourceWithEvents, SamplesAgainFilesReadInTheLastInterval) {
  (void)Cycle(false, {P("a/two")});
  (void)Cycle();
  EXPECT_EQ(source_->last_cycle().sampled, 1u);
  (void)Cycle();
  EXPECT_EQ(source_->last_cycle().sampled, 0u);
}

TEST_F(AFileSourceWithEvents, SamplesEveryFileWithoutAccessFigures) {
  (void)Cycle(false, {}, /*access=*/false);
  WriteFile(root_ / "b" / "three", "3333333");
  auto records = Cycle(false, {}, /*access=*/false);
  EXPECT_TRUE(source_->last_cycle().events);
  EXPECT_EQ(source_->last_cycle().sampled, 3u);
  EXPECT_EQ(records.at(P("b/three")).size, 7u);
}

TEST_F(AFileSourceWithEvents, SamplesEveryFileAfterACycleWhoseAccessFiguresWereWithheld) {
  // The files are marked as covered by access tracing, but the last cycle had
  // no figures (its first window): which of them were read is not known.
  (void)Cycle(false, {}, /*access=*/true, /*withheld=*/true);
  (void)Cycle();
  EXPECT_TRUE(source_->last_cycle().events);
  EXPECT_EQ(source_->last_cycle().sampled, 3u);
  (void)Cycle();
  EXPECT_EQ(source_->last_cycle().sampled, 0u);
}

TEST_F(AFileSourceWithEvents, SamplesAPendingFileEveryCycle) {
  (void)Cycle();
  // As the engine leaves a file whose flag it changed: physical dax, effective not yet.
  auto snap = std::make_shared<policy::Snapshot>(*last_);
  std::string path;
  for (size_t i = 0; i < snap->files.size(); ++i) {
    policy::FileRecord& f = snap->files[i];
    snap->PathOf(f, &path);
    if (path != P("a/one")) continue;
    f.available |= policy::kHavePhysical | policy::kHaveEffective;
    f.physical = policy::DaxState::kDax;
    f.effective = policy::DaxState::kPageCache;
  }
  last_ = snap;
  (void)Cycle();
  EXPECT_EQ(source_->last_cycle().sampled, 1u);
}

TEST_F(AFileSourceWithEvents, AddsNewFilesAndDropsGoneOnes) {
  (void)Cycle();
  WriteFile(root_ / "a" / "new", "n");
  fs::rename(root_ / "a" / "two", root_ / "b" / "two");
  fs::remove(root_ / "b" / "three");
  events_->Event(root_ / "a" / "new", kFsCreate);
  events_->Event(root_ / "a" / "two", kFsMovedFrom);
  events_->Event(root_ / "b" / "two", kFsMovedTo);
  events_->Event(root_ / "b" / "three", kFsDelete);
  auto records = Cycle();
  EXPECT_TRUE(source_->last_cycle().events);
  EXPECT_THAT(records, Contains(Key(P("a/new"))));
  EXPECT_THAT(records, Contains(Key(P("b/two"))));
  EXPECT_THAT(records, Not(Contains(Key(P("a/two")))));
  EXPECT_THAT(records, Not(Contains(Key(P("b/three")))));
  EXPECT_EQ(records.at(P("b/two")).size, 2u);
  // Only the new and the moved file were sampled; "one" kept its record.
  EXPECT_EQ(source_->last_cycle().sampled, 2u);
}

TEST_F(AFileSourceWithEvents, WalksNewAndMovedDirectories) {
  (void)Cycle();
  fs::create_directories(root_ / "n" / "m");
  WriteFile(root_ / "n" / "m" / "x", "x");
  fs::rename(root_ / "a", root_ / "b" / "a2");
  events_->Event(root_ / "n", kFsCreate, true);
  events_->Event(root_ / "a", kFsMovedFrom, true);
  events_->Event(root_ / "b" / "a2", kFsMovedTo, true);
  auto records = Cycle();
  EXPECT_TRUE(source_->last_cycle().events);
  EXPECT_THAT(records, Contains(Key(P("n/m/x"))));
  EXPECT_THAT(records, Contains(Key(P("b/a2/one"))));
  EXPECT_THAT(records, Not(Contains(Key(P("a/one")))));
}

TEST_F(AFileSourceWithEvents, WalksEverythingAfterAnOverflow) {
  (void)Cycle();
  WriteFile(root_ / "b" / "three", "3333333");
  WriteFile(root_ / "b" / "lost", "l");
  events_->Overflow();
  auto records = Cycle();
  EXPECT_EQ(source_->last_cycle().walked_scopes, 1u);
  EXPECT_EQ(source_->last_cycle().sampled, 6u);  // 4 files, a and b
  EXPECT_EQ(records.at(P("b/three")).size, 7u);
  EXPECT_THAT(records, Contains(Key(P("b/lost"))));
  EXPECT_EQ(errors_["events"], 1u);
  // And back to events.
  (void)Cycle();
  EXPECT_EQ(source_->last_cycle().walked_scopes, 0u);
  EXPECT_EQ(source_->last_cycle().sampled, 0u);
}

TEST_F(AFileSourceWithEvents, WalksAScopeWhoseMarkFailedEveryCycleAndSaysSo) {
  events_->fail_marks = "no fsid";
  (void)Cycle();
  EXPECT_THAT(source_->Degraded(), HasSubstr("no tree events for " + root_.string()));
  WriteFile(root_ / "b" / "three", "3333333");
  auto records = Cycle();
  EXPECT_EQ(source_->last_cycle().walked_scopes, 1u);
  EXPECT_EQ(records.at(P("b/three")).size, 7u);
}

TEST(AFileSourceWithoutEvents, SaysWhyAndSamplesEverything) {
  TempDir tmp;
  WriteFile(tmp.path() / "f", "f");
  plugins::ScopeList scopes;
  plugins::ScopeInfo scope;
  scope.path = tmp.path().string();
  scope.usable = true;
  scopes.generation = 1;
  scopes.list.push_back(scope);
  FileSource source({}, {}, nullptr, "tree events unavailable (EPERM)");
  EXPECT_EQ(source.Degraded(), "tree events unavailable (EPERM)");
  policy::Snapshot a;
  plugins::SampleContext c1(a, scopes);
  source.Sample(c1);
  policy::Snapshot b;
  plugins::SampleContext c2(b, scopes);
  c2.previous = &a;
  source.Sample(c2);
  EXPECT_FALSE(source.last_cycle().events);
  EXPECT_EQ(source.last_cycle().sampled, 1u);
}

}  // namespace
}  // namespace daxpolicy::files
