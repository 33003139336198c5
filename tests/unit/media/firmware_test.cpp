// SPDX-License-Identifier: Apache-2.0
#include "plugins/media/firmware.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/test_support.h"
#include "tests/unit/media/fake_media.h"

namespace daxpolicy::media {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
namespace fs = std::filesystem;

TEST(ANodeList, ExpandsRangesAndSingleNodes) {
  auto nodes = ParseNodeList("0-1,3\n");
  ASSERT_TRUE(nodes.ok());
  EXPECT_THAT(*nodes, ElementsAre(0, 1, 3));
}

TEST(ANodeList, IsEmptyForAnEmptyFile) {
  auto nodes = ParseNodeList("\n");
  ASSERT_TRUE(nodes.ok());
  EXPECT_THAT(*nodes, IsEmpty());
}

TEST(ANodeList, SortsAndDeduplicates) {
  auto nodes = ParseNodeList("4,2-3,3");
  ASSERT_TRUE(nodes.ok());
  EXPECT_THAT(*nodes, ElementsAre(2, 3, 4));
}

TEST(ANodeList, RejectsMalformedText) {
  for (const char* bad : {"1-", "a", "3-1", "1,,2", "-1", "0-99999"}) {
    auto nodes = ParseNodeList(bad);
    ASSERT_FALSE(nodes.ok()) << bad;
    EXPECT_THAT(nodes.error().message, HasSubstr("bad node list")) << bad;
  }
}

TEST(AFirmwareReader, ReadsHmatAccessClassesPerNode) {
  FirmwarePerformance fw = ReadFirmwarePerformance(testing::FsdaxHmatSysfs());
  EXPECT_TRUE(fw.hmat_available);
  EXPECT_EQ(fw.hmat_unavailable_reason, "");
  ASSERT_EQ(fw.nodes.size(), 2u);
  const NodePerformance* pmem = fw.Node(1);
  ASSERT_NE(pmem, nullptr);
  ASSERT_TRUE(pmem->access0.has_value());
  EXPECT_EQ(pmem->access0->read_latency_ns, 305u);
  EXPECT_EQ(pmem->access0->write_latency_ns, 390u);
  EXPECT_EQ(pmem->access0->read_bandwidth_mbps, 8000u);
  EXPECT_EQ(pmem->access0->write_bandwidth_mbps, 2000u);
  EXPECT_THAT(pmem->access0->initiators, ElementsAre(0));
  ASSERT_TRUE(pmem->access1.has_value());
  EXPECT_EQ(pmem->access1->read_latency_ns, 310u);
  EXPECT_FALSE(pmem->access1->read_bandwidth_mbps.has_value());
}

TEST(AFirmwareReader, AssignsNodesToMemoryTiers) {
  FirmwarePerformance fw = ReadFirmwarePerformance(testing::FsdaxHmatSysfs());
  EXPECT_TRUE(fw.tiers_available);
  ASSERT_EQ(fw.tiers.size(), 2u);
  EXPECT_EQ(fw.tiers[0].id, 4);
  EXPECT_THAT(fw.tiers[0].nodes, ElementsAre(0));
  EXPECT_EQ(fw.tiers[1].id, 22);
  EXPECT_EQ(fw.Node(0)->memory_tier, 4);
  EXPECT_EQ(fw.Node(1)->memory_tier, 22);
}

TEST(AFirmwareReader, SaysWhyHmatIsAbsentWhenNodesHaveNoAccessClasses) {
  daxpolicy::testing::TempDir sys;
  testing::AddNode(sys.path(), 0);
  testing::AddNode(sys.path(), 1);
  FirmwarePerformance fw = ReadFirmwarePerformance(sys.path());
  EXPECT_FALSE(fw.hmat_available);
  EXPECT_THAT(fw.hmat_unavailable_reason, HasSubstr("no node has access0/access1"));
  EXPECT_THAT(fw.hmat_unavailable_reason, HasSubstr("HMAT"));
  EXPECT_EQ(fw.nodes.size(), 2u);
  EXPECT_FALSE(fw.Node(1)->access0.has_value());
}

TEST(AFirmwareReader, SaysWhyEverythingIsAbsentInAnEmptySysfs) {
  daxpolicy::testing::TempDir sys;
  FirmwarePerformance fw = ReadFirmwarePerformance(sys.path());
  EXPECT_FALSE(fw.hmat_available);
  EXPECT_THAT(fw.hmat_unavailable_reason, HasSubstr("no NUMA node directories"));
  EXPECT_FALSE(fw.tiers_available);
  EXPECT_THAT(fw.tiers_unavailable_reason, HasSubstr("no memory_tierN/nodes"));
}

TEST(AFirmwareReader, ParsesMultiNodeTiers) {
  daxpolicy::testing::TempDir sys;
  fs::path tiers = sys.path() / "devices/virtual/memory_tiering";
  fs::create_directories(tiers / "memory_tier1");
  fs::create_directories(tiers / "memory_tier3");
  daxpolicy::testing::WriteFile(tiers / "memory_tier1/nodes", "0-1,3\n");
  daxpolicy::testing::WriteFile(tiers / "memory_tier3/nodes", "2\n");
  for (int n = 0; n < 4; ++n) testing::AddNode(sys.path(), n);
  FirmwarePerformance fw = ReadFirmwarePerformance(sys.path());
  ASSERT_TRUE(fw.tiers_available);
  EXPECT_THAT(fw.tiers[0].nodes, ElementsAre(0, 1, 3));
  EXPECT_EQ(fw.Node(2)->memory_tier, 3);
  EXPECT_EQ(fw.Node(3)->memory_tier, 1);
}

TEST(ABlockDeviceResolver, NamesADiskByItsNumber) {
  auto b = ResolveBlockDevice(testing::FsdaxHmatSysfs(), 259, 0);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->name, "pmem0");
  EXPECT_EQ(b->disk, "pmem0");
}

TEST(ABlockDeviceResolver, NamesThePartitionAndItsDisk) {
  auto b = ResolveBlockDevice(testing::FsdaxHmatSysfs(), 259, 1);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->name, "pmem0p1");
  EXPECT_EQ(b->disk, "pmem0");
}

TEST(ABlockDeviceResolver, FailsForAnUnknownNumber) {
  auto b = ResolveBlockDevice(testing::FsdaxHmatSysfs(), 8, 0);
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(b.error().message, HasSubstr("dev/block/8:0"));
}

TEST(ADaxCapabilityCheck, ReadsTheQueueDaxAttribute) {
  EXPECT_EQ(DiskSupportsDax(testing::FsdaxHmatSysfs(), "pmem0"), true);
  EXPECT_EQ(DiskSupportsDax(testing::FsdaxHmatSysfs(), "loop0"), false);
  EXPECT_EQ(DiskSupportsDax(testing::FsdaxHmatSysfs(), "sda"), std::nullopt);
}

}  // namespace
}  // namespace daxpolicy::media
