// SPDX-License-Identifier: Apache-2.0
// Tests against this machine's real /proc and /sys: no fake trees.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plugins/host/dax_capability.h"
#include "plugins/host/holders.h"
#include "plugins/host/mount_table.h"
#include "plugins/host/system_telemetry.h"
#include "tests/support/test_support.h"

namespace daxpolicy::host {
namespace {

namespace fs = std::filesystem;
using daxpolicy::testing::TempDir;
using daxpolicy::testing::WriteFile;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

FileId IdOf(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return FileId{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
}

TEST(TheRealMountTable, ParsesAndPlacesATempFileOnItsDevice) {
  auto table = MountTable::Load(Roots{});
  ASSERT_TRUE(table.ok()) << table.error().message;
  ASSERT_NE(table->Place("/"), nullptr);
  const MountEntry* proc = table->Place("/proc/self");
  ASSERT_NE(proc, nullptr);
  EXPECT_EQ(proc->fs_type, "proc");

  TempDir dir;
  fs::path file = dir.path() / "f";
  WriteFile(file, "x");
  fs::path canonical = fs::canonical(file);
  const MountEntry* mount = table->Place(canonical);
  ASSERT_NE(mount, nullptr);
  EXPECT_TRUE(IsPathPrefix(mount->mount_point, canonical.string()));
  // btrfs subvolumes, overlayfs and zfs report an st_dev of their own that
  // mountinfo does not show; every other filesystem reports the mount's device.
  if (mount->fs_type != "btrfs" && mount->fs_type != "overlay" && mount->fs_type != "zfs") {
    EXPECT_EQ(mount->dev(), IdOf(file).dev) << mount->mount_point << " " << mount->fs_type;
  }
}

TEST(TheRealSystemTelemetry, HasMeminfoAndVmstat) {
  SystemTelemetry t = ReadSystemTelemetry(Roots{});
  ASSERT_TRUE(t.meminfo.has_value()) << t.meminfo_unavailable;
  ASSERT_TRUE(t.vmstat.has_value()) << t.vmstat_unavailable;
  EXPECT_GT(*t.meminfo->total_bytes, 0u);
  ASSERT_TRUE(t.meminfo->page_cache_ratio.has_value());
  EXPECT_GE(*t.meminfo->page_cache_ratio, 0.0);
  EXPECT_LE(*t.meminfo->page_cache_ratio, 1.0);
  EXPECT_TRUE(t.vmstat->workingset_refault_file.has_value());
  EXPECT_TRUE(t.pressure.has_value() || !t.pressure_unavailable.empty());
}

TEST(TheRealKernelRelease, Parses) {
  utsname u{};
  ASSERT_EQ(uname(&u), 0);
  auto k = AssessKernelRelease(u.release);
  ASSERT_TRUE(k.ok()) << k.error().message;
  EXPECT_GT(k->major, 0);
}

// A child process that holds `file` (open and/or mapped) until killed.
class HoldingChild {
 public:
  enum Mode { kOpen, kMapOnly };
  HoldingChild(const fs::path& file, Mode mode) {
    int ready[2];
    EXPECT_EQ(pipe(ready), 0);
    pid_ = fork();
    if (pid_ == 0) {
      close(ready[0]);
      prctl(PR_SET_NAME, "daxholder");
      int fd = open(file.c_str(), O_RDWR);
      if (fd < 0) _exit(2);
      if (mode == kMapOnly) {
        void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) _exit(3);
        close(fd);
      }
      char c = 'r';
      if (write(ready[1], &c, 1) != 1) _exit(4);
      for (;;) pause();
    }
    close(ready[1]);
    char c = 0;
    EXPECT_EQ(read(ready[0], &c, 1), 1) << "child failed to set up";
    close(ready[0]);
  }
  ~HoldingChild() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

TEST(ARealHolderScan, FindsAChildThatHoldsADeletedFileOpen) {
  TempDir dir;
  fs::path file = dir.path() / "held";
  WriteFile(file, std::string(8192, 'x'));
  FileId id = IdOf(file);
  HoldingChild child(file, HoldingChild::kOpen);
  // The scanning process holds it too, but excludes itself.
  int own_fd = open(file.c_str(), O_RDONLY);
  ASSERT_GE(own_fd, 0);
  fs::remove(file);  // stat through /proc/PID/fd still finds a deleted file

  auto scan = FindHolders(Roots{}, {id}, getpid());
  close(own_fd);
  ASSERT_TRUE(scan.ok()) << scan.error().message;
  EXPECT_THAT(scan->holders[id], ElementsAre(Holder{child.pid(), "daxholder", true, false, false}));
  EXPECT_GT(scan->processes_scanned, 1u);
}

TEST(ARealHolderScan, FindsAChildThatOnlyMapsTheFile) {
  TempDir dir;
  fs::path file = dir.path() / "mapped";
  WriteFile(file, std::string(8192, 'x'));
  FileId id = IdOf(file);
  HoldingChild child(file, HoldingChild::kMapOnly);
  auto scan = FindHolders(Roots{}, {id}, getpid());
  ASSERT_TRUE(scan.ok()) << scan.error().message;
  EXPECT_THAT(scan->holders[id], ElementsAre(Holder{child.pid(), "daxholder", false, true, false}));
}

TEST(ARealLoopMount, AllowsTheFlagButCannotMakeItEffective) {
  auto unavailable = daxpolicy::testing::LoopFs::Unavailable();
  DAXPOLICY_REQUIRE(!unavailable.has_value(), unavailable.value_or(""));
  for (auto type : {daxpolicy::testing::FsType::kXfs, daxpolicy::testing::FsType::kExt4}) {
    std::string error;
    auto loop = daxpolicy::testing::LoopFs::Create(type, &error);
    ASSERT_NE(loop, nullptr) << error;
    auto table = MountTable::Load(Roots{});
    ASSERT_TRUE(table.ok()) << table.error().message;
    const MountEntry* mount = table->Place(fs::canonical(loop->mount_point()) / "file");
    ASSERT_NE(mount, nullptr);
    EXPECT_EQ(mount->fs_type, daxpolicy::testing::FsTypeName(type));
    struct statfs sfs {};
    ASSERT_EQ(statfs(loop->mount_point().c_str(), &sfs), 0);
    DaxCheckInput input{static_cast<uint64_t>(sfs.f_bsize),
                        static_cast<uint64_t>(sysconf(_SC_PAGESIZE)), std::nullopt};
    MountDaxCapability cap = AssessMountDax(*mount, Roots{}, input);
    EXPECT_TRUE(cap.per_file_flag.ok) << cap.per_file_flag.reason;
    EXPECT_FALSE(cap.effective.ok);
    ASSERT_TRUE(cap.disk.has_value());
    EXPECT_THAT(*cap.disk, ::testing::StartsWith("loop"));
    EXPECT_EQ(cap.effective.reason, "device " + *cap.disk + " cannot do DAX (/sys/block/" +
                                        *cap.disk + "/queue/dax is 0)");
  }
}

}  // namespace
}  // namespace daxpolicy::host
