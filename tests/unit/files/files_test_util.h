// SPDX-License-Identifier: Apache-2.0
#pragma once

// Helpers shared by the files/ unit and integration tests.

#include <sys/inotify.h>
#include <unistd.h>

#include <map>
#include <set>
#include <string>

#include "policy/snapshot.h"

namespace daxpolicy::files::testing {

// Absolute path -> record, for every record of the snapshot.
inline std::map<std::string, policy::FileRecord> RecordsByPath(const policy::Snapshot& snap) {
  std::map<std::string, policy::FileRecord> out;
  std::string path;
  for (const policy::FileRecord& rec : snap.files) {
    snap.PathOf(rec, &path);
    out.emplace(path, rec);
  }
  return out;
}

// Every record's absolute path, sorted: prints short failure messages.
inline std::set<std::string> PathSet(const policy::Snapshot& snap) {
  std::set<std::string> out;
  std::string path;
  for (const policy::FileRecord& rec : snap.files) {
    snap.PathOf(rec, &path);
    out.insert(path);
  }
  return out;
}

// Bytes the names arena would need if it held only the live names.
inline size_t LiveNameBytes(const policy::Snapshot& snap) {
  size_t bytes = 0;
  for (const policy::FileRecord& rec : snap.files) bytes += rec.name_length;
  return bytes;
}

// Counts IN_OPEN events on one path: proves that nobody opened it.
class OpenSpy {
 public:
  explicit OpenSpy(const std::string& path) {
    fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd_ >= 0) watch_ = inotify_add_watch(fd_, path.c_str(), IN_OPEN);
  }
  ~OpenSpy() {
    if (fd_ >= 0) close(fd_);
  }
  OpenSpy(const OpenSpy&) = delete;
  OpenSpy& operator=(const OpenSpy&) = delete;
  bool ok() const { return fd_ >= 0 && watch_ >= 0; }
  int Opens() {
    int opens = 0;
    alignas(inotify_event) char buf[4096];
    for (;;) {
      const ssize_t n = read(fd_, buf, sizeof(buf));
      if (n <= 0) break;
      for (ssize_t off = 0; off < n;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
        if (ev->mask & IN_OPEN) ++opens;
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      }
    }
    return opens;
  }

 private:
  int fd_ = -1;
  int watch_ = -1;
};

}  // namespace daxpolicy::files::testing
