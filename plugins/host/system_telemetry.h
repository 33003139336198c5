// SPDX-License-Identifier: Apache-2.0
#pragma once

/// System-wide memory telemetry from procfs: PSI memory pressure, meminfo and
/// the vmstat workingset counters, plus rates from two samples.
///
/// Every group can be missing on its own (PSI compiled out or disabled with
/// psi=0, a restricted container); a missing or malformed group is reported
/// as unavailable with a reason, never as zero.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "plugins/host/roots.h"
#include "policy/result.h"

namespace daxpolicy::host {

/// <proc>/pressure/memory: share of wall time in which some (or all) non-idle
/// tasks stalled on memory, averaged over 10 s, in percent (0..100).
struct MemoryPressure {
  double some_avg10 = 0;
  double some_avg60 = 0;
  uint64_t some_total_us = 0;        ///< cumulative stall time, microseconds
  std::optional<double> full_avg10;  ///< the "full" line is absent on some kernels
};

/// <proc>/meminfo, converted from kB (the file's unit, really KiB) to bytes.
struct MemInfo {
  std::optional<uint64_t> total_bytes;          ///< MemTotal
  std::optional<uint64_t> available_bytes;      ///< MemAvailable (3.14+)
  std::optional<uint64_t> free_bytes;           ///< MemFree
  std::optional<uint64_t> cached_bytes;         ///< Cached: page cache minus swap cache
  std::optional<uint64_t> buffers_bytes;        ///< Buffers
  std::optional<uint64_t> dirty_bytes;          ///< Dirty
  std::optional<uint64_t> writeback_bytes;      ///< Writeback
  std::optional<uint64_t> active_file_bytes;    ///< Active(file)
  std::optional<uint64_t> inactive_file_bytes;  ///< Inactive(file)
  /// Cached / MemTotal, 0..1; nullopt when either is missing or MemTotal is 0.
  std::optional<double> page_cache_ratio;
};

/// Cumulative counters from <proc>/vmstat.
struct VmStat {
  /// workingset_refault_file (5.9+) or, on older kernels, workingset_refault:
  /// pages read back in shortly after their eviction.
  std::optional<uint64_t> workingset_refault_file;
  /// workingset_activate_file (5.9+) or workingset_activate.
  std::optional<uint64_t> workingset_activate_file;
  std::optional<uint64_t> pgpgin_kib;   ///< KiB read from block devices
  std::optional<uint64_t> pgpgout_kib;  ///< KiB written to block devices
  std::optional<uint64_t> pgmajfault;   ///< major page faults
};

/// One sample of all three sources. A group is set when it was read and parsed;
/// otherwise its *_unavailable string says why ("PSI disabled: ...").
struct SystemTelemetry {
  std::optional<MemoryPressure> pressure;
  std::string pressure_unavailable;
  std::optional<MemInfo> meminfo;
  std::string meminfo_unavailable;
  std::optional<VmStat> vmstat;
  std::string vmstat_unavailable;
};

/// Parsers for the file contents. Errors say which line or key is malformed.
Result<MemoryPressure> ParseMemoryPressure(std::string_view text);
/// Fails only when MemTotal is missing or a line is malformed; other keys are optional.
Result<MemInfo> ParseMemInfo(std::string_view text);
/// Fails when a line is malformed; all counters are optional.
Result<VmStat> ParseVmStat(std::string_view text);

/// Reads <proc>/pressure/memory, <proc>/meminfo and <proc>/vmstat. A missing
/// pressure file gives pressure_unavailable = "PSI disabled (<path> missing)".
SystemTelemetry ReadSystemTelemetry(const Roots& roots);

/// Per-second rates between two samples; a rate is nullopt when a counter is
/// missing in either sample, went backwards, or elapsed is not positive.
struct SystemRates {
  std::optional<double> refaults_per_second;
  std::optional<double> activations_per_second;
  std::optional<double> pgpgin_bytes_per_second;
  std::optional<double> pgpgout_bytes_per_second;
  std::optional<double> major_faults_per_second;
  /// Share of wall time with some task stalled on memory over the interval,
  /// percent, from the cumulative PSI total (more exact than avg10 for
  /// intervals other than 10 s).
  std::optional<double> pressure_some_percent;
};
SystemRates ComputeRates(const SystemTelemetry& earlier, const SystemTelemetry& later,
                         std::chrono::duration<double> elapsed);

}  // namespace daxpolicy::host
