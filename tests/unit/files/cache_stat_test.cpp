// SPDX-License-Identifier: Apache-2.0
#include "plugins/files/cache_stat.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "plugins/unique_fd.h"
#include "tests/support/test_support.h"

namespace daxpolicy::files {
namespace {

using ::daxpolicy::testing::TempDir;
using ::daxpolicy::testing::WriteFile;

constexpr uint64_t kPages = 16;
// cachestat(2) on every architecture daxpolicy builds for (the generic table).
constexpr long kCachestatNr = 451;

class ACacheProbe : public ::testing::Test {
 protected:
  void SetUp() override {
    page_ = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    path_ = (tmp_.path() / "data").string();
    WriteFile(path_, std::string(kPages * page_, 'd'));
    fd_.Reset(open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd_.valid());
  }
  // Writes back and drops the file's pages, as a fresh file on a cold cache.
  void DropCache() {
    UniqueFd w(open(path_.c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_EQ(fdatasync(w.get()), 0);
    ASSERT_EQ(posix_fadvise(fd_.get(), 0, 0, POSIX_FADV_DONTNEED), 0);
  }
  void ReadAll() {
    std::string buf(kPages * page_, '\0');
    ASSERT_EQ(pread(fd_.get(), buf.data(), buf.size(), 0), static_cast<ssize_t>(buf.size()));
  }

  TempDir tmp_;
  std::string path_;
  UniqueFd fd_;
  uint64_t page_ = 4096;
};

TEST_F(ACacheProbe, CountsEveryPageOfAFileThatWasReadAndNoneAfterADrop) {
  DropCache();
  Result<CacheCounts> cold = CachestatFd(fd_.get());
  ASSERT_TRUE(cold.ok()) << cold.error().message;
  EXPECT_EQ(cold->cache, 0u);
  EXPECT_TRUE(cold->have_evicted);

  ReadAll();
  Result<CacheCounts> warm = CachestatFd(fd_.get());
  ASSERT_TRUE(warm.ok());
  EXPECT_EQ(warm->cache, kPages);
  EXPECT_EQ(warm->dirty, 0u);
}

TEST_F(ACacheProbe, SeesDirtyPagesBeforeWriteback) {
  DropCache();
  UniqueFd w(open(path_.c_str(), O_WRONLY | O_CLOEXEC));
  ASSERT_EQ(pwrite(w.get(), "zz", 2, 0), 2);
  Result<CacheCounts> counts = CachestatFd(fd_.get());
  ASSERT_TRUE(counts.ok());
  EXPECT_GE(counts->cache, 1u);
  EXPECT_GE(counts->dirty + counts->writeback, 1u);
}

TEST_F(ACacheProbe, AgreesWithMincoreOnResidentAndDroppedPages) {
  ReadAll();
  Result<CacheCounts> warm = MincoreFd(fd_.get(), kPages * page_, page_, true);
  ASSERT_TRUE(warm.ok()) << warm.error().message;
  EXPECT_EQ(warm->cache, kPages);
  EXPECT_FALSE(warm->have_evicted);
  EXPECT_FALSE(warm->have_dirty);

  DropCache();
  Result<CacheCounts> cold = MincoreFd(fd_.get(), kPages * page_, page_, true);
  ASSERT_TRUE(cold.ok());
  EXPECT_EQ(cold->cache, 0u);
}

TEST_F(ACacheProbe, DistrustsAnAllResidentMincoreAnswerWithoutOwnerRights) {
  ReadAll();
  Result<CacheCounts> counts = MincoreFd(fd_.get(), kPages * page_, page_, false);
  ASSERT_FALSE(counts.ok());
  EXPECT_EQ(counts.error().code, EACCES);
}

TEST_F(ACacheProbe, AnswersZeroForAnEmptyFileWithoutMapping) {
  WriteFile(tmp_.path() / "empty", "");
  UniqueFd fd(open((tmp_.path() / "empty").c_str(), O_RDONLY | O_CLOEXEC));
  Result<CacheCounts> counts = MincoreFd(fd.get(), 0, page_, true);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->cache, 0u);
}

TEST_F(ACacheProbe, UsesMincoreOnceCachestatIsKnownToBeMissing) {
  CacheProbe probe;
  EXPECT_FALSE(probe.using_mincore());
  ReadAll();
  Result<CacheCounts> via_cachestat = probe.Probe(fd_.get(), kPages * page_, true);
  ASSERT_TRUE(via_cachestat.ok());
  EXPECT_TRUE(via_cachestat->have_evicted);

  probe.ForceMincoreForTest();
  EXPECT_TRUE(probe.using_mincore());
  Result<CacheCounts> via_mincore = probe.Probe(fd_.get(), kPages * page_, true);
  ASSERT_TRUE(via_mincore.ok());
  EXPECT_FALSE(via_mincore->have_evicted);
  EXPECT_EQ(via_mincore->cache, via_cachestat->cache);
}

// A seccomp filter that does not know cachestat answers it with its errno:
// ENOSYS from systemd 255 on, EPERM (SystemCallErrorNumber=) from systemd 252
// as in Debian 12. Either way the probe must go on with mincore.
class ACacheProbeUnderSeccomp : public ACacheProbe, public ::testing::WithParamInterface<int> {};

TEST_P(ACacheProbeUnderSeccomp, FallsBackToMincoreWhenTheFilterRefusesCachestat) {
  ReadAll();
  ::daxpolicy::testing::InChild([&] {
    if (!::daxpolicy::testing::RefuseSyscall(kCachestatNr, GetParam())) _exit(3);
    if (CachestatFd(fd_.get()).error().code != GetParam()) _exit(4);
    CacheProbe probe;
    Result<CacheCounts> counts = probe.Probe(fd_.get(), kPages * page_, true);
    if (!counts.ok()) _exit(5);
    if (counts->cache != kPages || counts->have_evicted) _exit(6);
    if (!probe.using_mincore()) _exit(7);
  });
}

INSTANTIATE_TEST_SUITE_P(Errno, ACacheProbeUnderSeccomp, ::testing::Values(ENOSYS, EPERM),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(info.param == ENOSYS ? "ENOSYS" : "EPERM");
                         });

// An EPERM that mincore cannot get around either (no rights to see the page
// cache) is reported, and cachestat is still tried for the next file.
TEST_F(ACacheProbe, KeepsTryingCachestatAfterAnEpermThatMincoreCannotAnswer) {
  ReadAll();
  ::daxpolicy::testing::InChild([&] {
    if (!::daxpolicy::testing::RefuseSyscall(kCachestatNr, EPERM)) _exit(3);
    CacheProbe probe;
    Result<CacheCounts> counts = probe.Probe(fd_.get(), kPages * page_, false);
    if (counts.ok() || counts.error().code != EACCES) _exit(4);
    if (probe.using_mincore()) _exit(5);
  });
}

TEST(CachestatFd, ReportsABadFileDescriptorAsAnErrnoError) {
  Result<CacheCounts> counts = CachestatFd(-1);
  ASSERT_FALSE(counts.ok());
  EXPECT_EQ(counts.error().code, EBADF);
}

}  // namespace
}  // namespace daxpolicy::files
