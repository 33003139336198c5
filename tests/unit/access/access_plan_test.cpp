// SPDX-License-Identifier: Apache-2.0
// Plan choice from (fake) kernel offers, and counts -> policy figures.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <functional>
#include <string>

#include "plugins/access/access_source.h"
#include "plugins/access/access_tracer.h"
#include "policy/variables.h"

namespace daxpolicy::access {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

// Debian 12's 6.1: BTF, fentry, no mm_filemap_get_pages/fault/map_pages.
KernelOffer Debian61() {
  KernelOffer o;
  o.btf = true;
  o.tracepoints = {"filemap/mm_filemap_add_to_page_cache",
                   "xfs/xfs_file_buffered_read",
                   "xfs/xfs_file_dax_read",
                   "xfs/xfs_file_buffered_write",
                   "xfs/xfs_file_dax_write",
                   "fs_dax/dax_pte_fault_done",
                   "fs_dax/dax_pmd_fault_done",
                   "ext4/ext4_da_write_begin",
                   "ext4/ext4_write_begin"};
  o.functions = {"filemap_read", "dax_iomap_rw"};
  return o;
}

// This host's 6.18: every tracepoint, no fentry.
KernelOffer Host618() {
  KernelOffer o = Debian61();
  o.tracing_programs = false;
  o.tracepoints.insert(
      {"filemap/mm_filemap_get_pages", "filemap/mm_filemap_fault", "filemap/mm_filemap_map_pages"});
  return o;
}

bool Has(const Plan& p, const std::string& program) {
  return std::find(p.programs.begin(), p.programs.end(), program) != p.programs.end();
}

TEST(ChoosePlan, Debian61UsesFexitForBothModesOnEveryFilesystem) {
  Plan p = ChoosePlan(Debian61());
  EXPECT_EQ(p.strategy, Strategy::kFentry);
  EXPECT_TRUE(p.reads_xfs && p.reads_other && p.dax_reads && p.misses);
  EXPECT_TRUE(Has(p, "fexit_filemap_read") && Has(p, "fexit_dax_iomap_rw"));
  // DAX writes come from dax_iomap_rw: the xfs DAX write tracepoint would count them twice.
  EXPECT_FALSE(Has(p, "tp_xfs_dax_write"));
  EXPECT_FALSE(Has(p, "tp_xfs_buffered_read"));
  EXPECT_THAT(p.limits, Contains(HasSubstr("page-cache faults are not seen")));
  EXPECT_EQ(CoverageOf(p, false), "");
}

TEST(ChoosePlan, WithoutFentryTheTracepointsCoverXfsAndGetPagesTheRest) {
  Plan p = ChoosePlan(Host618());
  EXPECT_EQ(p.strategy, Strategy::kTracepoint);
  EXPECT_TRUE(Has(p, "tp_xfs_buffered_read") && Has(p, "tp_xfs_dax_read") &&
              Has(p, "tp_get_pages") && Has(p, "tp_xfs_dax_write") && Has(p, "tp_filemap_fault"));
  EXPECT_FALSE(Has(p, "fexit_filemap_read"));
  EXPECT_TRUE(p.reads_other);
  EXPECT_THAT(p.limits, Contains(HasSubstr("DAX files on ext4 are not seen")));
}

TEST(ChoosePlan, TracepointsCountInPerCpuSlotsExceptOnPreemptRtKernels) {
  EXPECT_TRUE(ChoosePlan(Host618()).slots);
  EXPECT_TRUE(ChoosePlan(Debian61()).slots);
  KernelOffer rt = Host618();
  rt.preempt_rt = true;
  Plan p = ChoosePlan(rt);
  EXPECT_EQ(p.strategy, Strategy::kTracepoint);
  EXPECT_FALSE(p.slots);
  EXPECT_FALSE(NarrowToAttached(p, [](const std::string&) { return true; }).slots);
}

TEST(ChoosePlan, A61KernelWithoutFentryCountsXfsOnlyAndSaysSo) {
  KernelOffer o = Debian61();
  o.tracing_programs = false;
  Plan p = ChoosePlan(o);
  EXPECT_EQ(p.strategy, Strategy::kTracepoint);
  EXPECT_FALSE(p.reads_other);
  EXPECT_EQ(CoverageOf(p, true), "");
  EXPECT_THAT(CoverageOf(p, false), HasSubstr("other than xfs are not seen"));
}

TEST(ChoosePlan, NoTracepointsAndNoFentryIsUnavailableWithTheReason) {
  KernelOffer o;
  o.btf = true;
  o.tracing_programs = false;
  Plan p = ChoosePlan(o);
  EXPECT_EQ(p.strategy, Strategy::kNone);
  EXPECT_THAT(p.unavailable, HasSubstr("no attach point for reads"));
  EXPECT_THAT(p.unavailable, HasSubstr("no btf_trace_ type"));
  o.btf = false;
  EXPECT_THAT(ChoosePlan(o).unavailable, HasSubstr("no BTF"));
}

TEST(ChoosePlan, WithoutTheAddTracepointThereIsNoHitRatio) {
  KernelOffer o = Host618();
  o.tracepoints.erase("filemap/mm_filemap_add_to_page_cache");
  Plan p = ChoosePlan(o);
  EXPECT_FALSE(p.misses);
  EXPECT_FALSE(Has(p, "tp_add_to_page_cache"));
  EXPECT_THAT(p.limits, Contains(HasSubstr("cache_hit_ratio")));
}

std::function<bool(const std::string&)> AllBut(const std::string& missing) {
  return [missing](const std::string& program) { return program != missing; };
}

TEST(NarrowToAttached, AProgramThatDidNotAttachTakesWhatItCountsOutOfThePlan) {
  const Plan full = ChoosePlan(Host618());
  ASSERT_TRUE(full.reads_xfs && full.reads_other && full.dax_reads && full.misses && full.faults);

  Plan p = NarrowToAttached(full, [](const std::string&) { return true; });
  EXPECT_EQ(p.programs, full.programs);
  EXPECT_EQ(p.limits, full.limits);
  EXPECT_TRUE(p.misses && p.reads_other);

  p = NarrowToAttached(full, AllBut("tp_add_to_page_cache"));
  EXPECT_FALSE(p.misses);
  EXPECT_FALSE(Has(p, "tp_add_to_page_cache"));
  EXPECT_THAT(p.limits, Contains(std::string(kMissesUnseen)));
  EXPECT_TRUE(p.reads_xfs && p.reads_other && p.dax_reads && p.faults);

  p = NarrowToAttached(full, AllBut("tp_get_pages"));
  EXPECT_FALSE(p.reads_other);
  EXPECT_TRUE(p.reads_xfs) << "xfs reads still come from xfs:xfs_file_buffered_read";
  EXPECT_EQ(CoverageOf(p, true), "");
  EXPECT_THAT(CoverageOf(p, false), HasSubstr("other than xfs are not seen"));

  p = NarrowToAttached(full, AllBut("tp_xfs_dax_read"));
  EXPECT_FALSE(p.dax_reads);
  EXPECT_THAT(p.limits, Contains(HasSubstr("read calls on DAX files are not seen")));

  p = NarrowToAttached(full, AllBut("tp_filemap_fault"));
  EXPECT_FALSE(p.faults);
  EXPECT_THAT(p.limits, Contains(HasSubstr("page-cache faults are not seen")));

  const Plan fentry = ChoosePlan(Debian61());
  p = NarrowToAttached(fentry, AllBut("fexit_dax_iomap_rw"));
  EXPECT_FALSE(p.dax_reads);
  EXPECT_TRUE(p.reads_xfs && p.reads_other && p.misses);
}

// A snapshot with one mount and three regular files (ino 10, 11, 12).
// Files of `size` bytes with inode numbers first.. on /srv/pmem (device 7:3), in the page cache.
policy::Snapshot FilesOnOneMount(uint64_t first, size_t count, uint64_t size) {
  policy::Snapshot s;
  s.mounts.push_back({makedev(7, 3), "/srv/pmem", -1, "", ""});
  s.dir_paths = {"/srv/pmem"};
  for (uint64_t ino = first; ino < first + count; ++ino) {
    policy::FileRecord f;
    f.ino = ino;
    f.size = size;
    f.available = policy::kHaveSize | policy::kHaveEffective;
    f.effective = policy::DaxState::kPageCache;
    s.files.push_back(f);
  }
  return s;
}

policy::Snapshot ThreeFiles() {
  policy::Snapshot s = FilesOnOneMount(10, 3, 4 << 20);
  s.files[2].effective = policy::DaxState::kDax;
  return s;
}

std::optional<double> Read(const policy::Snapshot& s, size_t i, policy::Var v, std::string* why) {
  policy::VarContext ctx{&s, &s.files[i], 10'000'000'000};
  std::string_view w;
  auto r = policy::ReadVar(v, ctx, &w);
  *why = std::string(w);
  return r;
}

TEST(FillSnapshot, CountsBecomeRatesRatiosAndReuseOverTheWindow) {
  policy::Snapshot s = ThreeFiles();
  AccessCounts c;
  const uint32_t dev = KernelDev(makedev(7, 3));
  c.files[{dev, 10}] = {
      .read_bytes = 20 << 20, .pc_pages = 5120, .miss_pages = 256, .write_bytes = 1 << 20};
  c.files[{dev, 12}] = {.read_bytes = 8 << 20, .pc_pages = 0, .miss_pages = 0, .write_bytes = 0};
  c.files[{dev, 99}] = {
      .read_bytes = 4 << 20, .pc_pages = 1024, .miss_pages = 1024, .write_bytes = 0};
  FillSnapshot(c, 5'000'000'000, true, {""}, &s);
  std::string why;
  EXPECT_NEAR(*Read(s, 0, policy::Var::kFileReadBytesRate, &why), (20 << 20) / 5.0, 1.0);
  EXPECT_NEAR(*Read(s, 0, policy::Var::kFileWriteBytesRate, &why), (1 << 20) / 5.0, 1.0);
  EXPECT_NEAR(*Read(s, 0, policy::Var::kFileCacheHitRatio, &why), 0.95, 1e-6);
  // Reuse uses the window the counts cover (5 s), not the configured interval (10 s).
  EXPECT_NEAR(*Read(s, 0, policy::Var::kFileReuse, &why), 5.0, 1e-6);
  // Idle: 0 B/s, no hit ratio.
  EXPECT_EQ(*Read(s, 1, policy::Var::kFileReadBytesRate, &why), 0.0);
  EXPECT_FALSE(Read(s, 1, policy::Var::kFileCacheHitRatio, &why));
  EXPECT_THAT(why, HasSubstr("no page-cache reads"));
  // DAX: a read rate, never a hit ratio.
  EXPECT_NEAR(*Read(s, 2, policy::Var::kFileReadBytesRate, &why), (8 << 20) / 5.0, 1.0);
  EXPECT_FALSE(Read(s, 2, policy::Var::kFileCacheHitRatio, &why));
  EXPECT_THAT(why, HasSubstr("page-cache mode"));
  // The system ratio counts every page read on the watched filesystems (ino 99 too).
  EXPECT_NEAR(*Read(s, 0, policy::Var::kSystemCacheHitRatio, &why), 1.0 - 1280.0 / 6144.0, 1e-6);
}

TEST(FillSnapshot, MoreMissesThanReadPagesClampToZero) {
  // Readahead adds pages in one window that are read in the next.
  policy::Snapshot s = ThreeFiles();
  AccessCounts c;
  c.files[{KernelDev(makedev(7, 3)), 10}] = {
      .read_bytes = 1 << 20, .pc_pages = 256, .miss_pages = 512, .write_bytes = 0};
  FillSnapshot(c, 1'000'000'000, true, {""}, &s);
  std::string why;
  EXPECT_EQ(*Read(s, 0, policy::Var::kFileCacheHitRatio, &why), 0.0);
}

TEST(FillSnapshot, AnUncoveredMountHasNoFiguresAndSaysWhy) {
  policy::Snapshot s = ThreeFiles();
  FillSnapshot({}, 1'000'000'000, true, {"access tracing: reads on ext4 are not seen"}, &s);
  std::string why;
  EXPECT_FALSE(Read(s, 0, policy::Var::kFileReadBytesRate, &why));
  EXPECT_THAT(why, HasSubstr("reads on ext4 are not seen"));
}

TEST(WithholdSnapshot, MarksTheCoveredFilesWithoutFiguresSoTheFirstWindowRewritesOnlyReadFiles) {
  // Four chunks of records on one covered mount: the first cycle of tracing
  // has no window yet, the second has figures for one file.
  policy::Snapshot s = FilesOnOneMount(1, 4 * policy::FileTable::kChunkRecords, 1 << 20);
  WithholdSnapshot("access tracing started this cycle", {""}, &s);
  std::string why;
  EXPECT_FALSE(Read(s, 0, policy::Var::kFileReadBytesRate, &why));
  EXPECT_THAT(why, HasSubstr("started this cycle"));
  EXPECT_FALSE(Read(s, 0, policy::Var::kFileReuse, &why));
  EXPECT_TRUE(s.system.access_withheld);

  // The published view keeps the first cycle's table while the next is built.
  const policy::FileTable published = s.files;
  AccessCounts c;
  c.files[{KernelDev(makedev(7, 3)), 3}] = {
      .read_bytes = 2 << 20, .pc_pages = 512, .miss_pages = 0, .write_bytes = 0};
  FillSnapshot(c, 2'000'000'000, true, {""}, &s);
  EXPECT_FALSE(s.system.access_withheld);
  EXPECT_EQ(s.files.SharedChunks(published), s.files.chunk_count() - 1);
  EXPECT_NEAR(*Read(s, 2, policy::Var::kFileReadBytesRate, &why), (2 << 20) / 2.0, 1.0);
  ASSERT_TRUE(Read(s, 1, policy::Var::kFileReadBytesRate, &why));
  EXPECT_EQ(*Read(s, 1, policy::Var::kFileReadBytesRate, &why), 0.0);

  // Counts lost again: no figures, and the marks stay.
  const policy::FileTable before = s.files;
  WithholdSnapshot("the access counting map overflowed", {""}, &s);
  EXPECT_FALSE(Read(s, 1, policy::Var::kFileReadBytesRate, &why));
  EXPECT_THAT(why, HasSubstr("overflowed"));
  EXPECT_EQ(s.files.SharedChunks(before), s.files.chunk_count() - 1);
}

TEST(AccessSource, AKernelWithoutTheAttachPointsLeavesEverythingUnavailable) {
  AccessSource::Options o;
  o.probe = [] {
    KernelOffer offer;
    offer.btf = true;
    offer.tracing_programs = false;  // no fentry, and none of the tracepoints
    return offer;
  };
  o.is_xfs = [](const std::string&) { return true; };
  AccessSource source(o);
  policy::Snapshot s = ThreeFiles();
  s.files[0].available |= policy::kHaveAccess;  // stale bits from a previous source are cleared
  uint64_t errors = 0;
  for (int64_t t : {int64_t{0}, int64_t{10'000'000'000}}) source.Sample(&s, t, &errors);
  EXPECT_EQ(errors, 0u);
  EXPECT_THAT(source.Degraded(), HasSubstr("access tracing is unavailable"));
  EXPECT_THAT(source.Degraded(), HasSubstr("no attach point for reads"));
  std::string why;
  for (policy::Var v :
       {policy::Var::kFileReadBytesRate, policy::Var::kFileReuse, policy::Var::kFileCacheHitRatio,
        policy::Var::kFileWriteBytesRate, policy::Var::kSystemCacheHitRatio}) {
    EXPECT_FALSE(Read(s, 0, v, &why)) << policy::InfoOf(v).name;
    EXPECT_THAT(why, HasSubstr("no attach point")) << policy::InfoOf(v).name;
  }
}

}  // namespace
}  // namespace daxpolicy::access
