// SPDX-License-Identifier: Apache-2.0
#pragma once

/// What the telemetry plugins measured, as the pure policy core reads it.
///
/// Files are kept as a compact table (the daemon tracks millions of them): one
/// FileRecord per regular file or directory, names stored once in a shared
/// arena, full paths only for directories. A file's path is
/// dir_paths[record.dir] + "/" + name.

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace daxpolicy::policy {

enum class DaxState : uint8_t { kUnknown, kPageCache, kDax };
enum class FileKind : uint8_t { kRegular, kDirectory };

// Per-file measurements that may be missing, one bit each in FileRecord::available.
enum FileField : uint16_t {
  kHaveSize = 1u << 0,       // size, mtime (statx)
  kHaveCache = 1u << 1,      // cache_pages, dirty_pages, recently_evicted_pages (cachestat/mincore)
  kHaveHolders = 1u << 2,    // holders
  kHaveAccess = 1u << 3,     // read_bytes_rate, write_bytes_rate: see HasAccessFigures
  kHavePhysical = 1u << 4,   // physical (FS_IOC_FSGETXATTR)
  kHaveEffective = 1u << 5,  // effective (statx STATX_ATTR_DAX)
  kHaveEvictedOnly = 1u << 6,  // cache numbers came from mincore: no eviction data
  kHaveHitRatio = 1u << 7,     // cache_hit_ratio (access tracing saw page-cache reads)
};

// 64 bytes, every byte defined (no padding): FileTable compares records byte
// for byte to share them between the published table and the one a cycle builds.
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
static_assert(sizeof(FileRecord) == 3 * 8 + 2 * 4 + 4 * 2 + 3 * 4 + 3 * 4,
              "FileRecord has no padding: equal records are equal bytes");
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
  // Access tracing covers the files marked kHaveAccess but has no figures for
  // this cycle (its first window is not complete, or counts were lost); why is
  // in access_unavailable. The marks stay so that the cycle after, when the
  // figures come, changes only the records of files that were read or written.
  bool access_withheld = false;
};

// True when two records hold the same bytes (FileRecord has no padding).
inline bool SameRecord(const FileRecord& a, const FileRecord& b) {
  return std::memcmp(&a, &b, sizeof(FileRecord)) == 0;
}

// The file table of a Snapshot: a vector of FileRecords kept in chunks of
// kChunkRecords (16 KiB) that tables share until one of them writes (copy on
// write). A copy of a table shares every chunk. A table built from another one
// (BeginBuild(base), push_back..., EndBuild()) holds base's chunk in place of
// each chunk it fills with the same bytes at the same position: while the
// records pushed are base's, nothing is allocated or written, and a chunk
// that went its own way and came out the same is exchanged for base's when it
// is full. A cycle that rebuilds the table of a million files of which few
// changed holds one table of records plus the changed chunks, not two, and
// passes over both tables skip the chunks they share (SameChunk).
//
// Reading through a const table, or iterating, never copies. The non-const
// operator[] and back() copy the chunk they touch when it is shared, even to
// read: read through a const reference (std::as_const) where nothing is
// written, and write with Set() where the value may be the same.
//
// Threads: tables sharing chunks may be used on different threads (each by
// one thread at a time): a shared chunk is never written, and a chunk only
// this table holds is written in place.
class FileTable {
 public:
  static constexpr size_t kChunkBits = 8;
  static constexpr size_t kChunkRecords = size_t{1} << kChunkBits;

  template <class Table, class Ref>
  class Iterator {
   public:
    using iterator_category = std::random_access_iterator_tag;
    using value_type = FileRecord;
    using difference_type = std::ptrdiff_t;
    using pointer = std::remove_reference_t<Ref>*;
    using reference = Ref;
    Iterator() = default;
    Iterator(Table* table, size_t i) : table_(table), i_(i) {}
    Ref operator*() const { return (*table_)[i_]; }
    pointer operator->() const { return &(*table_)[i_]; }
    Ref operator[](difference_type n) const { return (*table_)[i_ + n]; }
    Iterator& operator++() { return ++i_, *this; }
    Iterator operator++(int) { return Iterator(table_, i_++); }
    Iterator& operator--() { return --i_, *this; }
    Iterator operator--(int) { return Iterator(table_, i_--); }
    Iterator& operator+=(difference_type n) { return i_ += n, *this; }
    Iterator& operator-=(difference_type n) { return i_ -= n, *this; }
    Iterator operator+(difference_type n) const { return Iterator(table_, i_ + n); }
    friend Iterator operator+(difference_type n, const Iterator& it) { return it + n; }
    Iterator operator-(difference_type n) const { return Iterator(table_, i_ - n); }
    difference_type operator-(const Iterator& o) const {
      return static_cast<difference_type>(i_) - static_cast<difference_type>(o.i_);
    }
    bool operator==(const Iterator& o) const { return i_ == o.i_; }
    auto operator<=>(const Iterator& o) const { return i_ <=> o.i_; }

   private:
    Table* table_ = nullptr;
    size_t i_ = 0;
  };
  using const_iterator = Iterator<const FileTable, const FileRecord&>;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const FileRecord& operator[](size_t i) const {
    return chunks_[i >> kChunkBits]->records[i & kMask];
  }
  // Copies the record's chunk first when another table shares it.
  FileRecord& operator[](size_t i) { return Writable(i >> kChunkBits).records[i & kMask]; }
  // Record i becomes r; its chunk is copied only when r differs from it.
  void Set(size_t i, const FileRecord& r) {
    if (!SameRecord(std::as_const(*this)[i], r)) (*this)[i] = r;
  }
  const FileRecord& back() const { return (*this)[size_ - 1]; }
  FileRecord& back() { return (*this)[size_ - 1]; }
  const_iterator begin() const { return const_iterator(this, 0); }
  const_iterator end() const { return const_iterator(this, size_); }

  void push_back(const FileRecord& r) {
    const size_t k = size_ >> kChunkBits;
    const size_t j = size_ & kMask;
    // During a build, base's record at this position: the chunk stays (or
    // becomes) base's own. (k == chunks_.size() only at a chunk's start.) A
    // chunk already the table's own is compared once, when full.
    if (size_ < base_size_ && (k == chunks_.size() ? j == 0 : chunks_[k] == base_[k]) &&
        SameRecord(base_[k]->records[j], r)) {
      if (k == chunks_.size()) chunks_.push_back(base_[k]);
      ++size_;
      return;
    }
    if (k == chunks_.size()) chunks_.push_back(std::make_shared<Chunk>());
    Writable(k).records[j] = r;
    ++size_;
    if ((size_ & kMask) == 0) ShareIfSame(k, kChunkRecords);
  }
  // During a build, when this table has as many records as it has of base's
  // so far (size() <= base's size): appends base's next `count` records (at
  // most what base has left) as they are, sharing base's chunks where they
  // start or stay base's. What push_back of each would do, without reading them.
  void AppendFromBase(size_t count) {
    count = size_ < base_size_ ? std::min(count, base_size_ - size_) : 0;
    while (count > 0) {
      const size_t k = size_ >> kChunkBits;
      const size_t j = size_ & kMask;
      const size_t n = std::min(count, kChunkRecords - j);
      if (k == chunks_.size()) {
        chunks_.push_back(base_[k]);  // j == 0
      } else if (chunks_[k] != base_[k]) {
        std::memcpy(&Writable(k).records[j], &base_[k]->records[j], n * sizeof(FileRecord));
      }
      size_ += n;
      count -= n;
      if ((size_ & kMask) == 0) ShareIfSame(k, kChunkRecords);
    }
  }
  void reserve(size_t n) { chunks_.reserve((n + kChunkRecords - 1) >> kChunkBits); }
  size_t capacity() const { return chunks_.capacity() << kChunkBits; }
  void clear() {
    chunks_.clear();
    size_ = 0;
  }
  // Shrinks to n records, or grows with default records.
  void resize(size_t n) {
    if (n < size_) {
      chunks_.resize((n + kChunkRecords - 1) >> kChunkBits);
      size_ = n;
    }
    while (size_ < n) push_back(FileRecord());
  }

  // Clears this table and builds it from here on against `base`: see above.
  void BeginBuild(const FileTable& base) {
    clear();
    base_ = base.chunks_;
    base_size_ = base.size_;
  }
  // Shares the last, partly filled chunk too when base ends with the same
  // one, and only then: base's chunk holding more records than this table's
  // last one is copied (one chunk), so that a shared chunk always holds the
  // same records in both tables.
  void EndBuild() {
    const size_t rest = size_ & kMask;
    if (rest != 0) {
      const size_t k = size_ >> kChunkBits;
      if (base_size_ == size_) {
        ShareIfSame(k, rest);
      } else if (k < base_.size() && chunks_[k] == base_[k]) {
        chunks_[k] = std::make_shared<Chunk>(*chunks_[k]);
      }
    }
    base_.clear();
    base_size_ = 0;
  }

  // Whether this table and `other` hold one and the same chunk k: their
  // records there (at the indices both tables have) are equal, without
  // reading them.
  bool SameChunk(const FileTable& other, size_t k) const {
    return k < chunks_.size() && k < other.chunks_.size() && chunks_[k] == other.chunks_[k];
  }

  // How many of this table's chunks `other` holds too (tests, benchmarks).
  size_t SharedChunks(const FileTable& other) const {
    size_t n = 0;
    for (size_t k = 0; k < chunks_.size() && k < other.chunks_.size(); ++k) {
      n += chunks_[k] == other.chunks_[k] ? 1 : 0;
    }
    return n;
  }
  size_t chunk_count() const { return chunks_.size(); }

 private:
  static constexpr size_t kMask = kChunkRecords - 1;
  struct Chunk {
    FileRecord records[kChunkRecords];
  };

  Chunk& Writable(size_t k) {
    std::shared_ptr<Chunk>& c = chunks_[k];
    if (c.use_count() != 1) {
      c = std::make_shared<Chunk>(*c);
    } else {
      // Another thread may just have dropped its reference after reading.
      std::atomic_thread_fence(std::memory_order_acquire);
    }
    return *c;
  }
  // Chunk k holds its first `count` records: base's chunk k replaces it when
  // base has exactly those records there.
  void ShareIfSame(size_t k, size_t count) {
    if (k >= base_.size() || chunks_[k] == base_[k]) return;
    const size_t first = k << kChunkBits;
    if (base_size_ < first + count) return;
    if (count < kChunkRecords && base_size_ != first + count) return;
    if (std::memcmp(chunks_[k]->records, base_[k]->records, count * sizeof(FileRecord)) == 0) {
      chunks_[k] = base_[k];
    }
  }

  std::vector<std::shared_ptr<Chunk>> chunks_;
  size_t size_ = 0;
  // During a build: the base table's chunks.
  std::vector<std::shared_ptr<Chunk>> base_;
  size_t base_size_ = 0;
};

struct Snapshot {
  int64_t wall_clock_ns = 0;           // when it was taken; file.age = this - mtime
  uint32_t page_size = 4096;           // for ratios from page counts
  std::vector<std::string> dir_paths;  // absolute, no trailing '/'
  std::string names;                   // arena of file names (not NUL-terminated)
  FileTable files;
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

// Whether f's access figures (read and write rates) are known in this snapshot.
inline bool HasAccessFigures(const Snapshot& snap, const FileRecord& f) {
  return (f.available & kHaveAccess) && !snap.system.access_withheld;
}

}  // namespace daxpolicy::policy
