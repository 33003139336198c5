// SPDX-License-Identifier: Apache-2.0
#include "plugins/host/holders.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>
#include <unordered_set>

#include "plugins/host/text_io.h"
#include "plugins/unique_fd.h"

namespace daxpolicy::host {

using internal::ParseUnsigned;
using internal::Split;
using internal::SplitWhitespace;

namespace {

struct FileIdHash {
  size_t operator()(const FileId& id) const {
    return std::hash<uint64_t>()(id.ino * 0x9e3779b97f4a7c15ull ^ id.dev);
  }
};

using IdSet = std::unordered_set<FileId, FileIdHash>;

// Closes a DIR* on scope exit.
class Dir {
 public:
  explicit Dir(DIR* dir) : dir_(dir) {}
  ~Dir() {
    if (dir_ != nullptr) closedir(dir_);
  }
  Dir(const Dir&) = delete;
  Dir& operator=(const Dir&) = delete;
  DIR* get() const { return dir_; }

 private:
  DIR* dir_;
};

// Reads a file relative to a directory fd; returns errno on failure.
int ReadAt(int dir_fd, const std::string& relative, std::string* out) {
  UniqueFd fd(openat(dir_fd, relative.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) return errno;
  out->clear();
  char buffer[65536];
  for (;;) {
    ssize_t n = read(fd.get(), buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return 0;
    out->append(buffer, static_cast<size_t>(n));
  }
}

// Takes the next space-separated token of a maps line starting at *pos.
std::string_view NextToken(std::string_view line, size_t* pos) {
  while (*pos < line.size() && line[*pos] == ' ') ++*pos;
  size_t start = *pos;
  while (*pos < line.size() && line[*pos] != ' ') ++*pos;
  return line.substr(start, *pos - start);
}

// Parses the device ("fd:01", hex) and inode columns of a maps/smaps header
// line. nullopt for lines that do not have them or have inode 0.
std::optional<FileId> MappedFile(std::string_view line) {
  size_t pos = 0;
  NextToken(line, &pos);  // address range
  NextToken(line, &pos);  // permissions
  NextToken(line, &pos);  // offset
  std::string_view dev = NextToken(line, &pos);
  std::string_view inode = NextToken(line, &pos);
  size_t colon = dev.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto major = ParseUnsigned(dev.substr(0, colon), 16);
  auto minor = ParseUnsigned(dev.substr(colon + 1), 16);
  auto ino = ParseUnsigned(inode);
  if (!major || !minor || !ino || *ino == 0 || *major > 0xffffffffu || *minor > 0xffffffffu) {
    return std::nullopt;
  }
  return FileId{makedev(static_cast<unsigned>(*major), static_cast<unsigned>(*minor)), *ino};
}

// Holds per identity for one process, in the order first seen.
struct ProcessHolds {
  std::vector<std::pair<FileId, Holder>> entries;
  Holder& For(const FileId& id) {
    for (auto& [key, holder] : entries) {
      if (key == id) return holder;
    }
    entries.emplace_back(id, Holder{});
    return entries.back().second;
  }
  Holder* Find(const FileId& id) {
    for (auto& [key, holder] : entries) {
      if (key == id) return &holder;
    }
    return nullptr;
  }
};

// Scans one process. Returns false when part of it could not be read.
bool ScanProcess(int proc_fd, const std::string& pid_name, const IdSet& wanted,
                 const std::unordered_set<uint64_t>& wanted_devs, ProcessHolds* holds,
                 std::string* buffer) {
  bool complete = true;

  // Open files: stat() through each /proc/PID/fd/N link.
  {
    UniqueFd fd_dir(
        openat(proc_fd, (pid_name + "/fd").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd_dir.get() < 0) {
      complete = false;
    } else {
      int dup_fd = dup(fd_dir.get());
      Dir dir(dup_fd >= 0 ? fdopendir(dup_fd) : nullptr);
      if (dir.get() == nullptr) {
        if (dup_fd >= 0) close(dup_fd);
        complete = false;
      } else {
        for (;;) {
          errno = 0;
          dirent* entry = readdir(dir.get());
          if (entry == nullptr) {
            // readdir on a process that exited mid-listing fails with ENOENT.
            if (errno != 0) complete = false;
            break;
          }
          if (entry->d_name[0] == '.') continue;
          struct stat st;
          // An fd closed since readdir gives ENOENT: it no longer holds anything.
          if (fstatat(fd_dir.get(), entry->d_name, &st, 0) != 0) continue;
          FileId id{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
          if (wanted_devs.count(id.dev) != 0 && wanted.count(id) != 0) {
            holds->For(id).open_fd = true;
          }
        }
      }
    }
  }

  // Mappings: device and inode columns of maps.
  bool any_mapped = false;
  if (ReadAt(proc_fd, pid_name + "/maps", buffer) != 0) {
    complete = false;
  } else {
    for (std::string_view line : Split(*buffer, '\n')) {
      auto id = MappedFile(line);
      if (!id || wanted_devs.count(id->dev) == 0 || wanted.count(*id) == 0) continue;
      holds->For(*id).mapped = true;
      any_mapped = true;
    }
  }

  // MAP_SYNC: the "sf" VmFlag of the mappings of interest.
  if (any_mapped) {
    if (ReadAt(proc_fd, pid_name + "/smaps", buffer) != 0) {
      complete = false;
    } else {
      Holder* current = nullptr;
      for (std::string_view line : Split(*buffer, '\n')) {
        if (line.empty()) continue;
        size_t space = line.find(' ');
        std::string_view first = line.substr(0, space);
        if (first.empty() || first.back() != ':') {
          // A mapping header line.
          auto id = MappedFile(line);
          current = id ? holds->Find(*id) : nullptr;
          continue;
        }
        if (current == nullptr || first != "VmFlags:") continue;
        for (std::string_view flag : SplitWhitespace(line.substr(first.size()))) {
          if (flag == "sf") current->map_sync = true;
        }
      }
    }
  }

  if (!holds->entries.empty()) {
    std::string comm;
    if (ReadAt(proc_fd, pid_name + "/comm", &comm) == 0) {
      if (!comm.empty() && comm.back() == '\n') comm.pop_back();
      for (auto& [id, holder] : holds->entries) holder.comm = comm;
    }
  }
  return complete;
}

}  // namespace

Result<HolderScan> FindHolders(const Roots& roots, const std::vector<FileId>& files,
                               pid_t exclude_pid) {
  UniqueFd proc_fd(open(roots.proc.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (proc_fd.get() < 0) return ErrnoError(errno, "open " + roots.proc.string());
  int dup_fd = dup(proc_fd.get());
  if (dup_fd < 0) return ErrnoError(errno, "dup");
  Dir proc_dir(fdopendir(dup_fd));
  if (proc_dir.get() == nullptr) {
    int err = errno;
    close(dup_fd);
    return ErrnoError(err, "opendir " + roots.proc.string());
  }

  HolderScan scan;
  if (files.empty()) return scan;
  IdSet wanted(files.begin(), files.end());
  std::unordered_set<uint64_t> wanted_devs;
  for (const FileId& id : files) wanted_devs.insert(id.dev);

  std::string buffer;
  ProcessHolds holds;
  while (dirent* entry = readdir(proc_dir.get())) {
    auto pid = ParseUnsigned(entry->d_name);
    if (!pid || *pid == 0 || *pid > 0x7fffffff) continue;
    if (static_cast<pid_t>(*pid) == exclude_pid) continue;
    ++scan.processes_scanned;
    holds.entries.clear();
    bool complete = ScanProcess(proc_fd.get(), entry->d_name, wanted, wanted_devs, &holds, &buffer);
    if (!complete) ++scan.processes_skipped;
    for (auto& [id, holder] : holds.entries) {
      holder.pid = static_cast<pid_t>(*pid);
      scan.holders[id].push_back(std::move(holder));
    }
  }
  for (auto& [id, list] : scan.holders) {
    std::sort(list.begin(), list.end(),
              [](const Holder& a, const Holder& b) { return a.pid < b.pid; });
  }
  return scan;
}

}  // namespace daxpolicy::host
