// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Measured media latency: a dependent-load pointer chase and a store+persist
/// loop over a probe file mapped with libpmem2, compared with the same chase
/// over DRAM.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "plugins/clock.h"
#include "policy/result.h"

namespace daxpolicy::media {

/// Size and length of one measurement. The chain visits `read_steps` cache
/// lines spread over the whole buffer, so the footprint in the page tables and
/// the miss pattern are those of a buffer larger than the last-level cache,
/// while building it touches only those lines: a probe costs a few
/// milliseconds plus first-touch page faults, independent of the buffer size.
struct ChaseConfig {
  size_t buffer_bytes = size_t{64} << 20;
  size_t read_steps = 20000;  ///< dependent loads per chase = lines in the chain
  size_t write_steps = 4000;  ///< store + persist pairs
  uint64_t seed = 0x5eed0fdaULL;
  /// Times the chase and the probe (the daemon passes its engine's clock).
  const plugins::Clock* clock = &plugins::SystemClock::Get();
};

/// Bytes per chase node: one cache line, so each step touches a new line.
inline constexpr size_t kChaseNodeBytes = 64;

/// Signature of libpmem2's persist function (flush + drain for a range).
using PersistFn = void (*)(const void* ptr, size_t size);

/// Writes one random cycle through `nodes` distinct kChaseNodeBytes-sized
/// nodes of [buf, buf + bytes), one picked in each of `nodes` equal strata,
/// visited in shuffled order: each node's first word points to the next, and
/// `nodes` links lead back to the returned start. `nodes` is clamped to the
/// number of nodes in the buffer (then every node is in the cycle). `buf` must
/// be 8-byte aligned. Returns nullptr when fewer than 2 nodes fit.
void* BuildPointerChase(void* buf, size_t bytes, size_t nodes, uint64_t seed);

/// Follows `steps` links from `start` (a node of a BuildPointerChase chain)
/// and returns the mean nanoseconds per dependent load.
double ChaseNsPerLoad(const void* start, size_t steps,
                      const plugins::Clock& clock = plugins::SystemClock::Get());

/// Walks `steps` nodes of the chain from `start`, storing one word in each
/// (the node's second word: the links stay intact) followed by
/// persist(word, 8); returns mean nanoseconds per store+persist. Only lines of
/// the chain are written, so no page is touched for the first time here.
double StorePersistNsPerOp(void* start, size_t steps, PersistFn persist,
                           const plugins::Clock& clock = plugins::SystemClock::Get());

/// Flushes the lines of `nodes` chain nodes from `start` out of the CPU caches
/// (x86 clflush; a no-op elsewhere), so the chase starts from memory.
void EvictChain(const void* start, size_t nodes);

/// Flushes every cache line of [buf, buf + bytes) (x86 clflush; a no-op elsewhere).
void EvictRange(const void* buf, size_t bytes);

/// Copies [buf, buf + bytes) into a 1 MiB buffer, chunk by chunk, as read()
/// copies into a user buffer; returns bytes per second (single thread).
double CopyBytesPerSecond(const void* buf, size_t bytes,
                          const plugins::Clock& clock = plugins::SystemClock::Get());

/// Fills [buf, buf + bytes) 1 MiB at a time, each chunk followed by
/// persist(chunk); returns bytes per second.
double PersistBytesPerSecond(void* buf, size_t bytes, PersistFn persist,
                             const plugins::Clock& clock = plugins::SystemClock::Get());

/// Result of measuring one mapping against DRAM.
struct LatencyMeasurement {
  double read_latency_ns = 0;   ///< media, per dependent load
  double write_latency_ns = 0;  ///< media, per 8-byte store + persist
  double dram_latency_ns = 0;   ///< same chase over an anonymous buffer
  double latency_ratio = 0;     ///< read_latency_ns / dram_latency_ns
  /// Sequential single-thread copy bandwidth out of the media and out of DRAM
  /// (from memory, not the CPU caches), and fill + persist bandwidth into the
  /// media; bytes per second.
  double read_bandwidth = 0;
  double dram_bandwidth = 0;
  double write_bandwidth = 0;
  /// Wall time of the whole measurement, both buffers: building the chains
  /// (first-touch page faults dominate) plus the timed loops.
  double measure_ms = 0;
  double timed_ms = 0;  ///< of which in the timed loops (chases, stores)
};

/// Builds the chain in `media`, evicts it from the caches, chases it, runs the
/// store+persist loop, copies the whole buffer out (read bandwidth) and fills
/// it (write bandwidth), then does the same chase and copy on a DRAM buffer of
/// the same size. `media` must hold config.buffer_bytes; its contents are
/// overwritten.
Result<LatencyMeasurement> MeasureLatency(void* media, PersistFn persist,
                                          const ChaseConfig& config);

/// An open libpmem2 mapping of a whole file. Move-only; unmaps on destruction.
class Pmem2Mapping {
 public:
  /// Maps `fd` (opened O_RDWR, non-empty) with required store granularity
  /// PAGE, which libpmem2 accepts for DAX and page-cache files alike.
  static Result<Pmem2Mapping> Map(int fd);

  Pmem2Mapping(Pmem2Mapping&& other) noexcept;
  Pmem2Mapping& operator=(Pmem2Mapping&& other) noexcept;
  Pmem2Mapping(const Pmem2Mapping&) = delete;
  Pmem2Mapping& operator=(const Pmem2Mapping&) = delete;
  ~Pmem2Mapping();

  void* address() const { return address_; }
  size_t size() const { return size_; }
  /// Effective store granularity: "byte" (DAX with eADR), "cache-line" (DAX,
  /// MAP_SYNC) or "page" (page cache).
  const std::string& granularity() const { return granularity_; }
  /// True for byte/cache-line: libpmem2 got a synchronous DAX mapping (unless
  /// PMEM2_FORCE_GRANULARITY overrides its answer).
  bool direct() const { return granularity_ != "page"; }
  PersistFn persist() const { return persist_; }

 private:
  Pmem2Mapping() = default;
  void Reset();

  struct Handles;
  std::unique_ptr<Handles> handles_;
  void* address_ = nullptr;
  size_t size_ = 0;
  std::string granularity_;
  PersistFn persist_ = nullptr;
};

/// Converts a libpmem2 return code into an Error with a reliable message:
/// codes above -100000 are -errno; pmem2's own codes are named here because
/// pmem2_errormsg() may still hold an earlier call's text.
Error Pmem2Error(int rc, const std::string& what);

/// Where and how a mount is probed.
struct ProbeOptions {
  /// Relative to the mount root, one or more plain components (no "..", no
  /// symlinks); created mode 0700 if missing, must stay on the same device.
  std::string probe_dir = ".daxpolicy-probe";
  ChaseConfig chase;
  bool keep_file = false;  ///< leave the probe file after probing (debugging)
};

/// Outcome of one probe of one mount.
struct ProbeResult {
  enum class Outcome : uint8_t {
    kMeasured,  ///< latencies are valid
    kRefused,   ///< not DAX (capability or mapping): reason says why, nothing measured
    kFailed,    ///< an error on the way: reason says which
  };
  std::string mount_point;
  Outcome outcome = Outcome::kFailed;
  std::string reason;
  std::string probe_file;        ///< absolute path of the probe file
  std::string granularity;       ///< from Pmem2Mapping, "" if not mapped
  bool statx_dax_known = false;  ///< STATX_ATTR_DAX in stx_attributes_mask
  bool statx_dax = false;
  bool granularity_forced = false;  ///< PMEM2_FORCE_GRANULARITY was set
  LatencyMeasurement latency;       ///< valid when kMeasured
  size_t buffer_bytes = 0;
  size_t read_steps = 0;
  size_t write_steps = 0;
  double duration_ms = 0;  ///< whole probe, file creation to removal
};

/// "measured" | "refused" | "failed".
const char* OutcomeName(ProbeResult::Outcome outcome);

/// Creates the probe file (FS_XFLAG_DAX set on the directory and on the empty
/// file before it gets data), maps it with libpmem2 and measures, but only if
/// the mapping is a real DAX mapping: effective granularity byte/cache-line
/// AND statx reporting STATX_ATTR_DAX (when the kernel reports that bit).
/// Otherwise returns kRefused with the reason and measures nothing. The caller
/// checks beforehand that the mount can do DAX at all.
ProbeResult ProbeMount(const std::string& mount_point, const ProbeOptions& options);

}  // namespace daxpolicy::media
