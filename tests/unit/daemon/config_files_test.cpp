// SPDX-License-Identifier: Apache-2.0
// Policy files on disk: only regular files are opened, and no more than the
// limit is read, whatever the path turns out to be.

#include "daemon/config_files.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace daxpolicy::daemon {
namespace {

using testing::TempDir;
using testing::WriteFile;

constexpr const char* kGood = "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\n";

std::vector<std::string> Messages(const std::vector<policy::Diagnostic>& errors) {
  std::vector<std::string> out;
  for (const auto& e : errors) out.push_back(e.ToString());
  return out;
}

// A writer waiting on the fifo: a reader that opened the fifo would get its
// open through and read an empty file; one that never opens it leaves the
// writer waiting until the test releases it.
class WaitingWriter {
 public:
  explicit WaitingWriter(const std::string& fifo) : fifo_(fifo) {
    pid_ = fork();
    if (pid_ == 0) {
      int fd = open(fifo.c_str(), O_WRONLY);
      _exit(fd >= 0 ? 0 : 1);
    }
  }
  ~WaitingWriter() {
    int fd = open(fifo_.c_str(), O_RDONLY | O_NONBLOCK);  // releases a waiting writer
    int status = 0;
    waitpid(pid_, &status, 0);
    if (fd >= 0) close(fd);
  }

 private:
  std::string fifo_;
  pid_t pid_ = -1;
};

TEST(APolicyFile, ThatIsAFifoIsRefusedWithoutOpeningIt) {
  TempDir dir;
  const std::string fifo = (dir.path() / "policy.yaml").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  WaitingWriter writer(fifo);
  EXPECT_EQ(Messages(LoadPolicyFiles(fifo, "").errors),
            std::vector<std::string>{fifo + ": cannot read policy: is a fifo, not a regular file"});
  EXPECT_EQ(Messages(CheckPolicyFile(fifo)),
            std::vector<std::string>{fifo + ": cannot read: is a fifo, not a regular file"});
}

TEST(APolicyFile, ThatIsADeviceIsRefusedWithoutOpeningIt) {
  // /dev/zero once made the daemon read until bad_alloc.
  EXPECT_EQ(Messages(LoadPolicyFiles("/dev/zero", "").errors),
            std::vector<std::string>{"/dev/zero: cannot read policy: is a character device, not a "
                                     "regular file"});
  EXPECT_EQ(Messages(CheckPolicyFile("/dev/null")),
            std::vector<std::string>{"/dev/null: cannot read: is a character device, not a "
                                     "regular file"});
}

TEST(APolicyFile, ThatIsASocketOrDirectoryIsRefused) {
  TempDir dir;
  const std::string sock = (dir.path() / "policy.yaml").string();
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(sock.size(), sizeof addr.sun_path);
  sock.copy(addr.sun_path, sock.size());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(Messages(CheckPolicyFile(sock)),
            std::vector<std::string>{sock + ": cannot read: is a socket, not a regular file"});
  close(fd);
  EXPECT_EQ(Messages(CheckPolicyFile(dir.path().string())),
            std::vector<std::string>{dir.path().string() +
                                     ": cannot read: is a directory, not a policy file"});
}

TEST(APolicyFile, IsReadOnlyUpToTheLimit) {
  TempDir dir;
  const std::string path = (dir.path() / "policy.yaml").string();
  std::string text = kGood;
  text += "# " + std::string(kMaxPolicyFileBytes, 'x') + "\n";
  WriteFile(path, text);
  EXPECT_EQ(Messages(CheckPolicyFile(path)),
            std::vector<std::string>{path + ": cannot read: larger than 4 MiB; not a policy file"});
  WriteFile(path, kGood);
  EXPECT_TRUE(CheckPolicyFile(path).empty());
  EXPECT_TRUE(LoadPolicyFiles(path, "").policy.has_value());
}

// Other readers (daxpolicyctl simulate's traces) share the reader with their own limit.
TEST(ARegularFile, IsReadUpToTheLimitTheCallerGives) {
  TempDir dir;
  const std::string path = (dir.path() / "trace").string();
  WriteFile(path, std::string(100, 'x'));
  std::string text, error;
  EXPECT_TRUE(ReadRegularFile(path, 100, &text, &error));
  EXPECT_EQ(text.size(), 100u);
  EXPECT_FALSE(ReadRegularFile(path, 99, &text, &error));
  EXPECT_EQ(error, "larger than 99 bytes");
  EXPECT_TRUE(text.empty());
  EXPECT_FALSE(ReadRegularFile("/dev/zero", size_t{2} << 30, &text, &error));
  EXPECT_EQ(error, "is a character device, not a regular file");
  const std::string fifo = (dir.path() / "fifo").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  WaitingWriter writer(fifo);
  EXPECT_FALSE(ReadRegularFile(fifo, 100, &text, &error));
  EXPECT_EQ(error, "is a fifo, not a regular file");
}

// Scopes reached through a symlink: the daemon would manage whatever the link
// points to (root's directories, /proc). Every component is looked at.
TEST(AScopeThroughASymlink, IsRefusedAtLoadWithItsPosition) {
  char tmpl[] = "/tmp/daxpolicy-scope-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  ASSERT_EQ(mkdir((dir + "/real").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((dir + "/real/pmem").c_str(), 0755), 0);
  ASSERT_EQ(symlink("real", (dir + "/link").c_str()), 0);
  ASSERT_EQ(symlink("/proc", (dir + "/real/proc").c_str()), 0);
  std::string yaml = "apiVersion: daxpolicy/v1\nscopes:\n  - " + dir + "/link/pmem\n  - " + dir +
                     "/real/proc\n  - " + dir + "/real/pmem\n  - " + dir + "/real/missing/x\n";
  const std::string path = dir + "/policy.yaml";
  WriteFile(path, yaml);
  const std::vector<std::string> want{
      path + ":3:5: scope '" + dir + "/link/pmem' is reached through a symlink ('" + dir +
          "/link'); name the real directory",
      path + ":4:5: scope '" + dir + "/real/proc' is reached through a symlink ('" + dir +
          "/real/proc'); name the real directory"};
  // The daemon's load, check and the inspector on its own refuse the same two.
  EXPECT_EQ(Messages(LoadPolicyFiles(path, "").errors), want);
  EXPECT_EQ(Messages(CheckPolicyFile(path)), want);
  EXPECT_EQ(
      Messages(policy::LoadPolicy(policy::PolicySource{path, yaml}, {}, ScopeOnFileSystemProblem)
                   .errors),
      want);
  // The loader alone (tools that only parse) does not look.
  EXPECT_TRUE(policy::LoadPolicy(policy::PolicySource{"p.yaml", yaml}).errors.empty());
  std::filesystem::remove_all(dir);
}

TEST(ADropInDirectory, ReportsEntriesThatAreNotRegularFilesInsteadOfOpeningThem) {
  TempDir dir;
  const std::string main = (dir.path() / "policy.yaml").string();
  WriteFile(main, kGood);
  std::filesystem::create_directory(dir.path() / "policy.d");
  WriteFile(dir.path() / "policy.d" / "10-good.yaml", "apiVersion: daxpolicy/v1\n");
  WriteFile(dir.path() / "policy.d" / "notes.txt", "not a drop-in\n");
  const std::string fifo = (dir.path() / "policy.d" / "20-fifo.yaml").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  WaitingWriter writer(fifo);
  EXPECT_EQ(
      Messages(LoadPolicyFiles(main, DefaultDropinDir(main)).errors),
      std::vector<std::string>{fifo + ": cannot read drop-in: is a fifo, not a regular file"});
  EXPECT_EQ(Messages(CheckPolicyFile(fifo)),
            std::vector<std::string>{fifo + ": cannot read: is a fifo, not a regular file"});
}

TEST(ADropInDirectory, LoadsItsRegularFilesInOrder) {
  TempDir dir;
  const std::string main = (dir.path() / "policy.yaml").string();
  WriteFile(main, kGood);
  std::filesystem::create_directory(dir.path() / "policy.d");
  WriteFile(dir.path() / "policy.d" / "20-b.yaml", "apiVersion: daxpolicy/v1\nscopes: [/srv/b]\n");
  WriteFile(dir.path() / "policy.d" / "10-a.yaml", "apiVersion: daxpolicy/v1\nscopes: [/srv/a]\n");
  auto r = LoadPolicyFiles(main, DefaultDropinDir(main));
  ASSERT_TRUE(r.policy.has_value()) << Messages(r.errors)[0];
  EXPECT_EQ(r.policy->scopes, (std::vector<std::string>{"/srv/pmem", "/srv/a", "/srv/b"}));
}

}  // namespace
}  // namespace daxpolicy::daemon
