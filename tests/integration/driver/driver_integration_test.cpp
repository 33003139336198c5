// SPDX-License-Identifier: Apache-2.0
// The drivers on real loop-mounted filesystems (xfs, xfs with reflink, ext4; all dax=inode).
// Loop devices cannot do DAX, so the effective state stays page-cache throughout: these tests
// check the physical flag, refusals, and that nothing outside a scope is ever touched.

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <map>
#include <thread>

#include "plugins/driver/inode_flag_driver.h"
#include "plugins/driver/observe_driver.h"
#include "tests/support/test_support.h"

namespace daxpolicy::driver {
namespace {

namespace fs = std::filesystem;
using testing::FsType;
using testing::LoopFs;

// Physical flag read independently of the driver.
bool HasDaxFlag(const fs::path& p) {
  std::optional<bool> flag = testing::ReadDaxFlag(p);
  EXPECT_TRUE(flag.has_value()) << p;
  return flag.value_or(false);
}

void SetDaxFlag(int fd, bool on) {
  struct fsxattr fsx {};
  ASSERT_EQ(ioctl(fd, FS_IOC_FSGETXATTR, &fsx), 0);
  fsx.fsx_xflags = on ? (fsx.fsx_xflags | FS_XFLAG_DAX) : (fsx.fsx_xflags & ~FS_XFLAG_DAX);
  ASSERT_EQ(ioctl(fd, FS_IOC_FSSETXATTR, &fsx), 0);
}

FileIdentity IdentityOf(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(lstat(p.c_str(), &st), 0) << p;
  return FileIdentity{st.st_dev, st.st_ino};
}

// A loop filesystem with <mnt>/scope (the daemon's scope) and <mnt>/outside.
class OnLoopFs {
 public:
  bool Create(FsType type, std::string* error) {
    fs_ = LoopFs::Create(type, error);
    if (!fs_) return false;
    root_ = fs_->mount_point() / "scope";
    outside_ = fs_->mount_point() / "outside";
    fs::create_directories(root_);
    fs::create_directories(outside_);
    testing::WriteFile(outside_ / "secret", "outside data");
    root_fd_.Reset(open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    return root_fd_.valid();
  }
  FileRef Ref(const std::string& rel) const {
    return FileRef{root_fd_.get(), rel, IdentityOf(root_ / rel)};
  }
  const fs::path& root() const { return root_; }
  const fs::path& outside() const { return outside_; }
  const fs::path& mount_point() const { return fs_->mount_point(); }

 private:
  std::unique_ptr<LoopFs> fs_;
  fs::path root_;
  fs::path outside_;
  UniqueFd root_fd_;
};

#define REQUIRE_LOOP_FS(env, type)                                               \
  DAXPOLICY_REQUIRE(!LoopFs::Unavailable(), LoopFs::Unavailable().value_or("")); \
  {                                                                              \
    std::string loop_error;                                                      \
    ASSERT_TRUE((env).Create(type, &loop_error)) << loop_error;                  \
  }

class ADriverOnEachFilesystem : public ::testing::TestWithParam<FsType> {
 protected:
  OnLoopFs env_;
  InodeFlagDriver driver_{KernelVersion::Running()};
};

INSTANTIATE_TEST_SUITE_P(Filesystems, ADriverOnEachFilesystem,
                         ::testing::Values(FsType::kXfs, FsType::kXfsReflink, FsType::kExt4),
                         [](const auto& info) {
                           std::string n = testing::FsTypeName(info.param);
                           std::erase(n, '-');
                           return n;
                         });

TEST_P(ADriverOnEachFilesystem, SwitchesFilesAndDirectoriesAndReadsThemBack) {
  REQUIRE_LOOP_FS(env_, GetParam());
  testing::WriteFile(env_.root() / "f", std::string(65536, 'x'));
  fs::create_directory(env_.root() / "d");

  Result<ApplyOutcome> on = driver_.Apply(env_.Ref("f"), DaxState::kDax, {});
  ASSERT_TRUE(on.ok()) << on.error().message;
  EXPECT_EQ(on->result, ApplyResult::kChanged) << on->reason;
  EXPECT_EQ(on->physical_before, DaxState::kPageCache);
  EXPECT_EQ(on->physical_after, DaxState::kDax);
  EXPECT_EQ(on->effective, DaxState::kPageCache) << "a loop device cannot do DAX";
  EXPECT_TRUE(on->Pending());
  EXPECT_TRUE(HasDaxFlag(env_.root() / "f"));

  Result<FileFlags> read = driver_.Read(env_.Ref("f"));
  ASSERT_TRUE(read.ok()) << read.error().message;
  EXPECT_EQ(read->kind, FileKind::kRegular);
  EXPECT_EQ(read->physical, DaxState::kDax);
  EXPECT_EQ(read->effective, DaxState::kPageCache);
  EXPECT_EQ(read->ino, IdentityOf(env_.root() / "f").ino);

  Result<ApplyOutcome> again = driver_.Apply(env_.Ref("f"), DaxState::kDax, {});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->result, ApplyResult::kUnchanged);

  Result<ApplyOutcome> off = driver_.Apply(env_.Ref("f"), DaxState::kPageCache, {});
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off->result, ApplyResult::kChanged) << off->reason;
  EXPECT_FALSE(HasDaxFlag(env_.root() / "f"));
  EXPECT_FALSE(off->Pending());

  Result<ApplyOutcome> dir = driver_.Apply(env_.Ref("d"), DaxState::kDax, {});
  ASSERT_TRUE(dir.ok());
  EXPECT_EQ(dir->result, ApplyResult::kChanged) << dir->reason;
  EXPECT_EQ(dir->kind, FileKind::kDirectory);
  EXPECT_FALSE(dir->Pending()) << "directories never report effective DAX";
  Result<FileFlags> dir_read = driver_.Read(env_.Ref("d"));
  ASSERT_TRUE(dir_read.ok());
  EXPECT_EQ(dir_read->kind, FileKind::kDirectory);
  EXPECT_EQ(dir_read->physical, DaxState::kDax);
  // Inheritance: a file created in a DAX directory starts with the flag.
  testing::WriteFile(env_.root() / "d/child", "c");
  EXPECT_TRUE(HasDaxFlag(env_.root() / "d/child"));

  Result<ApplyOutcome> root = driver_.Apply(env_.Ref(""), DaxState::kDax, {});
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->result, ApplyResult::kChanged) << root->reason;
  EXPECT_TRUE(HasDaxFlag(env_.root()));
}

TEST_P(ADriverOnEachFilesystem, CallsTheHooksInOrderAndRefusesUnderMapSync) {
  REQUIRE_LOOP_FS(env_, GetParam());
  testing::WriteFile(env_.root() / "f", "x");
  std::vector<std::string> events;
  ApplyHooks hooks;
  hooks.before_change = [&](uint64_t dev, uint64_t ino, std::string_view path, DaxState original,
                            int) {
    EXPECT_EQ(ino, IdentityOf(env_.root() / "f").ino);
    EXPECT_EQ(dev, IdentityOf(env_.root() / "f").dev);
    EXPECT_FALSE(HasDaxFlag(env_.root() / "f")) << "called before the change";
    events.push_back("before " + std::string(path) +
                     (original == DaxState::kPageCache ? " page-cache" : " dax"));
    return Result<void>();
  };
  hooks.maps_sync = [&](uint64_t, uint64_t) -> Result<bool> {
    events.push_back("maps_sync");
    return true;
  };
  Result<ApplyOutcome> on = driver_.Apply(env_.Ref("f"), DaxState::kDax, hooks);
  ASSERT_TRUE(on.ok());
  EXPECT_EQ(on->result, ApplyResult::kChanged);
  EXPECT_EQ(events, std::vector<std::string>{"before f page-cache"});

  Result<ApplyOutcome> off = driver_.Apply(env_.Ref("f"), DaxState::kPageCache, hooks);
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off->blocker, Blocker::kMapSync);
  EXPECT_EQ(off->reason,
            "mapped with MAP_SYNC by a process: DAX is never turned off under such a mapping");
  EXPECT_TRUE(HasDaxFlag(env_.root() / "f"));
  EXPECT_EQ(events.back(), "maps_sync");

  hooks.maps_sync = [](uint64_t, uint64_t) -> Result<bool> { return false; };
  hooks.before_change = [](uint64_t, uint64_t, std::string_view, DaxState, int) -> Result<void> {
    return Error{"journal full", ENOSPC};
  };
  Result<ApplyOutcome> failed = driver_.Apply(env_.Ref("f"), DaxState::kPageCache, hooks);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().message, "journal full");
  EXPECT_TRUE(HasDaxFlag(env_.root() / "f")) << "nothing changes when recording fails";
}

TEST_P(ADriverOnEachFilesystem, ObserveDriverReadsRealStateAndChangesNothing) {
  REQUIRE_LOOP_FS(env_, GetParam());
  testing::WriteFile(env_.root() / "f", "x");
  fs::create_directory(env_.root() / "d");
  ObserveDriver observe;
  bool hook_called = false;
  ApplyHooks hooks;
  hooks.before_change = [&](uint64_t, uint64_t, std::string_view, DaxState, int) {
    hook_called = true;
    return Result<void>();
  };
  for (const char* p : {"f", "d"}) {
    Result<ApplyOutcome> out = observe.Apply(env_.Ref(p), DaxState::kDax, hooks);
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(out->result, ApplyResult::kObserved) << out->reason;
    EXPECT_EQ(out->physical_after, DaxState::kPageCache);
    EXPECT_FALSE(HasDaxFlag(env_.root() / p));
  }
  EXPECT_FALSE(hook_called);
  ASSERT_EQ(observe.observations().size(), 2u);
  EXPECT_EQ(observe.observations()[0].path, "f");
  EXPECT_EQ(observe.observations()[0].from, DaxState::kPageCache);
  EXPECT_EQ(observe.observations()[0].to, DaxState::kDax);
  EXPECT_EQ(observe.observations()[1].kind, FileKind::kDirectory);
  Result<FileFlags> read = observe.Read(env_.Ref("f"));
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->physical, DaxState::kPageCache);
  // It sees a flag set by someone else.
  Result<ApplyOutcome> set = driver_.Apply(env_.Ref("f"), DaxState::kDax, {});
  ASSERT_TRUE(set.ok());
  Result<ApplyOutcome> seen = observe.Apply(env_.Ref("f"), DaxState::kDax, {});
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ(seen->result, ApplyResult::kUnchanged);
}

TEST_P(ADriverOnEachFilesystem, RefusesAnImmutableFileWithEperm) {
  REQUIRE_LOOP_FS(env_, GetParam());
  testing::WriteFile(env_.root() / "i", "x");
  ASSERT_EQ(testing::Run({"chattr", "+i", (env_.root() / "i").string()}).exit_code, 0);
  Result<ApplyOutcome> out = driver_.Apply(env_.Ref("i"), DaxState::kDax, {});
  ObserveDriver observe;
  Result<ApplyOutcome> observed = observe.Apply(env_.Ref("i"), DaxState::kDax, {});
  // What the kernel itself does for root (CAP_LINUX_IMMUTABLE): xfs accepts the change, ext4
  // refuses it with EPERM. The driver refuses on both.
  int fd = open((env_.root() / "i").c_str(), O_RDONLY | O_CLOEXEC);
  struct fsxattr fsx {};
  ASSERT_EQ(ioctl(fd, FS_IOC_FSGETXATTR, &fsx), 0);
  fsx.fsx_xflags |= FS_XFLAG_DAX;
  int rc = ioctl(fd, FS_IOC_FSSETXATTR, &fsx);
  int err = errno;
  close(fd);
  if (GetParam() == FsType::kExt4) {
    EXPECT_EQ(rc, -1);
    EXPECT_EQ(err, EPERM);
  } else {
    EXPECT_EQ(rc, 0) << "xfs lets CAP_LINUX_IMMUTABLE change an immutable inode's DAX flag";
  }
  testing::Run({"chattr", "-i", (env_.root() / "i").string()});
  ASSERT_TRUE(observed.ok());
  EXPECT_EQ(observed->blocker, Blocker::kImmutable);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->blocker, Blocker::kImmutable);
  EXPECT_EQ(out->error_code, EPERM);
  EXPECT_EQ(
      out->reason,
      "immutable or append-only file (chattr +i/+a): the kernel refuses flag changes (EPERM)");
  EXPECT_EQ(out->physical_before, DaxState::kPageCache);
}

// chattr +a: xfs lets root (CAP_LINUX_IMMUTABLE) change the DAX flag of an append-only inode;
// the driver must refuse it like an immutable one, in both directions, and leave the flag.
TEST_P(ADriverOnEachFilesystem, RefusesAnAppendOnlyFileLikeAnImmutableOne) {
  REQUIRE_LOOP_FS(env_, GetParam());
  for (const bool start_dax : {false, true}) {
    SCOPED_TRACE(start_dax ? "file starts with DAX" : "file starts without DAX");
    const fs::path file = env_.root() / (start_dax ? "a-dax" : "a-pc");
    testing::WriteFile(file, "log line\n");
    std::string error;
    ASSERT_TRUE(testing::WriteDaxFlag(file, start_dax, &error)) << error;
    ASSERT_EQ(testing::Run({"chattr", "+a", file.string()}).exit_code, 0);
    const std::string rel = file.filename().string();
    const DaxState want = start_dax ? DaxState::kPageCache : DaxState::kDax;
    Result<ApplyOutcome> out = driver_.Apply(env_.Ref(rel), want, {});
    ObserveDriver observe;
    Result<ApplyOutcome> observed = observe.Apply(env_.Ref(rel), want, {});
    const bool flag_after = HasDaxFlag(file);
    testing::Run({"chattr", "-a", file.string()});
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(out->result, ApplyResult::kBlocked);
    EXPECT_EQ(out->blocker, Blocker::kImmutable);
    EXPECT_EQ(out->error_code, EPERM);
    EXPECT_EQ(flag_after, start_dax) << "an append-only file was switched";
    ASSERT_TRUE(observed.ok());
    EXPECT_EQ(observed->blocker, Blocker::kImmutable);
  }
}

TEST_P(ADriverOnEachFilesystem, RefusesOnAReadOnlyRemountWithErofs) {
  REQUIRE_LOOP_FS(env_, GetParam());
  testing::WriteFile(env_.root() / "f", "x");
  FileRef ref = env_.Ref("f");
  ASSERT_EQ(testing::Run({"mount", "-o", "remount,ro", env_.mount_point().string()}).exit_code, 0);
  Result<ApplyOutcome> out = driver_.Apply(ref, DaxState::kDax, {});
  Result<FileFlags> read = driver_.Read(ref);
  ASSERT_EQ(testing::Run({"mount", "-o", "remount,rw", env_.mount_point().string()}).exit_code, 0);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->blocker, Blocker::kReadOnly);
  EXPECT_EQ(out->reason, "read-only filesystem (EROFS)");
  EXPECT_TRUE(read.ok()) << "reading still works on a read-only mount";
  EXPECT_FALSE(HasDaxFlag(env_.root() / "f"));
}

// Runs `body` in a child process as uid/gid 65534 and returns its exit code.
int AsNobody(const std::function<int()>& body) {
  pid_t pid = fork();
  if (pid == 0) {
    alarm(30);
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(100);
    _exit(body());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST_P(ADriverOnEachFilesystem, RefusesAFileItDoesNotOwnWhenUnprivileged) {
  REQUIRE_LOOP_FS(env_, GetParam());
  DAXPOLICY_REQUIRE(testing::IsRoot(), "root, to switch to an unprivileged user");
  testing::WriteFile(env_.root() / "roots", "x");
  testing::WriteFile(env_.root() / "mine", "x");
  ASSERT_EQ(chmod((env_.root() / "roots").c_str(), 0644), 0);
  ASSERT_EQ(chown((env_.root() / "mine").c_str(), 65534, 65534), 0);
  FileRef roots = env_.Ref("roots");
  FileRef mine = env_.Ref("mine");
  int code = AsNobody([&] {
    InodeFlagDriver driver(KernelVersion::Running());
    Result<ApplyOutcome> out = driver.Apply(roots, DaxState::kDax, {});
    if (!out.ok() || out->blocker != Blocker::kNotOwner || out->error_code != EPERM) return 1;
    if (out->reason !=
        "not permitted: the daemon is not the file's owner and lacks CAP_FOWNER (EPERM)") {
      return 2;
    }
    Result<ApplyOutcome> own = driver.Apply(mine, DaxState::kDax, {});
    return own.ok() && own->result == ApplyResult::kChanged ? 0 : 3;
  });
  EXPECT_EQ(code, 0);
  EXPECT_FALSE(HasDaxFlag(env_.root() / "roots"));
  EXPECT_TRUE(HasDaxFlag(env_.root() / "mine")) << "an owner may set the flag";
}

TEST_P(ADriverOnEachFilesystem, HandlesNamesWithNewlinesAndNonUtf8Bytes) {
  REQUIRE_LOOP_FS(env_, GetParam());
  for (std::string name : {std::string("new\nline"), std::string("\xff\xfe-latin1-\xe9"),
                           std::string(" lead space")}) {
    testing::WriteFile(env_.root() / name, "x");
    Result<ApplyOutcome> out = driver_.Apply(env_.Ref(name), DaxState::kDax, {});
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(out->result, ApplyResult::kChanged) << out->reason;
    EXPECT_TRUE(HasDaxFlag(env_.root() / name));
  }
}

// Refusals and attacks. Each leaves everything outside the scope untouched.
class AnAttackedScope : public ::testing::TestWithParam<bool> {
 protected:
  DriverOptions Options() const {
    DriverOptions o;
    o.open.use_openat2 = GetParam();
    return o;
  }
  OnLoopFs env_;
  InodeFlagDriver driver_{KernelVersion::Running(), Options()};
};

INSTANTIATE_TEST_SUITE_P(Resolvers, AnAttackedScope, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "openat2" : "walk"; });

TEST_P(AnAttackedScope, NeverFollowsSymlinksToFilesOutside) {
  REQUIRE_LOOP_FS(env_, FsType::kXfs);
  fs::create_symlink(env_.outside() / "secret", env_.root() / "to-file");
  fs::create_symlink("../outside/secret", env_.root() / "relative");
  fs::create_directory_symlink(env_.outside(), env_.root() / "to-dir");
  const FileIdentity secret = IdentityOf(env_.outside() / "secret");
  struct Case {
    std::string path;
    Blocker blocker;
    std::string reason;
  };
  const Case cases[] = {
      {"to-file", Blocker::kNotRegularOrDirectory,
       "not a regular file or directory (symlink): never opened"},
      {"relative", Blocker::kNotRegularOrDirectory,
       "not a regular file or directory (symlink): never opened"},
      {"to-dir/secret", Blocker::kEscapesScope, "path escapes the scope via a symlink or mount"},
  };
  for (const Case& c : cases) {
    // Even with the outside file's identity (as if a scan had been fooled) nothing happens.
    for (FileIdentity expected : {FileIdentity{}, secret}) {
      Result<ApplyOutcome> out =
          driver_.Apply(FileRef{env_.Ref("").scope_root_fd, c.path, expected}, DaxState::kDax, {});
      ASSERT_TRUE(out.ok());
      EXPECT_EQ(out->blocker, c.blocker) << c.path;
      EXPECT_EQ(out->reason, c.reason) << c.path;
    }
  }
  EXPECT_FALSE(HasDaxFlag(env_.outside() / "secret"));
  EXPECT_FALSE(HasDaxFlag(env_.outside()));
}

TEST_P(AnAttackedScope, RefusesAnotherFilesystemMountedBelowTheScope) {
  REQUIRE_LOOP_FS(env_, FsType::kXfs);
  fs::create_directory(env_.root() / "sub");
  ASSERT_EQ(mount("tmpfs", (env_.root() / "sub").c_str(), "tmpfs", 0, "size=1m"), 0)
      << strerror(errno);
  testing::WriteFile(env_.root() / "sub/x", "x");
  Result<ApplyOutcome> below =
      driver_.Apply(FileRef{env_.Ref("").scope_root_fd, "sub/x", {}}, DaxState::kDax, {});
  Result<ApplyOutcome> mount_point =
      driver_.Apply(FileRef{env_.Ref("").scope_root_fd, "sub", {}}, DaxState::kDax, {});
  ASSERT_EQ(umount2((env_.root() / "sub").c_str(), MNT_DETACH), 0);
  ASSERT_TRUE(below.ok());
  EXPECT_EQ(below->blocker, Blocker::kEscapesScope);
  EXPECT_EQ(below->error_code, EXDEV);
  EXPECT_EQ(below->reason, "path escapes the scope via a symlink or mount");
  ASSERT_TRUE(mount_point.ok());
  EXPECT_EQ(mount_point->blocker, Blocker::kEscapesScope);
}

TEST_P(AnAttackedScope, RefusesAHardLinkToAFileOutsideUnlessAllowed) {
  REQUIRE_LOOP_FS(env_, FsType::kXfs);
  fs::create_hard_link(env_.outside() / "secret", env_.root() / "h");
  Result<ApplyOutcome> out = driver_.Apply(env_.Ref("h"), DaxState::kDax, {});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->blocker, Blocker::kHardLinks);
  EXPECT_EQ(out->reason, "has 2 hard links: other names may lie outside the scope");
  EXPECT_FALSE(HasDaxFlag(env_.outside() / "secret"));
  // The flag belongs to the inode: allowed, the change is visible under the outside name too.
  // The daemon can see st_nlink but not where the other names are.
  DriverOptions allow = Options();
  allow.allow_hard_links = true;
  InodeFlagDriver permissive(KernelVersion::Running(), allow);
  Result<ApplyOutcome> allowed = permissive.Apply(env_.Ref("h"), DaxState::kDax, {});
  ASSERT_TRUE(allowed.ok());
  EXPECT_EQ(allowed->result, ApplyResult::kChanged);
  EXPECT_TRUE(HasDaxFlag(env_.outside() / "secret"));
}

TEST_P(AnAttackedScope, NeverOpensFifosSocketsOrDeviceNodes) {
  REQUIRE_LOOP_FS(env_, FsType::kXfs);
  ASSERT_EQ(mkfifo((env_.root() / "fifo").c_str(), 0600), 0);
  ASSERT_EQ(mknod((env_.root() / "chr").c_str(), S_IFCHR | 0600, makedev(1, 3)), 0);  // null
  ASSERT_EQ(mknod((env_.root() / "blk").c_str(), S_IFBLK | 0600, makedev(7, 0)), 0);  // loop0
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string sock = (env_.root() / "sock").string();
  ASSERT_LT(sock.size(), sizeof addr.sun_path);
  sock.copy(addr.sun_path, sock.size());
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  testing::WriteFile(env_.root() / "regular", "x");
  // inotify reports every real open (IN_OPEN) of a directory entry; an O_PATH open is none.
  UniqueFd in(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  ASSERT_TRUE(in.valid());
  ASSERT_GE(inotify_add_watch(in.get(), env_.root().c_str(), IN_OPEN), 0);
  const std::map<std::string, std::string> kinds = {
      {"fifo", "fifo"}, {"chr", "character device"}, {"blk", "block device"}, {"sock", "socket"}};
  // In a child with an alarm: a blocking fifo open would hang it, not the test run.
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(20);
    for (const auto& [name, kind] : kinds) {
      for (DaxState desired : {DaxState::kDax, DaxState::kPageCache}) {
        Result<ApplyOutcome> out = driver_.Apply(
            FileRef{env_.Ref("").scope_root_fd, name, IdentityOf(env_.root() / name)}, desired, {});
        if (!out.ok() || out->blocker != Blocker::kNotRegularOrDirectory ||
            out->reason != "not a regular file or directory (" + kind + "): never opened") {
          _exit(1);
        }
      }
      if (driver_.Read(FileRef{env_.Ref("").scope_root_fd, name, {}}).ok()) _exit(2);
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  close(s);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // Positive control: the watch does see the driver's real open of a regular file.
  Result<ApplyOutcome> reg = driver_.Apply(env_.Ref("regular"), DaxState::kDax, {});
  ASSERT_TRUE(reg.ok());
  EXPECT_EQ(reg->result, ApplyResult::kChanged);
  std::vector<std::string> opened;
  alignas(struct inotify_event) char buf[8192];
  for (;;) {
    ssize_t n = read(in.get(), buf, sizeof buf);
    if (n <= 0) break;
    for (char* p = buf; p < buf + n;) {
      auto* ev = reinterpret_cast<struct inotify_event*>(p);
      if (ev->len > 0) opened.emplace_back(ev->name);
      p += sizeof(struct inotify_event) + ev->len;
    }
  }
  for (const auto& [name, kind] : kinds) {
    EXPECT_EQ(std::count(opened.begin(), opened.end(), name), 0) << name << " was opened";
  }
  EXPECT_GE(std::count(opened.begin(), opened.end(), "regular"), 1);
}

TEST_P(AnAttackedScope, ReportsFilesDeletedOrRenamedBeforeApply) {
  REQUIRE_LOOP_FS(env_, FsType::kXfs);
  testing::WriteFile(env_.root() / "gone", "x");
  testing::WriteFile(env_.root() / "moved", "x");
  FileRef gone = env_.Ref("gone");
  FileRef moved = env_.Ref("moved");
  fs::remove(env_.root() / "gone");
  fs::rename(env_.root() / "moved", env_.root() / "elsewhere");
  testing::WriteFile(env_.root() / "moved", "impostor");
  Result<ApplyOutcome> a = driver_.Apply(gone, DaxState::kDax, {});
  Result<ApplyOutcome> b = driver_.Apply(moved, DaxState::kDax, {});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->blocker, Blocker::kVanished);
  EXPECT_EQ(a->reason, "vanished: the file no longer exists (ENOENT)");
  EXPECT_EQ(b->blocker, Blocker::kReplaced);
  EXPECT_EQ(b->reason, "replaced since scan: the path now names a different file");
  EXPECT_FALSE(HasDaxFlag(env_.root() / "moved"));
  EXPECT_FALSE(HasDaxFlag(env_.root() / "elsewhere"));
}

TEST_P(AnAttackedScope, SurvivesFilesReplacedAndDeletedInALoopDuringApply) {
  REQUIRE_LOOP_FS(env_, FsType::kXfs);
  testing::WriteFile(env_.root() / "r", "x");
  FileRef ref = env_.Ref("r");
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    const std::string r = (env_.root() / "r").string();
    const std::string tmp = (env_.root() / "r.tmp").string();
    for (int i = 0; !stop.load(); ++i) {
      if (i % 2) {
        unlink(r.c_str());
      } else {
        int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) close(fd);
        rename(tmp.c_str(), r.c_str());
      }
    }
  });
  std::map<Blocker, int> seen;
  for (int i = 0; i < 2000; ++i) {
    Result<ApplyOutcome> out =
        driver_.Apply(ref, i % 2 ? DaxState::kDax : DaxState::kPageCache, {});
    ASSERT_TRUE(out.ok());
    seen[out->blocker]++;
    EXPECT_TRUE(out->blocker == Blocker::kNone || out->blocker == Blocker::kVanished ||
                out->blocker == Blocker::kReplaced)
        << out->reason;
  }
  stop = true;
  churn.join();
  EXPECT_GT(seen[Blocker::kVanished] + seen[Blocker::kReplaced], 0);
}

// The classic race: between the scan and the apply a directory is swapped (RENAME_EXCHANGE)
// with a symlink to a directory outside the scope holding a file of the same name. A thread
// swaps them continuously while the driver applies thousands of times, half the time with the
// identity of the outside file (as if a scan had been fooled). The outside file must never be
// touched; every attempt either changes the inside file or is refused cleanly.
TEST_P(AnAttackedScope, NeverEscapesThroughADirectorySwappedForASymlink) {
  REQUIRE_LOOP_FS(env_, FsType::kXfs);
  fs::create_directory(env_.root() / "d");
  testing::WriteFile(env_.root() / "d/f", "inside");
  testing::WriteFile(env_.outside() / "f", "outside");
  fs::create_directory_symlink("../outside", env_.root() / "s");
  const FileIdentity inside = IdentityOf(env_.root() / "d/f");
  const FileIdentity outside = IdentityOf(env_.outside() / "f");
  UniqueFd inside_fd(open((env_.root() / "d/f").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(inside_fd.valid());
  const int root_fd = env_.Ref("").scope_root_fd;
  std::atomic<bool> stop{false};
  std::atomic<long> swaps{0};
  std::thread swapper([&] {
    const std::string d = (env_.root() / "d").string();
    const std::string s = (env_.root() / "s").string();
    while (!stop.load()) {
      if (renameat2(AT_FDCWD, d.c_str(), AT_FDCWD, s.c_str(), RENAME_EXCHANGE) == 0) ++swaps;
    }
  });
  std::map<Blocker, int> seen;
  int changed = 0;
  for (int i = 0; i < 4000; ++i) {
    SetDaxFlag(inside_fd.get(), false);
    FileIdentity expected = i % 2 ? outside : inside;
    Result<ApplyOutcome> out = driver_.Apply(FileRef{root_fd, "d/f", expected}, DaxState::kDax, {});
    ASSERT_TRUE(out.ok());
    seen[out->blocker]++;
    if (out->result == ApplyResult::kChanged) ++changed;
    EXPECT_TRUE(out->blocker == Blocker::kNone || out->blocker == Blocker::kEscapesScope ||
                out->blocker == Blocker::kReplaced || out->blocker == Blocker::kVanished)
        << out->reason;
  }
  stop = true;
  swapper.join();
  EXPECT_FALSE(HasDaxFlag(env_.outside() / "f")) << "the outside file was changed";
  EXPECT_FALSE(HasDaxFlag(env_.outside()));
  EXPECT_GT(swaps.load(), 100);
  EXPECT_GT(changed, 0) << "the inside file was reachable some of the time";
  EXPECT_GT(seen[Blocker::kEscapesScope] + seen[Blocker::kReplaced], 0);
  std::cout << "swaps " << swaps.load() << ", changed " << changed << ", escapes refused "
            << seen[Blocker::kEscapesScope] << ", replaced " << seen[Blocker::kReplaced]
            << ", vanished " << seen[Blocker::kVanished] << "\n";
}

TEST(AnXfsReflinkFilesystem, AcceptsDaxOnAReflinkedFileSinceLinux62) {
  OnLoopFs env;
  REQUIRE_LOOP_FS(env, FsType::kXfsReflink);
  testing::WriteFile(env.root() / "a", std::string(1 << 20, 'r'));
  ASSERT_EQ(testing::Run({"cp", "--reflink=always", (env.root() / "a").string(),
                          (env.root() / "b").string()})
                .exit_code,
            0);
  KernelVersion kernel = KernelVersion::Running();
  InodeFlagDriver driver(kernel);
  Result<ApplyOutcome> out = driver.Apply(env.Ref("b"), DaxState::kDax, {});
  ASSERT_TRUE(out.ok());
  if (kernel.AtLeast(6, 2)) {
    // "xfs: remove restrictions for fsdax and reflink" (6.2): the flag is accepted.
    EXPECT_EQ(out->result, ApplyResult::kChanged) << out->reason;
    EXPECT_TRUE(HasDaxFlag(env.root() / "b"));
  } else {
    EXPECT_EQ(out->blocker, Blocker::kRefusedByFilesystem);
    EXPECT_EQ(out->reason, kReasonXfsReflinkOrV4);
  }
}

// ext4 with files that exclude DAX. chattr +j needs CAP_SYS_RESOURCE (not granted here), so
// the journal-data flag is set with debugfs on the unmounted image; inline data comes from a
// small file written on a filesystem made with -O inline_data.
class Ext4Image {
 public:
  bool Create(std::string* error) {
    image_ = dir_.path() / "ext4.img";
    mnt_ = dir_.path() / "mnt";
    fs::create_directory(mnt_);
    testing::WriteFile(dir_.path() / "data", std::string(8192, 'j'));
    auto run = [&](const std::vector<std::string>& argv) {
      testing::CommandResult r = testing::Run(argv);
      if (r.exit_code != 0) *error = argv[0] + " failed: " + r.err;
      return r.exit_code == 0;
    };
    if (!run({"truncate", "-s", "64M", image_.string()}) ||
        !run({"mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "inline_data", image_.string()}) ||
        !run({"debugfs", "-w", "-R", "write " + (dir_.path() / "data").string() + " jfile",
              image_.string()}) ||
        // EXT4_EXTENTS_FL | EXT4_JOURNAL_DATA_FL
        !run({"debugfs", "-w", "-R", "set_inode_field jfile flags 0x84000", image_.string()}) ||
        !run({"mount", "-o", "loop,dax=inode", image_.string(), mnt_.string()})) {
      return false;
    }
    mounted_ = true;
    return true;
  }
  ~Ext4Image() {
    if (mounted_) testing::Run({"umount", "-l", mnt_.string()});
  }
  const fs::path& mnt() const { return mnt_; }

 private:
  testing::TempDir dir_;
  fs::path image_;
  fs::path mnt_;
  bool mounted_ = false;
};

TEST(AnExt4Filesystem, RefusesDaxOnDataJournalledAndInlineDataFilesWithEopnotsupp) {
  DAXPOLICY_REQUIRE(!LoopFs::Unavailable(), LoopFs::Unavailable().value_or(""));
  DAXPOLICY_REQUIRE(testing::Run({"debugfs", "-V"}).exit_code == 0, "debugfs (e2fsprogs)");
  Ext4Image image;
  std::string error;
  ASSERT_TRUE(image.Create(&error)) << error;
  testing::WriteFile(image.mnt() / "tiny", "small enough to live in the inode");
  UniqueFd root(open(image.mnt().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  InodeFlagDriver driver(KernelVersion::Running());
  Result<ApplyOutcome> jdata = driver.Apply(
      FileRef{root.get(), "jfile", IdentityOf(image.mnt() / "jfile")}, DaxState::kDax, {});
  ASSERT_TRUE(jdata.ok());
  EXPECT_EQ(jdata->blocker, Blocker::kRefusedByFilesystem);
  EXPECT_EQ(jdata->error_code, EOPNOTSUPP);
  EXPECT_EQ(jdata->reason, "ext4 refuses DAX on a data-journalled file (chattr +j) (EOPNOTSUPP)");
  Result<ApplyOutcome> inline_data = driver.Apply(
      FileRef{root.get(), "tiny", IdentityOf(image.mnt() / "tiny")}, DaxState::kDax, {});
  ASSERT_TRUE(inline_data.ok());
  EXPECT_EQ(inline_data->blocker, Blocker::kRefusedByFilesystem);
  EXPECT_EQ(inline_data->reason, "ext4 refuses DAX on a file with inline data (EOPNOTSUPP)");
}

}  // namespace
}  // namespace daxpolicy::driver
