// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Per-file access counting with eBPF: which attach points the running kernel
/// offers, the plan chosen from them, and the loaded program.
///
/// The BPF object (bpf/access.bpf.c) is compiled at build time and embedded in
/// the binary as a bpftool skeleton: nothing is compiled at run time.
///
/// Privileges: loading tracing programs (fentry/fexit, raw tracepoints) needs
/// CAP_BPF and CAP_PERFMON; CAP_SYS_ADMIN implies both. Every program attaches
/// by bpf() alone (raw tracepoints, not perf-event tracepoints), so
/// perf_event_open is never called.
/// Since Linux 5.11 BPF memory is charged to the memory cgroup, not to
/// RLIMIT_MEMLOCK, so CAP_SYS_RESOURCE is not needed on Debian 12's 6.1.
/// Tracepoints are found in the kernel's BTF (their btf_trace_NAME types), so
/// tracefs need not be mounted. A system-call filter must allow bpf.

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "plugins/access/access_abi.h"

namespace daxpolicy::access {

/// What the running kernel offers, as probed (or faked by tests).
struct KernelOffer {
  bool btf = false;                   ///< /sys/kernel/btf/vmlinux exists (CO-RE needs it)
  bool tracing_programs = true;       ///< fentry/fexit may be tried (false once a load failed)
  std::set<std::string> tracepoints;  ///< "category/name" of the ones we use that exist
                                      ///< (btf_trace_NAME in the kernel's or module's BTF)
  std::set<std::string> functions;    ///< kernel functions (BTF) of the ones we use that exist
  /// A PREEMPT_RT kernel (/sys/kernel/realtime, or PREEMPT_RT in uname's version).
  bool preempt_rt = false;
};

/// Probes the running kernel's BTF: the tracepoints and functions
/// the program can use.
KernelOffer ProbeKernel();

enum class Strategy : uint8_t { kNone, kFentry, kTracepoint };
std::string_view StrategyName(Strategy s);

/// Which programs to load, and what the result can and cannot see (the flags
/// and limits follow from the programs).
struct Plan {
  Strategy strategy = Strategy::kNone;
  std::vector<std::string> programs;  ///< BPF program names to load and attach
  bool reads_xfs = false;             ///< read calls on xfs are counted
  bool reads_other = false;           ///< read calls on other filesystems are counted
  bool dax_reads = false;             ///< read calls in DAX mode are counted
  bool misses = false;                ///< page-cache misses (file.cache_hit_ratio)
  bool faults = false;                ///< page-cache faults (filemap:mm_filemap_fault)
  /// Tracepoint programs count in a per-CPU slot in front of the counting map
  /// (off on PREEMPT_RT kernels, whose tracepoints may become preemptible).
  bool slots = true;
  std::string unavailable;  ///< why nothing works (strategy kNone)
  /// What this plan does not see, derived from the flags above. Degraded shows
  /// kMissesUnseen and, per mount, CoverageOf(); the others are for tests and logs.
  std::vector<std::string> limits;
};

/// The limit of a plan without page-cache misses (no cache hit ratios).
inline constexpr const char* kMissesUnseen =
    "page-cache misses are not seen (no filemap:mm_filemap_add_to_page_cache): "
    "file.cache_hit_ratio and system.cache_hit_ratio are unavailable";

/// How well the plan covers a mount: "" when its files are counted, else why not.
std::string CoverageOf(const Plan& plan, bool xfs);

/// Chooses the plan from what the kernel offers (pure; tested with fake offers).
Plan ChoosePlan(const KernelOffer& offer);

/// The plan narrowed to the programs that attached: what a program that failed
/// to attach would have counted is not claimed (pure; the flags and limits are
/// derived from the remaining programs as ChoosePlan derives them).
Plan NarrowToAttached(Plan plan, const std::function<bool(const std::string&)>& attached);

struct FileKey {
  uint32_t dev = 0;  ///< kernel s_dev: (major << 20) | minor
  uint64_t ino = 0;
  bool operator==(const FileKey& o) const { return dev == o.dev && ino == o.ino; }
};
struct FileKeyHash {
  size_t operator()(const FileKey& k) const {
    return std::hash<uint64_t>()(k.ino * 0x9E3779B97F4A7C15ull ^ k.dev);
  }
};

/// The kernel's s_dev encoding of a user-space dev_t.
uint32_t KernelDev(dev_t dev);

/// What one interval counted.
struct AccessCounts {
  std::unordered_map<FileKey, access_counts, FileKeyHash> files;
  /// Counts dropped in the interval because a counting map was full: one per
  /// event counted in the map directly (fentry/fexit), one per file's counts
  /// moved from a CPU's slot (tracepoints).
  uint64_t overflow = 0;
};

/// The loaded and attached program.
class AccessTracer {
 public:
  struct Options {
    uint32_t max_files = 65536;  ///< entries of each counting map (files counted per interval)
    /// Programs whose attach fails as if the kernel refused it (EPERM): lets
    /// tests run a plan with an optional attach point missing.
    std::set<std::string> refuse_attach;
  };
  /// Loads and attaches the programs of `plan`. On failure returns nullptr and
  /// sets *error. Optional programs may fail to attach (attach_failures()).
  static std::unique_ptr<AccessTracer> Start(const Plan& plan, const Options& options,
                                             std::string* error);
  /// Chooses the plan from `offer` and starts it; when fentry/fexit fail to
  /// load (listed in BTF but without trampolines), falls back to the
  /// tracepoints. *plan is the plan in use, narrowed to the programs that
  /// attached (kNone with the reason on failure).
  static std::unique_ptr<AccessTracer> StartBest(KernelOffer offer, const Options& options,
                                                 Plan* plan);
  ~AccessTracer();
  AccessTracer(const AccessTracer&) = delete;
  AccessTracer& operator=(const AccessTracer&) = delete;

  struct Device {
    dev_t dev = 0;  ///< st_dev
    bool xfs = false;
  };
  /// The devices whose files are counted (all others are dropped in the kernel).
  bool SetDevices(const std::vector<Device>& devices, std::string* error);
  /// Swaps the counting maps and returns everything counted since the last
  /// call; no event is lost or counted twice.
  bool Drain(AccessCounts* out, std::string* error);
  /// Attach points that failed (optional ones), for Degraded.
  const std::vector<std::string>& attach_failures() const { return attach_failures_; }
  /// Whether the program `name` attached at start.
  bool Attached(const std::string& name) const;
  /// Whether the program `name` is attached now (SetDevices detaches the
  /// programs no watched filesystem needs).
  bool AttachedNow(const std::string& name) const;
  /// Time spent in the loaded programs and how many times they ran, summed
  /// over all of them; counted by the kernel only while statistics are on
  /// (bpf_enable_stats(BPF_STATS_RUN_TIME) or kernel.bpf_stats_enabled=1).
  /// For benchmarks.
  bool RunTime(uint64_t* ns, uint64_t* runs) const;
  /// Turns the kernel's run-time statistics on until the returned fd is
  /// closed (-1 on failure: needs CAP_SYS_ADMIN).
  static int EnableRunTimeStats();

 private:
  struct Impl;
  explicit AccessTracer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::vector<std::string> attach_failures_;
};

}  // namespace daxpolicy::access
