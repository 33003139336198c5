// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The per-file cost model behind `dax: auto`: for the reads and writes a file
/// saw in the last interval, the time they take under DAX and through the page
/// cache, plus the price of the DRAM the page cache holds for the file.
/// Pure arithmetic; docs/cost-model.md derives every term and cites the
/// default figures.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace daxpolicy::policy {

/// What one device and the DRAM next to it cost. Latencies in ns, bandwidths
/// in bytes per second (single thread, sequential).
struct MediaParams {
  double read_latency_ns = 0;   ///< media, one dependent random load
  double dram_latency_ns = 0;   ///< DRAM, the same load
  double read_bandwidth = 0;    ///< media
  double dram_bandwidth = 0;    ///< DRAM (the page cache's copy to the user buffer)
  double write_bandwidth = 0;   ///< media
  std::string source;           ///< where the figures come from, for explain
  std::string Problem() const;  ///< "" when valid, else which figure is out of range
};

/// Built-in device classes, selectable by name in `cost.mounts[].media`.
/// "optane-dcpmm": Yang et al., FAST'20; "cxl": SupMario (arXiv 2409.14317) and
/// Pond (ASPLOS'23); "dram": a DRAM-backed namespace (e.g. memmap=, emulated).
std::optional<MediaParams> MediaPreset(std::string_view name);
std::vector<std::string_view> MediaPresetNames();
/// The preset names for messages and help: "optane-dcpmm, cxl, dram".
std::string MediaPresetList();

/// Model constants that do not depend on the device (docs/cost-model.md).
struct CostConstants {
  double call_ns = 700;           ///< per read()/write() system call, both paths
  double dax_call_ns = 300;       ///< extra per call on the DAX path (iomap lookup)
  double fill_page_ns = 1500;     ///< per 4 KiB page filled on a miss: allocate, insert, LRU
  double bytes_per_call = 65536;  ///< request size assumed when calls were not counted
  double dram_price_ns = 1e8;     ///< ns per GiB held for one second at 100 % memory pressure
  double idle_pressure = 0.001;   ///< pressure floor: DRAM is never quite free
  double page_bytes = 4096;
};

/// The policy's `cost:` settings.
struct CostSettings {
  double margin = 0.2;               ///< the cheaper mode must save this fraction of the other
  double min_saving_ns_per_s = 1e5;  ///< and at least this much time per second of wall clock
  CostConstants constants;
};

/// One file's accesses in one interval, as the access tracer and cachestat saw them.
struct CostInput {
  double interval_s = 10;
  double size_bytes = 0;
  double read_bytes = 0;   ///< bytes read by applications in the interval
  double read_calls = -1;  ///< < 0: unknown, estimated from bytes_per_call
  double write_bytes = 0;
  bool in_page_cache = true;  ///< the file's current effective mode
  double hit_ratio = -1;      ///< measured in page-cache mode; < 0: unknown
  double resident_bytes = 0;  ///< page cache held now (0 under DAX)
  double mem_pressure = 0;    ///< PSI memory some avg10, percent
  double commit_s = 600;      ///< how long a switch lasts at least (min_dwell)
};

/// Both estimates with their terms, all in ns for the interval.
struct CostEstimate {
  // DAX
  double dax_media_ns = 0;    ///< read_bytes at media bandwidth
  double dax_latency_ns = 0;  ///< one media latency per call
  double dax_call_ns = 0;     ///< per-call overhead
  double dax_write_ns = 0;
  double dax_ns = 0;  ///< total
  // page cache
  double hit_ratio = 0;  ///< used (measured or predicted)
  bool hit_ratio_predicted = false;
  double pc_hit_copy_ns = 0;   ///< hits copied from DRAM
  double pc_miss_fill_ns = 0;  ///< misses: media read + page fill + copy
  double pc_latency_ns = 0;    ///< one DRAM latency per call
  double pc_call_ns = 0;
  double pc_write_ns = 0;
  double pc_dram_bytes = 0;  ///< DRAM the page cache holds (or would) for the file
  double pc_dram_ns = 0;     ///< its price at the current memory pressure
  double pc_ns = 0;          ///< total, DRAM price included
};

CostEstimate EstimateCost(const CostInput& in, const MediaParams& media,
                          const CostConstants& constants);

enum class CostChoice : uint8_t { kUndecided, kDax, kPageCache };

/// The cheaper mode when it wins by the margin, else kUndecided.
CostChoice ChooseByCost(const CostEstimate& e, const CostSettings& settings, double interval_s);

/// Multi-line human rendering of both estimates and the margin (explain).
std::string FormatCost(const CostEstimate& e, const MediaParams& media,
                       const CostSettings& settings, double interval_s);

}  // namespace daxpolicy::policy
