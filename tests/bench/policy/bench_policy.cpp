// SPDX-License-Identifier: Apache-2.0
// Evaluate() over a large synthetic snapshot with 20 rules.
//
//   bench_policy [--files=N] [--scopes=N] [google benchmark flags]
//
// BM_Evaluate is the daemon's code path. BM_FnmatchBaseline decides the same
// files with the same rule order the way a script would: build each path as a
// string and fnmatch(3) it against every pattern, no precompiled globs and no
// prefix filtering; conditions use the same compiled expressions. Both report rule checks per
// second.
//
// BM_LoadHugePolicy reports how long LoadPolicy() takes for a valid policy with
// --scopes=N scopes, N/10 protect patterns and N/100 rules (the loader must stay
// near-linear: 150,000 scopes once took minutes); BM_LookupHugePolicy reports
// ScopeOf() + ProtectedBy() per path against that policy; BM_YamlParseBaseline
// is the floor: yaml-cpp parsing the same text without any validation. BM_GlobPathological
// matches a pattern with many `**` against a deep directory chain. These report
// times; they assert nothing.

#include <benchmark/benchmark.h>
#include <fnmatch.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "policy/evaluate.h"
#include "policy/loader.h"

namespace {

using namespace daxpolicy::policy;

size_t g_files = 1'000'000;
size_t g_scopes = 150'000;

const char* kPolicy = R"(apiVersion: daxpolicy/v1
scopes: [/srv/pmem]
protect: ["/srv/pmem/d7/keep/**"]
defaults: { dax: keep, min_dwell: 10m, max_switches_per_minute: 1000000 }
rules:
  - { name: r01, match: { path: "/srv/pmem/d1*/**/*.tmp" }, dax: keep }
  - { name: r02, match: { path: "/srv/pmem/archive/**" }, dax: on }
  - { name: r03, match: { path: "/srv/pmem/d9*/**/*.wal", size: ">= 64MiB" }, dax: off }
  - { name: r04, match: { path: "/srv/pmem/vm/*.qcow2" }, when: "media.latency_ratio >= 3", dax: off }
  - { name: r05, match: { path: "/srv/pmem/d2*/**/*.idx" }, when: "file.cache_resident_ratio > 0.9", dax: off }
  - { name: r06, match: { path: "/srv/pmem/d3*/**" }, when: "file.age > 1h && file.size > 1GiB", dax: on }
  - { name: r07, match: { path: "/srv/pmem/d4*/**/*.sst", size: "< 4KiB" }, dax: keep }
  - { name: r08, match: { path: "/srv/pmem/backup/**" }, dax: keep }
  - { name: r09, match: { path: "/srv/pmem/d5*/*.bin" }, when: "media.health != 'ok'", dax: keep }
  - { name: r10, match: { path: "/srv/pmem/d6*/**/*.log" }, when: "file.recently_evicted_ratio > 0.5", dax: on }
  - { name: r11, match: { path: "/srv/pmem/scratch/**" }, dax: on }
  - { name: r12, match: { path: "/srv/pmem/d8*/**/*.tmp" }, dax: keep }
  - { name: r13, match: { path: "/srv/pmem/**/*.lock" }, dax: keep }
  - { name: r14, match: { path: "/srv/pmem/**/*.img", size: ">= 1GiB" }, dax: on }
  - { name: r15, match: { path: "/srv/pmem/d0*/**/*.sst" }, when: "media.latency_ratio >= 2 && file.cache_resident_ratio >= 0.8", for: 5m, dax: off }
  - { name: r16, match: { path: "/srv/pmem/**/*.sst", size: ">= 1MiB" }, when: "file.cache_resident_ratio < 0.1", for: 10m, dax: on }
  - { name: r17, match: { path: "/srv/pmem/**/*.log" }, when: "file.size >= 1GiB", dax: on }
  - { name: r18, match: { path: "/srv/pmem/**/*.dat" }, when: "system.mem_pressure > 20 || file.dirty_ratio > 0.5", dax: off }
  - { name: r19, match: { path: "/srv/pmem/**/*.bak" }, dax: keep }
  - { name: r20, dax: on }
)";

const Policy& ThePolicy() {
  static Policy* p = [] {
    LoadResult r = LoadPolicy({"bench.yaml", kPolicy});
    if (!r.policy) {
      for (auto& e : r.errors) std::fprintf(stderr, "%s\n", e.ToString().c_str());
      std::abort();
    }
    return new Policy(std::move(*r.policy));
  }();
  return *p;
}

// 1000 directories, files with a mix of suffixes, sizes and cache states.
const Snapshot& TheSnapshot() {
  static Snapshot* s = [] {
    auto* snap = new Snapshot;
    snap->wall_clock_ns = 1'700'000'000'000'000'000;
    snap->mounts.push_back(MountRecord{1, "/srv/pmem", 0, ""});
    snap->media.push_back(MediaSample{"pmem0", true, 300, 600, 2.5, MediaHealth::kOk, true, 0});
    const size_t dirs = 1000;
    for (size_t d = 0; d < dirs; ++d) snap->dir_paths.push_back("/srv/pmem/d" + std::to_string(d));
    const char* suffixes[] = {".sst", ".log", ".img", ".dat", ".idx", ".tmp", ".wal", ".bin"};
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < g_files; ++i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      FileRecord f;
      f.dir = static_cast<uint32_t>(i % dirs);
      std::string name = "file" + std::to_string(i) + suffixes[x % 8];
      f.name_offset = static_cast<uint32_t>(snap->names.size());
      f.name_length = static_cast<uint16_t>(name.size());
      snap->names += name;
      f.ino = i + 1;
      f.size = (x >> 8) % (4ull << 30);
      f.mtime_ns = snap->wall_clock_ns - static_cast<int64_t>((x >> 20) % 7200) * 1'000'000'000;
      f.available = kHaveSize | kHaveCache | kHavePhysical | kHaveEffective;
      f.cache_pages = static_cast<uint32_t>((x >> 32) % (f.size / 4096 + 1));
      f.physical = (x & 1) ? DaxState::kDax : DaxState::kPageCache;
      f.effective = f.physical;
      snap->files.push_back(f);
    }
    return snap;
  }();
  return *s;
}

void BM_Evaluate(benchmark::State& state) {
  const Policy& policy = ThePolicy();
  const Snapshot& snap = TheSnapshot();
  uint64_t checks = 0;
  int64_t now = 0;
  // One RuleState across iterations, as in the daemon (cycle after cycle).
  RuleState rs;
  for (auto _ : state) {
    Decisions d = Evaluate(policy, snap, rs, {}, {Mode::kEnforce, now += 1'000'000'000});
    checks += d.rule_checks;
    benchmark::DoNotOptimize(d.applies);
  }
  state.counters["rule_checks/s"] =
      benchmark::Counter(static_cast<double>(checks), benchmark::Counter::kIsRate);
  state.counters["files/s"] = benchmark::Counter(
      static_cast<double>(snap.files.size() * state.iterations()), benchmark::Counter::kIsRate);
}

// fnmatch has no "**"; the baseline rewrites "/**/" and a trailing "/**" into "*"
// without FNM_PATHNAME, which is what such scripts end up doing.
std::string Flatten(const std::string& glob) {
  std::string out = glob;
  for (size_t p; (p = out.find("/**")) != std::string::npos;) out.replace(p, 3, "*");
  return out;
}

void BM_FnmatchBaseline(benchmark::State& state) {
  const Policy& policy = ThePolicy();
  const Snapshot& snap = TheSnapshot();
  std::vector<std::vector<std::string>> patterns;
  for (const Rule& r : policy.rules) {
    std::vector<std::string> ps;
    for (const Glob& g : r.paths) ps.push_back(Flatten(g.pattern()));
    patterns.push_back(ps);
  }
  uint64_t checks = 0, matched = 0;
  for (auto _ : state) {
    for (const FileRecord& f : snap.files) {
      std::string path = snap.dir_paths[f.dir] + "/" + std::string(snap.Name(f));
      for (size_t r = 0; r < policy.rules.size(); ++r) {
        ++checks;
        bool ok = patterns[r].empty();
        for (const std::string& p : patterns[r]) {
          if (fnmatch(p.c_str(), path.c_str(), 0) == 0) ok = true;
        }
        if (ok && policy.rules[r].size) {
          ok = Compare(static_cast<double>(f.size), policy.rules[r].size->op,
                       static_cast<double>(policy.rules[r].size->bytes));
        }
        if (ok && policy.rules[r].when) {
          VarContext ctx{&snap, &f, 0};
          ok = policy.rules[r].when->Eval(ctx) == Tri::kTrue;
        }
        if (ok) {
          ++matched;
          break;
        }
      }
    }
  }
  benchmark::DoNotOptimize(matched);
  state.counters["rule_checks/s"] =
      benchmark::Counter(static_cast<double>(checks), benchmark::Counter::kIsRate);
  state.counters["files/s"] = benchmark::Counter(
      static_cast<double>(snap.files.size() * state.iterations()), benchmark::Counter::kIsRate);
}

std::string HugePolicyText(size_t scopes) {
  std::string text = "apiVersion: daxpolicy/v1\nscopes:\n";
  for (size_t i = 0; i < scopes; ++i) text += "  - /srv/pmem/s" + std::to_string(i) + "\n";
  text += "protect:\n";
  for (size_t i = 0; i < scopes; i += 10) {
    text += "  - \"/srv/pmem/s" + std::to_string(i) + "/keep/**\"\n";
  }
  text += "rules:\n";
  for (size_t i = 0; i < scopes; i += 100) {
    text += "  - { name: r" + std::to_string(i) + ", match: { path: \"/srv/pmem/s" +
            std::to_string(i) + "/**/*.sst\" }, when: \"file.size > 1MiB\", dax: on }\n";
  }
  return text;
}

const Policy& HugePolicy() {
  static Policy* p = [] {
    LoadResult r = LoadPolicy({"huge.yaml", HugePolicyText(g_scopes)});
    if (!r.policy) {
      for (auto& e : r.errors) std::fprintf(stderr, "%s\n", e.ToString().c_str());
      std::abort();
    }
    return new Policy(std::move(*r.policy));
  }();
  return *p;
}

void BM_LoadHugePolicy(benchmark::State& state) {
  const std::string text = HugePolicyText(g_scopes);
  for (auto _ : state) {
    LoadResult r = LoadPolicy({"huge.yaml", text});
    if (!r.policy) state.SkipWithError("the huge policy did not load");
    benchmark::DoNotOptimize(r);
  }
  state.counters["scopes"] = static_cast<double>(g_scopes);
  state.counters["bytes"] = static_cast<double>(text.size());
}

// The floor for BM_LoadHugePolicy: yaml-cpp parsing the same text and walking
// its scalars, with no validation at all.
void BM_YamlParseBaseline(benchmark::State& state) {
  const std::string text = HugePolicyText(g_scopes);
  for (auto _ : state) {
    YAML::Node root = YAML::Load(text);
    size_t bytes = 0;
    for (const char* key : {"scopes", "protect"}) {
      for (const YAML::Node& item : root[key]) bytes += item.Scalar().size();
    }
    benchmark::DoNotOptimize(bytes);
  }
  state.counters["scopes"] = static_cast<double>(g_scopes);
}

void BM_LookupHugePolicy(benchmark::State& state) {
  const Policy& policy = HugePolicy();
  uint64_t x = 88172645463325252ull, hits = 0;
  std::string path;
  for (auto _ : state) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    path = "/srv/pmem/s" + std::to_string(x % (g_scopes + g_scopes / 10)) +
           ((x >> 32) & 1 ? "/keep/a/b.sst" : "/data/b.sst");
    hits += policy.ScopeOf(path) != nullptr;
    hits += policy.ProtectedBy(path) != nullptr;
  }
  benchmark::DoNotOptimize(hits);
  state.counters["lookups/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_GlobPathological(benchmark::State& state) {
  std::string pattern = "/srv";
  for (int i = 0; i < 12; ++i) pattern += "/**/a";
  pattern += "/**/x/**/b";
  std::string path = "/srv";
  for (int i = 0; i < 4000; ++i) path += "/a";
  path += "/b";
  std::string error;
  size_t offset = 0;
  auto glob = Glob::Compile(pattern, &error, &offset);
  for (auto _ : state) benchmark::DoNotOptimize(glob->Matches(path));
}

BENCHMARK(BM_Evaluate)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LoadHugePolicy)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_YamlParseBaseline)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LookupHugePolicy)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GlobPathological)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_FnmatchBaseline)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--files=", 8) == 0) {
      g_files = std::strtoull(argv[i] + 8, nullptr, 10);
    } else if (std::strncmp(argv[i], "--scopes=", 9) == 0) {
      g_scopes = std::strtoull(argv[i] + 9, nullptr, 10);
    } else {
      std::fprintf(stderr, "unknown argument %s (use --files=N or --scopes=N)\n", argv[i]);
      return 2;
    }
  }
  std::fprintf(stderr, "snapshot: %zu files, %zu rules\n", g_files, ThePolicy().rules.size());
  TheSnapshot();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
