// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The simulator's page cache: one cache with a byte budget shared by the
/// traced files, fed with per-interval totals (bytes read, calls, distinct
/// bytes covered), modelled on the kernel's two file LRU lists. Pure and
/// deterministic; used by policy/simulate.cpp, tested on its own.

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace daxpolicy::policy {

class PageCacheModel {
 public:
  PageCacheModel(size_t files, double budget) : files_(files), budget_(budget) {}

  double resident(uint32_t f) const { return files_[f].active + files_[f].inactive; }
  double active(uint32_t f) const { return files_[f].active; }
  double inactive(uint32_t f) const { return files_[f].inactive; }
  double total() const { return active_ + inactive_; }
  double active_total() const { return active_; }

  /// Sets file f's resident bytes (the trace's residency at its first
  /// interval, or 0 when its mode switches): they start on the inactive list.
  void Set(uint32_t f, double bytes);

  /// Reads of file f in `round` (one interval): `read` bytes in `calls` calls
  /// (0: unknown) covering `covered` distinct bytes of a file of `size` bytes.
  /// Returns the bytes that missed.
  double Read(uint32_t f, int64_t round, double read, double calls, double covered, double size);

  /// At the end of `round`: brings the cache back within the budget.
  void Evict(int64_t round);

 private:
  struct Chunk {
    double when;  // 2 x interval, + 1 for pages deactivated in it (they join after its faults)
    double bytes;
  };
  struct File {
    double active = 0;
    double inactive = 0;
    std::vector<Chunk> chunks;  // its inactive bytes by when they joined, oldest first
    int64_t round = -1;         // last interval it was read in
  };
  void AddActive(File& f, double bytes);
  void AddInactive(File& f, double bytes, double when);
  void RemoveInactive(File& f, double bytes);  // spread over its chunks
  // Moves `bytes` of the active lists to the inactive lists, files read
  // longest ago first.
  void Deactivate(double bytes, int64_t round);
  // Evicts `bytes` of the inactive lists, the bytes that joined first first.
  void EvictInactive(double bytes);

  std::vector<File> files_;
  double budget_;
  double active_ = 0;
  double inactive_ = 0;
  // Scratch space of Deactivate and EvictInactive.
  std::vector<std::pair<int64_t, uint32_t>> by_round_;
  std::vector<std::pair<double, uint32_t>> by_when_;
  std::vector<size_t> next_chunk_;
};

}  // namespace daxpolicy::policy
