// SPDX-License-Identifier: Apache-2.0
#include "plugins/media/latency_probe.h"

#include <fcntl.h>
#include <libpmem2.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000  // include/uapi/linux/stat.h, Linux 5.8
#endif

#include "plugins/unique_fd.h"

namespace daxpolicy::media {
namespace {

double MsSince(const plugins::Clock& clock, int64_t start_ns) {
  return static_cast<double>(clock.MonotonicNs() - start_ns) / 1e6;
}

// Keeps the chased pointer alive so the loads cannot be optimized away.
const void* volatile g_chase_sink = nullptr;

struct Pmem2ErrorName {
  int rc;
  const char* text;
  int err;
};

constexpr Pmem2ErrorName kPmem2Errors[] = {
    {PMEM2_E_UNKNOWN, "unknown libpmem2 error", EIO},
    {PMEM2_E_NOSUPP, "operation not supported by libpmem2", ENOTSUP},
    {PMEM2_E_INVALID_FILE_HANDLE, "invalid file handle", EBADF},
    {PMEM2_E_INVALID_FILE_TYPE, "file type not supported (not a regular file or device DAX)",
     EINVAL},
    {PMEM2_E_GRANULARITY_NOT_SET, "required store granularity not set", EINVAL},
    {PMEM2_E_GRANULARITY_NOT_SUPPORTED,
     "requested store granularity not available (file is not DAX or no MAP_SYNC)", EINVAL},
    {PMEM2_E_MAP_RANGE, "mapping range invalid", EINVAL},
    {PMEM2_E_LENGTH_UNALIGNED, "length not aligned", EINVAL},
    {PMEM2_E_SOURCE_EMPTY, "source file is empty", EINVAL},
    {PMEM2_E_NO_ACCESS, "no access (descriptor not opened read-write)", EACCES},
    {PMEM2_E_IO_FAIL, "I/O failure", EIO},
    {PMEM2_E_DAX_REGION_NOT_FOUND, "DAX region not found", ENODEV},
};

void SetDaxFlag(int fd, bool* flipped, std::string* error) {
  fsxattr fa{};
  if (ioctl(fd, FS_IOC_FSGETXATTR, &fa) != 0) {
    *error = ErrnoError(errno, "FS_IOC_FSGETXATTR").message;
    return;
  }
  if (fa.fsx_xflags & FS_XFLAG_DAX) return;
  fa.fsx_xflags |= FS_XFLAG_DAX;
  if (ioctl(fd, FS_IOC_FSSETXATTR, &fa) != 0) {
    *error = ErrnoError(errno, "FS_IOC_FSSETXATTR(FS_XFLAG_DAX)").message;
    return;
  }
  if (flipped) *flipped = true;
}

struct StatxDax {
  bool known = false;
  bool dax = false;
};

Result<StatxDax> QueryStatxDax(int fd) {
  struct statx stx {};
  if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) != 0) {
    return ErrnoError(errno, "statx");
  }
  StatxDax out;
  out.known = (stx.stx_attributes_mask & STATX_ATTR_DAX) != 0;
  out.dax = (stx.stx_attributes & STATX_ATTR_DAX) != 0;
  return out;
}

Result<std::vector<std::string>> SplitProbeDir(const std::string& dir) {
  std::vector<std::string> parts;
  size_t pos = 0;
  while (pos <= dir.size()) {
    size_t slash = dir.find('/', pos);
    std::string part =
        dir.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    if (part.empty() || part == "." || part == "..") {
      return Error{
          "probe directory '" + dir + "' must be relative to the mount root, with plain components",
          EINVAL};
    }
    parts.push_back(std::move(part));
    if (slash == std::string::npos) break;
    pos = slash + 1;
  }
  return parts;
}

constexpr char kProbeFileName[] = "latency-probe";

}  // namespace

Error Pmem2Error(int rc, const std::string& what) {
  if (rc > PMEM2_E_UNKNOWN && rc < 0) return ErrnoError(-rc, what);
  for (const auto& e : kPmem2Errors) {
    if (e.rc == rc)
      return Error{what + ": " + e.text + " (libpmem2 " + std::to_string(rc) + ")", e.err};
  }
  return Error{what + ": libpmem2 error " + std::to_string(rc), EIO};
}

void* BuildPointerChase(void* buf, size_t bytes, size_t nodes, uint64_t seed) {
  const size_t n = bytes / kChaseNodeBytes;
  const size_t k = std::min(nodes, n);
  if (k < 2) return nullptr;
  std::mt19937_64 rng(seed);
  // One node per stratum keeps the nodes distinct and spread over the whole
  // buffer; the shuffled order makes every step a jump of random length.
  const size_t stride = n / k;
  std::vector<size_t> order(k);
  for (size_t j = 0; j < k; ++j) order[j] = j * stride + rng() % stride;
  std::shuffle(order.begin(), order.end(), rng);
  char* base = static_cast<char*>(buf);
  for (size_t j = 0; j < k; ++j) {
    void* target = base + order[(j + 1) % k] * kChaseNodeBytes;
    std::memcpy(base + order[j] * kChaseNodeBytes, &target, sizeof(target));
  }
  return base + order[0] * kChaseNodeBytes;
}

double ChaseNsPerLoad(const void* start, size_t steps, const plugins::Clock& clock) {
  if (steps == 0 || start == nullptr) return 0;
  const void* p = start;
  const int64_t begin = clock.MonotonicNs();
  for (size_t i = 0; i < steps; ++i) p = *static_cast<const void* const*>(p);
  const int64_t end = clock.MonotonicNs();
  g_chase_sink = p;
  return static_cast<double>(end - begin) / static_cast<double>(steps);
}

double StorePersistNsPerOp(void* start, size_t steps, PersistFn persist,
                           const plugins::Clock& clock) {
  if (steps == 0 || start == nullptr) return 0;
  // The link loads hit the cache (the chase just brought the lines in), so
  // the time is that of the store and its flush to the media.
  void* p = start;
  const int64_t begin = clock.MonotonicNs();
  for (size_t i = 0; i < steps; ++i) {
    char* slot = static_cast<char*>(p) + sizeof(void*);
    uint64_t value = i;
    std::memcpy(slot, &value, sizeof(value));
    persist(slot, sizeof(value));
    p = *static_cast<void**>(p);
  }
  const int64_t end = clock.MonotonicNs();
  return static_cast<double>(end - begin) / static_cast<double>(steps);
}

void EvictChain(const void* start, size_t nodes) {
#if defined(__x86_64__) || defined(__i386__)
  const void* p = start;
  for (size_t i = 0; i < nodes && p != nullptr; ++i) {
    const void* next = *static_cast<const void* const*>(p);
    _mm_clflush(p);
    p = next;
  }
  _mm_mfence();
#else
  // No user-mode flush that works on any memory: the chase then may start
  // partly from the caches (lines written while building).
  (void)start;
  (void)nodes;
#endif
}

void EvictRange(const void* buf, size_t bytes) {
#if defined(__x86_64__) || defined(__i386__)
  const char* p = static_cast<const char*>(buf);
  for (size_t off = 0; off < bytes; off += kChaseNodeBytes) _mm_clflush(p + off);
  _mm_mfence();
#else
  (void)buf;
  (void)bytes;
#endif
}

namespace {
constexpr size_t kCopyChunk = size_t{1} << 20;
unsigned char g_copy_sink = 0;
}  // namespace

double CopyBytesPerSecond(const void* buf, size_t bytes, const plugins::Clock& clock) {
  if (bytes == 0 || buf == nullptr) return 0;
  std::vector<unsigned char> scratch(std::min(bytes, kCopyChunk));
  const char* p = static_cast<const char*>(buf);
  const int64_t begin = clock.MonotonicNs();
  for (size_t off = 0; off < bytes; off += scratch.size()) {
    std::memcpy(scratch.data(), p + off, std::min(scratch.size(), bytes - off));
    g_copy_sink ^= scratch[0];
  }
  double s = static_cast<double>(clock.MonotonicNs() - begin) / 1e9;
  return s > 0 ? static_cast<double>(bytes) / s : 0;
}

double PersistBytesPerSecond(void* buf, size_t bytes, PersistFn persist,
                             const plugins::Clock& clock) {
  if (bytes == 0 || buf == nullptr) return 0;
  std::vector<unsigned char> pattern(std::min(bytes, kCopyChunk), 0xa5);
  char* p = static_cast<char*>(buf);
  const int64_t begin = clock.MonotonicNs();
  for (size_t off = 0; off < bytes; off += pattern.size()) {
    size_t n = std::min(pattern.size(), bytes - off);
    std::memcpy(p + off, pattern.data(), n);
    persist(p + off, n);
  }
  double s = static_cast<double>(clock.MonotonicNs() - begin) / 1e9;
  return s > 0 ? static_cast<double>(bytes) / s : 0;
}

Result<LatencyMeasurement> MeasureLatency(void* media, PersistFn persist,
                                          const ChaseConfig& config) {
  if (config.buffer_bytes < 2 * kChaseNodeBytes) {
    return Error{"probe buffer must hold at least 2 cache lines", EINVAL};
  }
  if (config.read_steps < 2) return Error{"probe needs at least 2 read steps", EINVAL};
  const plugins::Clock& clock = *config.clock;
  const int64_t start = clock.MonotonicNs();
  LatencyMeasurement m;
  void* chain = BuildPointerChase(media, config.buffer_bytes, config.read_steps, config.seed);
  EvictChain(chain, config.read_steps);
  m.read_latency_ns = ChaseNsPerLoad(chain, config.read_steps, clock);
  m.write_latency_ns = StorePersistNsPerOp(chain, config.write_steps, persist, clock);
  m.timed_ms = (m.read_latency_ns * static_cast<double>(config.read_steps) +
                m.write_latency_ns * static_cast<double>(config.write_steps)) /
               1e6;
  EvictRange(media, config.buffer_bytes);
  int64_t copy_start = clock.MonotonicNs();
  m.read_bandwidth = CopyBytesPerSecond(media, config.buffer_bytes, clock);
  m.write_bandwidth = PersistBytesPerSecond(media, config.buffer_bytes, persist, clock);
  m.timed_ms += MsSince(clock, copy_start);

  void* dram = mmap(nullptr, config.buffer_bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (dram == MAP_FAILED) return ErrnoError(errno, "mmap DRAM comparison buffer");
  // DAX namespaces are normally mapped with 2 MiB pages; ask for the same on
  // the DRAM side so TLB misses do not skew the ratio (best effort).
  madvise(dram, config.buffer_bytes, MADV_HUGEPAGE);
  void* dram_chain = BuildPointerChase(dram, config.buffer_bytes, config.read_steps, config.seed);
  EvictChain(dram_chain, config.read_steps);
  m.dram_latency_ns = ChaseNsPerLoad(dram_chain, config.read_steps, clock);
  m.timed_ms += m.dram_latency_ns * static_cast<double>(config.read_steps) / 1e6;
  // Untouched anonymous pages all map the shared zero page: fill the buffer
  // first, so the copy reads distinct DRAM pages.
  std::memset(dram, 0x5a, config.buffer_bytes);
  EvictRange(dram, config.buffer_bytes);
  copy_start = clock.MonotonicNs();
  m.dram_bandwidth = CopyBytesPerSecond(dram, config.buffer_bytes, clock);
  m.timed_ms += MsSince(clock, copy_start);
  munmap(dram, config.buffer_bytes);

  m.latency_ratio = m.dram_latency_ns > 0 ? m.read_latency_ns / m.dram_latency_ns : 0;
  m.measure_ms = MsSince(clock, start);
  return m;
}

struct Pmem2Mapping::Handles {
  pmem2_config* cfg = nullptr;
  pmem2_source* src = nullptr;
  pmem2_map* map = nullptr;
  ~Handles() {
    if (map) pmem2_map_delete(&map);
    if (src) pmem2_source_delete(&src);
    if (cfg) pmem2_config_delete(&cfg);
  }
};

Result<Pmem2Mapping> Pmem2Mapping::Map(int fd) {
  auto h = std::make_unique<Handles>();
  if (int rc = pmem2_config_new(&h->cfg)) return Pmem2Error(rc, "pmem2_config_new");
  if (int rc = pmem2_source_from_fd(&h->src, fd)) return Pmem2Error(rc, "pmem2_source_from_fd");
  // PAGE is the weakest requirement: libpmem2 maps DAX and page-cache files
  // alike and tells us afterwards which one it got.
  if (int rc = pmem2_config_set_required_store_granularity(h->cfg, PMEM2_GRANULARITY_PAGE)) {
    return Pmem2Error(rc, "pmem2_config_set_required_store_granularity");
  }
  if (int rc = pmem2_map_new(&h->map, h->cfg, h->src)) return Pmem2Error(rc, "pmem2_map_new");
  Pmem2Mapping m;
  m.address_ = pmem2_map_get_address(h->map);
  m.size_ = pmem2_map_get_size(h->map);
  switch (pmem2_map_get_store_granularity(h->map)) {
    case PMEM2_GRANULARITY_BYTE:
      m.granularity_ = "byte";
      break;
    case PMEM2_GRANULARITY_CACHE_LINE:
      m.granularity_ = "cache-line";
      break;
    default:
      m.granularity_ = "page";
      break;
  }
  m.persist_ = pmem2_get_persist_fn(h->map);
  m.handles_ = std::move(h);
  return m;
}

Pmem2Mapping::Pmem2Mapping(Pmem2Mapping&& other) noexcept { *this = std::move(other); }

Pmem2Mapping& Pmem2Mapping::operator=(Pmem2Mapping&& other) noexcept {
  if (this != &other) {
    Reset();
    handles_ = std::move(other.handles_);
    address_ = std::exchange(other.address_, nullptr);
    size_ = std::exchange(other.size_, 0);
    granularity_ = std::move(other.granularity_);
    persist_ = std::exchange(other.persist_, nullptr);
  }
  return *this;
}

Pmem2Mapping::~Pmem2Mapping() { Reset(); }

void Pmem2Mapping::Reset() {
  handles_.reset();
  address_ = nullptr;
  size_ = 0;
  persist_ = nullptr;
}

const char* OutcomeName(ProbeResult::Outcome outcome) {
  switch (outcome) {
    case ProbeResult::Outcome::kMeasured:
      return "measured";
    case ProbeResult::Outcome::kRefused:
      return "refused";
    case ProbeResult::Outcome::kFailed:
      return "failed";
  }
  return "failed";
}

namespace {

// Everything but the total duration, which ProbeMount takes after the probe
// file is removed and the mapping is gone.
ProbeResult ProbeMountUntimed(const std::string& mount_point, const ProbeOptions& options) {
  ProbeResult r;
  r.mount_point = mount_point;
  r.buffer_bytes = options.chase.buffer_bytes;
  r.read_steps = options.chase.read_steps;
  r.write_steps = options.chase.write_steps;
  const char* forced = std::getenv("PMEM2_FORCE_GRANULARITY");
  r.granularity_forced = forced != nullptr && *forced != '\0';
  auto fail = [&](ProbeResult::Outcome outcome, std::string why) {
    r.outcome = outcome;
    r.reason = std::move(why);
    return r;
  };
  using Outcome = ProbeResult::Outcome;

  auto parts = SplitProbeDir(options.probe_dir);
  if (!parts) return fail(Outcome::kFailed, parts.error().message);
  if (options.chase.buffer_bytes < 2 * kChaseNodeBytes) {
    return fail(Outcome::kFailed, "probe buffer must hold at least 2 cache lines");
  }

  UniqueFd dir(open(mount_point.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0)
    return fail(Outcome::kFailed, ErrnoError(errno, "open " + mount_point).message);
  struct stat root_st {};
  if (fstat(dir.get(), &root_st) != 0) {
    return fail(Outcome::kFailed, ErrnoError(errno, "fstat " + mount_point).message);
  }
  std::string dir_path = mount_point;
  for (const auto& part : *parts) {
    dir_path += "/" + part;
    if (mkdirat(dir.get(), part.c_str(), 0700) != 0 && errno != EEXIST) {
      return fail(Outcome::kFailed, ErrnoError(errno, "mkdir " + dir_path).message);
    }
    int next = openat(dir.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) return fail(Outcome::kFailed, ErrnoError(errno, "open " + dir_path).message);
    dir.Reset(next);
    struct stat st {};
    if (fstat(dir.get(), &st) != 0 || st.st_dev != root_st.st_dev) {
      return fail(Outcome::kFailed, dir_path + " is not on the probed mount");
    }
  }
  // New files inherit FS_XFLAG_DAX from their directory at creation, so the
  // probe file's inode starts out DAX on a dax=inode mount.
  std::string dir_flag_error;
  SetDaxFlag(dir.get(), nullptr, &dir_flag_error);

  struct statvfs vfs {};
  if (fstatvfs(dir.get(), &vfs) == 0 &&
      static_cast<unsigned long long>(vfs.f_bavail) * vfs.f_frsize <
          options.chase.buffer_bytes + (size_t{4} << 20)) {
    return fail(Outcome::kRefused, "not enough free space on " + mount_point + " for a " +
                                       std::to_string(options.chase.buffer_bytes >> 20) +
                                       " MiB probe file");
  }

  r.probe_file = dir_path + "/" + kProbeFileName;
  if (unlinkat(dir.get(), kProbeFileName, 0) != 0 && errno != ENOENT) {
    return fail(Outcome::kFailed, ErrnoError(errno, "remove old " + r.probe_file).message);
  }
  UniqueFd fd(
      openat(dir.get(), kProbeFileName, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (fd.get() < 0) {
    return fail(Outcome::kFailed, ErrnoError(errno, "create " + r.probe_file).message);
  }
  struct Remover {
    int dirfd;
    bool keep;
    ~Remover() {
      if (!keep) unlinkat(dirfd, kProbeFileName, 0);
    }
  } remover{dir.get(), options.keep_file};

  // The file is still empty: setting the flag now (if inheritance did not)
  // never changes the mode of data already written.
  bool flipped = false;
  std::string file_flag_error;
  SetDaxFlag(fd.get(), &flipped, &file_flag_error);
  if (fallocate(fd.get(), 0, 0, static_cast<off_t>(options.chase.buffer_bytes)) != 0) {
    return fail(Outcome::kFailed, ErrnoError(errno, "fallocate " + r.probe_file).message);
  }
  auto sx = QueryStatxDax(fd.get());
  if (!sx) return fail(Outcome::kFailed, sx.error().message + " " + r.probe_file);
  if (flipped && sx->known && !sx->dax) {
    // A flag flipped on an instantiated inode takes effect once the inode is
    // evicted, which happens on last close (the kernel marks it dontcache).
    fd.Reset();
    fd.Reset(openat(dir.get(), kProbeFileName, O_RDWR | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0) {
      return fail(Outcome::kFailed, ErrnoError(errno, "reopen " + r.probe_file).message);
    }
    sx = QueryStatxDax(fd.get());
    if (!sx) return fail(Outcome::kFailed, sx.error().message + " " + r.probe_file);
  }
  r.statx_dax_known = sx->known;
  r.statx_dax = sx->dax;

  auto map = Pmem2Mapping::Map(fd.get());
  if (!map) return fail(Outcome::kFailed, map.error().message);
  r.granularity = map->granularity();
  std::string flag_note;
  if (!file_flag_error.empty())
    flag_note = "; " + file_flag_error;
  else if (!dir_flag_error.empty())
    flag_note = "; directory: " + dir_flag_error;
  if (!map->direct()) {
    return fail(Outcome::kRefused,
                "mapping is page cache: libpmem2 effective store granularity is page" +
                    std::string(sx->known ? (sx->dax ? ", although statx reports DAX"
                                                     : ", statx reports no STATX_ATTR_DAX")
                                          : "") +
                    flag_note);
  }
  if (sx->known && !sx->dax) {
    std::string why =
        "mapping is page cache: statx reports no STATX_ATTR_DAX although libpmem2 "
        "reports store granularity " +
        r.granularity;
    if (r.granularity_forced) {
      why += std::string(" (PMEM2_FORCE_GRANULARITY=") + forced + " overrides libpmem2)";
    }
    return fail(Outcome::kRefused, why + flag_note);
  }
  if (map->size() < options.chase.buffer_bytes) {
    return fail(Outcome::kFailed, "mapping shorter than the probe buffer");
  }
  auto m = MeasureLatency(map->address(), map->persist(), options.chase);
  if (!m) return fail(Outcome::kFailed, m.error().message);
  r.latency = *m;
  r.outcome = Outcome::kMeasured;
  return r;
}

}  // namespace

ProbeResult ProbeMount(const std::string& mount_point, const ProbeOptions& options) {
  const plugins::Clock& clock = *options.chase.clock;
  const int64_t start = clock.MonotonicNs();
  ProbeResult r = ProbeMountUntimed(mount_point, options);
  r.duration_ms = MsSince(clock, start);
  return r;
}

}  // namespace daxpolicy::media
