// SPDX-License-Identifier: Apache-2.0
#include "plugins/host/holders.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdio>

#include "tests/support/test_support.h"

namespace daxpolicy::host {
namespace {

namespace fs = std::filesystem;
using daxpolicy::testing::TempDir;
using daxpolicy::testing::WriteFile;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

FileId IdOf(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return FileId{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
}

// A maps/smaps header line for a mapping of `id`, as the kernel prints it.
std::string MapsLine(const FileId& id, const std::string& path, const char* perms = "rw-s") {
  char line[256];
  std::snprintf(line, sizeof(line), "7f0000000000-7f0000001000 %s 00000000 %02x:%02x %llu %s",
                perms, major(id.dev), minor(id.dev), static_cast<unsigned long long>(id.ino),
                path.c_str());
  return line;
}

std::string SmapsEntry(const FileId& id, const std::string& path, const std::string& vm_flags) {
  return MapsLine(id, path) +
         "\nSize:                  4 kB\nKernelPageSize:        4 kB\nRss:                   4 kB\n"
         "THPeligible:    0\nVmFlags: " +
         vm_flags + "\n";
}

// A fake /proc whose fd links point at real files in the same temp dir.
class FakeProc {
 public:
  FakeProc() {
    fs::create_directories(proc());
    fs::create_directories(data());
  }
  fs::path proc() const { return dir_.path() / "proc"; }
  fs::path data() const { return dir_.path() / "data"; }
  Roots roots() const { return Roots{proc(), dir_.path() / "sys"}; }

  fs::path NewFile(const std::string& name) {
    WriteFile(data() / name, "content");
    return data() / name;
  }
  // A process with comm, an fd directory, and maps/smaps contents.
  void AddProcess(int pid, const std::string& comm, const std::vector<fs::path>& open_files,
                  const std::string& maps = "", const std::string& smaps = "") {
    fs::path dir = proc() / std::to_string(pid);
    fs::create_directories(dir / "fd");
    WriteFile(dir / "comm", comm + "\n");
    int fd = 0;
    for (const fs::path& file : open_files) {
      fs::create_symlink(file, dir / "fd" / std::to_string(fd++));
    }
    WriteFile(dir / "maps", maps);
    WriteFile(dir / "smaps", smaps);
  }

 private:
  TempDir dir_;
};

TEST(AHolderScan, FindsAProcessWithTheFileOpen) {
  FakeProc proc;
  fs::path file = proc.NewFile("a.db");
  fs::path other = proc.NewFile("other");
  proc.AddProcess(100, "postgres", {other, file});
  auto scan = FindHolders(proc.roots(), {IdOf(file)}, 0);
  ASSERT_TRUE(scan.ok()) << scan.error().message;
  EXPECT_THAT(scan->holders[IdOf(file)], ElementsAre(Holder{100, "postgres", true, false, false}));
  EXPECT_EQ(scan->processes_scanned, 1u);
  EXPECT_EQ(scan->processes_skipped, 0u);
}

TEST(AHolderScan, FindsAMappingFromTheDeviceAndInodeColumns) {
  FakeProc proc;
  fs::path file = proc.NewFile("a.db");
  FileId id = IdOf(file);
  std::string maps = "55d0c0000000-55d0c0001000 r-xp 00000000 00:00 0 \n" +
                     MapsLine(id, file.string()) + "\n" +
                     "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]\n";
  proc.AddProcess(200, "reader", {}, maps, SmapsEntry(id, file.string(), "rd wr sh mr mw me ms"));
  auto scan = FindHolders(proc.roots(), {id}, 0);
  ASSERT_TRUE(scan.ok()) << scan.error().message;
  EXPECT_THAT(scan->holders[id], ElementsAre(Holder{200, "reader", false, true, false}));
}

TEST(AHolderScan, DetectsMapSyncFromTheSfVmFlag) {
  FakeProc proc;
  fs::path file = proc.NewFile("log");
  fs::path plain = proc.NewFile("plain");
  FileId id = IdOf(file);
  FileId plain_id = IdOf(plain);
  std::string maps = MapsLine(plain_id, plain.string()) + "\n" + MapsLine(id, file.string()) + "\n";
  // The sf flag belongs to the mapping of `file` only.
  std::string smaps = SmapsEntry(plain_id, plain.string(), "rd wr sh mr mw me ms") +
                      SmapsEntry(id, file.string(), "rd wr sh mr mw me ms sf");
  proc.AddProcess(300, "pmemkv", {file}, maps, smaps);
  auto scan = FindHolders(proc.roots(), {id, plain_id}, 0);
  ASSERT_TRUE(scan.ok()) << scan.error().message;
  EXPECT_THAT(scan->holders[id], ElementsAre(Holder{300, "pmemkv", true, true, true}));
  EXPECT_THAT(scan->holders[plain_id], ElementsAre(Holder{300, "pmemkv", false, true, false}));
}

TEST(AHolderScan, DoesNotReadSmapsOfProcessesWithoutMappingsOfInterest) {
  FakeProc proc;
  fs::path file = proc.NewFile("a");
  FileId id = IdOf(file);
  // smaps claims a MAP_SYNC mapping, but maps has none of interest: smaps must not be read.
  proc.AddProcess(400, "opener", {file}, "", SmapsEntry(id, file.string(), "rd sh sf"));
  auto scan = FindHolders(proc.roots(), {id}, 0);
  ASSERT_TRUE(scan.ok());
  EXPECT_THAT(scan->holders[id], ElementsAre(Holder{400, "opener", true, false, false}));
}

TEST(AHolderScan, IgnoresUnrelatedFilesAndNonProcessEntries) {
  FakeProc proc;
  fs::path file = proc.NewFile("wanted");
  fs::path other = proc.NewFile("unrelated");
  proc.AddProcess(500, "busy", {other}, MapsLine(IdOf(other), other.string()) + "\n");
  fs::create_directories(proc.proc() / "sys");
  fs::create_directories(proc.proc() / "self");
  WriteFile(proc.proc() / "meminfo", "");
  auto scan = FindHolders(proc.roots(), {IdOf(file)}, 0);
  ASSERT_TRUE(scan.ok());
  EXPECT_THAT(scan->holders, IsEmpty());
  EXPECT_EQ(scan->processes_scanned, 1u);
}

TEST(AHolderScan, ExcludesTheGivenPid) {
  FakeProc proc;
  fs::path file = proc.NewFile("f");
  proc.AddProcess(600, "daxpolicyd", {file});
  proc.AddProcess(601, "app", {file});
  auto scan = FindHolders(proc.roots(), {IdOf(file)}, 600);
  ASSERT_TRUE(scan.ok());
  EXPECT_THAT(scan->holders[IdOf(file)], ElementsAre(Holder{601, "app", true, false, false}));
  EXPECT_EQ(scan->processes_scanned, 1u);
}

TEST(AHolderScan, SkipsAndCountsVanishedProcesses) {
  FakeProc proc;
  fs::path file = proc.NewFile("f");
  proc.AddProcess(700, "app", {file});
  // A process that exited between readdir and reading its files: an empty directory.
  fs::create_directories(proc.proc() / "701");
  // One whose maps disappeared after its fds were read.
  proc.AddProcess(702, "late", {file});
  fs::remove(proc.proc() / "702" / "maps");
  auto scan = FindHolders(proc.roots(), {IdOf(file)}, 0);
  ASSERT_TRUE(scan.ok());
  EXPECT_EQ(scan->processes_scanned, 3u);
  EXPECT_EQ(scan->processes_skipped, 2u);
  EXPECT_THAT(scan->holders[IdOf(file)], ElementsAre(Holder{700, "app", true, false, false},
                                                     Holder{702, "late", true, false, false}));
}

TEST(AHolderScan, IgnoresDanglingFdLinksAndGarbageMapsLines) {
  FakeProc proc;
  fs::path file = proc.NewFile("f");
  FileId id = IdOf(file);
  fs::path gone = proc.NewFile("gone");
  proc.AddProcess(800, "odd", {gone},
                  "garbage\n\n7f-7f rw-s 0 zz:01 12 /x\n7f-7f rw-s 0 01:02\n7f-7f rw-s 0 01:02 "
                  "notanumber /y\n" +
                      MapsLine(id, file.string()).substr(0, 40) + "\n",
                  "truncated smaps");
  fs::remove(gone);
  auto scan = FindHolders(proc.roots(), {id}, 0);
  ASSERT_TRUE(scan.ok());
  EXPECT_THAT(scan->holders, IsEmpty());
  EXPECT_EQ(scan->processes_skipped, 0u);
}

TEST(AHolderScan, ReportsAnEmptyCommWhenTheProcessVanishedBeforeIt) {
  FakeProc proc;
  fs::path file = proc.NewFile("f");
  proc.AddProcess(900, "x", {file});
  fs::remove(proc.proc() / "900" / "comm");
  auto scan = FindHolders(proc.roots(), {IdOf(file)}, 0);
  ASSERT_TRUE(scan.ok());
  EXPECT_THAT(scan->holders[IdOf(file)], ElementsAre(Holder{900, "", true, false, false}));
}

TEST(AHolderScan, FailsWhenTheProcRootIsMissing) {
  TempDir dir;
  auto scan = FindHolders(Roots{dir.path() / "nope", dir.path()}, {FileId{1, 2}}, 0);
  ASSERT_FALSE(scan.ok());
  EXPECT_EQ(scan.error().code, ENOENT);
}

TEST(AHolderScan, ReturnsNothingForNoFiles) {
  FakeProc proc;
  fs::path file = proc.NewFile("f");
  proc.AddProcess(1000, "x", {file});
  auto scan = FindHolders(proc.roots(), {}, 0);
  ASSERT_TRUE(scan.ok());
  EXPECT_THAT(scan->holders, IsEmpty());
}

}  // namespace
}  // namespace daxpolicy::host
