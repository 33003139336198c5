// SPDX-License-Identifier: Apache-2.0
// Tests against the real libraries and kernel of the machine they run on:
// libndctl/libdaxctl enumeration, libpmem2 mappings of non-DAX files, loop
// filesystems and the daxpolicy-media-probe program.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "plugins/media/libnvdimm_topology.h"
#include "plugins/media/media_plugin.h"
#include "tests/support/test_support.h"

namespace daxpolicy::media {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

bool HostHasNvdimmBus() {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/sys/bus/nd/devices", ec)) {
    if (e.path().filename().string().rfind("ndbus", 0) == 0) return true;
  }
  return false;
}

// Restores an environment variable when the test ends.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(ARealNvdimmSource, AgreesWithSysfsAboutBusesAndDegradesWithoutThem) {
  LibNvdimmTopologySource source;
  auto t = source.Enumerate();
  ASSERT_TRUE(t.ok()) << t.error().message;
  MediaPluginOptions o;
  MediaPlugin plugin(std::make_unique<LibNvdimmTopologySource>(), o);
  MediaReport r = plugin.Refresh({}, false);
  if (HostHasNvdimmBus()) {
    EXPECT_GE(t->buses.size(), 1u);
    EXPECT_THAT(r.Degraded(), Not(HasSubstr("no NVDIMM bus")));
  } else {
    EXPECT_EQ(t->buses.size(), 0u);
    EXPECT_TRUE(t->namespaces.empty());
    EXPECT_EQ(r.Degraded(), "no NVDIMM bus found (libndctl: 0 buses)");
    EXPECT_TRUE(ToMediaSamples(r).empty());
  }
}

TEST(ARealNvdimmSource, SendsLibraryChatterToTheSinkInsteadOfStderr) {
  ScopedEnv ndctl_log("NDCTL_LOG", "debug");
  ScopedEnv daxctl_log("DAXCTL_LOG", "debug");
  std::vector<std::string> lines;
  LibNvdimmTopologySource source([&](LogLevel, std::string_view m) { lines.emplace_back(m); });
  ::testing::internal::CaptureStderr();
  auto t = source.Enumerate();
  std::string err = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(t.ok());
  ASSERT_FALSE(lines.empty()) << "libndctl said nothing at debug level";
  EXPECT_THAT(lines.front(), HasSubstr("libndctl: "));
  // Context creation logs before a sink can be installed; enumeration must not.
  EXPECT_THAT(err, Not(HasSubstr("__sysfs_device_parse")));
  bool enumerated = false;
  for (const auto& l : lines) enumerated = enumerated || l.find("sysfs_device_parse") != l.npos;
  EXPECT_TRUE(enumerated);
}

ProbeOptions SmallProbe() {
  ProbeOptions o;
  o.chase.buffer_bytes = size_t{4} << 20;
  o.chase.read_steps = 2000;
  o.chase.write_steps = 200;
  return o;
}

void ExpectPageCacheRefusal(const fs::path& mount) {
  ProbeResult r = ProbeMount(mount.string(), SmallProbe());
  EXPECT_EQ(r.outcome, ProbeResult::Outcome::kRefused) << r.reason;
  EXPECT_THAT(r.reason, HasSubstr("mapping is page cache: libpmem2 effective store granularity "
                                  "is page"));
  EXPECT_EQ(r.granularity, "page");
  EXPECT_FALSE(r.granularity_forced);
  if (r.statx_dax_known) {
    EXPECT_FALSE(r.statx_dax);
  }
  EXPECT_EQ(r.probe_file, mount.string() + "/.daxpolicy-probe/latency-probe");
  EXPECT_TRUE(fs::is_directory(mount / ".daxpolicy-probe"));
  EXPECT_FALSE(fs::exists(r.probe_file)) << "the probe file must be removed";
  EXPECT_EQ(r.latency.read_latency_ns, 0) << "nothing may be measured";
  EXPECT_GT(r.duration_ms, 0);
}

TEST(ARealPmem2Probe, RefusesAnOrdinaryDirectoryBecauseItsMappingIsPageCache) {
  ScopedEnv no_force("PMEM2_FORCE_GRANULARITY", nullptr);
  daxpolicy::testing::TempDir dir;
  ExpectPageCacheRefusal(dir.path());
}

class ARealPmem2ProbeOnALoopFs : public ::testing::TestWithParam<daxpolicy::testing::FsType> {};

TEST_P(ARealPmem2ProbeOnALoopFs, RefusesBecauseALoopDeviceCannotDoDax) {
  DAXPOLICY_REQUIRE(!daxpolicy::testing::LoopFs::Unavailable().has_value(),
                    daxpolicy::testing::LoopFs::Unavailable().value_or(""));
  ScopedEnv no_force("PMEM2_FORCE_GRANULARITY", nullptr);
  std::string error;
  auto fs = daxpolicy::testing::LoopFs::Create(GetParam(), &error);
  ASSERT_NE(fs, nullptr) << error;
  ExpectPageCacheRefusal(fs->mount_point());
}

INSTANTIATE_TEST_SUITE_P(XfsAndExt4, ARealPmem2ProbeOnALoopFs,
                         ::testing::Values(daxpolicy::testing::FsType::kXfs,
                                           daxpolicy::testing::FsType::kExt4),
                         [](const auto& info) {
                           return std::string(daxpolicy::testing::FsTypeName(info.param));
                         });

// PMEM2_FORCE_GRANULARITY makes libpmem2 claim a DAX mapping of a page-cache
// file. That is no DAX proof: it only drives the measuring code through a real
// libpmem2 mapping and persist function on this machine.
TEST(AForcedCacheLineMapping, ExercisesTheMeasuringCodeButIsNoDaxProof) {
  ScopedEnv force("PMEM2_FORCE_GRANULARITY", "cache_line");
  daxpolicy::testing::TempDir dir;
  fs::path file = dir.path() / "forced";
  ChaseConfig config;  // the production defaults: 64 MiB, fixed step counts
  int fd = open(file.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(config.buffer_bytes)), 0);
  auto map = Pmem2Mapping::Map(fd);
  close(fd);
  ASSERT_TRUE(map.ok()) << map.error().message;
  EXPECT_EQ(map->granularity(), "cache-line");
  EXPECT_TRUE(map->direct());
  ASSERT_GE(map->size(), config.buffer_bytes);
  auto m = MeasureLatency(map->address(), map->persist(), config);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_GT(m->read_latency_ns, 0);
  EXPECT_GT(m->write_latency_ns, 0);
  EXPECT_GT(m->dram_latency_ns, 0);
  EXPECT_GT(m->latency_ratio, 0);
  EXPECT_GT(m->timed_ms, 0);
  EXPECT_LT(m->timed_ms, m->measure_ms);
  std::cout << "[forced cache-line, page-cache file, NOT DAX] 64 MiB: read " << m->read_latency_ns
            << " ns, store+persist " << m->write_latency_ns << " ns, DRAM " << m->dram_latency_ns
            << " ns, ratio " << m->latency_ratio << ", measuring took " << m->measure_ms
            << " ms (timed loops " << m->timed_ms << " ms)\n";
  RecordProperty("measure_ms", std::to_string(m->measure_ms));
}

TEST(AForcedCacheLineMapping, IsStillRefusedByTheProbeBecauseStatxSaysNoDax) {
  ScopedEnv force("PMEM2_FORCE_GRANULARITY", "cache_line");
  daxpolicy::testing::TempDir dir;
  ProbeResult r = ProbeMount(dir.path().string(), SmallProbe());
  ASSERT_TRUE(r.statx_dax_known) << "kernel without STATX_ATTR_DAX in the mask";
  EXPECT_EQ(r.outcome, ProbeResult::Outcome::kRefused);
  EXPECT_EQ(r.granularity, "cache-line");
  EXPECT_TRUE(r.granularity_forced);
  EXPECT_THAT(r.reason, HasSubstr("statx reports no STATX_ATTR_DAX"));
  EXPECT_THAT(r.reason, HasSubstr("PMEM2_FORCE_GRANULARITY=cache_line"));
}

TEST(TheMediaProbeProgram, ReportsTheDegradedStateAsJson) {
  auto r = daxpolicy::testing::Run(
      {daxpolicy::testing::BinaryPath("daxpolicy-media-probe"), "--json", "--no-probe", "/"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"mounts\":[{\"mount_point\":\"/\""));
  if (!HostHasNvdimmBus()) {
    EXPECT_THAT(r.out, HasSubstr("\"degraded\":\"no NVDIMM bus found (libndctl: 0 buses)\""));
    EXPECT_THAT(r.err, HasSubstr("warning: media degraded: no NVDIMM bus found"));
  }
}

TEST(TheMediaProbeProgram, PrintsFirmwarePerformanceFromASysfsRoot) {
  auto r = daxpolicy::testing::Run(
      {daxpolicy::testing::BinaryPath("daxpolicy-media-probe"), "--sysfs-root",
       std::string(DAXPOLICY_SOURCE_DIR) + "/tests/fixtures/media/fsdax-hmat/sys"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("firmware (HMAT): available"));
  EXPECT_THAT(r.out, HasSubstr("node 1 (memory tier 22)"));
  EXPECT_THAT(r.out, HasSubstr("access0: read 305 ns 8000 MB/s, write 390 ns 2000 MB/s"));
}

TEST(TheMediaProbeProgram, FailsForAMissingMountPoint) {
  auto r = daxpolicy::testing::Run({daxpolicy::testing::BinaryPath("daxpolicy-media-probe"),
                                    "--no-probe", "/nonexistent/mount"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("stat /nonexistent/mount: No such file or directory"));
}

}  // namespace
}  // namespace daxpolicy::media
