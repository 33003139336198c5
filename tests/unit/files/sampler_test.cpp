// SPDX-License-Identifier: Apache-2.0
#include "plugins/files/sampler.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "plugins/files/scanner.h"
#include "plugins/unique_fd.h"
#include "tests/support/test_support.h"
#include "tests/unit/files/files_test_util.h"

namespace daxpolicy::files {
namespace {

namespace fs = std::filesystem;
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

}  // namespace
}  // namespace daxpolicy::files
