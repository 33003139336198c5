// SPDX-License-Identifier: Apache-2.0
#pragma once

// Shared test helpers: temporary directories, loop-mounted filesystems, running
// programs, and the rule that a missing requirement skips only outside CI.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace daxpolicy::testing {

// True when the environment variable CI is set to anything but "" or "false".
bool InCi();

// A test that needs root, a bus, a loop device or the VM calls this first.
// Outside CI a missing requirement skips the test; under CI it fails it, so a
// CI run can never pass by skipping.
#define DAXPOLICY_REQUIRE(condition, what)                                       \
  do {                                                                           \
    if (!(condition)) {                                                          \
      if (::daxpolicy::testing::InCi()) {                                        \
        FAIL() << "requirement missing under CI=true: " << (what);               \
      } else {                                                                   \
        GTEST_SKIP() << "requirement missing (would fail under CI): " << (what); \
      }                                                                          \
    }                                                                            \
  } while (0)

bool IsRoot();

// From now on this process answers the system call `nr` with -1 and `error` (a seccomp
// filter, as systemd's SystemCallFilter= and RestrictSUIDSGID= install). For a child: it
// cannot be undone. False when the filter could not be installed.
bool RefuseSyscall(long nr, int error);

// Runs `body` in a child process (another pid than this one, e.g. for a watcher that ignores
// its own process's events) and waits for it; the test fails unless the child exits with 0.
template <class F>
void InChild(F body) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    body();
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// A fresh directory under $TMPDIR (or /tmp), removed recursively on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

void WriteFile(const std::filesystem::path& path, const std::string& content);
std::string ReadFile(const std::filesystem::path& path);

struct CommandResult {
  int exit_code = -1;  // 128+signal when killed by a signal
  std::string out;     // stdout
  std::string err;     // stderr
};
// Runs argv[0] (searched in PATH) with the given arguments, collects its output.
CommandResult Run(const std::vector<std::string>& argv);

enum class FsType { kXfs, kXfsReflink, kExt4 };
const char* FsTypeName(FsType type);

// A filesystem image on a loop device, mounted "-o dax=inode" on a temporary
// directory. Needs root and a working loop device; Create() says why not.
class LoopFs {
 public:
  static std::optional<std::string> Unavailable();  // nullopt when it can work here
  // size_mib: image size. Returns nullptr and fills *error on failure.
  static std::unique_ptr<LoopFs> Create(FsType type, std::string* error, int size_mib = 300,
                                        const std::string& extra_mount_options = "");
  ~LoopFs();
  LoopFs(const LoopFs&) = delete;
  LoopFs& operator=(const LoopFs&) = delete;

  const std::filesystem::path& mount_point() const { return mount_point_; }
  FsType type() const { return type_; }

 private:
  LoopFs() = default;
  FsType type_ = FsType::kXfs;
  std::unique_ptr<TempDir> dir_;
  std::filesystem::path image_;
  std::filesystem::path mount_point_;
  bool mounted_ = false;
};

// FS_XFLAG_DAX of a file or directory, read independently of the code under
// test (FS_IOC_FSGETXATTR on a briefly opened fd); nullopt when it cannot be read.
std::optional<bool> ReadDaxFlag(const std::filesystem::path& path);
// Sets or clears FS_XFLAG_DAX; false (and *error) when it cannot.
bool WriteDaxFlag(const std::filesystem::path& path, bool on, std::string* error);

// Absolute path of a program built by this project (bin dir passed by CMake as
// DAXPOLICY_BIN_DIR).
std::string BinaryPath(const std::string& name);

}  // namespace daxpolicy::testing
