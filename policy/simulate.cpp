// SPDX-License-Identifier: Apache-2.0
#include "policy/simulate.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <type_traits>

#include "policy/evaluate.h"
#include "policy/pagecache_model.h"

namespace daxpolicy::policy {

std::string_view SimColumnName(SimColumn c) {
  switch (c) {
    case kSimPolicy:
      return "policy";
    case kSimAlways:
      return "dax=always";
    case kSimNever:
      return "dax=never";
    case kSimOracle:
      return "oracle";
    case kSimColumns:
      break;
  }
  return "?";
}

namespace {

// What a media probe would report for these figures.
MediaSample SampleOf(const std::string& name, const MediaParams& p) {
  MediaSample s;
  s.name = name;
  s.have_latency = true;
  s.read_latency_ns = p.read_latency_ns;
  s.latency_ratio = p.read_latency_ns / p.dram_latency_ns;
  s.have_bandwidth = true;
  s.read_bandwidth = p.read_bandwidth;
  s.dram_bandwidth = p.dram_bandwidth;
  s.write_bandwidth = p.write_bandwidth;
  s.health = MediaHealth::kOk;
  return s;
}

class Simulator {
 public:
  Simulator(const Trace& trace, const Policy& policy, const SimOptions& options)
      : trace_(trace), policy_(policy), options_(options) {
    policy_.daemon.interval_ns = trace.interval_ns;
    interval_s_ = static_cast<double>(trace.interval_ns) / 1e9;
    budget_ = options.dram_budget > 0 ? options.dram_budget : trace.dram_budget;
    const size_t n = trace.paths.size();
    mount_of_.resize(n);
    size_.assign(n, 0);
    first_mode_.assign(n, DaxState::kPageCache);
    first_resident_.assign(n, 0);
    std::vector<bool> seen(n, false);
    for (const TraceInterval& iv : trace.intervals) {
      for (const TraceFile& f : iv.files) {
        if (seen[f.path]) continue;
        seen[f.path] = true;
        first_mode_[f.path] = f.mode;
        // The residency a file starts from: a file absent from an interval
        // held no page cache in it, so one that appears after the first
        // interval starts empty; a file of the first interval starts with
        // its residency at that interval's end, the earliest figure there is.
        first_resident_[f.path] = f.mode == DaxState::kPageCache && &iv == &trace.intervals.front()
                                      ? std::max(0.0, f.resident_bytes)
                                      : 0;
      }
    }
    for (size_t i = 0; i < n; ++i) mount_of_[i] = trace.MountOf(trace.paths[i]);
  }

  // The figures each mount is charged with are the ones Evaluate sees
  // (MediaParamsFor: cost.mounts over the trace's media), or --media for all.
  bool ResolveMedia(std::vector<std::string>* notes, std::string* error) {
    media_.resize(trace_.mounts.size() + 1);
    if (!options_.media.empty()) {
      if (!MediaPreset(options_.media)) {
        *error =
            "unknown media '" + options_.media + "' (expected one of: " + MediaPresetList() + ")";
        return false;
      }
      policy_.cost_mounts.clear();
      for (const TraceMount& m : trace_.mounts) {
        CostMount cm;
        cm.path = m.path;
        cm.preset = options_.media;
        cm.where.file = "--media";
        policy_.cost_mounts.push_back(cm);
      }
    }
    for (size_t m = 0; m < trace_.mounts.size(); ++m) {
      const TraceMount& mount = trace_.mounts[m];
      Snapshot one;
      one.mounts.push_back(MountRecord{1, mount.path, mount.media >= 0 ? 0 : -1, ""});
      if (mount.media >= 0) {
        const TraceMedia& tm = trace_.media[static_cast<size_t>(mount.media)];
        one.media.push_back(SampleOf(tm.name, tm.params));
      }
      FileRecord rec;
      std::string why;
      std::optional<MediaParams> p = MediaParamsFor(policy_, one, rec, mount.path, &why);
      if (!p) {
        *error = "mount " + mount.path + ": " + why +
                 " (the trace has none: name a preset with --media or add a cost.mounts entry "
                 "to the policy)";
        return false;
      }
      if (mount.media >= 0 && p->source.rfind("probe of ", 0) == 0) {
        p->source = "trace media " + trace_.media[static_cast<size_t>(mount.media)].name +
                    p->source.substr(std::string("probe of ").size() +
                                     trace_.media[static_cast<size_t>(mount.media)].name.size());
      }
      media_[m] = *p;
      notes->push_back(mount.path + ": " + p->source);
    }
    return true;
  }

  // Runs one column. `mode_for` decides the mode of each file per interval
  // (nullptr: the policy decides through Evaluate).
  template <class ModeFn>
  void Run(SimColumn column, ModeFn mode_for, SimResult* out, std::vector<double>* per_file_time,
           std::vector<SimHitCheck>* hits) {
    constexpr bool use_policy = std::is_null_pointer_v<ModeFn>;
    const size_t n = trace_.paths.size();
    PageCacheModel cache(n, budget_);
    std::vector<DaxState> mode(n, DaxState::kUnknown);
    std::vector<double> last_hit(n, -1);
    std::vector<double> last_read(n, 0), last_write(n, 0);
    std::vector<double> hit_weight(n, 0), hit_measured(n, 0), hit_predicted(n, 0);
    if (per_file_time) per_file_time->assign(n, 0);
    RuleState rule_state;
    Snapshot snap;
    std::vector<int32_t> record_of(n, -1);
    std::vector<uint32_t> order;  // files in the snapshot, by record index
    int64_t round = 0;
    double prev_t = 0;
    for (size_t iv_index = 0; iv_index < trace_.intervals.size(); ++iv_index) {
      const TraceInterval& iv = trace_.intervals[iv_index];
      double step_ns = iv_index == 0 ? static_cast<double>(trace_.interval_ns)
                                     : static_cast<double>(iv.t_ns) - prev_t;
      prev_t = static_cast<double>(iv.t_ns);
      std::fill(last_read.begin(), last_read.end(), 0);
      std::fill(last_write.begin(), last_write.end(), 0);
      double interval_time = 0;
      for (const TraceFile& f : iv.files) {
        const uint32_t id = f.path;
        size_[id] = f.size;
        if (column == kSimAlways) {  // the first run counts files and bytes
          SimGroup& g = Group(id, out);
          g.read_bytes += std::max(0.0, f.read_bytes);
          out->total.read_bytes += std::max(0.0, f.read_bytes);
          if (mode[id] == DaxState::kUnknown) ++g.files, ++out->total.files;
        }
        if constexpr (use_policy) {
          if (mode[id] == DaxState::kUnknown) {
            mode[id] = first_mode_[id];
            if (mode[id] == DaxState::kPageCache) cache.Set(id, first_resident_[id]);
          }
        } else {
          if (mode[id] == DaxState::kUnknown) {
            mode[id] = mode_for(id, f);
            if (mode[id] == DaxState::kPageCache && first_mode_[id] == DaxState::kPageCache) {
              cache.Set(id, first_resident_[id]);
            }
          }
          DaxState want = mode_for(id, f);
          if (want != mode[id]) {
            mode[id] = want;
            ++Group(id, out).columns[column].switches;
            ++out->total.columns[column].switches;
            cache.Set(id, 0);
          }
        }
        const double t = FileTime(id, f, mode[id], round, &cache, &last_hit[id]);
        last_read[id] = std::max(0.0, f.read_bytes);
        last_write[id] = std::max(0.0, f.write_bytes);
        interval_time += t;
        Group(id, out).columns[column].time_ns += t;
        out->total.columns[column].time_ns += t;
        if (per_file_time) (*per_file_time)[id] += t;
        if (hits && f.mode == DaxState::kPageCache && f.hit_ratio >= 0 && f.read_bytes > 0) {
          hit_weight[id] += f.read_bytes;
          hit_measured[id] += f.read_bytes * f.hit_ratio;
          hit_predicted[id] += f.read_bytes * last_hit[id];
        }
      }
      cache.Evict(round);
      // Page-cache bytes held through the interval, per group.
      const double total_resident = cache.total();
      out->total.columns[column].dram_byte_ns += total_resident * step_ns;
      out->total.columns[column].dram_peak =
          std::max(out->total.columns[column].dram_peak, total_resident);
      std::map<int, double> by_group;
      for (uint32_t id = 0; id < n; ++id) {
        if (cache.resident(id) > 0) by_group[GroupIndex(id, out)] += cache.resident(id);
      }
      for (auto [g, bytes] : by_group) {
        SimFigures& fig = out->groups[static_cast<size_t>(g)].columns[column];
        fig.dram_byte_ns += bytes * step_ns;
        fig.dram_peak = std::max(fig.dram_peak, bytes);
      }
      out->time_per_interval[iv_index][column] = interval_time;
      out->dram_per_interval[iv_index][column] = total_resident;

      if constexpr (use_policy) {
        Decide(iv, mode, cache, last_hit, last_read, last_write, &snap, &record_of, &order,
               &rule_state, column, out);
      }
      ++round;
    }
    if (hits) {
      for (uint32_t id = 0; id < n; ++id) {
        if (hit_weight[id] <= 0) continue;
        hits->push_back(SimHitCheck{trace_.paths[id], hit_weight[id],
                                    hit_measured[id] / hit_weight[id],
                                    hit_predicted[id] / hit_weight[id]});
      }
    }
  }

  // The oracle's fixed choice from the per-file times of always and never.
  static std::vector<DaxState> Oracle(const std::vector<double>& dax,
                                      const std::vector<double>& page_cache) {
    std::vector<DaxState> out(dax.size());
    for (size_t i = 0; i < dax.size(); ++i) {
      out[i] = page_cache[i] < dax[i] ? DaxState::kPageCache : DaxState::kDax;
    }
    return out;
  }

 private:
  const MediaParams& MediaFor(uint32_t id) const {
    int m = mount_of_[id];
    return media_[m < 0 ? trace_.mounts.size() : static_cast<size_t>(m)];
  }

  // Estimated time of file id's accesses in this interval in `mode`; updates the cache.
  double FileTime(uint32_t id, const TraceFile& f, DaxState mode, int64_t round,
                  PageCacheModel* cache, double* hit_out) {
    const MediaParams& m = MediaFor(id);
    if (!(m.read_latency_ns > 0)) return 0;  // outside every mount and no --media
    CostInput in;
    in.interval_s = interval_s_;
    in.size_bytes = static_cast<double>(f.size);
    in.read_bytes = std::max(0.0, f.read_bytes);
    in.read_calls = f.read_calls;
    in.write_bytes = std::max(0.0, f.write_bytes);
    if (mode == DaxState::kDax) {
      in.in_page_cache = false;
      *hit_out = -1;
      return EstimateCost(in, m, policy_.cost.constants).dax_ns;
    }
    const double size = static_cast<double>(f.size);
    double covered = f.distinct_bytes >= 0 ? f.distinct_bytes : in.read_bytes;
    if (size > 0) covered = std::min(covered, size);
    const double misses = cache->Read(id, round, in.read_bytes, f.read_calls, covered, size);
    in.in_page_cache = true;
    in.hit_ratio = in.read_bytes > 0 ? 1 - misses / in.read_bytes : 1;
    *hit_out = in.hit_ratio;
    CostEstimate e = EstimateCost(in, m, policy_.cost.constants);
    return e.pc_ns - e.pc_dram_ns;
  }

  void Decide(const TraceInterval& iv, std::vector<DaxState>& mode, PageCacheModel& cache,
              const std::vector<double>& last_hit, const std::vector<double>& last_read,
              const std::vector<double>& last_write, Snapshot* snap,
              std::vector<int32_t>* record_of, std::vector<uint32_t>* order, RuleState* rule_state,
              SimColumn column, SimResult* out) {
    if (snap->mounts.empty()) {
      for (size_t m = 0; m < trace_.mounts.size(); ++m) {
        MountRecord rec;
        rec.dev = m + 1;
        rec.mount_point = trace_.mounts[m].path;
        rec.media = static_cast<int>(snap->media.size());
        snap->media.push_back(
            SampleOf(trace_.mounts[m].media >= 0
                         ? trace_.media[static_cast<size_t>(trace_.mounts[m].media)].name
                         : "mount" + std::to_string(m),
                     media_[m]));
        snap->mounts.push_back(rec);
      }
      snap->mounts.push_back(MountRecord{0, "/", -1, ""});  // files outside every mount
      snap->page_size = trace_.page_size;
    }
    for (const TraceFile& f : iv.files) {
      if ((*record_of)[f.path] >= 0) continue;
      const std::string& path = trace_.paths[f.path];
      size_t slash = path.rfind('/');
      std::string dir = slash == 0 ? "/" : path.substr(0, slash);
      auto [it, added] = dir_index_.try_emplace(dir, static_cast<uint32_t>(snap->dir_paths.size()));
      if (added) snap->dir_paths.push_back(dir);
      FileRecord r;
      r.ino = f.path + 1;
      r.dir = it->second;
      r.name_offset = static_cast<uint32_t>(snap->names.size());
      std::string name = path.substr(slash + 1);
      r.name_length = static_cast<uint16_t>(std::min<size_t>(name.size(), 0xffff));
      snap->names += name.substr(0, r.name_length);
      int m = mount_of_[f.path];
      r.mount = static_cast<uint16_t>(m < 0 ? trace_.mounts.size() : static_cast<size_t>(m));
      (*record_of)[f.path] = static_cast<int32_t>(snap->files.size());
      order->push_back(f.path);
      snap->files.push_back(r);
    }
    snap->wall_clock_ns = iv.t_ns;
    snap->system.have_mem_pressure = iv.mem_pressure >= 0;
    snap->system.mem_pressure = std::max(0.0, iv.mem_pressure);
    for (size_t i = 0; i < snap->files.size(); ++i) {
      FileRecord& r = snap->files[i];
      const uint32_t id = (*order)[i];
      r.size = size_[id];
      r.mtime_ns = 0;
      r.available = kHaveSize | kHaveCache | kHaveAccess | kHavePhysical | kHaveEffective;
      r.physical = r.effective = mode[id];
      r.read_bytes_rate = static_cast<float>(last_read[id] / interval_s_);
      r.write_bytes_rate = static_cast<float>(last_write[id] / interval_s_);
      // A hit ratio only where page-cache reads happened, as access tracing gives it.
      if (mode[id] == DaxState::kPageCache && last_hit[id] >= 0 && last_read[id] > 0) {
        r.available |= kHaveHitRatio;
        r.cache_hit_ratio = static_cast<float>(last_hit[id]);
      } else {
        r.cache_hit_ratio = 0;
      }
      r.cache_pages = static_cast<uint32_t>(
          std::min(4e9, std::ceil(cache.resident(id) / std::max<uint32_t>(1, trace_.page_size))));
    }
    Decisions d = Evaluate(policy_, *snap, *rule_state, Holds{}, {Mode::kEnforce, iv.t_ns});
    for (const Decision& dec : d.files) {
      if (!dec.apply || dec.desired == DaxState::kUnknown) continue;
      const uint32_t id = (*order)[dec.file];
      if (mode[id] == dec.desired) continue;
      mode[id] = dec.desired;
      cache.Set(id, 0);  // the kernel drops the cached pages when the inode is reloaded
      if (policy_switches_) (*policy_switches_)[id].push_back(SimSwitch{iv.t_ns, dec.desired});
      ++Group(id, out).columns[column].switches;
      ++out->total.columns[column].switches;
    }
  }

  int GroupIndex(uint32_t id, SimResult* out) {
    if (group_of_.empty()) group_of_.assign(trace_.paths.size(), -1);
    if (group_of_[id] >= 0) return group_of_[id];
    const std::string& path = trace_.paths[id];
    const int m = mount_of_[id];
    std::string name;
    if (m < 0) {  // outside every mount: its directory
      name = path.substr(0, path.rfind('/'));
    } else {  // the first directory below the mount, "" for files at the mount root
      std::string rest = path.substr(trace_.mounts[static_cast<size_t>(m)].path.size());
      if (!rest.empty() && rest[0] == '/') rest.erase(0, 1);
      const size_t slash = rest.find('/');
      if (slash != std::string::npos) name = rest.substr(0, slash);
    }
    auto [it, added] = group_index_.try_emplace(name, static_cast<int>(out->groups.size()));
    if (added) {
      SimGroup g;
      g.name = name;
      out->groups.push_back(g);
    }
    group_of_[id] = it->second;
    return it->second;
  }
  SimGroup& Group(uint32_t id, SimResult* out) {
    return out->groups[static_cast<size_t>(GroupIndex(id, out))];
  }

 public:
  // Where the policy run records each file's switches (nullptr: nowhere).
  std::vector<std::vector<SimSwitch>>* policy_switches_ = nullptr;

 private:
  const Trace& trace_;
  Policy policy_;
  const SimOptions& options_;
  double interval_s_ = 10;
  double budget_ = 0;
  std::vector<int> mount_of_;
  std::vector<uint64_t> size_;
  std::vector<DaxState> first_mode_;
  std::vector<double> first_resident_;
  std::vector<MediaParams> media_;
  std::vector<int> group_of_;
  std::map<std::string, int> group_index_;
  std::map<std::string, uint32_t> dir_index_;
};

// The recorded modes of every file next to the policy run's switches.
std::vector<SimFileModes> FileModes(const Trace& trace,
                                    std::vector<std::vector<SimSwitch>> switches) {
  std::vector<int> index(trace.paths.size(), -1);
  std::vector<SimFileModes> out;
  for (size_t i = 0; i < trace.intervals.size(); ++i) {
    for (const TraceFile& f : trace.intervals[i].files) {
      if (index[f.path] < 0) {
        index[f.path] = static_cast<int>(out.size());
        SimFileModes m;
        m.path = trace.paths[f.path];
        m.first = f.mode;
        m.policy = std::move(switches[f.path]);
        out.push_back(std::move(m));
        continue;
      }
      SimFileModes& m = out[static_cast<size_t>(index[f.path])];
      const DaxState now = m.recorded.empty() ? m.first : m.recorded.back().to;
      if (f.mode != now && i > 0) {  // i > 0: a file is first seen at the latest then
        m.recorded.push_back(SimSwitch{trace.intervals[i - 1].t_ns, f.mode});
      }
    }
  }
  return out;
}

}  // namespace

bool Simulate(const Trace& trace, const Policy& policy, const SimOptions& options, SimResult* out,
              std::string* error) {
  *out = SimResult{};
  Simulator sim(trace, policy, options);
  if (!sim.ResolveMedia(&out->notes, error)) return false;
  out->interval_ns = static_cast<double>(trace.interval_ns);
  out->time_per_interval.assign(trace.intervals.size(), {});
  out->dram_per_interval.assign(trace.intervals.size(), {});
  if (!trace.intervals.empty()) {
    out->start_ns = static_cast<double>(trace.intervals.front().t_ns - trace.interval_ns);
    out->duration_ns = static_cast<double>(trace.intervals.back().t_ns -
                                           trace.intervals.front().t_ns + trace.interval_ns);
  }
  out->total.name = "total";
  auto fixed = [](DaxState s) { return [s](uint32_t, const TraceFile&) { return s; }; };
  std::vector<double> dax_time, pc_time;
  sim.Run(kSimAlways, fixed(DaxState::kDax), out, &dax_time, nullptr);
  sim.Run(kSimNever, fixed(DaxState::kPageCache), out, &pc_time, nullptr);
  std::vector<DaxState> oracle = Simulator::Oracle(dax_time, pc_time);
  sim.Run(
      kSimOracle, [&](uint32_t id, const TraceFile&) { return oracle[id]; }, out, nullptr, nullptr);
  std::vector<std::vector<SimSwitch>> switches(trace.paths.size());
  if (options.modes) sim.policy_switches_ = &switches;
  sim.Run(kSimPolicy, nullptr, out, nullptr, nullptr);
  sim.policy_switches_ = nullptr;
  if (options.modes) out->modes = FileModes(trace, std::move(switches));
  if (options.hits) {
    // The recorded modes, for the page-cache model's hit ratios against the measured ones.
    SimResult scratch = *out;
    sim.Run(
        kSimPolicy, [](uint32_t, const TraceFile& f) { return f.mode; }, &scratch, nullptr,
        &out->hits);
  }
  return true;
}

}  // namespace daxpolicy::policy
