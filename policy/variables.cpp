// SPDX-License-Identifier: Apache-2.0
#include "policy/variables.h"

#include <cmath>
#include <cstdio>
#include <string>

#include "policy/units.h"

namespace daxpolicy::policy {

namespace {

constexpr std::array<VarInfo, static_cast<size_t>(Var::kCount)> kVars = {{
    {Var::kFileSize, "file.size", ValueKind::kSize, "statx"},
    {Var::kFileAge, "file.age", ValueKind::kDuration, "statx (time since mtime)"},
    {Var::kFileCacheResidentRatio, "file.cache_resident_ratio", ValueKind::kRatio,
     "cachestat/mincore (resident pages / file pages)"},
    {Var::kFileCachePages, "file.cache_pages", ValueKind::kCount, "cachestat/mincore"},
    {Var::kFileRecentlyEvictedRatio, "file.recently_evicted_ratio", ValueKind::kRatio,
     "cachestat (recently evicted pages / file pages)"},
    {Var::kFileDirtyRatio, "file.dirty_ratio", ValueKind::kRatio, "cachestat"},
    {Var::kFileHolders, "file.holders", ValueKind::kCount, "/proc/PID/fd and maps"},
    {Var::kFileCacheHitRatio, "file.cache_hit_ratio", ValueKind::kRatio, "access tracing (eBPF)"},
    {Var::kFileReadBytesRate, "file.read_bytes_rate", ValueKind::kRate, "access tracing (eBPF)"},
    {Var::kFileReuse, "file.reuse", ValueKind::kFactor, "access tracing (eBPF)"},
    {Var::kFileWriteBytesRate, "file.write_bytes_rate", ValueKind::kRate, "access tracing (eBPF)"},
    {Var::kSystemCacheHitRatio, "system.cache_hit_ratio", ValueKind::kRatio,
     "access tracing (eBPF)"},
    {Var::kMediaReadLatencyNs, "media.read_latency_ns", ValueKind::kLatency, "pmem2 latency probe"},
    {Var::kMediaWriteLatencyNs, "media.write_latency_ns", ValueKind::kLatency,
     "pmem2 latency probe"},
    {Var::kMediaLatencyRatio, "media.latency_ratio", ValueKind::kFactor,
     "pmem2 latency probe (media / DRAM)"},
    {Var::kMediaHealth, "media.health", ValueKind::kHealth, "libndctl SMART health"},
    {Var::kMediaNumaNode, "media.numa_node", ValueKind::kCount, "libndctl namespace numa_node"},
    {Var::kSystemMemPressure, "system.mem_pressure", ValueKind::kPercent,
     "/proc/pressure/memory (some avg10)"},
    {Var::kSystemPageCacheRatio, "system.page_cache_ratio", ValueKind::kRatio,
     "/proc/meminfo (Cached / MemTotal)"},
}};

double FilePages(const Snapshot& snap, const FileRecord& f) {
  double pages = std::ceil(static_cast<double>(f.size) / snap.page_size);
  return pages < 1 ? 1 : pages;
}

const MediaSample* MediaOf(const VarContext& ctx) {
  const Snapshot& snap = *ctx.snapshot;
  if (ctx.file->mount >= snap.mounts.size()) return nullptr;
  int m = snap.mounts[ctx.file->mount].media;
  if (m < 0 || static_cast<size_t>(m) >= snap.media.size()) return nullptr;
  return &snap.media[static_cast<size_t>(m)];
}

}  // namespace

const std::array<VarInfo, static_cast<size_t>(Var::kCount)>& AllVariables() { return kVars; }

const VarInfo& InfoOf(Var var) { return kVars[static_cast<size_t>(var)]; }

std::optional<Var> VarByName(std::string_view name) {
  for (const VarInfo& v : kVars) {
    if (v.name == name) return v.var;
  }
  return std::nullopt;
}

std::string_view KindName(ValueKind kind) {
  switch (kind) {
    case ValueKind::kSize:
      return "a size";
    case ValueKind::kDuration:
      return "a duration";
    case ValueKind::kLatency:
      return "a latency";
    case ValueKind::kRatio:
      return "a ratio (0..1)";
    case ValueKind::kFactor:
      return "a factor";
    case ValueKind::kCount:
      return "a count";
    case ValueKind::kPercent:
      return "a percentage";
    case ValueKind::kRate:
      return "a rate (bytes/s)";
    case ValueKind::kHealth:
      return "a health state";
  }
  return "?";
}

// `media.health` holds the MediaHealth value as a number (ReadVar).
std::optional<double> HealthByName(std::string_view name) {
  for (MediaHealth h :
       {MediaHealth::kUnknown, MediaHealth::kOk, MediaHealth::kWarning, MediaHealth::kCritical}) {
    if (MediaHealthName(h) == name) return static_cast<double>(h);
  }
  return std::nullopt;
}

std::string_view HealthName(double value) {
  const int v = static_cast<int>(value);
  if (v < 0 || v > static_cast<int>(MediaHealth::kCritical)) return "unknown";
  return MediaHealthName(static_cast<MediaHealth>(v));
}

std::optional<double> ReadVar(Var var, const VarContext& ctx, std::string_view* why) {
  const Snapshot& snap = *ctx.snapshot;
  const FileRecord& f = *ctx.file;
  const bool is_dir = f.kind == FileKind::kDirectory;
  auto need = [&](uint16_t field, std::string_view reason) -> bool {
    if (f.available & field) return true;
    *why = reason;
    return false;
  };
  constexpr std::string_view kNoCache =
      "page-cache telemetry was not sampled for this file (directories have none; "
      "cachestat/mincore failed otherwise)";
  constexpr std::string_view kNoEvicted =
      "eviction data needs cachestat(2) (Linux 6.5+); mincore() cannot report it";
  // Why access figures are missing: the mount's reason, then the source's.
  auto no_tracing = [&]() -> std::string_view {
    if (f.mount < snap.mounts.size() && !snap.mounts[f.mount].access_unavailable.empty()) {
      return snap.mounts[f.mount].access_unavailable;
    }
    if (!snap.system.access_unavailable.empty()) return snap.system.access_unavailable;
    return "access tracing has no figures for this file yet";
  };
  auto need_access = [&] {
    if (HasAccessFigures(snap, f)) return true;
    *why = no_tracing();
    return false;
  };
  // An effective-DAX file has no page-cache pages at all: residency and dirty
  // pages are a known 0 (cachestat's numbers for it would be meaningless).
  const bool dax_now = !is_dir && (f.available & kHaveEffective) && f.effective == DaxState::kDax;
  switch (var) {
    case Var::kFileSize:
      if (!need(kHaveSize, "the file could not be stat'ed")) return std::nullopt;
      return static_cast<double>(f.size);
    case Var::kFileAge:
      if (!need(kHaveSize, "the file could not be stat'ed")) return std::nullopt;
      return static_cast<double>(snap.wall_clock_ns - f.mtime_ns);
    case Var::kFileCacheResidentRatio:
      if (dax_now) return 0.0;
      if (is_dir || !need(kHaveCache, kNoCache)) return std::nullopt;
      return std::min(1.0, f.cache_pages / FilePages(snap, f));
    case Var::kFileCachePages:
      if (dax_now) return 0.0;
      if (is_dir || !need(kHaveCache, kNoCache)) return std::nullopt;
      return f.cache_pages;
    case Var::kFileRecentlyEvictedRatio:
      if (dax_now) {
        *why = "an effective-DAX file has no page-cache history";
        return std::nullopt;
      }
      if (is_dir || !need(kHaveCache, kNoCache)) return std::nullopt;
      if (f.available & kHaveEvictedOnly) {
        *why = kNoEvicted;
        return std::nullopt;
      }
      return std::min(1.0, f.recently_evicted_pages / FilePages(snap, f));
    case Var::kFileDirtyRatio:
      if (dax_now) return 0.0;
      if (is_dir || !need(kHaveCache, kNoCache)) return std::nullopt;
      return std::min(1.0, f.dirty_pages / FilePages(snap, f));
    case Var::kFileHolders:
      if (!need(kHaveHolders, "holders were not looked up for this file")) return std::nullopt;
      return f.holders;
    case Var::kFileCacheHitRatio:
      if (!need_access()) return std::nullopt;
      if (dax_now) {
        *why = "file.cache_hit_ratio is only defined in page-cache mode";
        return std::nullopt;
      }
      if (!need(kHaveHitRatio,
                "no page-cache reads of this file in the window (or misses are not traced)")) {
        return std::nullopt;
      }
      return f.cache_hit_ratio;
    case Var::kFileReadBytesRate:
      if (is_dir || !need_access()) return std::nullopt;
      return f.read_bytes_rate;
    case Var::kFileWriteBytesRate:
      if (is_dir || !need_access()) return std::nullopt;
      return f.write_bytes_rate;
    case Var::kFileReuse: {
      if (is_dir || !need_access()) return std::nullopt;
      if (f.size == 0) {
        *why = "file.reuse is undefined for an empty file";
        return std::nullopt;
      }
      // Bytes read in the window the rate was measured over, per byte of the file.
      const int64_t window =
          snap.system.access_window_ns > 0 ? snap.system.access_window_ns : ctx.sample_interval_ns;
      return f.read_bytes_rate * (static_cast<double>(window) / kNanosPerSecond) /
             static_cast<double>(f.size);
    }
    case Var::kSystemCacheHitRatio:
      if (!snap.system.have_cache_hit_ratio) {
        *why = snap.system.access_unavailable.empty()
                   ? "no page-cache reads under the scopes in the window"
                   : std::string_view(snap.system.access_unavailable);
        return std::nullopt;
      }
      return snap.system.cache_hit_ratio;
    case Var::kMediaReadLatencyNs:
    case Var::kMediaWriteLatencyNs:
    case Var::kMediaLatencyRatio:
    case Var::kMediaHealth:
    case Var::kMediaNumaNode: {
      const MediaSample* m = MediaOf(ctx);
      if (m == nullptr) {
        *why = "no memory device (NVDIMM/CXL namespace) is known for this file's mount";
        return std::nullopt;
      }
      if (var == Var::kMediaHealth) return static_cast<double>(m->health);
      if (var == Var::kMediaNumaNode) {
        if (!m->have_numa_node) {
          *why = "the device reports no NUMA node";
          return std::nullopt;
        }
        return m->numa_node;
      }
      if (!m->have_latency) {
        *why =
            "media latency has not been measured (the mount is not DAX-capable or the "
            "probe has not run yet)";
        return std::nullopt;
      }
      if (var == Var::kMediaReadLatencyNs) return m->read_latency_ns;
      if (var == Var::kMediaWriteLatencyNs) return m->write_latency_ns;
      return m->latency_ratio;
    }
    case Var::kSystemMemPressure:
      if (!snap.system.have_mem_pressure) {
        *why = "PSI is unavailable (/proc/pressure/memory missing)";
        return std::nullopt;
      }
      return snap.system.mem_pressure;
    case Var::kSystemPageCacheRatio:
      if (!snap.system.have_page_cache_ratio) {
        *why = "/proc/meminfo could not be read";
        return std::nullopt;
      }
      return snap.system.page_cache_ratio;
    case Var::kCount:
      break;
  }
  *why = "unknown variable";
  return std::nullopt;
}

std::string FormatValue(ValueKind kind, double value) {
  char buf[64];
  switch (kind) {
    case ValueKind::kSize:
      return FormatSize(value);
    case ValueKind::kDuration:
    case ValueKind::kLatency:
      // Values come from measurements or from literals the loader bounded, but never cast a
      // double that does not fit.
      if (!std::isfinite(value) || std::fabs(value) >= 9.2e18) {
        std::snprintf(buf, sizeof buf, "%gns", value);
        return buf;
      }
      return FormatDuration(static_cast<int64_t>(value));
    case ValueKind::kRate:
      return FormatSize(value) + "/s";
    case ValueKind::kHealth:
      return std::string(HealthName(value));
    case ValueKind::kPercent:
      std::snprintf(buf, sizeof buf, "%.3g%%", value);
      return buf;
    case ValueKind::kRatio:
    case ValueKind::kFactor:
      std::snprintf(buf, sizeof buf, "%.3g", value);
      return buf;
    case ValueKind::kCount:
      std::snprintf(buf, sizeof buf, "%.0f", value);
      return buf;
  }
  return "?";
}

}  // namespace daxpolicy::policy
