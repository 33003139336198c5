// SPDX-License-Identifier: Apache-2.0
#pragma once

/// What the telemetry plugins measured, as the pure policy core reads it.
///
/// Files are kept as a compact table (the daemon tracks millions of them): one
/// FileRecord per regular file or directory, names stored once in a shared
/// arena, full paths only for directories. A file's path is
/// dir_paths[record.dir] + "/" + name.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace daxpolicy::policy {

enum class DaxState : uint8_t { kUnknown, kPageCache, kDax };
enum class FileKind : uint8_t { kRegular, kDirectory };

// Per-file measurements that may be missing, one bit each in FileRecord::available.
enum FileField : uint16_t {
  kHaveSize = 1u << 0,       // size, mtime (statx)
  kHaveCache = 1u << 1,      // cache_pages, dirty_pages, recently_evicted_pages (cachestat/mincore)
  kHaveHolders = 1u << 2,    // holders
  kHaveAccess = 1u << 3,     // read_bytes_rate, write_bytes_rate (access tracing)
  kHavePhysical = 1u << 4,   // physical (FS_IOC_FSGETXATTR)
  kHaveEffective = 1u << 5,  // effective (statx STATX_ATTR_DAX)
  kHaveEvictedOnly = 1u << 6,  // cache numbers came from mincore: no eviction data
  kHaveHitRatio = 1u << 7,     // cache_hit_ratio (access tracing saw page-cache reads)
};

// 64 bytes: the daemon holds two tables of every file during a cycle (the
// published one and the one the cycle builds), so each byte here counts twice.
struct FileRecord {
  uint64_t ino = 0;
  uint64_t size = 0;         // bytes
  int64_t mtime_ns = 0;      // wall clock, ns since the epoch
  uint32_t dir = 0;          // index into Snapshot::dir_paths: the parent directory
  uint32_t name_offset = 0;  // into Snapshot::names
  uint16_t name_length = 0;
  uint16_t mount = 0;    // index into Snapshot::mounts
  uint16_t holders = 0;  // open file descriptions + mappings by other processes
  // The FileField bits and the three small enums share two bytes.
  uint16_t available : 10 = 0;  // FileField bits
  FileKind kind : 2 = FileKind::kRegular;
  DaxState physical : 2 = DaxState::kUnknown;   // FS_XFLAG_DAX
  DaxState effective : 2 = DaxState::kUnknown;  // STATX_ATTR_DAX
  uint32_t cache_pages = 0;                     // resident page-cache pages
  uint32_t dirty_pages = 0;
  uint32_t recently_evicted_pages = 0;
  float read_bytes_rate = 0;   // B/s, from access tracing
  float cache_hit_ratio = 0;   // 0..1, from access tracing (page-cache mode only)
  float write_bytes_rate = 0;  // B/s, from access tracing
};
static_assert(sizeof(FileRecord) == 64);
static_assert(kHaveHitRatio < (1u << 10), "every FileField bit fits FileRecord::available");

enum class MediaHealth : uint8_t { kUnknown, kOk, kWarning, kCritical };

// "unknown", "ok", "warning", "critical": the names in policies, D-Bus and metrics.
constexpr std::string_view MediaHealthName(MediaHealth health) {
  switch (health) {
    case MediaHealth::kOk:
      return "ok";
    case MediaHealth::kWarning:
      return "warning";
    case MediaHealth::kCritical:
      return "critical";
    case MediaHealth::kUnknown:
      break;
  }
  return "unknown";
}

// Measurements of the memory device behind a mount.
struct MediaSample {
  std::string name;  // e.g. "pmem0" / "namespace0.0"
  bool have_latency = false;
  double read_latency_ns = 0;
  double write_latency_ns = 0;
  double latency_ratio = 0;  // media read latency / DRAM read latency
  MediaHealth health = MediaHealth::kUnknown;
  bool have_numa_node = false;
  int numa_node = -1;
  // Sequential single-thread read bandwidth of the media and of DRAM, measured
  // in the same probe run, and the media's write bandwidth; bytes per second.
  bool have_bandwidth = false;
  double read_bandwidth = 0;
  double dram_bandwidth = 0;
  double write_bandwidth = 0;
};

struct MountRecord {
  uint64_t dev = 0;  // st_dev of files on this mount (makedev(major, minor))
  std::string mount_point;
  int media = -1;  // index into Snapshot::media, -1 when none is known
  // Why a physical DAX flag cannot become effective here ("" when it can):
  // e.g. "device loop0 cannot do DAX (/sys/block/loop0/queue/dax is 0)".
  std::string effective_blocked_reason;
  // Why access tracing does not count files on this mount ("" when it does).
  std::string access_unavailable = {};
};

struct SystemSample {
  bool have_mem_pressure = false;
  double mem_pressure = 0;  // PSI memory "some" avg10, percent
  bool have_page_cache_ratio = false;
  double page_cache_ratio = 0;  // Cached / MemTotal, 0..1
  bool have_cache_hit_ratio = false;
  double cache_hit_ratio = 0;  // from access tracing
  // The window the access figures cover (0: no figures), and why there are
  // none when access tracing is unavailable ("" when it works).
  int64_t access_window_ns = 0;
  std::string access_unavailable;
};

struct Snapshot {
  int64_t wall_clock_ns = 0;           // when it was taken; file.age = this - mtime
  uint32_t page_size = 4096;           // for ratios from page counts
  std::vector<std::string> dir_paths;  // absolute, no trailing '/'
  std::string names;                   // arena of file names (not NUL-terminated)
  std::vector<FileRecord> files;
  std::vector<MountRecord> mounts;
  std::vector<MediaSample> media;
  SystemSample system;

  std::string_view Name(const FileRecord& f) const {
    return std::string_view(names).substr(f.name_offset, f.name_length);
  }
  // Writes the absolute path of f into *out (reused buffer, no allocation once warm).
  void PathOf(const FileRecord& f, std::string* out) const {
    const std::string& dir = dir_paths[f.dir];
    out->assign(dir);
    if (dir != "/") out->push_back('/');
    out->append(Name(f));
  }
};

}  // namespace daxpolicy::policy
