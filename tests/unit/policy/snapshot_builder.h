// SPDX-License-Identifier: Apache-2.0
#pragma once

// Builds Snapshots for policy tests without any filesystem.

#include <string>

#include "policy/snapshot.h"

namespace daxpolicy::policy::testing {

class SnapshotBuilder {
 public:
  SnapshotBuilder() {
    snap_.wall_clock_ns = 1'700'000'000LL * 1'000'000'000LL;
    snap_.mounts.push_back(MountRecord{42, "/srv/pmem", -1, ""});
  }

  // A regular file at an absolute path; returns its index.
  uint32_t File(const std::string& path, uint64_t size, DaxState physical = DaxState::kPageCache,
                DaxState effective = DaxState::kPageCache) {
    FileRecord f;
    size_t slash = path.rfind('/');
    std::string dir = slash == 0 ? "/" : path.substr(0, slash);
    std::string name = path.substr(slash + 1);
    uint32_t d = 0;
    for (; d < snap_.dir_paths.size(); ++d) {
      if (snap_.dir_paths[d] == dir) break;
    }
    if (d == snap_.dir_paths.size()) snap_.dir_paths.push_back(dir);
    f.dir = d;
    f.name_offset = static_cast<uint32_t>(snap_.names.size());
    f.name_length = static_cast<uint16_t>(name.size());
    snap_.names += name;
    f.ino = ++next_ino_;
    f.size = size;
    f.mtime_ns = snap_.wall_clock_ns - 3600LL * 1'000'000'000LL;
    f.physical = physical;
    f.effective = effective;
    f.available = kHaveSize | kHavePhysical | kHaveEffective;
    snap_.files.push_back(f);
    return static_cast<uint32_t>(snap_.files.size() - 1);
  }

  uint32_t Dir(const std::string& path, DaxState physical = DaxState::kPageCache) {
    uint32_t i = File(path, 4096, physical, DaxState::kPageCache);
    snap_.files[i].kind = FileKind::kDirectory;
    return i;
  }

  FileRecord& at(uint32_t i) { return snap_.files[i]; }

  // Page-cache numbers for file i.
  void Cache(uint32_t i, uint32_t resident, uint32_t recently_evicted = 0, uint32_t dirty = 0) {
    FileRecord& f = snap_.files[i];
    f.available |= kHaveCache;
    f.cache_pages = resident;
    f.recently_evicted_pages = recently_evicted;
    f.dirty_pages = dirty;
  }

  // Attaches a measured device to the mount.
  void Media(double read_ns, double ratio, MediaHealth health = MediaHealth::kOk) {
    MediaSample m;
    m.name = "pmem0";
    m.have_latency = true;
    m.read_latency_ns = read_ns;
    m.write_latency_ns = read_ns * 2;
    m.latency_ratio = ratio;
    m.health = health;
    snap_.media.push_back(m);
    snap_.mounts[0].media = static_cast<int>(snap_.media.size() - 1);
  }

  void EffectiveBlocked(const std::string& reason) {
    snap_.mounts[0].effective_blocked_reason = reason;
  }

  Snapshot& snapshot() { return snap_; }

 private:
  Snapshot snap_;
  uint64_t next_ino_ = 100;
};

}  // namespace daxpolicy::policy::testing
