// SPDX-License-Identifier: Apache-2.0
#include "daemon/config_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace daxpolicy::daemon {

namespace fs = std::filesystem;

namespace {

std::string TypeName(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFDIR:
      return "a directory";
    case S_IFIFO:
      return "a fifo";
    case S_IFSOCK:
      return "a socket";
    case S_IFCHR:
      return "a character device";
    case S_IFBLK:
      return "a block device";
    case S_IFLNK:
      return "a symbolic link";
  }
  return "not a regular file";
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

std::string LimitText(size_t limit) {
  if (limit >= (size_t{1} << 30) && limit % (size_t{1} << 30) == 0) {
    return std::to_string(limit >> 30) + " GiB";
  }
  if (limit >= (size_t{1} << 20) && limit % (size_t{1} << 20) == 0) {
    return std::to_string(limit >> 20) + " MiB";
  }
  return std::to_string(limit) + " bytes";
}

bool ReadText(const std::string& path, std::string* out, std::string* error) {
  return ReadRegularFile(path, kMaxPolicyFileBytes, out, error, "a policy file");
}

}  // namespace

// The path is first opened with O_PATH (which opens no fifo, socket or device)
// and its type checked on that descriptor; the same inode is then opened for
// reading through /proc/self/fd, so a file swapped in between is never opened.
// At most `limit` bytes are read, whatever stat says (a file can grow).
bool ReadRegularFile(const std::string& path, size_t limit, std::string* out, std::string* error,
                     std::string_view kind) {
  Fd where;
  where.fd = open(path.c_str(), O_PATH | O_CLOEXEC);
  if (where.fd < 0) {
    *error = std::strerror(errno);
    return false;
  }
  struct stat st;
  if (fstat(where.fd, &st) != 0) {
    *error = std::strerror(errno);
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    *error = "is " + TypeName(st.st_mode) + ", not " +
             std::string(S_ISDIR(st.st_mode) && !kind.empty() ? kind : "a regular file");
    return false;
  }
  Fd in;
  const int flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  in.fd = open(("/proc/self/fd/" + std::to_string(where.fd)).c_str(), flags);
  if (in.fd < 0 && errno == ENOENT) in.fd = open(path.c_str(), flags);  // no /proc
  struct stat again;
  if (in.fd < 0 || fstat(in.fd, &again) != 0) {
    *error = std::strerror(errno);
    return false;
  }
  if (!S_ISREG(again.st_mode) || again.st_dev != st.st_dev || again.st_ino != st.st_ino) {
    *error = "was replaced while it was being opened";
    return false;
  }
  out->clear();
  char buf[65536];
  for (;;) {
    ssize_t n = read(in.fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = std::strerror(errno);
      return false;
    }
    if (n == 0) return true;
    if (out->size() + static_cast<size_t>(n) > limit) {
      *error = "larger than " + LimitText(limit);
      if (!kind.empty()) *error += "; not " + std::string(kind);
      out->clear();
      return false;
    }
    out->append(buf, static_cast<size_t>(n));
  }
}

std::optional<std::string> ScopeOnFileSystemProblem(const std::string& scope) {
  for (size_t end = scope.find('/', 1);; end = scope.find('/', end + 1)) {
    const std::string prefix = scope.substr(0, end);
    struct stat st;
    if (lstat(prefix.c_str(), &st) != 0) return std::nullopt;  // missing: nothing to follow
    if (S_ISLNK(st.st_mode)) {
      return "is reached through a symlink ('" + prefix + "'); name the real directory";
    }
    if (end == std::string::npos) return std::nullopt;
  }
}

std::string DefaultDropinDir(const std::string& config) {
  return (fs::path(config).parent_path() / "policy.d").string();
}

policy::LoadResult LoadPolicyFiles(const std::string& config, const std::string& dropin_dir) {
  policy::LoadResult result;
  policy::PolicySource main{config, ""};
  std::string error;
  if (!ReadText(config, &main.text, &error)) {
    result.errors.push_back({config, 0, 0, "cannot read policy: " + error});
    return result;
  }
  std::vector<std::string> names;
  std::error_code ec;
  if (!dropin_dir.empty() && fs::is_directory(dropin_dir, ec)) {
    for (const auto& entry : fs::directory_iterator(dropin_dir, ec)) {
      const fs::path& p = entry.path();
      // Every *.yaml entry is read: one that is not a regular file is an error,
      // not silently skipped (ReadText never opens it).
      if (p.extension() == ".yaml") names.push_back(p.string());
    }
    if (ec) {
      result.errors.push_back({dropin_dir, 0, 0, "cannot list drop-ins: " + ec.message()});
      return result;
    }
  }
  std::sort(names.begin(), names.end());
  std::vector<policy::PolicySource> dropins;
  for (const std::string& n : names) {
    policy::PolicySource s{n, ""};
    if (!ReadText(n, &s.text, &error)) {
      result.errors.push_back({n, 0, 0, "cannot read drop-in: " + error});
      continue;
    }
    dropins.push_back(std::move(s));
  }
  if (!result.errors.empty()) return result;
  return policy::LoadPolicy(main, dropins, ScopeOnFileSystemProblem);
}

std::vector<policy::Diagnostic> CheckPolicyFile(const std::string& path) {
  policy::PolicySource src{path, ""};
  std::string error;
  if (!ReadText(path, &src.text, &error)) return {{path, 0, 0, "cannot read: " + error}};
  if (fs::path(path).parent_path().filename() == "policy.d")
    return policy::CheckDropin(src, ScopeOnFileSystemProblem);
  return policy::LoadPolicy(src, {}, ScopeOnFileSystemProblem).errors;
}

}  // namespace daxpolicy::daemon
