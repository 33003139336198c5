#pragma once

/// Measured media latency: a dependent-load pointer chase and a store+persist
/// loop over a probe file mapped with libpmem2, compared with the same chase
/// over DRAM.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "policy/result.h"

namespace daxpolicy::media {

/// Size and length of one measurement. Steps are fixed (not time-bounded) so a
/// probe takes a predictable few milliseconds of chasing; building the chain
/// over the buffer costs more than the chase itself.
struct ChaseConfig {
  /// Larger than the last-level cache so most loads miss it.
  size_t buffer_bytes = size_t{64} << 20;
  size_t read_steps = 20000;  ///< dependent loads per chase
  size_t write_steps = 4000;  ///< store + persist pairs
  uint64_t seed = 0x5eed0fdaULL;
};

/// Bytes per chase node: one cache line, so each step touches a new line.
inline constexpr size_t kChaseNodeBytes = 64;

/// Signature of libpmem2's persist function (flush + drain for a range).
using PersistFn = void (*)(const void* ptr, size_t size);

/// Writes one random cyclic permutation over the kChaseNodeBytes-sized nodes
/// of [buf, buf + bytes): each node's first word points to the next node, and
/// following `bytes / kChaseNodeBytes` links returns to the start. `buf` must
/// be 8-byte aligned and hold at least 2 nodes.
void BuildPointerChase(void* buf, size_t bytes, uint64_t seed);

/// Follows `steps` links from `buf` (a chain from BuildPointerChase) and
/// returns the mean nanoseconds per dependent load.
double ChaseNsPerLoad(const void* buf, size_t steps);

/// Stores one word to `steps` pseudo-random nodes of the buffer, each followed
/// by persist(node, 8); returns mean nanoseconds per store+persist. Leaves the
/// chain built by BuildPointerChase intact (writes the node's second word).
double StorePersistNsPerOp(void* buf, size_t bytes, size_t steps, PersistFn persist, uint64_t seed);

/// Result of measuring one mapping against DRAM.
struct LatencyMeasurement {
  double read_latency_ns = 0;   ///< media, per dependent load
  double write_latency_ns = 0;  ///< media, per 8-byte store + persist
  double dram_latency_ns = 0;   ///< same chase over an anonymous buffer
  double latency_ratio = 0;     ///< read_latency_ns / dram_latency_ns
  double measure_ms = 0;        ///< wall time of building + chasing both buffers
};

/// Builds the chain in `media` (then persists it), chases it, runs the
/// store+persist loop, then does the same chase on a DRAM buffer of the same
/// size. `media` must hold config.buffer_bytes.
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
