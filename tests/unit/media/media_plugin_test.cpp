// SPDX-License-Identifier: Apache-2.0
#include "plugins/media/media_plugin.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <ndctl/libndctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "tests/support/test_support.h"
#include "tests/unit/media/fake_media.h"

namespace daxpolicy::media {
namespace {

using policy::MediaHealth;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
namespace fs = std::filesystem;

struct Harness {
  explicit Harness(Topology t, fs::path sys = testing::FsdaxHmatSysfs()) {
    auto src = std::make_unique<FakeTopologySource>(std::move(t));
    source = src.get();
    MediaPluginOptions o;
    o.sysfs_root = std::move(sys);
    o.probe.chase.buffer_bytes = size_t{1} << 20;
    o.probe.chase.read_steps = 1000;
    o.probe.chase.write_steps = 100;
    o.log = [this](LogLevel level, std::string_view m) {
      logs.push_back(std::string(LogLevelName(level)) + ": " + std::string(m));
    };
    plugin = std::make_unique<MediaPlugin>(std::move(src), std::move(o));
  }
  FakeTopologySource* source = nullptr;
  std::unique_ptr<MediaPlugin> plugin;
  std::vector<std::string> logs;
};

MountInput Mount(const std::string& path, unsigned major, unsigned minor,
                 const std::string& fs_type = "xfs", const std::string& options = "rw,dax=inode") {
  return MountInput{path, major, minor, fs_type, options};
}

TEST(AMediaPluginWithoutNvdimms, IsDegradedWithTheReasonAndReportsNothingAsKnown) {
  daxpolicy::testing::TempDir sys;
  testing::AddBlockDevice(sys.path(), "vda", 254, 0, false);
  Harness h(Topology{}, sys.path());
  MediaReport r = h.plugin->Refresh({Mount("/", 254, 0, "ext4", "rw")}, true);
  EXPECT_THAT(r.degraded_reasons, ElementsAre("no NVDIMM bus found (libndctl: 0 buses)"));
  EXPECT_EQ(r.Degraded(), "no NVDIMM bus found (libndctl: 0 buses)");
  EXPECT_TRUE(r.topology_ok);
  EXPECT_THAT(r.devices, IsEmpty());
  ASSERT_EQ(r.mounts.size(), 1u);
  EXPECT_EQ(r.mounts[0].device, -1);
  EXPECT_EQ(r.mounts[0].block_device, "vda");
  EXPECT_EQ(r.mounts[0].unmapped_reason,
            "block device vda is not an NVDIMM namespace (0 active namespaces)");
  EXPECT_EQ(r.mounts[0].dax_capable, false);
  EXPECT_THAT(r.mounts[0].not_dax_capable_reason, HasSubstr("device vda cannot do DAX"));
  EXPECT_FALSE(r.mounts[0].probe.has_value());
  EXPECT_THAT(h.logs,
              ElementsAre("warning: media degraded: no NVDIMM bus found (libndctl: 0 buses)"));

  policy::Snapshot snap;
  snap.mounts.push_back(policy::MountRecord{makedev(254, 0), "/", 5, ""});
  FillSnapshot(r, &snap);
  EXPECT_THAT(snap.media, IsEmpty());
  EXPECT_EQ(snap.mounts[0].media, -1);
}

TEST(AMediaPluginWithoutNvdimms, LogsTheDegradedStateOnlyWhenItChanges) {
  Harness h(Topology{});
  (void)h.plugin->Refresh({}, false);
  (void)h.plugin->Refresh({}, false);
  EXPECT_EQ(h.logs.size(), 1u);
  h.source->topology = testing::OneFsdaxNamespace();
  MediaReport r = h.plugin->Refresh({}, false);
  EXPECT_EQ(r.Degraded(), "");
  EXPECT_THAT(h.logs.back(), "info: media: no longer degraded");
}

TEST(AMediaPlugin, IsDegradedWhenTheLibrariesFail) {
  Harness h(Topology{});
  h.source->error = Error{"libndctl: ndctl_new: Cannot allocate memory", 12};
  MediaReport r = h.plugin->Refresh({}, false);
  EXPECT_FALSE(r.topology_ok);
  EXPECT_THAT(
      r.degraded_reasons,
      ElementsAre("NVDIMM topology unavailable: libndctl: ndctl_new: Cannot allocate memory"));
}

TEST(AMediaPlugin, EnumeratesAFreshTopologyOnEveryRefresh) {
  Harness h(testing::OneFsdaxNamespace());
  (void)h.plugin->Refresh({}, false);
  (void)h.plugin->Refresh({}, false);
  EXPECT_EQ(h.source->enumerations, 2);
}

TEST(AMediaPlugin, MapsAMountThroughItsBlockDeviceToNamespaceAndRegion) {
  Harness h(testing::OneFsdaxNamespace());
  MediaReport r = h.plugin->Refresh({Mount("/srv/pmem", 259, 0)}, false);
  EXPECT_EQ(r.Degraded(), "");
  ASSERT_EQ(r.devices.size(), 1u);
  const MediaDevice& d = r.devices[0];
  EXPECT_EQ(d.name, "pmem0");
  EXPECT_EQ(d.kind, "fsdax");
  EXPECT_EQ(d.namespace_name, "namespace0.0");
  EXPECT_EQ(d.region, "region0");
  EXPECT_EQ(d.size, uint64_t{15} << 30);
  EXPECT_EQ(d.numa_node, 0);
  EXPECT_EQ(d.target_node, 1);
  EXPECT_EQ(d.health.health, MediaHealth::kOk);
  ASSERT_EQ(r.mounts.size(), 1u);
  const MountMedia& m = r.mounts[0];
  EXPECT_EQ(m.block_device, "pmem0");
  EXPECT_EQ(m.device, 0);
  EXPECT_EQ(m.namespace_name, "namespace0.0");
  EXPECT_EQ(m.region, "region0");
  EXPECT_EQ(m.dax_capable, true);
  EXPECT_FALSE(d.have_latency);
  EXPECT_EQ(d.latency_unavailable_reason, "/srv/pmem: not probed yet");
}

TEST(AMediaPlugin, MapsAPartitionToItsNamespace) {
  Harness h(testing::OneFsdaxNamespace());
  MediaReport r = h.plugin->Refresh({Mount("/srv/pmem", 259, 1)}, false);
  ASSERT_EQ(r.mounts.size(), 1u);
  EXPECT_EQ(r.mounts[0].block_device, "pmem0p1");
  EXPECT_EQ(r.mounts[0].disk, "pmem0");
  EXPECT_EQ(r.mounts[0].device, 0);
}

TEST(AMediaPlugin, AttachesTheTargetNodesFirmwarePerformance) {
  Harness h(testing::OneFsdaxNamespace());
  MediaReport r = h.plugin->Refresh({}, false);
  ASSERT_EQ(r.devices.size(), 1u);
  ASSERT_TRUE(r.devices[0].firmware.has_value());
  EXPECT_EQ(r.devices[0].firmware->node, 1);
  EXPECT_EQ(r.devices[0].firmware->access0->read_latency_ns, 305u);
  EXPECT_EQ(r.devices[0].firmware->memory_tier, 22);
  EXPECT_EQ(r.devices[0].firmware_unavailable_reason, "");
}

TEST(AMediaPlugin, SaysWhyFirmwarePerformanceIsMissing) {
  daxpolicy::testing::TempDir sys;
  testing::AddNode(sys.path(), 0);
  testing::AddNode(sys.path(), 1);
  Harness h(testing::OneFsdaxNamespace(), sys.path());
  MediaReport r = h.plugin->Refresh({}, false);
  ASSERT_EQ(r.devices.size(), 1u);
  EXPECT_THAT(r.devices[0].firmware_unavailable_reason, HasSubstr("no HMAT data for node 1"));
  EXPECT_FALSE(r.firmware.tiers_available);
}

TEST(AMediaPlugin, ReportsAnUnhealthyDimmOnTheDeviceItBacks) {
  Topology t = testing::OneFsdaxNamespace();
  t.dimms[0].smart->health_bits = ND_SMART_CRITICAL_HEALTH;
  t.dimms[0].smart->life_used_percent = 95;
  t.dimms[0].smart->unsafe_shutdowns = 7;
  Harness h(t);
  MediaReport r = h.plugin->Refresh({}, false);
  ASSERT_EQ(r.devices.size(), 1u);
  EXPECT_EQ(r.devices[0].health.health, MediaHealth::kCritical);
  EXPECT_THAT(r.devices[0].health.reasons,
              ElementsAre("nmem0: health critical", "nmem0: life used 95%"));
  std::vector<policy::MediaSample> samples = ToMediaSamples(r);
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_EQ(samples[0].health, MediaHealth::kCritical);
}

TEST(AMediaPlugin, ReportsUnknownHealthForADimmWithoutSmart) {
  Topology t = testing::OneFsdaxNamespace();
  t.dimms[0].smart_supported = false;
  t.dimms[0].smart.reset();
  t.dimms[0].smart_unavailable_reason = "DIMM family has no SMART health command";
  Harness h(t);
  MediaReport r = h.plugin->Refresh({}, false);
  EXPECT_EQ(r.devices[0].health.health, MediaHealth::kUnknown);
  EXPECT_THAT(r.devices[0].health.reasons,
              ElementsAre("nmem0: DIMM family has no SMART health command"));
}

TEST(AMediaPlugin, CountsNamespaceBadBlocksAsAWarning) {
  Topology t = testing::OneFsdaxNamespace();
  t.namespaces[0].badblocks = 2;
  Harness h(t);
  MediaReport r = h.plugin->Refresh({}, false);
  EXPECT_EQ(r.devices[0].badblocks, 2u);
  EXPECT_EQ(r.devices[0].health.health, MediaHealth::kWarning);
}

TEST(AMediaPlugin, ReportsDevdaxAndSystemRamDevices) {
  Topology t = testing::OneFsdaxNamespace();
  NamespaceInfo devdax;
  devdax.devname = "namespace0.1";
  devdax.region = "region0";
  devdax.mode = "devdax";
  devdax.size = uint64_t{1} << 30;
  devdax.numa_node = 0;
  devdax.char_device = "dax0.1";
  t.namespaces.push_back(devdax);
  t.dax_devices.push_back({"dax0.1", "daxregion0", uint64_t{1} << 30, 2, "system-ram", true, true});
  t.dax_devices.push_back({"dax1.0", "daxregion1", uint64_t{4} << 30, 3, "devdax", true, false});
  Harness h(t);
  MediaReport r = h.plugin->Refresh({}, false);
  ASSERT_EQ(r.devices.size(), 3u);
  EXPECT_EQ(r.devices[1].name, "dax0.1");
  EXPECT_EQ(r.devices[1].kind, "system-ram");
  EXPECT_EQ(r.devices[1].namespace_name, "namespace0.1");
  EXPECT_EQ(r.devices[1].target_node, 2) << "the DAX device's node when the namespace hides it";
  EXPECT_EQ(r.devices[1].health.health, MediaHealth::kOk);
  EXPECT_EQ(r.devices[2].name, "dax1.0");
  EXPECT_EQ(r.devices[2].kind, "devdax");
  EXPECT_EQ(r.devices[2].region, "daxregion1");
  EXPECT_EQ(r.devices[2].target_node, 3);
  EXPECT_EQ(r.devices[2].numa_node, -1);
  EXPECT_EQ(r.devices[2].health.health, MediaHealth::kUnknown);
  EXPECT_THAT(r.devices[2].health.reasons, ElementsAre(HasSubstr("not backed by an NVDIMM")));
}

TEST(AMediaPlugin, NeverProbesAMountOnADeviceWithoutDax) {
  daxpolicy::testing::TempDir mount;
  Harness h(testing::OneFsdaxNamespace());
  MediaReport r = h.plugin->Refresh({Mount(mount.path().string(), 7, 0)}, true);
  ASSERT_EQ(r.mounts.size(), 1u);
  EXPECT_EQ(r.mounts[0].dax_capable, false);
  EXPECT_THAT(r.mounts[0].not_dax_capable_reason, HasSubstr("device loop0 cannot do DAX"));
  EXPECT_FALSE(r.mounts[0].probe.has_value());
  EXPECT_FALSE(fs::exists(mount.path() / ".daxpolicy-probe"));
  EXPECT_EQ(r.probe_ms, 0);
}

TEST(AMediaPlugin, NeverProbesAMountMountedDaxNever) {
  daxpolicy::testing::TempDir mount;
  Harness h(testing::OneFsdaxNamespace());
  MediaReport r =
      h.plugin->Refresh({Mount(mount.path().string(), 259, 0, "xfs", "rw,dax=never")}, true);
  EXPECT_EQ(r.mounts[0].dax_capable, false);
  EXPECT_THAT(r.mounts[0].not_dax_capable_reason, HasSubstr("dax=never"));
  EXPECT_FALSE(fs::exists(mount.path() / ".daxpolicy-probe"));
  EXPECT_THAT(r.devices[0].latency_unavailable_reason, HasSubstr("dax=never"));
}

TEST(AMediaPlugin, NeverProbesAFilesystemWithoutPerFileDax) {
  daxpolicy::testing::TempDir mount;
  Harness h(testing::OneFsdaxNamespace());
  MediaReport r = h.plugin->Refresh({Mount(mount.path().string(), 259, 0, "ext2", "rw")}, true);
  EXPECT_EQ(r.mounts[0].dax_capable, false);
  EXPECT_EQ(r.mounts[0].not_dax_capable_reason, "filesystem ext2 has no per-file DAX");
}

// The fake sysfs claims DAX, but the directory lives on an ordinary
// filesystem: the mapping check must catch it and measure nothing.
TEST(AMediaPlugin, RefusesToMeasureWhenTheMappingTurnsOutToBePageCache) {
  daxpolicy::testing::TempDir mount;
  struct stat st {};
  ASSERT_EQ(stat(mount.path().c_str(), &st), 0);
  daxpolicy::testing::TempDir sys;
  testing::AddBlockDevice(sys.path(), "pmem0", major(st.st_dev), minor(st.st_dev), true);
  Harness h(testing::OneFsdaxNamespace(), sys.path());
  MediaReport r = h.plugin->Refresh(
      {Mount(mount.path().string(), major(st.st_dev), minor(st.st_dev), "", "")}, true);
  ASSERT_EQ(r.mounts.size(), 1u);
  const MountMedia& m = r.mounts[0];
  EXPECT_EQ(m.dax_capable, true);
  ASSERT_TRUE(m.probe.has_value());
  EXPECT_TRUE(m.probe_fresh);
  EXPECT_EQ(m.probe->outcome, ProbeResult::Outcome::kRefused);
  EXPECT_THAT(m.probe->reason, HasSubstr("mapping is page cache"));
  EXPECT_FALSE(r.devices[0].have_latency);
  EXPECT_THAT(r.devices[0].latency_unavailable_reason, HasSubstr("probe refused"));
  EXPECT_GT(r.probe_ms, 0);
  EXPECT_THAT(h.logs, ::testing::Contains(HasSubstr("refused: mapping is page cache")));

  // Without a new probe the earlier outcome is still reported, marked stale.
  MediaReport again = h.plugin->Refresh(
      {Mount(mount.path().string(), major(st.st_dev), minor(st.st_dev), "", "")}, false);
  ASSERT_TRUE(again.mounts[0].probe.has_value());
  EXPECT_FALSE(again.mounts[0].probe_fresh);
  EXPECT_EQ(again.probe_ms, 0);
}

TEST(SnapshotExport, PointsMountsAtTheirMediaAndFillsSamples) {
  Harness h(testing::OneFsdaxNamespace());
  MediaReport r = h.plugin->Refresh({Mount("/srv/pmem", 259, 0)}, false);
  r.devices[0].have_latency = true;
  r.devices[0].read_latency_ns = 300;
  r.devices[0].write_latency_ns = 500;
  r.devices[0].latency_ratio = 3.0;
  r.devices[0].read_bandwidth = 2.9e9;
  r.devices[0].dram_bandwidth = 7.4e9;
  r.devices[0].write_bandwidth = 2.2e9;
  policy::Snapshot snap;
  snap.mounts.push_back(policy::MountRecord{makedev(254, 0), "/", 4, ""});
  snap.mounts.push_back(policy::MountRecord{makedev(259, 0), "/srv/pmem", -1, ""});
  FillSnapshot(r, &snap);
  ASSERT_EQ(snap.media.size(), 1u);
  const policy::MediaSample& s = snap.media[0];
  EXPECT_EQ(s.name, "pmem0");
  EXPECT_TRUE(s.have_latency);
  EXPECT_EQ(s.read_latency_ns, 300);
  EXPECT_EQ(s.write_latency_ns, 500);
  EXPECT_EQ(s.latency_ratio, 3.0);
  EXPECT_TRUE(s.have_bandwidth);
  EXPECT_EQ(s.read_bandwidth, 2.9e9);
  EXPECT_EQ(s.dram_bandwidth, 7.4e9);
  EXPECT_EQ(s.write_bandwidth, 2.2e9);
  EXPECT_EQ(s.health, MediaHealth::kOk);
  EXPECT_TRUE(s.have_numa_node);
  EXPECT_EQ(s.numa_node, 0);
  EXPECT_EQ(snap.mounts[0].media, -1);
  EXPECT_EQ(snap.mounts[1].media, 0);
}

}  // namespace
}  // namespace daxpolicy::media
