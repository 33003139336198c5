// SPDX-License-Identifier: Apache-2.0
#include "plugins/files/scanner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "tests/support/test_support.h"
#include "tests/unit/files/files_test_util.h"

namespace daxpolicy::files {
namespace {

namespace fs = std::filesystem;
using ::daxpolicy::files::testing::LiveNameBytes;
using ::daxpolicy::files::testing::OpenSpy;
using ::daxpolicy::files::testing::PathSet;
using ::daxpolicy::files::testing::RecordsByPath;
using ::daxpolicy::testing::TempDir;
using ::daxpolicy::testing::WriteFile;
using ::testing::Contains;
using ::testing::IsEmpty;
using ::testing::Key;
using ::testing::Not;

ScanLimits TestLimits() {
  ScanLimits limits;
  // Kernels with multigrain timestamps (6.13+) give a directory changed after a
  // statx a new, fine-grained mtime, so the tests need no racy window.
  limits.racy_window_ns = 0;
  limits.full_rescan_every = 0;
  return limits;
}

Scanner MakeScanner(const fs::path& root, uint16_t mount = 3,
                    Scanner::ExcludePredicate excluded = nullptr) {
  ScanScope scope;
  scope.path = root.string();
  scope.mount = mount;
  return Scanner({scope}, std::move(excluded), TestLimits());
}

class AScannerOnATempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.path() / "scope";
    fs::create_directories(root_ / "a" / "deep");
    fs::create_directories(root_ / "b");
    WriteFile(root_ / "top.txt", "top");
    WriteFile(root_ / "a" / "one", "1");
    WriteFile(root_ / "a" / "deep" / "two", "22");
    WriteFile(root_ / "b" / "three", "333");
  }
  std::string P(const std::string& rel) const { return (root_ / rel).string(); }

  TempDir tmp_;
  fs::path root_;
};

TEST_F(AScannerOnATempDir, RecordsRegularFilesAndDirectoriesBelowTheScopeRoot) {
  Scanner scanner = MakeScanner(root_, 3);
  policy::Snapshot snap;
  const ScanStats stats = scanner.Scan(&snap);

  EXPECT_THAT(stats.errors, IsEmpty());
  EXPECT_EQ(stats.files, 4u);
  EXPECT_EQ(stats.directories, 3u);
  EXPECT_EQ(stats.dirs_read, 4u);  // the root and three directories
  const auto records = RecordsByPath(snap);
  const auto paths = PathSet(snap);
  ASSERT_EQ(records.size(), 7u);
  const policy::FileRecord& two = records.at(P("a/deep/two"));
  EXPECT_EQ(two.kind, policy::FileKind::kRegular);
  EXPECT_EQ(two.mount, 3);
  struct stat st {};
  ASSERT_EQ(stat(P("a/deep/two").c_str(), &st), 0);
  EXPECT_EQ(two.ino, st.st_ino);
  EXPECT_EQ(two.size, 2u);
  EXPECT_TRUE(two.available & policy::kHaveSize);
  EXPECT_EQ(records.at(P("a/deep")).kind, policy::FileKind::kDirectory);
  EXPECT_EQ(snap.dir_paths[0], root_.string());
  EXPECT_THAT(paths, Not(Contains(root_.string())));
}

TEST_F(AScannerOnATempDir, KeepsTheRecordsOfOneDirectoryContiguous) {
  Scanner scanner = MakeScanner(root_);
  policy::Snapshot snap;
  (void)scanner.Scan(&snap);
  std::vector<uint32_t> seen;
  for (const policy::FileRecord& rec : snap.files) {
    if (seen.empty() || seen.back() != rec.dir) {
      EXPECT_THAT(seen, Not(Contains(rec.dir))) << "directory " << rec.dir << " split";
      seen.push_back(rec.dir);
    }
  }
}

TEST_F(AScannerOnATempDir, StoresNamesWithNewlinesAndNonUtf8BytesVerbatim) {
  const std::string odd = std::string("line\nbreak\xff\xfe-\x80.bin");
  const std::string odd_dir = std::string("dir\n\xc3(");
  fs::create_directory(root_ / odd_dir);
  WriteFile(root_ / odd_dir / odd, "x");

  Scanner scanner = MakeScanner(root_);
  policy::Snapshot snap;
  const ScanStats stats = scanner.Scan(&snap);
  EXPECT_THAT(stats.errors, IsEmpty());
  const auto paths = PathSet(snap);
  EXPECT_THAT(paths, Contains(P(odd_dir)));
  EXPECT_THAT(paths, Contains(P(odd_dir + "/" + odd)));
}

TEST_F(AScannerOnATempDir, SkipsSymlinksFifosAndSocketsWithoutOpeningThem) {
  TempDir outside;
  WriteFile(outside.path() / "secret", "s");
  fs::create_directory_symlink(outside.path(), root_ / "link-to-outside");
  fs::create_symlink(outside.path() / "secret", root_ / "file-link");
  ASSERT_EQ(mkfifo(P("fifo").c_str(), 0600), 0);
  const int sock = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string sock_path = P("sock");
  ASSERT_LT(sock_path.size(), sizeof(addr.sun_path));
  std::memcpy(addr.sun_path, sock_path.c_str(), sock_path.size() + 1);
  ASSERT_EQ(bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  OpenSpy fifo_spy(P("fifo"));
  ASSERT_TRUE(fifo_spy.ok());

  // With a sampler too: neither path may open a fifo (a blocking open would
  // hang here; O_NONBLOCK would still show up as an IN_OPEN event).
  Scanner scanner = MakeScanner(root_);
  FileSampler sampler;
  policy::Snapshot snap;
  const ScanStats stats = scanner.Scan(&snap, ScanMode::kFull, &sampler);
  close(sock);

  EXPECT_EQ(stats.skipped_symlinks, 2u);
  EXPECT_EQ(stats.skipped_fifos, 1u);
  EXPECT_EQ(stats.skipped_sockets, 1u);
  EXPECT_EQ(fifo_spy.Opens(), 0);
  const auto records = RecordsByPath(snap);
  EXPECT_EQ(records.size(), 7u);
  for (const auto& [path, rec] : records) {
    EXPECT_EQ(path.find("secret"), std::string::npos) << path;
    EXPECT_EQ(path.find("link"), std::string::npos) << path;
  }
}

TEST_F(AScannerOnATempDir, LeavesOutWhatThePredicateExcludesWithEverythingBelowIt) {
  std::vector<std::pair<std::string, bool>> asked;
  auto excluded = [&](std::string_view path, bool is_dir) {
    asked.emplace_back(std::string(path), is_dir);
    return path == P("a") || path == P("top.txt");
  };
  Scanner scanner = MakeScanner(root_, 0, excluded);
  policy::Snapshot snap;
  const ScanStats stats = scanner.Scan(&snap);
  const auto paths = PathSet(snap);
  EXPECT_EQ(stats.skipped_excluded, 2u);
  EXPECT_THAT(paths, Not(Contains(P("a/one"))));
  EXPECT_THAT(paths, Not(Contains(P("a/deep/two"))));
  EXPECT_THAT(paths, Not(Contains(P("top.txt"))));
  EXPECT_THAT(paths, Contains(P("b/three")));
  EXPECT_THAT(asked, Contains(std::make_pair(P("a"), true)));
  EXPECT_THAT(asked, Contains(std::make_pair(P("top.txt"), false)));
}

TEST_F(AScannerOnATempDir, RereadsOnlyDirectoriesThatChanged) {
  Scanner scanner = MakeScanner(root_);
  policy::Snapshot snap;
  ScanStats first = scanner.Scan(&snap);
  EXPECT_EQ(first.dirs_read, 4u);

  ScanStats unchanged = scanner.Scan(&snap);
  EXPECT_FALSE(unchanged.full);
  EXPECT_EQ(unchanged.dirs_read, 0u);
  EXPECT_EQ(unchanged.dirs_reused, 4u);
  EXPECT_EQ(unchanged.files, 4u);

  WriteFile(root_ / "a" / "deep" / "new", "n");
  ScanStats changed = scanner.Scan(&snap);
  EXPECT_EQ(changed.dirs_read, 1u);
  EXPECT_EQ(changed.dirs_reused, 3u);
  EXPECT_THAT(PathSet(snap), Contains(P("a/deep/new")));
}

TEST_F(AScannerOnATempDir, RemovesVanishedAndRenamedEntriesAndAddsNewOnes) {
  Scanner scanner = MakeScanner(root_);
  policy::Snapshot snap;
  (void)scanner.Scan(&snap);

  fs::remove(root_ / "a" / "one");
  fs::rename(root_ / "b" / "three", root_ / "b" / "four");
  fs::rename(root_ / "a" / "deep", root_ / "b" / "moved");
  WriteFile(root_ / "added", "+");
  const ScanStats stats = scanner.Scan(&snap);
  EXPECT_THAT(stats.errors, IsEmpty());

  const auto paths = PathSet(snap);
  EXPECT_THAT(paths, Not(Contains(P("a/one"))));
  EXPECT_THAT(paths, Not(Contains(P("b/three"))));
  EXPECT_THAT(paths, Not(Contains(P("a/deep/two"))));
  EXPECT_THAT(paths, Contains(P("b/four")));
  EXPECT_THAT(paths, Contains(P("b/moved/two")));
  EXPECT_THAT(paths, Contains(P("added")));
  EXPECT_EQ(stats.files, 4u);
}

TEST_F(AScannerOnATempDir, KeepsTelemetryOfRecordsThatSurviveARereadOfTheirDirectory) {
  Scanner scanner = MakeScanner(root_);
  policy::Snapshot snap;
  (void)scanner.Scan(&snap);
  for (size_t i = 0; i < snap.files.size(); ++i) snap.files[i].holders = 7;
  WriteFile(root_ / "b" / "sibling", "s");
  (void)scanner.Scan(&snap);
  const auto records = RecordsByPath(snap);
  EXPECT_EQ(records.at(P("b/three")).holders, 7);
  EXPECT_EQ(records.at(P("b/sibling")).holders, 0);
}

TEST_F(AScannerOnATempDir, KeepsTheNamesArenaAsSmallAsTheLiveNames) {
  Scanner scanner = MakeScanner(root_);
  policy::Snapshot snap;
  for (int i = 0; i < 20; ++i) {
    WriteFile(root_ / "b" / ("churn-" + std::to_string(i) + std::string(40, 'x')), "c");
    if (i > 0) fs::remove(root_ / "b" / ("churn-" + std::to_string(i - 1) + std::string(40, 'x')));
    (void)scanner.Scan(&snap);
    EXPECT_EQ(snap.names.size(), LiveNameBytes(snap));
  }
}

TEST_F(AScannerOnATempDir, ScansFullyWhenTheSnapshotWasNotTheOneItBuilt) {
  Scanner scanner = MakeScanner(root_);
  policy::Snapshot snap;
  (void)scanner.Scan(&snap);
  policy::Snapshot other;
  const ScanStats stats = scanner.Scan(&other);
  EXPECT_TRUE(stats.full);
  EXPECT_EQ(stats.dirs_read, 4u);
  EXPECT_EQ(stats.files, 4u);
}

TEST_F(AScannerOnATempDir, FallsBackToAFullRescanPeriodically) {
  ScanScope scope{root_.string(), 0, 0, 0};
  ScanLimits limits = TestLimits();
  limits.full_rescan_every = 3;
  Scanner scanner({scope}, nullptr, limits);
  policy::Snapshot snap;
  std::vector<bool> full;
  for (int i = 0; i < 7; ++i) full.push_back(scanner.Scan(&snap).full);
  EXPECT_THAT(full, ::testing::ElementsAre(true, false, false, true, false, false, true));
  scanner.RequestFullRescan();
  EXPECT_TRUE(scanner.Scan(&snap).full);
}

TEST_F(AScannerOnATempDir, StopsAddingRecordsAtTheLimit) {
  ScanScope scope{root_.string(), 0, 0, 0};
  ScanLimits limits = TestLimits();
  limits.max_records = 3;
  Scanner scanner({scope}, nullptr, limits);
  policy::Snapshot snap;
  const ScanStats stats = scanner.Scan(&snap);
  EXPECT_EQ(snap.files.size(), 3u);
  EXPECT_GT(stats.skipped_limit, 0u);
}

TEST_F(AScannerOnATempDir, ReportsAMissingScopeRootWithItsPathAndErrno) {
  ScanScope scope{(root_ / "missing").string(), 0, 0, 0};
  Scanner scanner({scope}, nullptr, TestLimits());
  policy::Snapshot snap;
  const ScanStats stats = scanner.Scan(&snap);
  ASSERT_EQ(stats.errors.size(), 1u);
  EXPECT_EQ(stats.errors[0].path, scope.path);
  EXPECT_EQ(stats.errors[0].err, ENOENT);
  EXPECT_TRUE(snap.files.empty());
}

TEST_F(AScannerOnATempDir, RefusesAScopeRootThatIsASymlink) {
  fs::create_directory_symlink(root_, tmp_.path() / "alias");
  ScanScope scope{(tmp_.path() / "alias").string(), 0, 0, 0};
  Scanner scanner({scope}, nullptr, TestLimits());
  policy::Snapshot snap;
  const ScanStats stats = scanner.Scan(&snap);
  ASSERT_EQ(stats.errors.size(), 1u);
  // O_DIRECTORY|O_NOFOLLOW on a symlink fails with ENOTDIR (the link is not a directory).
  EXPECT_EQ(stats.errors[0].err, ENOTDIR);
  EXPECT_TRUE(snap.files.empty());
}

TEST_F(AScannerOnATempDir, WalksANestedScopeOnlyAsItsOwnScope) {
  ScanScope outer{root_.string(), 1, 0, 0};
  ScanScope inner{P("a"), 2, 0, 0};
  Scanner scanner({outer, inner}, nullptr, TestLimits());
  policy::Snapshot snap;
  (void)scanner.Scan(&snap);
  const auto records = RecordsByPath(snap);
  EXPECT_EQ(records.at(P("a/one")).mount, 2);
  EXPECT_EQ(records.at(P("b/three")).mount, 1);
  EXPECT_EQ(snap.files.size(), 6u);  // "a" itself is the inner scope's root: no record
}

TEST_F(AScannerOnATempDir, SamplesFilesInTheSamePassWhenGivenASampler) {
  Scanner scanner = MakeScanner(root_);
  FileSampler sampler;
  policy::Snapshot snap;
  (void)scanner.Scan(&snap, ScanMode::kIncremental, &sampler);
  EXPECT_EQ(sampler.stats().sampled, 7u);  // four files, three directories
  for (const policy::FileRecord& rec : snap.files) {
    EXPECT_TRUE(rec.available & policy::kHaveSize);
    if (rec.kind == policy::FileKind::kRegular) {
      EXPECT_TRUE(rec.available & policy::kHaveCache) << snap.Name(rec);
    }
  }
  // A reused directory's files are sampled again through the directory fd.
  sampler.ResetStats();
  const ScanStats again = scanner.Scan(&snap, ScanMode::kIncremental, &sampler);
  EXPECT_EQ(again.dirs_read, 0u);
  EXPECT_EQ(sampler.stats().sampled, 7u);
}

}  // namespace
}  // namespace daxpolicy::files
