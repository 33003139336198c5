// SPDX-License-Identifier: Apache-2.0
#include "plugins/host/system_telemetry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/test_support.h"
#include "tests/unit/host/fixture_path.h"

namespace daxpolicy::host {
namespace {

namespace fs = std::filesystem;
using daxpolicy::testing::ReadFile;
using daxpolicy::testing::TempDir;
using daxpolicy::testing::WriteFile;
using std::chrono::seconds;
using ::testing::DoubleNear;
using ::testing::HasSubstr;
using ::testing::Optional;

// A fake /proc with any of the three files.
class FakeProc {
 public:
  FakeProc() { fs::create_directories(proc() / "pressure"); }
  fs::path proc() const { return dir_.path() / "proc"; }
  Roots roots() const { return Roots{proc(), dir_.path() / "sys"}; }
  void Write(const std::string& relative, const std::string& content) {
    WriteFile(proc() / relative, content);
  }
  void CopyFixture(const std::string& fixture, const std::string& relative) {
    Write(relative, ReadFile(testing::Fixture(fixture)));
  }

 private:
  TempDir dir_;
};

TEST(MemoryPressure, ParsesSomeAndFullLines) {
  auto p = ParseMemoryPressure(ReadFile(testing::Fixture("pressure-memory.txt")));
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_DOUBLE_EQ(p->some_avg10, 1.53);
  EXPECT_DOUBLE_EQ(p->some_avg60, 0.87);
  EXPECT_EQ(p->some_total_us, 5032714u);
  EXPECT_THAT(p->full_avg10, Optional(0.42));
}

TEST(MemoryPressure, AcceptsAMissingFullLine) {
  auto p = ParseMemoryPressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->full_avg10, std::nullopt);
}

struct BadText {
  const char* text;
  const char* message_part;
};

class MalformedPressure : public ::testing::TestWithParam<BadText> {};

TEST_P(MalformedPressure, IsAnError) {
  auto p = ParseMemoryPressure(GetParam().text);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.error().message, HasSubstr(GetParam().message_part));
}

INSTANTIATE_TEST_SUITE_P(
    Variants, MalformedPressure,
    ::testing::Values(BadText{"", "no \"some\" line"},
                      BadText{"some avg10=abc avg60=0.00 avg300=0.00 total=0", "bad avg10 'abc'"},
                      BadText{"some avg10=-1 avg60=0.00 avg300=0.00 total=0", "bad avg10 '-1'"},
                      BadText{"some avg10=nan avg60=0.00 avg300=0.00 total=0", "bad avg10 'nan'"},
                      BadText{"some avg10=1.0 avg60=0.00 avg300=0.00 total=x", "bad total 'x'"},
                      BadText{"some avg10=1.0 avg6", "expected key=value, got 'avg6'"},
                      BadText{"some avg10=1.0", "avg60 or total missing"},
                      BadText{"some avg60=1.0 total=3", "no avg10"},
                      BadText{"full avg10=1.0 avg60=0 total=1", "no \"some\" line"},
                      BadText{"other avg10=1.0", "line 1: expected \"some\" or \"full\""}));

TEST(MemInfo, ConvertsKibToBytesAndComputesThePageCacheRatio) {
  auto m = ParseMemInfo(ReadFile(testing::Fixture("meminfo-6.1.txt")));
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_THAT(m->total_bytes, Optional(16318412ull * 1024));
  EXPECT_THAT(m->available_bytes, Optional(11408124ull * 1024));
  EXPECT_THAT(m->free_bytes, Optional(1203320ull * 1024));
  EXPECT_THAT(m->cached_bytes, Optional(9658604ull * 1024));
  EXPECT_THAT(m->buffers_bytes, Optional(412332ull * 1024));
  EXPECT_THAT(m->dirty_bytes, Optional(1224ull * 1024));
  EXPECT_THAT(m->writeback_bytes, Optional(0ull));
  EXPECT_THAT(m->active_file_bytes, Optional(2714916ull * 1024));
  EXPECT_THAT(m->inactive_file_bytes, Optional(7072652ull * 1024));
  EXPECT_THAT(m->page_cache_ratio, Optional(DoubleNear(9658604.0 / 16318412.0, 1e-12)));
}

TEST(MemInfo, LeavesMissingKeysUnset) {
  auto m = ParseMemInfo("MemTotal: 100 kB\n");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->available_bytes, std::nullopt);
  EXPECT_EQ(m->page_cache_ratio, std::nullopt);
  auto zero = ParseMemInfo("MemTotal: 0 kB\nCached: 5 kB\n");
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero->page_cache_ratio, std::nullopt);
}

class MalformedMemInfo : public ::testing::TestWithParam<BadText> {};

TEST_P(MalformedMemInfo, IsAnError) {
  auto m = ParseMemInfo(GetParam().text);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.error().message, HasSubstr(GetParam().message_part));
}

INSTANTIATE_TEST_SUITE_P(
    Variants, MalformedMemInfo,
    ::testing::Values(BadText{"", "MemTotal missing"},
                      BadText{"MemFree: 10 kB\n", "MemTotal missing"},
                      BadText{"MemTotal: 10 kB\nMemFr", "line 2: expected \"Key: value\""},
                      BadText{"MemTotal: 1x kB\n", "line 1: bad number '1x'"},
                      BadText{"MemTotal: -1 kB\n", "bad number '-1'"},
                      BadText{"MemTotal:\n", "expected a number"},
                      BadText{"MemTotal: 10 MB\n", "unknown unit 'MB'"},
                      BadText{"MemTotal: 10 kB extra\n", "expected a number"},
                      BadText{"MemTotal: 99999999999999999999 kB\n", "bad number"},
                      BadText{"MemTotal: 18014398509481984 kB\n", "value too large"}));

TEST(VmStat, ReadsTheFileCountersOfNewKernels) {
  auto v = ParseVmStat(ReadFile(testing::Fixture("vmstat-6.1.txt")));
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_THAT(v->workingset_refault_file, Optional(55688u));
  EXPECT_THAT(v->workingset_activate_file, Optional(3035u));
  EXPECT_THAT(v->pgpgin_kib, Optional(7811020u));
  EXPECT_THAT(v->pgpgout_kib, Optional(912004u));
  EXPECT_THAT(v->pgmajfault, Optional(4411u));
}

TEST(VmStat, FallsBackToTheOldCounterNames) {
  auto v = ParseVmStat(ReadFile(testing::Fixture("vmstat-4.19.txt")));
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_THAT(v->workingset_refault_file, Optional(812345u));
  EXPECT_THAT(v->workingset_activate_file, Optional(10234u));
}

TEST(VmStat, LeavesAbsentCountersUnset) {
  auto v = ParseVmStat("nr_free_pages 3\n");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->workingset_refault_file, std::nullopt);
  EXPECT_EQ(v->pgpgin_kib, std::nullopt);
}

TEST(VmStat, RejectsMalformedLines) {
  for (const char* bad : {"pgpgin\n", "pgpgin 12 13\n", "pgpgin x\n", "pgpgin -3\n"}) {
    auto v = ParseVmStat(bad);
    ASSERT_FALSE(v.ok()) << bad;
    EXPECT_THAT(v.error().message, HasSubstr("line 1: "));
  }
}

TEST(SystemTelemetry, ReadsAllThreeSources) {
  FakeProc proc;
  proc.CopyFixture("pressure-memory.txt", "pressure/memory");
  proc.CopyFixture("meminfo-6.1.txt", "meminfo");
  proc.CopyFixture("vmstat-6.1.txt", "vmstat");
  SystemTelemetry t = ReadSystemTelemetry(proc.roots());
  ASSERT_TRUE(t.pressure.has_value()) << t.pressure_unavailable;
  ASSERT_TRUE(t.meminfo.has_value()) << t.meminfo_unavailable;
  ASSERT_TRUE(t.vmstat.has_value()) << t.vmstat_unavailable;
  EXPECT_DOUBLE_EQ(t.pressure->some_avg10, 1.53);
  EXPECT_EQ(t.pressure_unavailable, "");
}

TEST(SystemTelemetry, SaysPsiIsDisabledWhenItsFileIsMissing) {
  FakeProc proc;
  proc.CopyFixture("meminfo-6.1.txt", "meminfo");
  SystemTelemetry t = ReadSystemTelemetry(proc.roots());
  EXPECT_FALSE(t.pressure.has_value());
  EXPECT_THAT(t.pressure_unavailable, HasSubstr("PSI disabled (open "));
  EXPECT_THAT(t.pressure_unavailable, HasSubstr("pressure/memory: No such file or directory)"));
  EXPECT_TRUE(t.meminfo.has_value());
  EXPECT_FALSE(t.vmstat.has_value());
  EXPECT_THAT(t.vmstat_unavailable, HasSubstr("vmstat: No such file or directory"));
}

TEST(SystemTelemetry, ReportsMalformedFilesAsUnavailable) {
  FakeProc proc;
  proc.Write("pressure/memory", "some avg10=");
  proc.Write("meminfo", "MemTotal: 12");
  proc.Write("vmstat", "pgpgin 1\npgpgo");
  SystemTelemetry t = ReadSystemTelemetry(proc.roots());
  EXPECT_FALSE(t.pressure.has_value());
  EXPECT_THAT(t.pressure_unavailable, HasSubstr("pressure/memory: line 1: bad avg10 ''"));
  // An unterminated but complete last line is still a value.
  EXPECT_TRUE(t.meminfo.has_value()) << t.meminfo_unavailable;
  EXPECT_FALSE(t.vmstat.has_value());
  EXPECT_THAT(t.vmstat_unavailable, HasSubstr("vmstat: line 2: expected \"name value\""));
}

SystemTelemetry Sample(uint64_t refaults, uint64_t activations, uint64_t pgpgin_kib,
                       uint64_t psi_total_us) {
  SystemTelemetry t;
  t.vmstat = VmStat{refaults, activations, pgpgin_kib, 0, 10};
  t.pressure = MemoryPressure{0, 0, psi_total_us, std::nullopt};
  return t;
}

TEST(SystemRates, AreDeltasPerSecond) {
  SystemRates r = ComputeRates(Sample(1000, 50, 4096, 1'000'000), Sample(1500, 70, 8192, 1'500'000),
                               seconds(10));
  EXPECT_THAT(r.refaults_per_second, Optional(50.0));
  EXPECT_THAT(r.activations_per_second, Optional(2.0));
  EXPECT_THAT(r.pgpgin_bytes_per_second, Optional(4096.0 * 1024 / 10));
  EXPECT_THAT(r.pgpgout_bytes_per_second, Optional(0.0));
  EXPECT_THAT(r.major_faults_per_second, Optional(0.0));
  // 0.5 s stalled in 10 s.
  EXPECT_THAT(r.pressure_some_percent, Optional(DoubleNear(5.0, 1e-9)));
}

TEST(SystemRates, AreUnavailableForResetCountersMissingSourcesOrNoTime) {
  SystemRates reset = ComputeRates(Sample(1000, 50, 10, 10), Sample(10, 70, 20, 20), seconds(5));
  EXPECT_EQ(reset.refaults_per_second, std::nullopt);
  EXPECT_THAT(reset.activations_per_second, Optional(4.0));

  SystemRates no_time = ComputeRates(Sample(1, 1, 1, 1), Sample(2, 2, 2, 2), seconds(0));
  EXPECT_EQ(no_time.refaults_per_second, std::nullopt);
  EXPECT_EQ(no_time.pressure_some_percent, std::nullopt);

  SystemTelemetry missing;
  SystemRates none = ComputeRates(missing, Sample(2, 2, 2, 2), seconds(1));
  EXPECT_EQ(none.refaults_per_second, std::nullopt);
  EXPECT_EQ(none.pressure_some_percent, std::nullopt);

  SystemTelemetry old_kernel = Sample(1, 1, 1, 1);
  old_kernel.vmstat->workingset_refault_file.reset();
  EXPECT_EQ(ComputeRates(old_kernel, Sample(2, 2, 2, 2), seconds(1)).refaults_per_second,
            std::nullopt);
}

}  // namespace
}  // namespace daxpolicy::host
