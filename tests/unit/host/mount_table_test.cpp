// SPDX-License-Identifier: Apache-2.0
#include "plugins/host/mount_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/sysmacros.h>

#include "tests/support/test_support.h"
#include "tests/unit/host/fixture_path.h"

namespace daxpolicy::host {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

MountTable LoadFixture(const std::string& name) {
  auto table = MountTable::Parse(daxpolicy::testing::ReadFile(testing::Fixture(name)));
  EXPECT_TRUE(table.ok()) << (table.ok() ? "" : table.error().message);
  return std::move(table).value();
}

TEST(AMountinfoLine, ParsesEveryField) {
  auto entry = ParseMountinfoLine(
      "36 35 98:0 /vol /srv/a rw,noatime master:1 shared:7 - ext3 /dev/sdc1 rw,errors=continue");
  ASSERT_TRUE(entry.ok()) << entry.error().message;
  EXPECT_EQ(entry->mount_id, 36);
  EXPECT_EQ(entry->parent_id, 35);
  EXPECT_EQ(entry->major, 98u);
  EXPECT_EQ(entry->minor, 0u);
  EXPECT_EQ(entry->dev(), makedev(98, 0));
  EXPECT_EQ(entry->root, "/vol");
  EXPECT_EQ(entry->mount_point, "/srv/a");
  EXPECT_THAT(entry->mount_options, ElementsAre("rw", "noatime"));
  EXPECT_THAT(entry->optional_fields, ElementsAre("master:1", "shared:7"));
  EXPECT_EQ(entry->fs_type, "ext3");
  EXPECT_EQ(entry->source, "/dev/sdc1");
  EXPECT_THAT(entry->super_options, ElementsAre("rw", "errors=continue"));
  EXPECT_FALSE(entry->read_only());
}

TEST(AMountinfoLine, AcceptsNoOptionalFields) {
  auto entry = ParseMountinfoLine("27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard");
  ASSERT_TRUE(entry.ok()) << entry.error().message;
  EXPECT_TRUE(entry->optional_fields.empty());
  EXPECT_EQ(entry->mount_point, "/");
}

TEST(AMountinfoLine, DecodesOctalEscapesInPathsAndSource) {
  auto entry = ParseMountinfoLine(
      "57 28 0:37 /a\\134b /mnt/My\\040Disk\\012x\\011y rw - btrfs /dev/sdb\\040x rw");
  ASSERT_TRUE(entry.ok()) << entry.error().message;
  EXPECT_EQ(entry->root, "/a\\b");
  EXPECT_EQ(entry->mount_point, "/mnt/My Disk\nx\ty");
  EXPECT_EQ(entry->source, "/dev/sdb x");
}

TEST(AMountinfoLine, IsReadOnlyWhenEitherOptionListSaysRo) {
  auto per_mount = ParseMountinfoLine("1 0 8:1 / /a ro,relatime - ext4 /dev/sda1 rw");
  auto super = ParseMountinfoLine("1 0 8:1 / /a rw,relatime - ext4 /dev/sda1 ro");
  ASSERT_TRUE(per_mount.ok() && super.ok());
  EXPECT_TRUE(per_mount->read_only());
  EXPECT_TRUE(super->read_only());
}

struct MalformedLine {
  const char* line;
  const char* message_part;
};

class AMalformedMountinfoLine : public ::testing::TestWithParam<MalformedLine> {};

TEST_P(AMalformedMountinfoLine, GivesAnErrorNamingTheProblem) {
  auto entry = ParseMountinfoLine(GetParam().line);
  ASSERT_FALSE(entry.ok());
  EXPECT_THAT(entry.error().message, HasSubstr(GetParam().message_part));
}

INSTANTIATE_TEST_SUITE_P(
    Variants, AMalformedMountinfoLine,
    ::testing::Values(
        MalformedLine{"", "truncated line (1 fields"},
        MalformedLine{"36 35 98:0 /vol /srv/a rw,noatime master:1 - ext3", "truncated line"},
        MalformedLine{"36 35 98:0 /vol /srv/a rw master:1 shared:2 ext3 /dev/x rw",
                      "no \"-\" separator"},
        MalformedLine{"x6 35 98:0 / /m rw - ext3 /dev/x rw", "bad mount id 'x6'"},
        MalformedLine{"36 -5 98:0 / /m rw - ext3 /dev/x rw", "bad parent id '-5'"},
        MalformedLine{"36 35 98 / /m rw - ext3 /dev/x rw", "bad major:minor '98'"},
        MalformedLine{"36 35 98:zz / /m rw - ext3 /dev/x rw", "bad major:minor '98:zz'"},
        MalformedLine{"36 35 99999999999:0 / /m rw - ext3 /dev/x rw", "bad major:minor"},
        MalformedLine{"36 35 98:0 / /m\\04 rw - ext3 /dev/x rw", "mount point: bad escape"},
        MalformedLine{"36 35 98:0 / /m\\08x rw - ext3 /dev/x rw", "expected three octal digits"},
        MalformedLine{"36 35 98:0 / /m\\777 rw - ext3 /dev/x rw", "value above \\377"},
        MalformedLine{"36 35 98:0 /\\x / rw - ext3 /dev/x rw", "root: bad escape"},
        MalformedLine{"36 35 98:0 / /m rw - ext3 /dev\\9 rw", "source: bad escape"},
        MalformedLine{"36 35 98:0 / rel rw - ext3 /dev/x rw", "not absolute"},
        MalformedLine{"36 35 98:0 / /m rw -  /dev/x rw", "empty filesystem type"}));

TEST(AMountTable, NamesTheLineOfAMalformedEntry) {
  auto table = MountTable::Parse(
      "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
      "2 1 8:2 / /a rw - ext4 /dev/sda2 rw\n"
      "3 1 8:3 / /b rw - ext4\n");
  ASSERT_FALSE(table.ok());
  EXPECT_THAT(table.error().message, HasSubstr("mountinfo line 3: truncated line"));
}

TEST(AMountTable, RejectsAnEmptyTable) {
  auto table = MountTable::Parse("\n");
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.error().message, "mountinfo is empty");
}

TEST(AMountTable, ReportsAMissingFileAsAnError) {
  daxpolicy::testing::TempDir dir;
  auto table = MountTable::Load(Roots{dir.path() / "proc", dir.path() / "sys"});
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.error().code, ENOENT);
  EXPECT_THAT(table.error().message, HasSubstr("self/mountinfo"));
}

TEST(AMountTable, LoadsFromTheProcRoot) {
  daxpolicy::testing::TempDir dir;
  std::filesystem::create_directories(dir.path() / "proc" / "self");
  std::filesystem::copy_file(testing::Fixture("mountinfo-pmem-host.txt"),
                             dir.path() / "proc" / "self" / "mountinfo");
  auto table = MountTable::Load(Roots{dir.path() / "proc", dir.path() / "sys"});
  ASSERT_TRUE(table.ok()) << table.error().message;
  EXPECT_EQ(table->entries().size(), 18u);
}

struct Placement {
  const char* path;
  const char* expected_mount_point;  // nullptr: no mount
  int expected_id;
};

class APlacedPath : public ::testing::TestWithParam<Placement> {};

TEST_P(APlacedPath, LandsOnTheLongestVisibleMountPrefix) {
  MountTable table = LoadFixture("mountinfo-pmem-host.txt");
  const MountEntry* mount = table.Place(GetParam().path);
  if (GetParam().expected_mount_point == nullptr) {
    EXPECT_EQ(mount, nullptr);
    return;
  }
  ASSERT_NE(mount, nullptr);
  EXPECT_EQ(mount->mount_point, GetParam().expected_mount_point);
  EXPECT_EQ(mount->mount_id, GetParam().expected_id);
}

INSTANTIATE_TEST_SUITE_P(
    Paths, APlacedPath,
    ::testing::Values(Placement{"/", "/", 28}, Placement{"/etc/passwd", "/", 28},
                      Placement{"/srv/pmem", "/srv/pmem", 50},
                      Placement{"/srv/pmem/", "/srv/pmem", 50},
                      Placement{"/srv/pmem/a/b.sst", "/srv/pmem", 50},
                      // Component prefix only: /srv/pmem is not a prefix of /srv/pmem1.
                      Placement{"/srv/pmem1/x", "/srv/pmem1", 51},
                      Placement{"/srv/pmemx/x", "/", 28},
                      Placement{"/srv/pmem/db-view/t", "/srv/pmem/db-view", 55},
                      Placement{"/srv/pmem/scratch/t", "/srv/pmem/scratch", 56},
                      Placement{"/srv/pmem/./scratch/../a", "/srv/pmem", 50},
                      Placement{"/srv//pmem2//f", "/srv/pmem2", 52},
                      Placement{"/mnt/My Disk\nx/file", "/mnt/My Disk\nx", 57},
                      Placement{"relative/path", nullptr, 0}));

TEST(AMountTable, ShowsABindMountsRootInsideItsFilesystem) {
  MountTable table = LoadFixture("mountinfo-pmem-host.txt");
  const MountEntry* mount = table.Place("/srv/pmem/db-view");
  ASSERT_NE(mount, nullptr);
  EXPECT_EQ(mount->root, "/db");
  EXPECT_EQ(mount->dev(), table.Place("/srv/pmem")->dev());
  EXPECT_TRUE(mount->read_only());
}

TEST(AMountTable, LetsTheLastMountOnAPointWin) {
  MountTable table = LoadFixture("mountinfo-overmount.txt");
  const MountEntry* mount = table.Place("/data/file");
  ASSERT_NE(mount, nullptr);
  EXPECT_EQ(mount->mount_id, 12);
  EXPECT_EQ(mount->fs_type, "tmpfs");
  EXPECT_FALSE(table.Visible(1));
  EXPECT_TRUE(table.Visible(3));
}

TEST(AMountTable, HidesMountsBelowAnOvermountedOne) {
  MountTable table = LoadFixture("mountinfo-overmount.txt");
  // /data/inner (11) sat on the covered xfs; the path now lives on the tmpfs.
  EXPECT_FALSE(table.Visible(2));
  EXPECT_EQ(table.Place("/data/inner/f")->mount_id, 12);
  // A mount made on top of the overmount is visible.
  EXPECT_EQ(table.Place("/data/new/f")->mount_id, 13);
}

TEST(AMountTable, ListsVisibleSubMountsBelowAScope) {
  MountTable table = LoadFixture("mountinfo-pmem-host.txt");
  std::vector<std::string> points;
  for (const MountEntry* m : table.SubMountsBelow("/srv/pmem/")) points.push_back(m->mount_point);
  EXPECT_THAT(points, ElementsAre("/srv/pmem/db-view", "/srv/pmem/scratch"));

  points.clear();
  for (const MountEntry* m : table.SubMountsBelow("/data")) points.push_back(m->mount_point);
  EXPECT_TRUE(points.empty());

  MountTable over = LoadFixture("mountinfo-overmount.txt");
  points.clear();
  for (const MountEntry* m : over.SubMountsBelow("/data")) points.push_back(m->mount_point);
  EXPECT_THAT(points, ElementsAre("/data/new"));
  EXPECT_TRUE(table.SubMountsBelow("relative").empty());
}

TEST(AMountTable, RefusesAScopeRootCoveredByAMount) {
  MountTable over = LoadFixture("mountinfo-overmount.txt");
  // tmpfs (12) stacked over the xfs (10) at /data.
  EXPECT_THAT(over.MountOverProblem("/data", 12), HasSubstr("stacked over another at /data"));
  // Below the stacked point the tmpfs is an ordinary filesystem directory.
  EXPECT_EQ(over.MountOverProblem("/data/dir", 12), "");
  // The kernel says the root is on another mount than the table: mounted over meanwhile.
  EXPECT_THAT(over.MountOverProblem("/data/dir", 40), HasSubstr("mount id 40 instead of 12"));

  MountTable host = LoadFixture("mountinfo-pmem-host.txt");
  // A filesystem's own mount point is a fine scope root; a bind mount of the same
  // filesystem over one of its directories is not.
  const MountEntry* pmem = host.Place("/srv/pmem");
  ASSERT_NE(pmem, nullptr);
  EXPECT_EQ(host.MountOverProblem("/srv/pmem", static_cast<uint64_t>(pmem->mount_id)), "");
  EXPECT_EQ(host.MountOverProblem("/srv/pmem/a", 0), "");
  EXPECT_THAT(host.MountOverProblem("/srv/pmem/db-view", 0),
              HasSubstr("bind mount of /db of its own filesystem"));

  // What systemd's ReadWritePaths= leaves in the daemon's namespace: each scope bound onto
  // itself, over a mount point or over a directory. Those are the scopes themselves.
  auto self = MountTable::Parse(
      "1 0 8:1 / / ro - ext4 /dev/sda1 rw\n"
      "50 1 259:4 / /srv/pmem ro - xfs /dev/pmem0 rw\n"
      "51 50 259:4 / /srv/pmem rw - xfs /dev/pmem0 rw\n"
      "52 51 259:4 /db /srv/pmem/db rw - xfs /dev/pmem0 rw\n"
      "53 51 259:4 /other /srv/pmem/over rw - xfs /dev/pmem0 rw\n"
      "54 1 0:40 / /srv/pmem2 rw - tmpfs tmpfs rw\n"
      "55 54 0:41 / /srv/pmem2 rw - tmpfs tmpfs rw\n");
  ASSERT_TRUE(self.ok()) << self.error().message;
  EXPECT_EQ(self->MountOverProblem("/srv/pmem", 51), "");
  EXPECT_EQ(self->MountOverProblem("/srv/pmem/db", 52), "");
  EXPECT_THAT(self->MountOverProblem("/srv/pmem/over", 53),
              HasSubstr("bind mount of /other of its own filesystem (/dev/pmem0) over /over"));
  EXPECT_THAT(self->MountOverProblem("/srv/pmem2", 55), HasSubstr("stacked over another"));
}

TEST(AMountTable, SurvivesAParentCycle) {
  auto table = MountTable::Parse(
      "5 6 8:1 / /a rw - ext4 /dev/sda1 rw\n"
      "6 5 8:2 / /a/b rw - ext4 /dev/sda2 rw\n");
  ASSERT_TRUE(table.ok()) << table.error().message;
  EXPECT_EQ(table->Place("/a/b/c")->mount_id, 6);
}

TEST(MountOptions, FindFlagsAndTheLastValueOfAKey) {
  std::vector<std::string> options = {"rw", "dax=never", "daxx=1", "dax=inode", "dax"};
  EXPECT_TRUE(HasOption(options, "dax"));
  EXPECT_FALSE(HasOption(options, "ro"));
  EXPECT_EQ(OptionValue(options, "dax"), "inode");
  EXPECT_EQ(OptionValue(options, "size"), std::nullopt);
}

TEST(APathPrefix, MatchesWholeComponentsOnly) {
  EXPECT_TRUE(IsPathPrefix("/", "/x"));
  EXPECT_TRUE(IsPathPrefix("/a", "/a"));
  EXPECT_TRUE(IsPathPrefix("/a", "/a/b"));
  EXPECT_FALSE(IsPathPrefix("/a", "/ab"));
  EXPECT_FALSE(IsPathPrefix("/a/b", "/a"));
}

}  // namespace
}  // namespace daxpolicy::host
