// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Page-cache residency of one open file: cachestat(2) with a mincore(2) fallback.

#include <cstdint>

#include "policy/result.h"

namespace daxpolicy::files {

/// Page counts for a whole file. Units are pages of the system page size.
struct CacheCounts {
  uint64_t cache = 0;             ///< resident pages
  uint64_t dirty = 0;             ///< dirty pages (0 when !have_dirty)
  uint64_t writeback = 0;         ///< pages under writeback (0 when !have_dirty)
  uint64_t evicted = 0;           ///< evicted pages still remembered as shadows
  uint64_t recently_evicted = 0;  ///< evicted pages whose refault would count as active use
  bool have_dirty = false;        ///< cachestat gives dirty/writeback, mincore does not
  bool have_evicted = false;      ///< cachestat gives eviction data, mincore does not
};

/// Calls cachestat(2) (syscall 451 on most architectures, Linux 6.5+) on the whole of fd.
/// Errors carry the errno: ENOSYS on kernels without it (or built without
/// CONFIG_CACHESTAT_SYSCALL), EPERM when the caller may not write the file on
/// kernels with the 2025 permission fix, EOPNOTSUPP on hugetlbfs.
/// The numbers are meaningless for files in effective DAX mode: check statx first.
Result<CacheCounts> CachestatFd(int fd);

/// The fallback for kernels without cachestat: maps `size` bytes of fd
/// MAP_SHARED|PROT_READ, asks mincore(2) and unmaps at once. Limits:
/// - the mapping makes the daemon a holder of the file for the duration of the call;
/// - no dirty, writeback or eviction data (have_dirty = have_evicted = false);
/// - since Linux 5.2 the kernel answers "all resident" unless the caller owns the
///   file, has CAP_FOWNER or could open it for writing, so an all-resident answer
///   is only believed when `trusted_owner` says the caller has those rights
///   (otherwise the error is EACCES);
/// - the result vector costs one byte per page; it is filled in fixed-size chunks,
///   so huge files cost syscalls, not memory.
/// `page_size` is the system page size in bytes.
Result<CacheCounts> MincoreFd(int fd, uint64_t size, uint64_t page_size, bool trusted_owner);

/// Chooses between cachestat and mincore, remembering when cachestat is missing
/// so later calls go straight to mincore: ENOSYS (kernel before 6.5), or EPERM
/// followed by a good mincore answer (a seccomp filter that refuses system calls
/// it does not know with EPERM, as systemd 252's SystemCallFilter= does). Not
/// thread-safe.
class CacheProbe {
 public:
  /// `page_size` in bytes; 0 means sysconf(_SC_PAGESIZE).
  explicit CacheProbe(uint64_t page_size = 0);

  /// Counts for the whole file behind fd. `size` is the file size in bytes (for
  /// mincore), `trusted_owner` as in MincoreFd.
  Result<CacheCounts> Probe(int fd, uint64_t size, bool trusted_owner);

  /// True once cachestat was found unusable (or ForceMincoreForTest was called).
  bool using_mincore() const { return cachestat_missing_; }
  uint64_t page_size() const { return page_size_; }

  /// Makes Probe() use the mincore fallback as on a kernel without cachestat.
  void ForceMincoreForTest() { cachestat_missing_ = true; }

 private:
  uint64_t page_size_;
  bool cachestat_missing_ = false;
};

}  // namespace daxpolicy::files
