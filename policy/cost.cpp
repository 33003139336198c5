// SPDX-License-Identifier: Apache-2.0
#include "policy/cost.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "policy/units.h"

namespace daxpolicy::policy {

namespace {

constexpr double kGiB = 1024.0 * 1024 * 1024;

struct Preset {
  std::string_view name;
  MediaParams params;
};

// Figures in bytes per second and ns; docs/cost-model.md gives the sources.
const Preset kPresets[] = {
    // Yang et al., "An Empirical Guide to the Behavior and Use of Scalable
    // Persistent Memory", FAST'20: random load 305 ns vs DRAM 101 ns; single
    // thread read bandwidth 2.9 GB/s vs 7.4 GB/s; write about 2.2 GB/s per DIMM.
    {"optane-dcpmm", {305, 101, 2.9e9, 7.4e9, 2.2e9, "optane-dcpmm preset (Yang et al., FAST'20)"}},
    // CXL Type-3 memory: 140-410 ns on four devices (SupMario, arXiv
    // 2409.14317), about 2x NUMA-local DRAM (Pond, ASPLOS'23). The preset takes
    // the middle of the measured range and half of DRAM's bandwidth.
    {"cxl",
     {250, 101, 3.7e9, 7.4e9, 3.7e9, "cxl preset (SupMario arXiv 2409.14317; Pond ASPLOS'23)"}},
    // A namespace carved out of DRAM (memmap=, emulated NVDIMM): same speed as the cache.
    {"dram", {101, 101, 7.4e9, 7.4e9, 7.4e9, "dram preset (namespace backed by DRAM)"}},
};

std::string Ms(double ns) {
  char buf[32];
  if (ns >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.3gs", ns / 1e9);
  } else if (ns >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.3gms", ns / 1e6);
  } else if (ns >= 1e3) {
    std::snprintf(buf, sizeof buf, "%.3gus", ns / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.3gns", ns);
  }
  return buf;
}

std::string Num(double v, const char* fmt = "%.3g") {
  char buf[32];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

std::string Rate(double bytes_per_s) { return FormatSize(bytes_per_s) + "/s"; }

bool Positive(double v) { return std::isfinite(v) && v > 0; }

}  // namespace

std::string MediaParams::Problem() const {
  // Bounds wide enough for any memory a page cache could sit in front of,
  // tight enough to catch a unit mistake (bytes vs GiB, s vs ns).
  auto latency = [](double v, const char* what) -> std::string {
    if (!Positive(v)) return std::string(what) + " is missing";
    if (v < 1 || v > 1e7) return std::string(what) + " must be between 1ns and 10ms";
    return "";
  };
  auto bandwidth = [](double v, const char* what) -> std::string {
    if (!Positive(v)) return std::string(what) + " is missing";
    if (v < 1e6 || v > 1e12) return std::string(what) + " must be between 1MB/s and 1TB/s";
    return "";
  };
  for (auto p :
       {latency(read_latency_ns, "read_latency"), latency(dram_latency_ns, "dram_latency"),
        bandwidth(read_bandwidth, "read_bandwidth"), bandwidth(dram_bandwidth, "dram_bandwidth"),
        bandwidth(write_bandwidth, "write_bandwidth")}) {
    if (!p.empty()) return p;
  }
  return "";
}

std::optional<MediaParams> MediaPreset(std::string_view name) {
  for (const Preset& p : kPresets) {
    if (p.name == name) return p.params;
  }
  return std::nullopt;
}

std::vector<std::string_view> MediaPresetNames() {
  std::vector<std::string_view> out;
  for (const Preset& p : kPresets) out.push_back(p.name);
  return out;
}

std::string MediaPresetList() {
  std::string out;
  for (const Preset& p : kPresets) out += (out.empty() ? "" : ", ") + std::string(p.name);
  return out;
}

CostEstimate EstimateCost(const CostInput& in, const MediaParams& m, const CostConstants& c) {
  CostEstimate e;
  const double reads = std::max(0.0, in.read_bytes);
  const double writes = std::max(0.0, in.write_bytes);
  const double calls = in.read_calls >= 0
                           ? in.read_calls
                           : (reads > 0 ? std::ceil(reads / std::max(1.0, c.bytes_per_call)) : 0);

  e.dax_media_ns = reads / m.read_bandwidth * 1e9;
  e.dax_latency_ns = calls * m.read_latency_ns;
  e.dax_call_ns = calls * (c.call_ns + c.dax_call_ns);
  e.dax_write_ns = writes / m.write_bandwidth * 1e9;
  e.dax_ns = e.dax_media_ns + e.dax_latency_ns + e.dax_call_ns + e.dax_write_ns;

  // Over the time a switch commits to (min_dwell), the page cache fills the
  // bytes the file's reads cover once and serves the rest from DRAM.
  const double interval = std::max(in.interval_s, 1e-3);
  const double commit = std::max(in.commit_s, interval);
  const double committed_reads = reads * (commit / interval);
  const double working_set =
      in.size_bytes > 0 ? std::min(in.size_bytes, committed_reads) : committed_reads;
  if (in.in_page_cache && in.hit_ratio >= 0 && in.hit_ratio <= 1) {
    e.hit_ratio = in.hit_ratio;
  } else {
    e.hit_ratio_predicted = true;
    double fills = std::max(0.0, working_set - (in.in_page_cache ? in.resident_bytes : 0));
    e.hit_ratio = committed_reads > 0 ? std::clamp(1 - fills / committed_reads, 0.0, 1.0) : 1;
  }
  const double hit_bytes = reads * e.hit_ratio;
  const double miss_bytes = reads - hit_bytes;
  e.pc_hit_copy_ns = hit_bytes / m.dram_bandwidth * 1e9;
  e.pc_miss_fill_ns = miss_bytes * (1 / m.read_bandwidth + 1 / m.dram_bandwidth) * 1e9 +
                      std::ceil(miss_bytes / c.page_bytes) * c.fill_page_ns;
  e.pc_latency_ns =
      calls * (e.hit_ratio * m.dram_latency_ns + (1 - e.hit_ratio) * m.read_latency_ns);
  e.pc_call_ns = calls * c.call_ns;
  // Writes land in DRAM and are written back to the media later.
  e.pc_write_ns = writes * (1 / m.dram_bandwidth + 1 / m.write_bandwidth) * 1e9;
  e.pc_dram_bytes = in.in_page_cache ? std::max(0.0, in.resident_bytes) : working_set;
  const double pressure = std::max(in.mem_pressure / 100.0, c.idle_pressure);
  e.pc_dram_ns = e.pc_dram_bytes / kGiB * interval * c.dram_price_ns * pressure;
  e.pc_ns = e.pc_hit_copy_ns + e.pc_miss_fill_ns + e.pc_latency_ns + e.pc_call_ns + e.pc_write_ns +
            e.pc_dram_ns;
  return e;
}

CostChoice ChooseByCost(const CostEstimate& e, const CostSettings& s, double interval_s) {
  const bool dax_cheaper = e.dax_ns < e.pc_ns;
  const double cheap = dax_cheaper ? e.dax_ns : e.pc_ns;
  const double dear = dax_cheaper ? e.pc_ns : e.dax_ns;
  const double saving = dear - cheap;
  if (!(saving > 0) || saving < s.margin * dear ||
      saving < s.min_saving_ns_per_s * std::max(interval_s, 0.0)) {
    return CostChoice::kUndecided;
  }
  return dax_cheaper ? CostChoice::kDax : CostChoice::kPageCache;
}

std::string FormatCost(const CostEstimate& e, const MediaParams& m, const CostSettings& s,
                       double interval_s) {
  std::string out;
  out += "    media:      " + m.source + ": read " + Num(m.read_latency_ns) + "ns, " +
         Rate(m.read_bandwidth) + "; DRAM " + Num(m.dram_latency_ns) + "ns, " +
         Rate(m.dram_bandwidth) + "; write " + Rate(m.write_bandwidth) + "\n";
  out += "    dax:        " + Ms(e.dax_ns) + " = media reads " + Ms(e.dax_media_ns) +
         " + latency " + Ms(e.dax_latency_ns) + " + calls " + Ms(e.dax_call_ns) + " + writes " +
         Ms(e.dax_write_ns) + "\n";
  out += "    page cache: " + Ms(e.pc_ns) + " = hits " + Ms(e.pc_hit_copy_ns) + " + misses " +
         Ms(e.pc_miss_fill_ns) + " + latency " + Ms(e.pc_latency_ns) + " + calls " +
         Ms(e.pc_call_ns) + " + writes " + Ms(e.pc_write_ns) + " + DRAM " + Ms(e.pc_dram_ns) +
         " (hit ratio " + Num(e.hit_ratio, "%.2f") +
         (e.hit_ratio_predicted ? " predicted" : " measured") + ", " + FormatSize(e.pc_dram_bytes) +
         " held)\n";
  const CostChoice choice = ChooseByCost(e, s, interval_s);
  const bool dax_cheaper = e.dax_ns < e.pc_ns;
  const double dear = std::max(e.dax_ns, e.pc_ns);
  const double saving = dear - std::min(e.dax_ns, e.pc_ns);
  out += "    margin:     " + std::string(dax_cheaper ? "dax" : "page cache") + " saves " +
         Ms(saving) + " (" + Num(dear > 0 ? 100 * saving / dear : 0, "%.0f") + "%); needs " +
         Num(100 * s.margin, "%.0f") + "% and " + Ms(s.min_saving_ns_per_s * interval_s) + ": " +
         (choice == CostChoice::kDax         ? "dax"
          : choice == CostChoice::kPageCache ? "page-cache"
                                             : "undecided, keep") +
         "\n";
  return out;
}

}  // namespace daxpolicy::policy
