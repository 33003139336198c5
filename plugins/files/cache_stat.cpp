// SPDX-License-Identifier: Apache-2.0
#include "plugins/files/cache_stat.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <vector>

namespace daxpolicy::files {
namespace {

// The Debian 12 (6.1) uapi headers predate cachestat (6.5): ABI from
// include/uapi/linux/mman.h. Syscalls added since Linux 5.1 have one number on
// every architecture (the generic scripts/syscall.tbl and each arch's table
// agree: 451 on x86_64, i386, arm64, armhf, ppc64el, s390x, riscv64, ...),
// except alpha (+110) and mips (offset by the ABI's __NR_Linux).
#if defined(__NR_cachestat)
constexpr long kSysCachestat = __NR_cachestat;
#elif defined(__alpha__)
constexpr long kSysCachestat = 561;
#elif defined(__mips__)
constexpr long kSysCachestat = __NR_Linux + 451;
#else
constexpr long kSysCachestat = 451;
#endif

struct CachestatRange {
  uint64_t off;
  uint64_t len;  // 0 = up to the end of the file
};

struct CachestatResult {
  uint64_t nr_cache;
  uint64_t nr_dirty;
  uint64_t nr_writeback;
  uint64_t nr_evicted;
  uint64_t nr_recently_evicted;
};

// 64 Ki pages (256 MiB of file at 4 KiB pages) per mincore call, a 64 KiB buffer.
constexpr size_t kMincoreChunkPages = 64 * 1024;

}  // namespace

Result<CacheCounts> CachestatFd(int fd) {
  CachestatRange range{0, 0};
  CachestatResult cs{};
  if (syscall(kSysCachestat, static_cast<unsigned>(fd), &range, &cs, 0u) != 0) {
    return ErrnoError(errno, "cachestat");
  }
  CacheCounts counts;
  counts.cache = cs.nr_cache;
  counts.dirty = cs.nr_dirty;
  counts.writeback = cs.nr_writeback;
  counts.evicted = cs.nr_evicted;
  counts.recently_evicted = cs.nr_recently_evicted;
  counts.have_dirty = true;
  counts.have_evicted = true;
  return counts;
}

Result<CacheCounts> MincoreFd(int fd, uint64_t size, uint64_t page_size, bool trusted_owner) {
  CacheCounts counts;
  if (size == 0) return counts;
  void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return ErrnoError(errno, "mmap for mincore");
  const uint64_t pages = (size + page_size - 1) / page_size;
  // On the heap, not in thread-local storage: static TLS is carved out of every
  // thread's stack, and the metrics exporter's worker threads have small stacks
  // (a 64 KiB TLS block overflowed them on their first error page).
  std::vector<unsigned char> vec(std::min<uint64_t>(pages, kMincoreChunkPages));
  int err = 0;
  for (uint64_t first = 0; first < pages; first += kMincoreChunkPages) {
    const uint64_t n = std::min<uint64_t>(kMincoreChunkPages, pages - first);
    auto* start = static_cast<unsigned char*>(map) + first * page_size;
    if (mincore(start, n * page_size, vec.data()) != 0) {
      err = errno;
      break;
    }
    for (uint64_t i = 0; i < n; ++i) counts.cache += vec[i] & 1u;
  }
  munmap(map, size);
  if (err != 0) return ErrnoError(err, "mincore");
  if (counts.cache == pages && !trusted_owner) {
    // Indistinguishable from the kernel's "all 1s" answer to callers without
    // write/owner rights (mm/mincore.c can_do_mincore, Linux 5.2+).
    return ErrnoError(EACCES, "mincore (all-resident answer without write or owner rights)");
  }
  return counts;
}

CacheProbe::CacheProbe(uint64_t page_size)
    : page_size_(page_size != 0 ? page_size : static_cast<uint64_t>(sysconf(_SC_PAGESIZE))) {}

Result<CacheCounts> CacheProbe::Probe(int fd, uint64_t size, bool trusted_owner) {
  if (cachestat_missing_) return MincoreFd(fd, size, page_size_, trusted_owner);
  Result<CacheCounts> r = CachestatFd(fd);
  if (r.ok()) return r;
  const int code = r.error().code;
  if (code == ENOSYS) {
    cachestat_missing_ = true;
    return MincoreFd(fd, size, page_size_, trusted_owner);
  }
  if (code != EPERM) return r;
  // EPERM: either a seccomp filter that refuses a system call it does not know
  // (systemd before 255 answers SystemCallErrorNumber=, EPERM in our unit, not
  // ENOSYS; container runtimes do the same), or a kernel that lets only callers
  // with write or owner rights see the page cache. mincore tells them apart: it
  // answers truthfully only with those rights (else MincoreFd refuses). An
  // answer means the filter: cachestat stays unusable for this process.
  Result<CacheCounts> m = MincoreFd(fd, size, page_size_, trusted_owner);
  if (m.ok()) cachestat_missing_ = true;
  return m;
}

}  // namespace daxpolicy::files
