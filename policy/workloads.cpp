// SPDX-License-Identifier: Apache-2.0
#include "policy/workloads.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>

#include "policy/units.h"

namespace daxpolicy::policy {

namespace {

constexpr double kKiB = 1024, kMiB = 1024 * kKiB, kGiB = 1024 * kMiB;

// splitmix64: the same sequence on every platform (std distributions are not).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double Uniform() { return static_cast<double>(Next() >> 11) * (1.0 / 9007199254740992.0); }

 private:
  uint64_t state_;
};

// Zipf(n, s) by inverse CDF.
class Zipf {
 public:
  Zipf(size_t n, double s) : cdf_(n) {
    double sum = 0;
    for (size_t i = 0; i < n; ++i) cdf_[i] = sum += 1.0 / std::pow(static_cast<double>(i + 1), s);
    for (double& c : cdf_) c /= sum;
  }
  size_t Sample(Rng& rng) const {
    auto it = std::lower_bound(cdf_.begin(), cdf_.end(), rng.Uniform());
    return std::min<size_t>(static_cast<size_t>(it - cdf_.begin()), cdf_.size() - 1);
  }

 private:
  std::vector<double> cdf_;
};

// Expected bytes of a `hot`-byte range that `read` bytes of uniformly random
// reads cover.
double Coverage(double hot, double read) {
  if (hot <= 0 || read <= 0) return 0;
  return hot * (1 - std::exp(-read / hot));
}

struct Param {
  const char* name;
  double value;
  UnitKind unit;  // kNone: a plain number
  const char* help;
};

struct WorkloadDef {
  const char* name;
  const char* help;
  std::vector<Param> params;
};

const std::vector<Param>& CommonParams() {
  static const std::vector<Param> p = {
      {"duration", 3600e9, UnitKind::kDuration, "simulated time"},
      {"interval", 10e9, UnitKind::kDuration, "sampling interval (the daemon's daemon.interval)"},
      {"budget", 8 * kGiB, UnitKind::kSize, "page cache available to the traced files"},
      {"pressure", 0.5, UnitKind::kPercent, "PSI memory some avg10 during the run"},
      {"seed", 1, UnitKind::kNone, "random seed"},
  };
  return p;
}

const std::vector<WorkloadDef>& Defs() {
  static const std::vector<WorkloadDef> defs = {
      {"kv",
       "a key-value store: point reads of `value` bytes, Zipf-distributed over `tables` "
       "tables and over the pages of each table",
       {{"tables", 64, UnitKind::kNone, "number of table files"},
        {"table_size", 256 * kMiB, UnitKind::kSize, "size of each table"},
        {"ops", 2000, UnitKind::kNone, "reads per second"},
        {"value", 4 * kKiB, UnitKind::kSize, "bytes per read"},
        {"zipf", 0.99, UnitKind::kNone, "Zipf exponent over tables and over pages"}}},
      {"logs",
       "logs streamed once: `streams` readers each read a log from start to end in "
       "`call`-sized reads, then move to the next",
       {{"files", 20, UnitKind::kNone, "number of log files"},
        {"size", 4 * kGiB, UnitKind::kSize, "size of each log"},
        {"rate", 64 * kMiB, UnitKind::kRate, "bytes per second per stream"},
        {"streams", 2, UnitKind::kNone, "logs read at the same time"},
        {"call", 1 * kMiB, UnitKind::kSize, "bytes per read call"}}},
      {"vm",
       "VM images with a shared base: every VM reads a hot range of the base image and of "
       "its own overlay, uniformly at random",
       {{"vms", 8, UnitKind::kNone, "number of VMs (one overlay each)"},
        {"base_size", 8 * kGiB, UnitKind::kSize, "size of the shared base image"},
        {"base_hot", 1 * kGiB, UnitKind::kSize, "range of the base every VM reads"},
        {"base_rate", 8 * kMiB, UnitKind::kRate, "base bytes read per second per VM"},
        {"overlay_size", 2 * kGiB, UnitKind::kSize, "size of each overlay"},
        {"overlay_hot", 256 * kMiB, UnitKind::kSize, "range of its overlay a VM reads"},
        {"overlay_rate", 4 * kMiB, UnitKind::kRate, "overlay bytes read per second per VM"},
        {"call", 64 * kKiB, UnitKind::kSize, "bytes per read call"}}},
      {"moving",
       "a hot set that moves: `hot` of `files` files are read uniformly at `rate` each; "
       "every `phase` the next `hot` files take over",
       {{"files", 32, UnitKind::kNone, "number of files"},
        {"size", 512 * kMiB, UnitKind::kSize, "size of each file"},
        {"hot", 4, UnitKind::kNone, "files hot at a time"},
        {"rate", 32 * kMiB, UnitKind::kRate, "bytes per second per hot file"},
        {"phase", 600e9, UnitKind::kDuration, "time before the hot set moves"},
        {"call", 16 * kKiB, UnitKind::kSize, "bytes per read call"}}},
  };
  return defs;
}

std::string FormatParam(const Param& p) {
  switch (p.unit) {
    case UnitKind::kSize:
      return FormatSize(p.value);
    case UnitKind::kRate:
      return FormatSize(p.value) + "/s";
    case UnitKind::kDuration:
      return FormatDuration(static_cast<int64_t>(p.value));
    case UnitKind::kPercent: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g%%", p.value);
      return buf;
    }
    case UnitKind::kNone:
      break;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", p.value);
  return buf;
}

using Values = std::map<std::string, double>;

struct Builder {
  Trace trace;
  std::map<std::string, uint32_t> ids;
  uint32_t Path(const std::string& p) {
    auto [it, added] = ids.try_emplace(p, static_cast<uint32_t>(trace.paths.size()));
    if (added) trace.paths.push_back(p);
    return it->second;
  }
  void Add(size_t interval, const std::string& path, double size, double read, double calls,
           double distinct) {
    TraceFile f;
    f.path = Path(path);
    f.size = static_cast<uint64_t>(size);
    f.mode = DaxState::kPageCache;
    f.read_bytes = std::floor(read);
    f.read_calls = std::ceil(calls);
    f.write_bytes = 0;
    f.distinct_bytes = std::floor(std::min(distinct, size));
    trace.intervals[interval].files.push_back(f);
  }
};

std::string Name(const char* prefix, size_t i, int width) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s%0*zu", prefix, width, i);
  return buf;
}

void Kv(const Values& v, Builder* b, Rng& rng) {
  const size_t tables = static_cast<size_t>(v.at("tables"));
  const double table_size = v.at("table_size"), value = std::max(1.0, v.at("value"));
  const size_t pages = std::max<size_t>(1, static_cast<size_t>(table_size / value));
  const Zipf by_table(tables, v.at("zipf")), by_page(pages, v.at("zipf"));
  // Hot pages are scattered: each table has its own permutation of page ranks.
  std::vector<uint32_t> stamp(tables * pages, 0);
  std::vector<uint64_t> offsets(tables);
  for (size_t t = 0; t < tables; ++t) offsets[t] = rng.Next() % pages;
  const double interval_s = v.at("interval") / 1e9;
  const size_t ops = static_cast<size_t>(std::llround(v.at("ops") * interval_s));
  std::vector<double> reads(tables), distinct(tables);
  for (size_t i = 0; i < b->trace.intervals.size(); ++i) {
    std::fill(reads.begin(), reads.end(), 0);
    std::fill(distinct.begin(), distinct.end(), 0);
    for (size_t op = 0; op < ops; ++op) {
      size_t t = by_table.Sample(rng);
      size_t p = (by_page.Sample(rng) * 2654435761u + offsets[t]) % pages;
      reads[t] += 1;
      uint32_t& s = stamp[t * pages + p];
      if (s != i + 1) {
        s = static_cast<uint32_t>(i + 1);
        distinct[t] += 1;
      }
    }
    for (size_t t = 0; t < tables; ++t) {
      if (reads[t] == 0) continue;
      b->Add(i, "/srv/pmem/kv/" + Name("table-", t, 4) + ".sst", table_size, reads[t] * value,
             reads[t], distinct[t] * value);
    }
  }
}

void Logs(const Values& v, Builder* b) {
  const size_t files = static_cast<size_t>(v.at("files"));
  const size_t streams = std::max<size_t>(1, static_cast<size_t>(v.at("streams")));
  const double size = v.at("size"), call = std::max(1.0, v.at("call"));
  const double per_interval = v.at("rate") * v.at("interval") / 1e9;
  std::vector<double> done(files, 0);
  size_t next = 0;
  std::vector<size_t> active;
  for (size_t i = 0; i < b->trace.intervals.size(); ++i) {
    while (active.size() < streams && next < files) active.push_back(next++);
    std::map<size_t, double> read;
    for (size_t& f : active) {
      double budget = per_interval;
      while (budget > 0) {
        double n = std::min(budget, size - done[f]);
        done[f] += n;
        read[f] += n;
        budget -= n;
        if (done[f] >= size) {
          if (next >= files) break;
          f = next++;
        }
      }
    }
    active.erase(
        std::remove_if(active.begin(), active.end(), [&](size_t f) { return done[f] >= size; }),
        active.end());
    for (auto [f, bytes] : read) {
      if (bytes <= 0) continue;
      b->Add(i, "/srv/pmem/logs/" + Name("app-", f, 3) + ".log", size, bytes, bytes / call, bytes);
    }
  }
}

void Vm(const Values& v, Builder* b) {
  const size_t vms = static_cast<size_t>(v.at("vms"));
  const double interval_s = v.at("interval") / 1e9, call = std::max(1.0, v.at("call"));
  const double base_read = v.at("base_rate") * interval_s * static_cast<double>(vms);
  const double overlay_read = v.at("overlay_rate") * interval_s;
  for (size_t i = 0; i < b->trace.intervals.size(); ++i) {
    b->Add(i, "/srv/pmem/vm/base.qcow2", v.at("base_size"), base_read, base_read / call,
           Coverage(v.at("base_hot"), base_read));
    for (size_t m = 0; m < vms; ++m) {
      b->Add(i, "/srv/pmem/vm/" + Name("vm-", m, 2) + ".qcow2", v.at("overlay_size"), overlay_read,
             overlay_read / call, Coverage(v.at("overlay_hot"), overlay_read));
    }
  }
}

void Moving(const Values& v, Builder* b) {
  const size_t files = std::max<size_t>(1, static_cast<size_t>(v.at("files")));
  const size_t hot = std::min(files, static_cast<size_t>(v.at("hot")));
  const double interval_s = v.at("interval") / 1e9, call = std::max(1.0, v.at("call"));
  const double read = v.at("rate") * interval_s;
  const double phase = std::max(v.at("interval"), v.at("phase"));
  for (size_t i = 0; i < b->trace.intervals.size(); ++i) {
    const double t = static_cast<double>(i) * v.at("interval");
    const size_t first = static_cast<size_t>(t / phase) * hot;
    for (size_t k = 0; k < hot; ++k) {
      size_t f = (first + k) % files;
      b->Add(i, "/srv/pmem/moving/" + Name("part-", f, 3) + ".dat", v.at("size"), read, read / call,
             Coverage(v.at("size"), read));
    }
  }
}

bool ParseValue(const Param& p, std::string_view text, double* out, std::string* error) {
  std::string e;
  auto q = ParseQuantity(text, &e);
  if (!q) {
    *error = "parameter '" + std::string(p.name) + "': " + e;
    return false;
  }
  bool ok =
      q->kind == p.unit ||
      (q->kind == UnitKind::kNone &&
       (p.unit == UnitKind::kSize || p.unit == UnitKind::kNone || p.unit == UnitKind::kPercent));
  if (!ok) {
    *error = "parameter '" + std::string(p.name) + "' needs " +
             (p.unit == UnitKind::kDuration  ? "a duration (e.g. 10s)"
              : p.unit == UnitKind::kRate    ? "a rate (e.g. 64MiB/s)"
              : p.unit == UnitKind::kSize    ? "a size (e.g. 4GiB)"
              : p.unit == UnitKind::kPercent ? "a percentage (e.g. 5%)"
                                             : "a plain number") +
             " (got '" + std::string(text) + "')";
    return false;
  }
  *out = q->value;
  return true;
}

}  // namespace

std::string WorkloadHelp() {
  std::string out = "Workloads (SPEC is NAME[:key=value,...][+NAME...]; 'mixed' is all four):\n";
  for (const WorkloadDef& d : Defs()) {
    out += "  " + std::string(d.name) + ": " + d.help + "\n";
    for (const Param& p : d.params) {
      out += "      " + std::string(p.name) + "=" + FormatParam(p) + "  " + p.help + "\n";
    }
  }
  out += "  settings of every workload (in any part of the spec):\n";
  for (const Param& p : CommonParams()) {
    out += "      " + std::string(p.name) + "=" + FormatParam(p) + "  " + p.help + "\n";
  }
  out += "      media=" + std::string(MediaPresetNames().front()) +
         "  media preset written to the trace (" + MediaPresetList() + ")\n";
  return out;
}

std::optional<Trace> GenerateWorkload(std::string_view spec, std::string* error) {
  std::vector<std::pair<const WorkloadDef*, Values>> parts;
  Values common;
  for (const Param& p : CommonParams()) common[p.name] = p.value;
  std::string media(MediaPresetNames().front());
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t end = spec.find('+', pos);
    if (end == std::string_view::npos) end = spec.size();
    std::string_view part = spec.substr(pos, end - pos);
    pos = end + 1;
    std::string_view name = part.substr(0, part.find(':'));
    std::string_view args =
        part.find(':') == std::string_view::npos ? "" : part.substr(part.find(':') + 1);
    std::vector<const WorkloadDef*> defs;
    for (const WorkloadDef& d : Defs()) {
      if (name == d.name || name == "mixed") defs.push_back(&d);
    }
    if (defs.empty()) {
      std::string names;
      for (const WorkloadDef& d : Defs()) names += std::string(d.name) + ", ";
      *error = "unknown workload '" + std::string(name) + "' (expected one of: " + names + "mixed)";
      return std::nullopt;
    }
    size_t first = parts.size();
    for (const WorkloadDef* d : defs) {
      // Twice the same workload would write each of its files twice per interval.
      for (const auto& [seen, values] : parts) {
        if (seen != d) continue;
        *error = "workload '" + std::string(d->name) +
                 "' appears twice in the spec ('mixed' is all four); name each workload once";
        return std::nullopt;
      }
      Values v;
      for (const Param& p : d->params) v[p.name] = p.value;
      parts.emplace_back(d, v);
    }
    size_t apos = 0;
    while (!args.empty() && apos <= args.size()) {
      size_t aend = args.find(',', apos);
      if (aend == std::string_view::npos) aend = args.size();
      std::string_view kv = args.substr(apos, aend - apos);
      apos = aend + 1;
      size_t eq = kv.find('=');
      if (eq == std::string_view::npos) {
        *error =
            "expected key=value in '" + std::string(part) + "' (got '" + std::string(kv) + "')";
        return std::nullopt;
      }
      std::string key(kv.substr(0, eq));
      std::string_view value = kv.substr(eq + 1);
      if (key == "media") {
        if (!MediaPreset(value)) {
          *error = "unknown media '" + std::string(value) +
                   "' (expected one of: " + MediaPresetList() + ")";
          return std::nullopt;
        }
        media = std::string(value);
        continue;
      }
      bool known = false;
      for (const Param& p : CommonParams()) {
        if (p.name != key) continue;
        known = true;
        if (!ParseValue(p, value, &common[key], error)) return std::nullopt;
      }
      for (size_t i = first; i < parts.size() && !known; ++i) {
        for (const Param& p : parts[i].first->params) {
          if (p.name != key) continue;
          known = true;
          for (size_t j = first; j < parts.size(); ++j) {
            if (parts[j].second.count(key) && !ParseValue(p, value, &parts[j].second[key], error)) {
              return std::nullopt;
            }
          }
          break;
        }
      }
      if (!known) {
        *error = "unknown parameter '" + key + "' for workload '" + std::string(name) + "'";
        return std::nullopt;
      }
    }
  }
  if (common["interval"] < 1e8 || common["duration"] < common["interval"] ||
      common["duration"] / common["interval"] > 1e6) {
    *error = "need interval >= 100ms, duration >= interval and at most a million intervals";
    return std::nullopt;
  }
  for (auto& [def, values] : parts) {
    for (const Param& p : def->params) {
      const double x = values[p.name];
      const bool count = p.unit == UnitKind::kNone && std::string_view(p.name) != "zipf";
      if (!(x >= 0) || (count && x > 1e6) || (p.unit == UnitKind::kSize && x > 1e15) ||
          (std::string_view(p.name) == "zipf" && x > 5)) {
        *error = "parameter '" + std::string(p.name) + "' of workload '" + def->name +
                 "' is out of range";
        return std::nullopt;
      }
    }
    if (std::string_view(def->name) == "kv" &&
        values["tables"] * std::max(1.0, values["table_size"] / std::max(1.0, values["value"])) >
            64e6) {
      *error = "workload 'kv': tables x table_size / value must stay below 64 million pages";
      return std::nullopt;
    }
    for (const auto& [k, x] : common) values[k] = x;
  }
  Builder b;
  b.trace.interval_ns = static_cast<int64_t>(common["interval"]);
  b.trace.dram_budget = common["budget"];
  b.trace.media.push_back(TraceMedia{media, *MediaPreset(media)});
  b.trace.mounts.push_back(TraceMount{"/srv/pmem", 0});
  const size_t n = static_cast<size_t>(common["duration"] / common["interval"]);
  b.trace.intervals.resize(n);
  for (size_t i = 0; i < n; ++i) {
    b.trace.intervals[i].t_ns = static_cast<int64_t>(i + 1) * b.trace.interval_ns;
    b.trace.intervals[i].mem_pressure = common["pressure"];
  }
  Rng rng(static_cast<uint64_t>(common["seed"]));
  for (auto& [def, values] : parts) {
    std::string_view name = def->name;
    if (name == "kv") Kv(values, &b, rng);
    if (name == "logs") Logs(values, &b);
    if (name == "vm") Vm(values, &b);
    if (name == "moving") Moving(values, &b);
  }
  return std::move(b.trace);
}

}  // namespace daxpolicy::policy
