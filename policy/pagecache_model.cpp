// SPDX-License-Identifier: Apache-2.0
#include "policy/pagecache_model.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace daxpolicy::policy {

namespace {

constexpr size_t kMaxChunks = 8;         // inactive chunks kept per file (older ones merge)
constexpr double kReadaheadWindow = 32;  // pages: the default read_ahead_kb, 128 KiB

// Pages a random miss brings in when the share r of its file is cached.
// Context readahead (mm/readahead.c, page_cache_sync_ra) reads ahead of a
// miss as many pages as are cached before it, r / (1 - r) on average; the
// factor r on those is fitted to the kernel (docs/simulate.md).
double ReadaheadFactor(double r) {
  return std::min(kReadaheadWindow, 1 + r * r / std::max(1e-9, 1 - r));
}

}  // namespace

// Which of the bytes an interval's reads cover are cached: a trace has only
// totals per interval, so the model blends two placements by how often the
// reads revisit what they cover (u = read / covered). Bytes read once land
// anywhere in the file: the cached share is resident / size; but bytes read
// once in calls of 64 KiB or more are taken as a stream moving into bytes not
// read before, with nothing cached. Bytes read again and again (u large, a
// hot set) are the ones cached before: the cached share is
// min(resident, covered) / covered. The weight of the second is 1 - 1/u.
//
// Where the bytes go, as in the kernel's active and inactive file lists
// (mm/vmscan.c; kernels without MGLRU):
// - a hit on a page of the inactive list is its second access: the page is
//   activated. Hits are spread over the two lists by their sizes;
// - missed pages join the inactive list, except the share 1 - 1/u that is
//   read again within the interval (activated); random misses bring in
//   readahead (ReadaheadFactor), counted as misses as the access tracer does;
// - over the budget, at the end of the interval, the active list is first
//   shrunk to ratio / (1 + ratio) of the budget (inactive_ratio =
//   sqrt(10 x GiB of the lists), 1 under 1 GiB), from the files read longest
//   ago first, its pages joining the inactive list after the interval's
//   faults; then the inactive list loses the excess, the bytes that joined it
//   first first (per file in up to kMaxChunks chunks by when they joined).
//   Files that tie share in proportion to their bytes on the list.
// Pages of a file that stops being read thus stay cached while the active
// list is within its share, and the pages of a new hot set must be read
// twice before the inactive list evicts them to be kept. Refaults (the
// workingset's refault distance) are not modelled.

void PageCacheModel::Set(uint32_t f, double bytes) {
  File& file = files_[f];
  active_ -= file.active;
  inactive_ -= file.inactive;
  file.active = 0;
  file.inactive = 0;
  file.chunks.clear();
  AddInactive(file, bytes, -1);
}

void PageCacheModel::AddActive(File& f, double bytes) {
  f.active += bytes;
  active_ += bytes;
}

void PageCacheModel::AddInactive(File& f, double bytes, double when) {
  if (bytes <= 0) return;
  f.inactive += bytes;
  inactive_ += bytes;
  if (!f.chunks.empty() && f.chunks.back().when == when) {
    f.chunks.back().bytes += bytes;
    return;
  }
  if (f.chunks.size() == kMaxChunks) {  // merge the two oldest
    Chunk& a = f.chunks[0];
    const Chunk& b = f.chunks[1];
    a.when = (a.when * a.bytes + b.when * b.bytes) / (a.bytes + b.bytes);
    a.bytes += b.bytes;
    f.chunks.erase(f.chunks.begin() + 1);
  }
  f.chunks.push_back(Chunk{when, bytes});
}

void PageCacheModel::RemoveInactive(File& f, double bytes) {
  if (bytes <= 0 || f.inactive <= 0) return;
  bytes = std::min(bytes, f.inactive);
  const double keep = 1 - bytes / f.inactive;
  for (Chunk& c : f.chunks) c.bytes *= keep;
  f.inactive -= bytes;
  inactive_ -= bytes;
  if (f.inactive <= 0) f.chunks.clear();
}

double PageCacheModel::Read(uint32_t f, int64_t round, double read, double calls, double covered,
                            double size) {
  if (!(read > 0)) return 0;  // listed for its cached pages only: not read
  File& file = files_[f];
  const double reuse = covered > 0 ? read / covered : 0;
  const bool stream = reuse <= 1.0001 && calls > 0 && read / calls >= 65536;
  const double resident = file.active + file.inactive;
  const double recur = reuse > 1 ? 1 - 1 / reuse : 0;
  file.round = round;
  double cached = 0;
  if (covered > 0) {
    const double anywhere = size > 0 && !stream ? std::min(1.0, resident / size) : 0;
    const double revisited = std::min(resident, covered) / covered;
    cached = covered * (recur * revisited + (1 - recur) * anywhere);
  }
  const double misses = std::min(read, std::max(0.0, covered - cached));
  // Hits on the inactive list activate their pages.
  if (resident > 0 && cached > 0) {
    const double promote = std::min(file.inactive, cached * file.inactive / resident);
    RemoveInactive(file, promote);
    AddActive(file, promote);
  }
  const double room =
      size > 0 ? std::max(0.0, size - resident) : std::numeric_limits<double>::infinity();
  // Context readahead around random misses.
  const double cached_share = size > 0 ? std::min(1.0, resident / size) : 0;
  const double ahead = stream ? 1 : ReadaheadFactor(cached_share);
  const double added = std::min(misses * ahead, room);
  if (added <= 0) return misses;
  const double activated = added * recur;
  AddActive(file, activated);
  AddInactive(file, added - activated, 2.0 * static_cast<double>(round));
  return std::min(read, std::max(misses, added));
}

void PageCacheModel::Deactivate(double bytes, int64_t round) {
  std::vector<std::pair<int64_t, uint32_t>>& order = by_round_;
  order.clear();
  for (uint32_t i = 0; i < files_.size(); ++i) {
    if (files_[i].active > 0) order.emplace_back(files_[i].round, i);
  }
  std::sort(order.begin(), order.end());
  for (size_t g = 0; g < order.size() && bytes > 0.5;) {
    size_t end = g;
    double sum = 0;
    for (; end < order.size() && order[end].first == order[g].first; ++end) {
      sum += files_[order[end].second].active;
    }
    const double take = std::min(bytes, sum);
    for (size_t k = g; k < end; ++k) {
      File& f = files_[order[k].second];
      const double drop = take >= sum ? f.active : std::min(f.active, take * f.active / sum);
      f.active -= drop;
      active_ -= drop;
      AddInactive(f, drop, 2.0 * static_cast<double>(round) + 1);
    }
    bytes -= take;
    g = end;
  }
}

void PageCacheModel::EvictInactive(double bytes) {
  std::vector<std::pair<double, uint32_t>>& order = by_when_;  // (when, file) of every chunk
  order.clear();
  for (uint32_t i = 0; i < files_.size(); ++i) {
    for (const Chunk& c : files_[i].chunks) order.emplace_back(c.when, i);
  }
  std::sort(order.begin(), order.end());
  // A file's chunks are in the order they joined: the k-th of a file in
  // `order` is its k-th chunk, and eviction empties them from the front.
  std::vector<size_t>& next = next_chunk_;
  next.assign(files_.size(), 0);
  for (size_t g = 0; g < order.size() && bytes > 0.5;) {
    size_t end = g;
    double sum = 0;
    for (; end < order.size() && order[end].first == order[g].first; ++end) {
      const File& f = files_[order[end].second];
      sum += f.chunks[next[order[end].second]].bytes;
    }
    const double take = std::min(bytes, sum);
    for (size_t k = g; k < end; ++k) {
      const uint32_t i = order[k].second;
      File& f = files_[i];
      Chunk& c = f.chunks[next[i]];
      const double drop = take >= sum ? c.bytes : std::min(c.bytes, take * c.bytes / sum);
      c.bytes -= drop;
      f.inactive -= drop;
      inactive_ -= drop;
      if (take >= sum) ++next[i];
    }
    bytes -= take;
    g = end;
  }
  for (uint32_t i = 0; i < files_.size(); ++i) {
    File& f = files_[i];
    if (next[i] > 0) f.chunks.erase(f.chunks.begin(), f.chunks.begin() + next[i]);
    if (f.chunks.empty()) {
      inactive_ -= f.inactive;
      f.inactive = 0;
    }
  }
}

void PageCacheModel::Evict(int64_t round) {
  const double total = active_ + inactive_;
  if (budget_ <= 0 || total <= budget_ + 0.5) return;
  const double gib = total / (1024.0 * 1024 * 1024);
  const double ratio = gib >= 1 ? std::floor(std::sqrt(10 * std::floor(gib))) : 1;
  const double keep_active = budget_ * ratio / (1 + ratio);
  if (active_ > keep_active) Deactivate(active_ - keep_active, round);
  EvictInactive(active_ + inactive_ - budget_);
}

}  // namespace daxpolicy::policy
