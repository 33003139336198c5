// SPDX-License-Identifier: Apache-2.0
#include "plugins/host/dax_capability.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>

#include "tests/support/test_support.h"

namespace daxpolicy::host {
namespace {

namespace fs = std::filesystem;
using daxpolicy::testing::TempDir;
using daxpolicy::testing::WriteFile;
using ::testing::HasSubstr;

// A fake sysfs with block devices laid out as the kernel does: the device
// directory under devices/, a dev/block/MAJ:MIN link and a block/<disk> link.
class FakeSys {
 public:
  FakeSys() { fs::create_directories(sys() / "dev" / "block"); }
  Roots roots() const { return Roots{dir_.path() / "proc", sys()}; }
  fs::path sys() const { return dir_.path() / "sys"; }

  // A whole disk; dax = nullopt leaves queue/dax out.
  void AddDisk(const std::string& parent, const std::string& disk, const std::string& dev,
               std::optional<std::string> dax) {
    fs::path device = sys() / "devices" / parent / "block" / disk;
    fs::create_directories(device / "queue");
    if (dax) WriteFile(device / "queue" / "dax", *dax);
    WriteFile(device / "dev", dev + "\n");
    fs::create_directories(sys() / "block");
    fs::create_directory_symlink(fs::path("..") / "devices" / parent / "block" / disk,
                                 sys() / "block" / disk);
    fs::create_directory_symlink(fs::path("..") / ".." / "devices" / parent / "block" / disk,
                                 sys() / "dev" / "block" / dev);
  }
  void AddPartition(const std::string& parent, const std::string& disk, const std::string& part,
                    const std::string& dev) {
    fs::path device = sys() / "devices" / parent / "block" / disk / part;
    fs::create_directories(device);
    WriteFile(device / "partition", "1\n");
    fs::create_directory_symlink(fs::path("..") / ".." / "devices" / parent / "block" / disk / part,
                                 sys() / "dev" / "block" / dev);
  }

 private:
  TempDir dir_;
};

MountEntry Mount(const std::string& line) {
  auto entry = ParseMountinfoLine(line);
  EXPECT_TRUE(entry.ok()) << (entry.ok() ? "" : entry.error().message);
  return std::move(entry).value();
}

DaxCheckInput PageSized() { return DaxCheckInput{4096, 4096, std::nullopt}; }

struct FlagCase {
  const char* name;
  const char* line;
  bool ok;
  const char* reason;  // exact expected reason when !ok
  DaxMountOption option;
};

class APerFileFlagVerdict : public ::testing::TestWithParam<FlagCase> {};

TEST_P(APerFileFlagVerdict, FollowsFsTypeMountModeAndWritability) {
  FakeSys sys;
  MountDaxCapability cap = AssessMountDax(Mount(GetParam().line), sys.roots(), PageSized());
  EXPECT_EQ(cap.per_file_flag.ok, GetParam().ok);
  EXPECT_EQ(cap.per_file_flag.reason, GetParam().reason);
  EXPECT_EQ(cap.option, GetParam().option);
}

INSTANTIATE_TEST_SUITE_P(
    Mounts, APerFileFlagVerdict,
    ::testing::Values(
        FlagCase{"XfsWithoutOptionDefaultsToInode",
                 "50 28 259:4 / /srv/pmem rw,relatime - xfs /dev/pmem0 "
                 "rw,attr2,inode64,logbufs=8,logbsize=32k,noquota",
                 true, "", DaxMountOption::kAbsent},
        FlagCase{"Ext4WithoutOptionDefaultsToInode", "51 28 259:5 / /srv/p rw - ext4 /dev/pmem1 rw",
                 true, "", DaxMountOption::kAbsent},
        FlagCase{"Ext4DaxInode", "51 28 259:5 / /srv/p rw - ext4 /dev/pmem1 rw,dax=inode", true, "",
                 DaxMountOption::kInode},
        FlagCase{"Ext4DaxAlways", "52 28 259:6 / /srv/p rw - ext4 /dev/pmem2 rw,dax=always", false,
                 "mount /srv/p has dax=always: every file uses DAX, the per-file flag is ignored",
                 DaxMountOption::kAlways},
        FlagCase{"Ext4DaxNever", "52 28 259:6 / /srv/p rw - ext4 /dev/pmem2 rw,dax=never", false,
                 "mount /srv/p has dax=never: no file uses DAX, the per-file flag is ignored",
                 DaxMountOption::kNever},
        FlagCase{"XfsDaxNever",
                 "53 28 259:7 / /srv/p rw - xfs /dev/pmem3 rw,dax=never,attr2,inode64", false,
                 "mount /srv/p has dax=never: no file uses DAX, the per-file flag is ignored",
                 DaxMountOption::kNever},
        FlagCase{"LegacyDax", "54 28 259:8 / /srv/old rw - ext4 /dev/pmem4 rw,dax", false,
                 "mount /srv/old has the legacy option dax (= dax=always): every file uses DAX, "
                 "the per-file flag is ignored",
                 DaxMountOption::kLegacy},
        FlagCase{"UnknownDaxValue", "54 28 259:8 / /srv/p rw - ext4 /dev/pmem4 rw,dax=sometimes",
                 false, "mount /srv/p has an unknown option dax=sometimes, expected dax=inode",
                 DaxMountOption::kOther},
        // A writable filesystem seen through a read-only bind: what ProtectSystem=strict
        // makes of a scope missing from ReadWritePaths=.
        FlagCase{"ReadOnlyMount", "55 50 259:4 /db /srv/v ro,relatime - xfs /dev/pmem0 rw", false,
                 "mount /srv/v is read-only for daxpolicyd (the filesystem is writable, this "
                 "mount is not): under systemd, list the scope in ReadWritePaths= with a "
                 "drop-in, see /usr/share/doc/daxpolicy/scopes.conf.example",
                 DaxMountOption::kAbsent},
        FlagCase{"ReadOnlyFilesystem", "55 50 259:4 / /srv/v ro,relatime - xfs /dev/pmem0 ro",
                 false, "mount /srv/v is read-only (option ro): the DAX flag cannot be changed",
                 DaxMountOption::kAbsent},
        FlagCase{"Tmpfs", "41 28 0:35 / /tmp rw - tmpfs tmpfs rw,size=8159208k", false,
                 "mount /tmp is tmpfs: its files live in memory already, there is no DAX",
                 DaxMountOption::kAbsent},
        FlagCase{"Btrfs", "57 28 0:37 / /mnt/b rw - btrfs /dev/sdb rw,space_cache=v2", false,
                 "mount /mnt/b is btrfs: per-file DAX needs ext4 or xfs", DaxMountOption::kAbsent},
        FlagCase{"Nfs", "58 28 0:38 / /mnt/share rw - nfs4 server:/export rw,vers=4.2", false,
                 "mount /mnt/share is nfs4: network filesystems have no DAX",
                 DaxMountOption::kAbsent},
        FlagCase{"Fuse", "60 28 0:40 / /mnt/s rw - fuse.sshfs u@h:/ rw,user_id=0", false,
                 "mount /mnt/s is fuse.sshfs: FUSE filesystems have no DAX",
                 DaxMountOption::kAbsent},
        FlagCase{"Virtiofs", "59 28 0:39 / /mnt/vfs rw - virtiofs myfs rw,dax=inode", false,
                 "mount /mnt/vfs is virtiofs: the FUSE server decides DAX per file, FS_XFLAG_DAX "
                 "is only a hint",
                 DaxMountOption::kInode},
        FlagCase{"Ext2", "62 28 259:9 / /mnt/e2 rw - ext2 /dev/pmem5 rw,dax", false,
                 "mount /mnt/e2 is ext2: it has only the mount-wide dax option, no per-file DAX "
                 "flag",
                 DaxMountOption::kLegacy}),
    [](const ::testing::TestParamInfo<FlagCase>& info) { return info.param.name; });

TEST(APerFileFlagVerdict, IsNegativeOnAKernelBefore5Point8) {
  FakeSys sys;
  auto kernel = AssessKernelRelease("5.4.0-150-generic");
  ASSERT_TRUE(kernel.ok());
  MountDaxCapability cap = AssessMountDax(Mount("1 0 259:0 / /p rw - xfs /dev/pmem0 rw"),
                                          sys.roots(), DaxCheckInput{4096, 4096, *kernel});
  EXPECT_FALSE(cap.per_file_flag.ok);
  EXPECT_EQ(cap.per_file_flag.reason,
            "mount /p: kernel 5.4 has no per-file DAX (dax=inode and FS_XFLAG_DAX need 5.8)");
}

TEST(AnEffectiveVerdict, IsPositiveOnADaxCapableWholeDisk) {
  FakeSys sys;
  sys.AddDisk("platform/e820_pmem/ndbus0/region0/namespace0.0", "pmem0", "259:0", "1\n");
  MountDaxCapability cap =
      AssessMountDax(Mount("1 0 259:0 / /p rw - xfs /dev/pmem0 rw"), sys.roots(), PageSized());
  EXPECT_TRUE(cap.effective.ok) << cap.effective.reason;
  EXPECT_EQ(cap.effective.reason, "");
  EXPECT_EQ(cap.disk, "pmem0");
  EXPECT_EQ(cap.device_dax, true);
  EXPECT_TRUE(cap.per_file_flag.ok);
}

TEST(AnEffectiveVerdict, ResolvesAPartitionToItsDisk) {
  FakeSys sys;
  sys.AddDisk("platform/ndbus0/region1/namespace1.0", "pmem1", "259:4", "1\n");
  sys.AddPartition("platform/ndbus0/region1/namespace1.0", "pmem1", "pmem1p2", "259:6");
  MountDaxCapability cap = AssessMountDax(
      Mount("1 0 259:6 / /p rw - ext4 /dev/pmem1p2 rw,dax=inode"), sys.roots(), PageSized());
  EXPECT_EQ(cap.disk, "pmem1");
  EXPECT_TRUE(cap.effective.ok) << cap.effective.reason;

  auto disk = ResolveDisk(sys.roots(), 259, 6);
  ASSERT_TRUE(disk.ok());
  EXPECT_EQ(*disk, "pmem1");
}

TEST(AnEffectiveVerdict, NamesALoopDeviceThatCannotDoDax) {
  FakeSys sys;
  sys.AddDisk("virtual", "loop3", "7:3", "0\n");
  MountDaxCapability cap = AssessMountDax(
      Mount("61 28 7:3 / /mnt/loop rw - xfs /dev/loop3 rw,attr2"), sys.roots(), PageSized());
  EXPECT_FALSE(cap.effective.ok);
  EXPECT_EQ(cap.effective.reason, "device loop3 cannot do DAX (" +
                                      (sys.sys() / "block/loop3/queue/dax").string() + " is 0)");
  EXPECT_EQ(cap.device_dax, false);
  // The flag itself can still be set there: the verdicts are independent.
  EXPECT_TRUE(cap.per_file_flag.ok);
}

TEST(AnEffectiveVerdict, ExplainsAMissingDaxAttribute) {
  FakeSys sys;
  sys.AddDisk("pci0000:00/0000:00:01.0/nvme/nvme0", "nvme0n1", "259:1", std::nullopt);
  MountDaxCapability cap =
      AssessMountDax(Mount("1 0 259:1 / /p rw - xfs /dev/nvme0n1 rw"), sys.roots(), PageSized());
  EXPECT_FALSE(cap.effective.ok);
  EXPECT_EQ(cap.device_dax, std::nullopt);
  EXPECT_THAT(cap.effective.reason,
              HasSubstr("device nvme0n1 does not say whether it can do DAX: open "));
  EXPECT_THAT(cap.effective.reason, HasSubstr("queue/dax: No such file or directory"));
}

TEST(AnEffectiveVerdict, RejectsGarbageInTheDaxAttribute) {
  FakeSys sys;
  sys.AddDisk("virtual", "loop1", "7:1", "yes\n");
  auto dax = ReadDeviceDax(sys.roots(), "loop1");
  ASSERT_FALSE(dax.ok());
  EXPECT_THAT(dax.error().message, HasSubstr("holds 'yes', expected 0 or 1"));
  MountDaxCapability cap =
      AssessMountDax(Mount("1 0 7:1 / /p rw - xfs /dev/loop1 rw"), sys.roots(), PageSized());
  EXPECT_FALSE(cap.effective.ok);
  EXPECT_THAT(cap.effective.reason, HasSubstr("holds 'yes', expected 0 or 1"));
}

TEST(AnEffectiveVerdict, ExplainsAnUnknownBlockDevice) {
  FakeSys sys;
  MountDaxCapability cap =
      AssessMountDax(Mount("1 0 259:9 / /p rw - xfs /dev/pmem9 rw"), sys.roots(), PageSized());
  EXPECT_FALSE(cap.effective.ok);
  EXPECT_EQ(cap.disk, std::nullopt);
  EXPECT_THAT(cap.effective.reason, HasSubstr("mount /p: cannot find its disk: block device "));
  EXPECT_THAT(cap.effective.reason, HasSubstr("dev/block/259:9: No such file or directory"));
}

TEST(AnEffectiveVerdict, SaysAMountWithoutBlockDeviceCannotDoDax) {
  FakeSys sys;
  MountDaxCapability cap =
      AssessMountDax(Mount("41 28 0:35 / /tmp rw - tmpfs tmpfs rw"), sys.roots(), PageSized());
  EXPECT_FALSE(cap.effective.ok);
  EXPECT_EQ(cap.effective.reason,
            "mount /tmp (tmpfs) has no block device (device 0:35), DAX needs a DAX-capable block "
            "device");
}

TEST(AnEffectiveVerdict, NeedsTheBlockSizeToEqualThePageSize) {
  FakeSys sys;
  sys.AddDisk("virtual", "pmem0", "259:0", "1");
  MountEntry mount = Mount("1 0 259:0 / /p rw - ext4 /dev/pmem0 rw");
  MountDaxCapability small = AssessMountDax(mount, sys.roots(), DaxCheckInput{1024, 4096, {}});
  EXPECT_FALSE(small.effective.ok);
  EXPECT_EQ(small.effective.reason, "mount /p has block size 1024, DAX needs the page size 4096");
  MountDaxCapability unknown = AssessMountDax(mount, sys.roots(), DaxCheckInput{0, 65536, {}});
  EXPECT_EQ(unknown.effective.reason,
            "mount /p: block size unknown, DAX needs it to equal the page size 65536");
}

TEST(AnEffectiveVerdict, ListsEveryReasonWhenSeveralApply) {
  FakeSys sys;
  sys.AddDisk("virtual", "loop0", "7:0", "0");
  MountDaxCapability cap = AssessMountDax(Mount("1 0 7:0 / /p rw - ext4 /dev/loop0 rw"),
                                          sys.roots(), DaxCheckInput{2048, 4096, {}});
  EXPECT_EQ(cap.effective.reason, "device loop0 cannot do DAX (" +
                                      (sys.sys() / "block/loop0/queue/dax").string() +
                                      " is 0); mount /p has block size 2048, DAX needs the page "
                                      "size 4096");
}

struct KernelCase {
  const char* release;
  int major;
  int minor;
  bool per_file;
  bool last_close;
};

class AKernelRelease : public ::testing::TestWithParam<KernelCase> {};

TEST_P(AKernelRelease, SaysWhichDaxFeaturesExist) {
  auto k = AssessKernelRelease(GetParam().release);
  ASSERT_TRUE(k.ok()) << k.error().message;
  EXPECT_EQ(k->major, GetParam().major);
  EXPECT_EQ(k->minor, GetParam().minor);
  EXPECT_EQ(k->per_file_dax, GetParam().per_file);
  EXPECT_EQ(k->switch_on_last_close, GetParam().last_close);
  EXPECT_EQ(k->per_file_dax_reason.empty(), GetParam().per_file);
  EXPECT_EQ(k->switch_on_last_close_reason.empty(), GetParam().last_close);
}

INSTANTIATE_TEST_SUITE_P(Releases, AKernelRelease,
                         ::testing::Values(KernelCase{"4.19.0-26-amd64", 4, 19, false, false},
                                           KernelCase{"5.7.19", 5, 7, false, false},
                                           KernelCase{"5.8", 5, 8, true, false},
                                           KernelCase{"5.10.0-28-cloud-amd64", 5, 10, true, false},
                                           KernelCase{"5.11.0-rc1", 5, 11, true, true},
                                           KernelCase{"6.1.0-18-amd64", 6, 1, true, true},
                                           KernelCase{"6.18.44-fc-v669", 6, 18, true, true}));

TEST(AKernelRelease, ExplainsTheMissingLastCloseSwitch) {
  auto k = AssessKernelRelease("5.10.0");
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->switch_on_last_close_reason,
            "kernel 5.10 applies a changed DAX flag only when the inode is evicted (drop_caches "
            "or unmount), not on last close (needs 5.11)");
}

TEST(AKernelRelease, RejectsAReleaseWithoutMajorAndMinor) {
  for (const char* bad : {"", "6", "6.", "x.1", "linux-6.1", ".5", "9999999.1"}) {
    auto k = AssessKernelRelease(bad);
    ASSERT_FALSE(k.ok()) << bad;
    EXPECT_THAT(k.error().message, HasSubstr("does not start with <major>.<minor>"));
  }
}

}  // namespace
}  // namespace daxpolicy::host
