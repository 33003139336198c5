// SPDX-License-Identifier: Apache-2.0
// The access BPF program on this kernel, with a loop-mounted xfs under scope:
// what a workload did must come back as the figures the policy reads.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "plugins/access/access_source.h"
#include "plugins/access/access_tracer.h"
#include "plugins/unique_fd.h"
#include "policy/variables.h"
#include "tests/support/test_support.h"

namespace daxpolicy::access {
namespace {

namespace fs = std::filesystem;
using ::daxpolicy::testing::FsType;
using ::daxpolicy::testing::IsRoot;
using ::daxpolicy::testing::LoopFs;

constexpr uint64_t kMiB = 1024 * 1024;
constexpr int64_t kWindowNs = 10'000'000'000;  // the test's clock, passed in

void MakeFile(const fs::path& path, uint64_t size) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644));
  ASSERT_GE(fd.get(), 0) << path << ": " << std::strerror(errno);
  std::vector<char> buf(kMiB, 'x');
  for (uint64_t done = 0; done < size; done += buf.size()) {
    ASSERT_EQ(write(fd.get(), buf.data(), buf.size()), static_cast<ssize_t>(buf.size()));
  }
  ASSERT_EQ(fsync(fd.get()), 0);
}

// Reads the whole file `passes` times with `chunk`-sized read(2) calls;
// `drop` evicts its pages first (posix_fadvise DONTNEED) on every pass.
uint64_t ReadFile(const fs::path& path, int passes, size_t chunk, bool drop) {
  UniqueFd fd(open(path.c_str(), O_RDONLY));
  EXPECT_GE(fd.get(), 0) << path;
  std::vector<char> buf(chunk);
  uint64_t total = 0;
  for (int p = 0; p < passes; ++p) {
    if (drop) {
      EXPECT_EQ(posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED), 0);
    }
    EXPECT_EQ(lseek(fd.get(), 0, SEEK_SET), 0);
    ssize_t n = 0;
    while ((n = read(fd.get(), buf.data(), buf.size())) > 0) total += static_cast<uint64_t>(n);
  }
  return total;
}

class AccessOnXfs : public ::testing::Test {
 protected:
  void SetUp() override {
    DAXPOLICY_REQUIRE(IsRoot(), "root for loop mounts and BPF");
    const std::optional<std::string> why = LoopFs::Unavailable();
    DAXPOLICY_REQUIRE(!why.has_value(), why.value_or(""));
    plan_ = ChoosePlan(ProbeKernel());
    DAXPOLICY_REQUIRE(plan_.strategy != Strategy::kNone, "access tracing: " + plan_.unavailable);
    std::string error;
    fs_ = LoopFs::Create(FsType::kXfs, &error, 300);
    ASSERT_NE(fs_, nullptr) << error;
    other_ = LoopFs::Create(FsType::kXfs, &error, 300);
    ASSERT_NE(other_, nullptr) << error;
  }

  // A snapshot of the scope's files, as the scanner would fill it.
  policy::Snapshot SnapshotOf(const std::vector<fs::path>& files) const {
    policy::Snapshot snap;
    struct stat st {};
    EXPECT_EQ(stat(fs_->mount_point().c_str(), &st), 0);
    snap.mounts.push_back({st.st_dev, fs_->mount_point().string(), -1, "", ""});
    snap.dir_paths.push_back(fs_->mount_point().string());
    for (const fs::path& p : files) {
      EXPECT_EQ(stat(p.c_str(), &st), 0) << p;
      policy::FileRecord f;
      f.ino = st.st_ino;
      f.size = static_cast<uint64_t>(st.st_size);
      f.available = policy::kHaveSize | policy::kHaveEffective;
      f.effective = policy::DaxState::kPageCache;
      f.name_offset = static_cast<uint32_t>(snap.names.size());
      f.name_length = static_cast<uint16_t>(p.filename().string().size());
      snap.names += p.filename().string();
      snap.files.push_back(f);
    }
    return snap;
  }

  std::optional<double> Var(const policy::Snapshot& snap, size_t file, policy::Var var) {
    policy::VarContext ctx{&snap, &snap.files[file], kWindowNs};
    std::string_view why;
    auto v = policy::ReadVar(var, ctx, &why);
    if (!v) last_why_ = std::string(why);
    return v;
  }

  Plan plan_;
  std::unique_ptr<LoopFs> fs_;
  std::unique_ptr<LoopFs> other_;
  std::string last_why_;
};

// Tolerances: bytes are exact for reads through the read path (the xfs
// tracepoints clamp to the file size; fexit sees what was returned). Hit
// ratios: a cached re-read may still miss a few pages (>= 0.95); a stream with
// DONTNEED before each pass misses nearly every page (<= 0.05).
TEST_F(AccessOnXfs, ReReadStreamedIdleAndWrittenFilesGiveTheirFigures) {
  const fs::path hot = fs_->mount_point() / "hot.tbl";
  const fs::path stream = fs_->mount_point() / "stream.log";
  const fs::path idle = fs_->mount_point() / "idle.dat";
  const fs::path written = fs_->mount_point() / "written.dat";
  MakeFile(hot, 4 * kMiB);
  MakeFile(stream, 16 * kMiB);
  MakeFile(idle, 1 * kMiB);
  MakeFile(written, 0);
  ReadFile(hot, 1, kMiB, true);  // now cached

  AccessSource source({});
  policy::Snapshot snap = SnapshotOf({hot, stream, idle, written});
  uint64_t errors = 0;
  source.Sample(&snap, 1'000'000'000, &errors);
  ASSERT_EQ(source.Degraded().find("unavailable"), std::string::npos) << source.Degraded();
  EXPECT_FALSE(Var(snap, 0, policy::Var::kFileReadBytesRate)) << "no window yet";

  const uint64_t hot_bytes = ReadFile(hot, 5, 64 * 1024, false);
  const uint64_t stream_bytes = ReadFile(stream, 2, kMiB, true);
  {
    UniqueFd fd(open(written.c_str(), O_WRONLY));
    std::vector<char> buf(kMiB, 'y');
    ASSERT_EQ(write(fd.get(), buf.data(), buf.size()), static_cast<ssize_t>(buf.size()));
  }
  ASSERT_EQ(hot_bytes, 20 * kMiB);
  ASSERT_EQ(stream_bytes, 32 * kMiB);

  snap = SnapshotOf({hot, stream, idle, written});
  source.Sample(&snap, 1'000'000'000 + kWindowNs, &errors);
  EXPECT_EQ(errors, 0u);
  EXPECT_EQ(snap.system.access_window_ns, kWindowNs);

  const double seconds = kWindowNs / 1e9;
  auto rate = [&](size_t i) { return Var(snap, i, policy::Var::kFileReadBytesRate).value_or(-1); };
  EXPECT_NEAR(rate(0), hot_bytes / seconds, hot_bytes / seconds * 0.01) << plan_.programs.size();
  EXPECT_NEAR(Var(snap, 0, policy::Var::kFileReuse).value_or(-1), 5.0, 0.05);
  EXPECT_GE(Var(snap, 0, policy::Var::kFileCacheHitRatio).value_or(-1), 0.95) << last_why_;

  EXPECT_NEAR(rate(1), stream_bytes / seconds, stream_bytes / seconds * 0.01);
  EXPECT_NEAR(Var(snap, 1, policy::Var::kFileReuse).value_or(-1), 2.0, 0.02);
  EXPECT_LE(Var(snap, 1, policy::Var::kFileCacheHitRatio).value_or(2), 0.05) << last_why_;

  EXPECT_EQ(rate(2), 0.0) << last_why_;
  EXPECT_FALSE(Var(snap, 2, policy::Var::kFileCacheHitRatio)) << "idle: no reads, no ratio";

  EXPECT_EQ(rate(3), 0.0);
  EXPECT_NEAR(Var(snap, 3, policy::Var::kFileWriteBytesRate).value_or(-1), kMiB / seconds,
              kMiB / seconds * 0.01);

  // Everything read was: 4 MiB hot pages, 20 MiB... the streamed misses dominate.
  std::string_view why;
  policy::VarContext ctx{&snap, &snap.files[0], kWindowNs};
  auto sys = policy::ReadVar(policy::Var::kSystemCacheHitRatio, ctx, &why);
  ASSERT_TRUE(sys) << why;
  // hits: 20 MiB of hot pages; misses: 32 MiB of streamed pages (of 52 MiB read).
  EXPECT_NEAR(*sys, 20.0 / 52.0, 0.05);

  // The next window without reads: 0 B/s everywhere.
  snap = SnapshotOf({hot, stream, idle, written});
  source.Sample(&snap, 1'000'000'000 + 2 * kWindowNs, &errors);
  EXPECT_EQ(rate(0), 0.0);
  EXPECT_EQ(rate(1), 0.0);
}

TEST_F(AccessOnXfs, FilesOutsideTheWatchedDevicesAreNotCounted) {
  const fs::path inside = fs_->mount_point() / "inside";
  const fs::path outside = other_->mount_point() / "outside";
  MakeFile(inside, kMiB);
  MakeFile(outside, 4 * kMiB);
  std::string error;
  auto tracer = AccessTracer::StartBest(ProbeKernel(), {}, &plan_);
  ASSERT_NE(tracer, nullptr) << plan_.unavailable;
  struct stat in_st {};
  struct stat out_st {};
  ASSERT_EQ(stat(inside.c_str(), &in_st), 0);
  ASSERT_EQ(stat(outside.c_str(), &out_st), 0);
  ASSERT_TRUE(tracer->SetDevices({{in_st.st_dev, true}}, &error)) << error;
  AccessCounts counts;
  ASSERT_TRUE(tracer->Drain(&counts, &error)) << error;

  EXPECT_EQ(ReadFile(outside, 10, kMiB, true), 40 * kMiB);
  EXPECT_EQ(ReadFile(inside, 1, kMiB, false), kMiB);
  ASSERT_TRUE(tracer->Drain(&counts, &error)) << error;
  for (const auto& [key, c] : counts.files) {
    EXPECT_EQ(key.dev, KernelDev(in_st.st_dev)) << "counted a file on another device";
  }
  auto it = counts.files.find(FileKey{KernelDev(in_st.st_dev), in_st.st_ino});
  ASSERT_NE(it, counts.files.end());
  EXPECT_EQ(it->second.read_bytes, kMiB);
}

// The unit's system-call filter has no perf_event_open (systemd answers it with
// EPERM): every program must attach by bpf() alone. Run in a child whose
// seccomp filter does the same; its exit code names the first check that failed
// and its stderr the programs that did not attach.
bool RefusePerfEventOpen() {
  // Without the filter a null attribute gives EFAULT.
  return ::daxpolicy::testing::RefuseSyscall(SYS_perf_event_open, EPERM) &&
         syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0) == -1 && errno == EPERM;
}

int AttachWithoutPerfEventOpen(dev_t xfs_dev) {
  if (!RefusePerfEventOpen()) return 10;
  const KernelOffer offer = ProbeKernel();
  Plan plan;
  std::unique_ptr<AccessTracer> tracer = AccessTracer::StartBest(offer, {}, &plan);
  if (tracer == nullptr) {
    std::fprintf(stderr, "%s\n", plan.unavailable.c_str());
    return 1;
  }
  for (const std::string& failure : tracer->attach_failures()) {
    std::fprintf(stderr, "%s\n", failure.c_str());
  }
  if (!tracer->attach_failures().empty()) return 2;
  // Everything the kernel offers for the chosen strategy attached.
  const Plan wanted = ChoosePlan(offer);
  if (plan.strategy == wanted.strategy && plan.programs != wanted.programs) return 3;
  // Watching a filesystem attaches the programs detached while nothing was watched.
  std::string error;
  if (!tracer->SetDevices({{xfs_dev, true}}, &error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 4;
  }
  return 0;
}

TEST_F(AccessOnXfs, EveryProgramAttachesWithoutPerfEventOpen) {
  struct stat st {};
  ASSERT_EQ(stat(fs_->mount_point().c_str(), &st), 0);
  EXPECT_EXIT(std::exit(AttachWithoutPerfEventOpen(st.st_dev)), ::testing::ExitedWithCode(0), "");
}

// Reads through a mapping enter the kernel as page-cache faults (the fault and
// map_pages tracepoints, Linux 6.12+).
TEST_F(AccessOnXfs, MappedReadsAreCounted) {
  DAXPOLICY_REQUIRE(plan_.faults, "the tracepoint filemap:mm_filemap_fault (Linux 6.12+)");
  std::string error;
  const fs::path mapped = fs_->mount_point() / "mapped";
  MakeFile(mapped, 4 * kMiB);
  ReadFile(mapped, 1, kMiB, false);  // cached: its pages are hits
  auto tracer = AccessTracer::StartBest(ProbeKernel(), {}, &plan_);
  ASSERT_NE(tracer, nullptr) << plan_.unavailable;
  struct stat st {};
  ASSERT_EQ(stat(mapped.c_str(), &st), 0);
  ASSERT_TRUE(tracer->SetDevices({{st.st_dev, true}}, &error)) << error;
  AccessCounts counts;
  ASSERT_TRUE(tracer->Drain(&counts, &error)) << error;
  {
    UniqueFd fd(open(mapped.c_str(), O_RDONLY));
    ASSERT_GE(fd.get(), 0);
    void* map = mmap(nullptr, 4 * kMiB, PROT_READ, MAP_SHARED, fd.get(), 0);
    ASSERT_NE(map, MAP_FAILED);
    uint64_t sum = 0;
    for (uint64_t off = 0; off < 4 * kMiB; off += 4096) {
      sum += static_cast<volatile const char*>(map)[off];
    }
    EXPECT_EQ(sum, 4 * kMiB / 4096 * 'x');
    munmap(map, 4 * kMiB);
  }
  ASSERT_TRUE(tracer->Drain(&counts, &error)) << error;
  auto it = counts.files.find(FileKey{KernelDev(st.st_dev), st.st_ino});
  ASSERT_NE(it, counts.files.end());
  // Pages mapped by a fault or its fault-around count, each once. Not all of them
  // are reported: on Linux 6.18 xfs (large folios) 512 KiB of the 4 MiB, a limit
  // daxpolicy.yaml(5) states.
  EXPECT_GT(it->second.read_bytes, 0u);
  EXPECT_LE(it->second.read_bytes, 4 * kMiB);
  EXPECT_EQ(it->second.read_bytes, it->second.pc_pages * 4096);
  EXPECT_EQ(it->second.miss_pages, 0u);
}

// Writes on ext4 come from its write_begin tracepoints; the pages they add are
// not misses.
TEST_F(AccessOnXfs, Ext4WritesAreCountedAndAddNoMisses) {
  std::string error;
  auto ext4 = LoopFs::Create(FsType::kExt4, &error, 300);
  ASSERT_NE(ext4, nullptr) << error;
  auto tracer = AccessTracer::StartBest(ProbeKernel(), {}, &plan_);
  ASSERT_NE(tracer, nullptr) << plan_.unavailable;
  DAXPOLICY_REQUIRE(tracer->Attached("tp_ext4_da_write_begin"), "ext4:ext4_da_write_begin");
  const fs::path written = ext4->mount_point() / "written";
  struct stat ext4_st {};
  ASSERT_EQ(stat(ext4->mount_point().c_str(), &ext4_st), 0);
  ASSERT_TRUE(tracer->SetDevices({{ext4_st.st_dev, false}}, &error)) << error;
  AccessCounts counts;
  ASSERT_TRUE(tracer->Drain(&counts, &error)) << error;
  MakeFile(written, kMiB);
  ASSERT_TRUE(tracer->Drain(&counts, &error)) << error;
  struct stat st {};
  ASSERT_EQ(stat(written.c_str(), &st), 0);
  auto it = counts.files.find(FileKey{KernelDev(st.st_dev), st.st_ino});
  ASSERT_NE(it, counts.files.end());
  EXPECT_EQ(it->second.write_bytes, kMiB);
  EXPECT_EQ(it->second.miss_pages, 0u) << "pages added by a write are not misses";
}

// Pages a task adds by writing a file are not misses; once it reads the file
// again, the pages its reads add are.
TEST_F(AccessOnXfs, ReadsAfterAWriteCountTheirMisses) {
  DAXPOLICY_REQUIRE(plan_.misses, "the tracepoint filemap:mm_filemap_add_to_page_cache");
  const fs::path file = fs_->mount_point() / "rewritten";
  MakeFile(file, 0);
  std::string error;
  auto tracer = AccessTracer::StartBest(ProbeKernel(), {}, &plan_);
  ASSERT_NE(tracer, nullptr) << plan_.unavailable;
  struct stat st {};
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  ASSERT_TRUE(tracer->SetDevices({{st.st_dev, true}}, &error)) << error;
  AccessCounts counts;
  ASSERT_TRUE(tracer->Drain(&counts, &error)) << error;

  MakeFile(file, 4 * kMiB);  // this task writes: 4 MiB of pages added, no miss
  ASSERT_TRUE(tracer->Drain(&counts, &error)) << error;
  auto it = counts.files.find(FileKey{KernelDev(st.st_dev), st.st_ino});
  ASSERT_NE(it, counts.files.end());
  EXPECT_EQ(it->second.write_bytes, 4 * kMiB);
  EXPECT_EQ(it->second.miss_pages, 0u);

  EXPECT_EQ(ReadFile(file, 1, kMiB, true), 4 * kMiB);  // dropped first: every page a miss
  ASSERT_TRUE(tracer->Drain(&counts, &error)) << error;
  it = counts.files.find(FileKey{KernelDev(st.st_dev), st.st_ino});
  ASSERT_NE(it, counts.files.end());
  EXPECT_EQ(it->second.read_bytes, 4 * kMiB);
  EXPECT_GE(it->second.miss_pages, 4 * kMiB / 4096 * 95 / 100);
}

// The tracepoint strategy (the one of kernels without fentry, forced here on
// those with it) counts the same bytes: its per-read programs are tp_btf, on
// the xfs module's BTF where xfs is a module (Debian 12's 6.1).
TEST_F(AccessOnXfs, TheTracepointStrategyCountsTheSameReads) {
  KernelOffer offer = ProbeKernel();
  offer.tracing_programs = false;
  DAXPOLICY_REQUIRE(ChoosePlan(offer).strategy == Strategy::kTracepoint,
                    "xfs:xfs_file_buffered_read or filemap:mm_filemap_get_pages");
  const fs::path file = fs_->mount_point() / "read";
  MakeFile(file, 4 * kMiB);
  std::string error;
  auto tracer = AccessTracer::StartBest(offer, {}, &plan_);
  ASSERT_NE(tracer, nullptr) << plan_.unavailable;
  EXPECT_TRUE(tracer->attach_failures().empty()) << tracer->attach_failures().front();
  struct stat st {};
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  ASSERT_TRUE(tracer->SetDevices({{st.st_dev, true}}, &error)) << error;
  AccessCounts counts;
  ASSERT_TRUE(tracer->Drain(&counts, &error)) << error;
  EXPECT_EQ(ReadFile(file, 3, 64 * 1024, false), 12 * kMiB);
  ASSERT_TRUE(tracer->Drain(&counts, &error)) << error;
  auto it = counts.files.find(FileKey{KernelDev(st.st_dev), st.st_ino});
  ASSERT_NE(it, counts.files.end());
  EXPECT_EQ(it->second.read_bytes, 12 * kMiB);
  EXPECT_EQ(it->second.pc_pages, 12 * kMiB / 4096);
}

// Each CPU holds the counts of the file it counted last in front of the
// counting map: files read in turn move them into the map at every change, and
// the file each CPU read last is drained from its slot. Drains after that find
// only what was read since (no count lost, none counted twice). The same
// holds with the slots off (as on PREEMPT_RT kernels), every count in the map.
class OnTwoCpus {
 public:
  OnTwoCpus() {
    if (sched_getaffinity(0, sizeof saved_, &saved_) != 0) return;
    for (int c = 0; c < CPU_SETSIZE && cpus_.size() < 2; ++c)
      if (CPU_ISSET(c, &saved_)) cpus_.push_back(c);
  }
  ~OnTwoCpus() { sched_setaffinity(0, sizeof saved_, &saved_); }
  bool ok() const { return cpus_.size() == 2; }
  bool Pin(size_t which) const {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpus_[which], &one);
    return sched_setaffinity(0, sizeof one, &one) == 0;
  }

 private:
  cpu_set_t saved_{};
  std::vector<int> cpus_;
};

class AccessSlots : public AccessOnXfs, public ::testing::WithParamInterface<bool> {};

TEST_P(AccessSlots, FilesReadInTurnOnTwoCpusAreCountedExactlyOnce) {
  KernelOffer offer = ProbeKernel();
  offer.tracing_programs = false;
  offer.preempt_rt = !GetParam();
  DAXPOLICY_REQUIRE(ChoosePlan(offer).strategy == Strategy::kTracepoint,
                    "xfs:xfs_file_buffered_read or filemap:mm_filemap_get_pages");
  OnTwoCpus cpus;
  DAXPOLICY_REQUIRE(cpus.ok(), "two CPUs this process may run on");
  const fs::path a = fs_->mount_point() / "a";
  const fs::path b = fs_->mount_point() / "b";
  MakeFile(a, kMiB);
  MakeFile(b, kMiB);
  std::string error;
  auto tracer = AccessTracer::StartBest(offer, {}, &plan_);
  ASSERT_NE(tracer, nullptr) << plan_.unavailable;
  EXPECT_EQ(plan_.slots, GetParam());
  struct stat sa {
  }, sb{};
  ASSERT_EQ(stat(a.c_str(), &sa), 0);
  ASSERT_EQ(stat(b.c_str(), &sb), 0);
  const FileKey ka{KernelDev(sa.st_dev), sa.st_ino};
  const FileKey kb{KernelDev(sb.st_dev), sb.st_ino};
  ASSERT_TRUE(tracer->SetDevices({{sa.st_dev, true}}, &error)) << error;
  AccessCounts counts;
  ASSERT_TRUE(tracer->Drain(&counts, &error)) << error;

  uint64_t read_a = 0, read_b = 0;
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(cpus.Pin(0));
    for (int i = 0; i < 3; ++i) {
      read_a += ReadFile(a, 1, 64 * 1024, false);
      read_b += ReadFile(b, 2, 64 * 1024, false);
    }
    ASSERT_TRUE(cpus.Pin(1));
    read_b += ReadFile(b, 1, 4096, false);
    read_a += ReadFile(a, 1, 4096, false);  // a stays in this CPU's slot, b in the first's
  }
  EXPECT_EQ(read_a, 8 * kMiB);
  EXPECT_EQ(read_b, 14 * kMiB);
  ASSERT_TRUE(tracer->Drain(&counts, &error)) << error;
  EXPECT_EQ(counts.overflow, 0u);
  ASSERT_EQ(counts.files.count(ka), 1u);
  EXPECT_EQ(counts.files[ka].read_bytes, read_a);
  EXPECT_EQ(counts.files[ka].pc_pages, read_a / 4096);
  ASSERT_EQ(counts.files.count(kb), 1u);
  EXPECT_EQ(counts.files[kb].read_bytes, read_b);
  EXPECT_EQ(counts.files[kb].pc_pages, read_b / 4096);

  // Each of the two slots (one per counting map) is drained once more: only
  // what was read since comes back.
  for (int drain = 0; drain < 2; ++drain) {
    ASSERT_TRUE(cpus.Pin(static_cast<size_t>(drain)));
    const uint64_t again = ReadFile(a, 1, 64 * 1024, false);
    ASSERT_TRUE(tracer->Drain(&counts, &error)) << error;
    EXPECT_EQ(counts.files.size(), 1u) << "drain " << drain;
    EXPECT_EQ(counts.files[ka].read_bytes, again) << "drain " << drain;
  }
  ASSERT_TRUE(tracer->Drain(&counts, &error)) << error;
  EXPECT_TRUE(counts.files.empty()) << counts.files.size() << " files counted again";
}

INSTANTIATE_TEST_SUITE_P(SlotsOnAndOff, AccessSlots, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "WithSlots" : "WithoutSlots";
                         });

// A program that fails to attach takes its figures with it: without the
// page-cache insert tracepoint no miss is counted, so there is no hit ratio
// (rather than 1.0 for a file whose every page was a miss).
TEST_F(AccessOnXfs, AnOptionalProgramThatFailsToAttachLeavesItsFiguresUnavailable) {
  DAXPOLICY_REQUIRE(plan_.misses, "the tracepoint filemap:mm_filemap_add_to_page_cache");
  const fs::path stream = fs_->mount_point() / "stream.log";
  MakeFile(stream, 4 * kMiB);
  AccessSource::Options options;
  options.refuse_attach = {"tp_add_to_page_cache"};
  AccessSource source(options);
  policy::Snapshot snap = SnapshotOf({stream});
  uint64_t errors = 0;
  source.Sample(&snap, 0, &errors);
  const uint64_t bytes = ReadFile(stream, 2, kMiB, true);  // every page a miss
  snap = SnapshotOf({stream});
  source.Sample(&snap, kWindowNs, &errors);
  EXPECT_EQ(errors, 0u);

  const double seconds = kWindowNs / 1e9;
  EXPECT_NEAR(Var(snap, 0, policy::Var::kFileReadBytesRate).value_or(-1), bytes / seconds,
              bytes / seconds * 0.01)
      << last_why_;
  EXPECT_FALSE(Var(snap, 0, policy::Var::kFileCacheHitRatio)) << "misses were not counted";
  EXPECT_FALSE(snap.system.have_cache_hit_ratio);
  EXPECT_NE(source.Degraded().find("filemap/mm_filemap_add_to_page_cache"), std::string::npos)
      << source.Degraded();
  EXPECT_NE(source.Degraded().find(kMissesUnseen), std::string::npos) << source.Degraded();
}

TEST_F(AccessOnXfs, AFullCountingMapIsCountedAndWithholdsTheFigures) {
  std::vector<fs::path> files;
  for (int i = 0; i < 64; ++i) {
    files.push_back(fs_->mount_point() / ("f" + std::to_string(i)));
    MakeFile(files.back(), kMiB);
  }
  AccessSource::Options options;
  options.max_files = 16;
  AccessSource source(options);
  policy::Snapshot snap = SnapshotOf(files);
  uint64_t errors = 0;
  source.Sample(&snap, 0, &errors);
  for (const fs::path& p : files) ReadFile(p, 1, kMiB, false);
  source.Sample(&snap, kWindowNs, &errors);
  // Each file read once: one count that found the map full per file past the
  // 16 that fit, but for the last file each CPU read, which stayed in that
  // CPU's slot in front of the map.
  const auto cpus = static_cast<uint64_t>(sysconf(_SC_NPROCESSORS_CONF));
  EXPECT_GE(errors, 64u - 16u - cpus);
  EXPECT_NE(source.Degraded().find("counting map was full"), std::string::npos)
      << source.Degraded();
  EXPECT_FALSE(Var(snap, 0, policy::Var::kFileReadBytesRate));
  EXPECT_NE(last_why_.find("overflowed"), std::string::npos) << last_why_;
  EXPECT_FALSE(snap.system.have_cache_hit_ratio);

  // The next interval within the limit has figures again.
  for (int i = 0; i < 8; ++i) ReadFile(files[static_cast<size_t>(i)], 1, kMiB, false);
  snap = SnapshotOf(files);
  errors = 0;
  source.Sample(&snap, 2 * kWindowNs, &errors);
  EXPECT_EQ(errors, 0u);
  EXPECT_TRUE(Var(snap, 0, policy::Var::kFileReadBytesRate)) << last_why_;
  EXPECT_EQ(source.Degraded().find("counting map was full"), std::string::npos);
}

}  // namespace
}  // namespace daxpolicy::access
