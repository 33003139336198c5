// SPDX-License-Identifier: Apache-2.0
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "plugins/driver/fake_driver.h"
#include "plugins/driver/inode_flag_driver.h"
#include "plugins/driver/kernel_version.h"
#include "plugins/driver/safe_open.h"
#include "tests/support/test_support.h"

namespace daxpolicy::driver {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

TEST(AKernelVersion, ParsesUnameReleases) {
  KernelVersion v = KernelVersion::Parse("6.18.44-fc-v669");
  EXPECT_EQ(v.major, 6);
  EXPECT_EQ(v.minor, 18);
  EXPECT_EQ(v.patch, 44);
  EXPECT_TRUE(v.AtLeast(5, 11));
  EXPECT_TRUE(v.AtLeast(6, 18));
  EXPECT_FALSE(v.AtLeast(6, 19));
  EXPECT_FALSE(KernelVersion::Parse("5.10.0-23-amd64").AtLeast(5, 11));
  KernelVersion partial = KernelVersion::Parse("6.2");
  EXPECT_EQ(partial.minor, 2);
  EXPECT_EQ(partial.patch, 0);
  EXPECT_EQ(KernelVersion::Parse("garbage").major, 0);
}

// A scope in a temporary directory, opened O_PATH like the daemon does.
class Scope {
 public:
  Scope() : root_(dir_.path() / "scope") {
    fs::create_directories(root_ / "sub");
    fs::create_directories(dir_.path() / "outside");
    testing::WriteFile(root_ / "sub/file", "x");
    testing::WriteFile(dir_.path() / "outside/secret", "s");
    fd_.Reset(open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  }
  int fd() const { return fd_.get(); }
  const fs::path& root() const { return root_; }
  fs::path outside() const { return dir_.path() / "outside"; }
  FileIdentity IdentityOf(const fs::path& p) const {
    struct stat st {};
    EXPECT_EQ(lstat(p.c_str(), &st), 0) << p;
    return FileIdentity{st.st_dev, st.st_ino};
  }

 private:
  TempDir dir_;
  fs::path root_;
  UniqueFd fd_;
};

class ASafeOpener : public ::testing::TestWithParam<bool> {
 protected:
  SafeOpener opener_{SafeOpenOptions{"/proc", GetParam()}};
  Scope scope_;
};

INSTANTIATE_TEST_SUITE_P(Resolvers, ASafeOpener, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "openat2" : "walk"; });

TEST_P(ASafeOpener, OpensANestedRegularFileForAnIoctl) {
  FileIdentity id = scope_.IdentityOf(scope_.root() / "sub/file");
  BlockedOr<OpenedFile> f = opener_.OpenForIoctl(scope_.fd(), "sub/file", id);
  ASSERT_TRUE(f.ok()) << f.blocked().reason;
  EXPECT_EQ(f->st.st_ino, id.ino);
  EXPECT_EQ(fcntl(f->fd.get(), F_GETFL) & O_ACCMODE, O_RDONLY);
  EXPECT_EQ(fcntl(f->fd.get(), F_GETFL) & O_PATH, 0);
  EXPECT_EQ(opener_.using_openat2(), GetParam());
}

TEST_P(ASafeOpener, OpensDirectoriesAndTheScopeRootItself) {
  BlockedOr<OpenedFile> sub = opener_.OpenForIoctl(scope_.fd(), "sub", {});
  ASSERT_TRUE(sub.ok()) << sub.blocked().reason;
  EXPECT_TRUE(S_ISDIR(sub->st.st_mode));
  BlockedOr<OpenedFile> root = opener_.OpenForIoctl(scope_.fd(), "", {});
  ASSERT_TRUE(root.ok()) << root.blocked().reason;
  EXPECT_EQ(root->st.st_ino, scope_.IdentityOf(scope_.root()).ino);
}

TEST_P(ASafeOpener, RefusesPathsThatAreNotPlainRelativePaths) {
  for (const char* bad :
       {"/etc/passwd", "sub//file", "sub/./file", "../outside/secret", "sub/", ".", "sub/.."}) {
    BlockedOr<OpenedFile> f = opener_.OpenForIoctl(scope_.fd(), bad, {});
    ASSERT_FALSE(f.ok()) << bad;
    EXPECT_EQ(f.blocked().blocker, Blocker::kInvalidPath) << bad;
    EXPECT_EQ(f.blocked().reason, kReasonInvalidPath);
  }
}

TEST_P(ASafeOpener, RefusesASymlinkedDirectoryLeadingOutside) {
  fs::create_directory_symlink(scope_.outside(), scope_.root() / "link");
  BlockedOr<OpenedFile> f = opener_.OpenForIoctl(scope_.fd(), "link/secret", {});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.blocked().blocker, Blocker::kEscapesScope);
  EXPECT_EQ(f.blocked().error_code, ELOOP);
  EXPECT_EQ(f.blocked().reason, "path escapes the scope via a symlink or mount");
}

TEST_P(ASafeOpener, NeverFollowsATrailingSymlink) {
  fs::create_symlink(scope_.outside() / "secret", scope_.root() / "link");
  BlockedOr<OpenedFile> f = opener_.OpenForIoctl(scope_.fd(), "link", {});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.blocked().blocker, Blocker::kNotRegularOrDirectory);
  EXPECT_EQ(f.blocked().reason, "not a regular file or directory (symlink): never opened");
}

TEST_P(ASafeOpener, RefusesAFifoWithoutBlocking) {
  ASSERT_EQ(mkfifo((scope_.root() / "fifo").c_str(), 0600), 0);
  // In a child with an alarm: had the fifo been opened for reading without O_NONBLOCK, the
  // child would hang (no writer) and die by SIGALRM.
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(10);
    BlockedOr<OpenedFile> f = opener_.OpenForIoctl(scope_.fd(), "fifo", {});
    _exit(!f.ok() && f.blocked().reason == "not a regular file or directory (fifo): never opened"
              ? 0
              : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_P(ASafeOpener, RefusesASocket) {
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(s, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string path = (scope_.root() / "sock").string();
  ASSERT_LT(path.size(), sizeof addr.sun_path);
  path.copy(addr.sun_path, path.size());
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  BlockedOr<OpenedFile> f = opener_.OpenForIoctl(scope_.fd(), "sock", {});
  close(s);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.blocked().reason, "not a regular file or directory (socket): never opened");
}

TEST_P(ASafeOpener, ReportsAReplacedAndAVanishedFile) {
  FileIdentity old_id = scope_.IdentityOf(scope_.root() / "sub/file");
  testing::WriteFile(scope_.root() / "sub/new", "y");
  fs::rename(scope_.root() / "sub/new", scope_.root() / "sub/file");
  BlockedOr<OpenedFile> replaced = opener_.OpenForIoctl(scope_.fd(), "sub/file", old_id);
  ASSERT_FALSE(replaced.ok());
  EXPECT_EQ(replaced.blocked().blocker, Blocker::kReplaced);
  EXPECT_EQ(replaced.blocked().reason, "replaced since scan: the path now names a different file");
  fs::remove(scope_.root() / "sub/file");
  BlockedOr<OpenedFile> gone = opener_.OpenForIoctl(scope_.fd(), "sub/file", old_id);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.blocked().blocker, Blocker::kVanished);
  EXPECT_EQ(gone.blocked().reason, "vanished: the file no longer exists (ENOENT)");
}

TEST_P(ASafeOpener, ReportsAFileWhereADirectoryWas) {
  BlockedOr<OpenedFile> f = opener_.OpenForIoctl(scope_.fd(), "sub/file/deeper", {});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.blocked().blocker, Blocker::kReplaced);
}

TEST_P(ASafeOpener, RefusesRegularFilesWithoutProcfsButStillOpensDirectories) {
  TempDir fake_proc;
  SafeOpener opener(SafeOpenOptions{fake_proc.path().string(), GetParam()});
  BlockedOr<OpenedFile> file = opener.OpenForIoctl(scope_.fd(), "sub/file", {});
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.blocked().blocker, Blocker::kNoSafeReopen);
  EXPECT_EQ(file.blocked().reason, "cannot reopen the file safely: procfs (" +
                                       fake_proc.path().string() + "/self/fd) is not available");
  EXPECT_TRUE(opener.OpenForIoctl(scope_.fd(), "sub", {}).ok());
}

TEST_P(ASafeOpener, StatsAFileWithoutHoldingItAndChecksItsIdentity) {
  FileIdentity id = scope_.IdentityOf(scope_.root() / "sub/file");
  BlockedOr<struct statx> sx = opener_.StatNoHold(scope_.fd(), "sub/file", id);
  ASSERT_TRUE(sx.ok()) << sx.blocked().reason;
  EXPECT_EQ(sx->stx_ino, id.ino);
  BlockedOr<struct statx> wrong =
      opener_.StatNoHold(scope_.fd(), "sub/file", FileIdentity{id.dev, id.ino + 1000000});
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.blocked().blocker, Blocker::kReplaced);
}

TEST(BlockedForSetError, NamesEveryErrnoFromTheKernelDocumentation) {
  TempDir dir;
  testing::WriteFile(dir.path() / "f", "x");
  UniqueFd fd(open((dir.path() / "f").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  KernelVersion k{6, 18, 0};
  struct Case {
    int err;
    uint32_t xflags;
    Blocker blocker;
    std::string reason;
  };
  const Case cases[] = {
      {EPERM, 0, Blocker::kNotOwner,
       "not permitted: the daemon is not the file's owner and lacks CAP_FOWNER (EPERM)"},
      {EPERM, FS_XFLAG_IMMUTABLE, Blocker::kImmutable,
       "immutable or append-only file (chattr +i/+a): the kernel refuses flag changes (EPERM)"},
      {EPERM, FS_XFLAG_APPEND, Blocker::kImmutable, std::string(kReasonImmutable)},
      {EROFS, 0, Blocker::kReadOnly, "read-only filesystem (EROFS)"},
      {ENOTTY, 0, Blocker::kNoFileattr, "the filesystem has no FS_IOC_FSSETXATTR support (ENOTTY)"},
      {515, 0, Blocker::kNoFileattr, std::string(kReasonNoFileattr)},
      {ENOENT, 0, Blocker::kVanished, std::string(kReasonVanished)},
      {EIO, 0, Blocker::kOther, "FS_IOC_FSSETXATTR failed: Input/output error (EIO)"},
  };
  for (const Case& c : cases) {
    Blocked b = BlockedForSetError(c.err, fd.get(), c.xflags, k);
    EXPECT_EQ(b.blocker, c.blocker) << c.err;
    EXPECT_EQ(b.reason, c.reason) << c.err;
    EXPECT_EQ(b.error_code, c.err);
  }
  // /tmp is not xfs here, so EINVAL means the kind was wrong; EOPNOTSUPP has no ext4 flag.
  EXPECT_EQ(BlockedForSetError(EINVAL, fd.get(), 0, k).blocker, Blocker::kRefusedByFilesystem);
  EXPECT_EQ(BlockedForSetError(EOPNOTSUPP, fd.get(), 0, k).blocker, Blocker::kRefusedByFilesystem);
}

TEST(AnErrnoName, NamesErrnosIncludingTheKernelInternalOne) {
  EXPECT_EQ(ErrnoName(EPERM), "EPERM");
  EXPECT_EQ(ErrnoName(515), "ENOIOCTLCMD");
  EXPECT_EQ(ErrnoName(100000), "errno 100000");
  EXPECT_EQ(BlockerName(Blocker::kEscapesScope), "escapes-scope");
}

class AFakeDriver : public ::testing::Test {
 protected:
  void SetUp() override {
    FileFlags f;
    f.dev = 1;
    f.ino = 2;
    f.physical = DaxState::kPageCache;
    f.effective = DaxState::kPageCache;
    driver_.SetFile("a", f);
  }
  FakeDriver driver_;
  FileRef ref_{-1, "a", {1, 2}};
};

TEST_F(AFakeDriver, RecordsTheOriginalBeforeChanging) {
  std::vector<DaxState> seen;
  ApplyHooks hooks;
  hooks.before_change = [&](uint64_t dev, uint64_t ino, std::string_view path, DaxState original,
                            int) {
    EXPECT_EQ(dev, 1u);
    EXPECT_EQ(ino, 2u);
    EXPECT_EQ(path, "a");
    EXPECT_EQ(driver_.Find("a")->physical, DaxState::kPageCache) << "not changed yet";
    seen.push_back(original);
    return Result<void>();
  };
  Result<ApplyOutcome> out = driver_.Apply(ref_, DaxState::kDax, hooks);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->result, ApplyResult::kChanged);
  EXPECT_EQ(seen, std::vector<DaxState>{DaxState::kPageCache});
  EXPECT_EQ(driver_.Find("a")->physical, DaxState::kDax);
  Result<ApplyOutcome> again = driver_.Apply(ref_, DaxState::kDax, hooks);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->result, ApplyResult::kUnchanged);
  EXPECT_EQ(seen.size(), 1u);
  EXPECT_EQ(driver_.calls().size(), 2u);
}

TEST_F(AFakeDriver, ChangesNothingWhenRecordingFails) {
  ApplyHooks hooks;
  hooks.before_change = [](uint64_t, uint64_t, std::string_view, DaxState, int) -> Result<void> {
    return Error{"disk full", ENOSPC};
  };
  Result<ApplyOutcome> out = driver_.Apply(ref_, DaxState::kDax, hooks);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ENOSPC);
  EXPECT_EQ(driver_.Find("a")->physical, DaxState::kPageCache);
}

TEST_F(AFakeDriver, NeverTurnsDaxOffUnderMapSync) {
  FileFlags f = *driver_.Find("a");
  f.physical = f.effective = DaxState::kDax;
  driver_.SetFile("a", f);
  ApplyHooks hooks;
  hooks.maps_sync = [](uint64_t, uint64_t) -> Result<bool> { return true; };
  Result<ApplyOutcome> out = driver_.Apply(ref_, DaxState::kPageCache, hooks);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->blocker, Blocker::kMapSync);
  EXPECT_EQ(out->reason,
            "mapped with MAP_SYNC by a process: DAX is never turned off under such a mapping");
  EXPECT_EQ(driver_.Find("a")->physical, DaxState::kDax);
}

TEST_F(AFakeDriver, ReportsPendingWhileAFileIsHeld) {
  driver_.SetHeld("a", true);
  Result<ApplyOutcome> out = driver_.Apply(ref_, DaxState::kDax, {});
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->Pending());
  EXPECT_EQ(out->effective, DaxState::kPageCache);
}

TEST_F(AFakeDriver, ReportsReplacedAndVanishedFiles) {
  Result<ApplyOutcome> replaced = driver_.Apply(FileRef{-1, "a", {1, 3}}, DaxState::kDax, {});
  ASSERT_TRUE(replaced.ok());
  EXPECT_EQ(replaced->blocker, Blocker::kReplaced);
  Result<ApplyOutcome> gone = driver_.Apply(FileRef{-1, "b", {}}, DaxState::kDax, {});
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone->blocker, Blocker::kVanished);
}

}  // namespace
}  // namespace daxpolicy::driver
