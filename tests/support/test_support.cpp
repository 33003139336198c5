// SPDX-License-Identifier: Apache-2.0
#include "tests/support/test_support.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/fs.h>
#include <linux/seccomp.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace daxpolicy::testing {

namespace fs = std::filesystem;

bool InCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && *ci != '\0' && std::string(ci) != "false";
}

bool IsRoot() { return geteuid() == 0; }

bool RefuseSyscall(long nr, int error) {
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<__u32>(nr), 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | static_cast<__u32>(error)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
  return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/daxpolicy-test-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error("mkdtemp: " + std::string(std::strerror(errno)));
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void WriteFile(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write " + path.string());
  out << content;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {

std::string Drain(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  return out;
}

}  // namespace

CommandResult Run(const std::vector<std::string>& argv) {
  CommandResult result;
  // Output goes to temporary files: no deadlock however much a child prints.
  TempDir dir;
  std::string out_path = (dir.path() / "out").string();
  std::string err_path = (dir.path() / "err").string();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    result.exit_code = 127;
    result.err = "cannot run " + argv[0] + ": " + std::strerror(rc);
    return result;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  int fd = open(out_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    result.out = Drain(fd);
    close(fd);
  }
  fd = open(err_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    result.err = Drain(fd);
    close(fd);
  }
  return result;
}

const char* FsTypeName(FsType type) {
  switch (type) {
    case FsType::kXfs:
      return "xfs";
    case FsType::kXfsReflink:
      return "xfs-reflink";
    case FsType::kExt4:
      return "ext4";
  }
  return "?";
}

std::optional<std::string> LoopFs::Unavailable() {
  if (!IsRoot()) return "needs root to create loop-mounted filesystems";
  if (access("/dev/loop-control", R_OK | W_OK) != 0) return "no /dev/loop-control";
  if (Run({"mkfs.xfs", "-V"}).exit_code != 0) return "mkfs.xfs missing (package xfsprogs)";
  if (Run({"mkfs.ext4", "-V"}).exit_code != 0) return "mkfs.ext4 missing (package e2fsprogs)";
  return std::nullopt;
}

std::unique_ptr<LoopFs> LoopFs::Create(FsType type, std::string* error, int size_mib,
                                       const std::string& extra_mount_options) {
  std::unique_ptr<LoopFs> fs(new LoopFs());
  fs->type_ = type;
  fs->dir_ = std::make_unique<TempDir>();
  fs->image_ = fs->dir_->path() / "fs.img";
  fs->mount_point_ = fs->dir_->path() / "mnt";
  fs::create_directory(fs->mount_point_);
  CommandResult r = Run({"truncate", "-s", std::to_string(size_mib) + "M", fs->image_.string()});
  if (r.exit_code != 0) {
    *error = "truncate failed: " + r.err;
    return nullptr;
  }
  switch (type) {
    case FsType::kXfs:
      r = Run({"mkfs.xfs", "-q", "-m", "reflink=0", fs->image_.string()});
      break;
    case FsType::kXfsReflink:
      r = Run({"mkfs.xfs", "-q", "-m", "reflink=1", fs->image_.string()});
      break;
    case FsType::kExt4:
      r = Run({"mkfs.ext4", "-q", "-F", "-b", "4096", fs->image_.string()});
      break;
  }
  if (r.exit_code != 0) {
    *error = std::string("mkfs for ") + FsTypeName(type) + " failed: " + r.err;
    return nullptr;
  }
  std::string options = "loop,dax=inode";
  if (!extra_mount_options.empty()) options += "," + extra_mount_options;
  r = Run({"mount", "-o", options, fs->image_.string(), fs->mount_point_.string()});
  if (r.exit_code != 0) {
    *error = "mount -o " + options + " failed: " + r.err;
    return nullptr;
  }
  fs->mounted_ = true;
  return fs;
}

LoopFs::~LoopFs() {
  if (mounted_) {
    // Lazy unmount: a test that failed half-way may still hold an fd.
    Run({"umount", "-l", mount_point_.string()});
  }
}

std::optional<bool> ReadDaxFlag(const fs::path& path) {
  int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  fsxattr x{};
  int rc = ioctl(fd, FS_IOC_FSGETXATTR, &x);
  close(fd);
  if (rc != 0) return std::nullopt;
  return (x.fsx_xflags & FS_XFLAG_DAX) != 0;
}

bool WriteDaxFlag(const fs::path& path, bool on, std::string* error) {
  int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    *error = "open " + path.string() + ": " + std::strerror(errno);
    return false;
  }
  fsxattr x{};
  bool ok = ioctl(fd, FS_IOC_FSGETXATTR, &x) == 0;
  if (ok) {
    x.fsx_xflags = on ? (x.fsx_xflags | FS_XFLAG_DAX) : (x.fsx_xflags & ~FS_XFLAG_DAX);
    ok = ioctl(fd, FS_IOC_FSSETXATTR, &x) == 0;
  }
  if (!ok) *error = "FS_IOC_FS[GS]ETXATTR " + path.string() + ": " + std::strerror(errno);
  close(fd);
  return ok;
}

std::string BinaryPath(const std::string& name) {
#ifdef DAXPOLICY_BIN_DIR
  return std::string(DAXPOLICY_BIN_DIR) + "/" + name;
#else
  return name;
#endif
}

}  // namespace daxpolicy::testing
