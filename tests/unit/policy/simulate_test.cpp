// SPDX-License-Identifier: Apache-2.0
// Traces (reading, writing, bad input), the page-cache model, the simulator's
// runs and the workload generators.

#include "policy/simulate.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "policy/loader.h"
#include "policy/trace.h"
#include "policy/workloads.h"

namespace daxpolicy::policy {
namespace {

constexpr double kMiB = 1024.0 * 1024;
constexpr double kGiB = 1024 * kMiB;

const char* kHeader =
    "daxpolicy-trace 1\n"
    "interval_ns 10000000000\n"
    "media pmem0 read_latency_ns=305 dram_latency_ns=101 read_bandwidth=2.9e9 "
    "dram_bandwidth=7.4e9 write_bandwidth=2.2e9\n"
    "mount /srv/pmem media=pmem0\n";

struct BadTrace {
  const char* name;
  std::string text;
  const char* error;
};

class ABadTrace : public ::testing::TestWithParam<BadTrace> {};

TEST_P(ABadTrace, IsRejectedWithItsLineAndField) {
  std::string error;
  EXPECT_FALSE(ParseTrace(GetParam().text, &error));
  EXPECT_EQ(error, GetParam().error);
}

const BadTrace kBadTraces[] = {
    {"empty", "", "the trace is empty"},
    {"not_a_trace", "hello\n",
     "line 1: not a daxpolicy trace (expected 'daxpolicy-trace 1' on the first line)"},
    {"future_version", "daxpolicy-trace 2\n",
     "line 1: trace format version 2 is newer than this build reads (1)"},
    {"truncated", std::string(kHeader) + "t 10000000000\nf /srv/pmem/a size=10 mo",
     "line 6: truncated: the last line has no newline (the trace was cut off)"},
    {"no_interval", "daxpolicy-trace 1\nt 1\n",
     "line 2: 'interval_ns' must come before the first 't' line"},
    {"unknown_media", "daxpolicy-trace 1\ninterval_ns 1000000000\nmount /srv media=nvdimm\n",
     "line 3, field 'media': unknown media 'nvdimm'"},
    {"media_out_of_range",
     "daxpolicy-trace 1\ninterval_ns 1000000000\nmedia m read_latency_ns=305 "
     "dram_latency_ns=101 read_bandwidth=2.9 dram_bandwidth=7.4e9 write_bandwidth=2.2e9\n",
     "line 3: media 'm': read_bandwidth must be between 1MB/s and 1TB/s"},
    {"hit_out_of_range",
     std::string(kHeader) + "t 10000000000\nf /srv/pmem/a size=10 mode=dax hit=1.5\n",
     "line 6, field 'hit': value 1.5 is out of range (0 to 1)"},
    {"unknown_field",
     std::string(kHeader) + "t 10000000000\nf /srv/pmem/a size=10 mode=dax colour=red\n",
     "line 6, field 'colour': unknown field of an 'f' line"},
    {"bad_mode", std::string(kHeader) + "t 10000000000\nf /srv/pmem/a size=10 mode=fast\n",
     "line 6, field 'mode': must be dax or page-cache (got 'fast')"},
    {"missing_size", std::string(kHeader) + "t 10000000000\nf /srv/pmem/a mode=dax\n",
     "line 6, field 'size': missing"},
    {"time_goes_back", std::string(kHeader) + "t 20000000000\nt 10000000000\n",
     "line 6, field 't': time 10000000000 does not follow the previous interval"},
    {"file_twice",
     std::string(kHeader) + "t 10000000000\nf /a size=1 mode=dax\nf /a size=1 mode=dax\n",
     "line 7: file '/a' appears twice in one interval"},
    {"bad_escape", std::string(kHeader) + "t 10000000000\nf /a%4 size=1 mode=dax\n",
     "line 6: bad %-escape in path '/a%4'"},
    {"relative_path", std::string(kHeader) + "t 10000000000\nf a size=1 mode=dax\n",
     "line 6: path 'a' is not an absolute path of at most 4096 bytes"},
    {"header_after_data", std::string(kHeader) + "t 10000000000\npage_size 4096\n",
     "line 6: 'page_size' must come before the first interval ('t' line)"},
    {"negative", std::string(kHeader) + "t 10000000000\nf /a size=-1 mode=dax\n",
     "line 6, field 'size': value -1 is out of range (0 to 9.2e+18)"},
    {"not_a_number", std::string(kHeader) + "t 10000000000\nf /a size=1 mode=dax read=lots\n",
     "line 6, field 'read': 'lots' is not a number"},
};

INSTANTIATE_TEST_SUITE_P(Table, ABadTrace, ::testing::ValuesIn(kBadTraces),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(ATrace, ReadsBackWhatItWrites) {
  std::string text = std::string(kHeader) +
                     "t 10000000000 pressure=1.5\n"
                     "f /srv/pmem/with%20space size=4096 mode=page-cache read=8192 calls=2 "
                     "write=- distinct=4096 hit=0.5 resident=4096\n"
                     "f /srv/pmem/b size=1 mode=dax read=- calls=- write=- distinct=- hit=- "
                     "resident=-\n";
  std::string error;
  auto t = ParseTrace(text, &error);
  ASSERT_TRUE(t) << error;
  ASSERT_EQ(t->paths.size(), 2u);
  EXPECT_EQ(t->paths[0], "/srv/pmem/with space");
  EXPECT_EQ(t->intervals[0].files[0].hit_ratio, 0.5);
  EXPECT_EQ(t->intervals[0].files[1].read_bytes, -1);
  EXPECT_EQ(t->MountOf("/srv/pmem/b"), 0);
  EXPECT_EQ(t->MountOf("/srv/pmemx"), -1);
  const std::string written = FormatTrace(*t);
  EXPECT_NE(written.find("f /srv/pmem/with%20space size=4096"), std::string::npos) << written;
  auto again = ParseTrace(written, &error);
  ASSERT_TRUE(again) << error;
  EXPECT_EQ(FormatTrace(*again), written);
}

// Doubles are written in full: %.9g lost the last digits of a ratio or a rate.
TEST(ATrace, WritesEveryDigitOfItsFigures) {
  std::string error;
  auto t = ParseTrace(std::string(kHeader) + "t 10000000000 pressure=0.123456789012345\n" +
                          "f /srv/pmem/a size=1 mode=page-cache read=1234567.891234567 "
                          "hit=0.999999999999\n",
                      &error);
  ASSERT_TRUE(t) << error;
  auto again = ParseTrace(FormatTrace(*t), &error);
  ASSERT_TRUE(again) << error;
  EXPECT_EQ(again->intervals[0].mem_pressure, t->intervals[0].mem_pressure);
  EXPECT_EQ(again->intervals[0].files[0].read_bytes, 1234567.891234567);
  EXPECT_EQ(again->intervals[0].files[0].hit_ratio, 0.999999999999);
  EXPECT_EQ(FormatTrace(*again), FormatTrace(*t));
}

Policy Load(const std::string& body) {
  LoadResult r = LoadPolicy({"p.yaml", "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\n" + body});
  EXPECT_TRUE(r.errors.empty()) << (r.errors.empty() ? "" : r.errors[0].ToString());
  return r.policy ? std::move(*r.policy) : Policy{};
}

Trace Parse(const std::string& text) {
  std::string error;
  auto t = ParseTrace(text, &error);
  EXPECT_TRUE(t) << error;
  return t ? *t : Trace{};
}

// One file re-read 10 times per interval, one streamed once.
std::string TwoFiles(int intervals) {
  std::string out = std::string(kHeader) + "dram_budget 1073741824\n";
  for (int i = 1; i <= intervals; ++i) {
    out += "t " + std::to_string(i * 10000000000LL) + " pressure=0.5\n";
    out +=
        "f /srv/pmem/db/hot size=67108864 mode=page-cache read=671088640 calls=10240 "
        "distinct=67108864\n";
    out +=
        "f /srv/pmem/logs/log size=107374182400 mode=page-cache read=1073741824 calls=1024 "
        "distinct=1073741824\n";
  }
  return out;
}

TEST(TheSimulator, ModelsHitsWithinTheBudgetAndChargesDaxAtMediaSpeed) {
  Trace t = Parse(TwoFiles(6));
  SimResult r;
  std::string error;
  ASSERT_TRUE(Simulate(t, Load("defaults: { dax: keep }\n"), {}, &r, &error)) << error;
  ASSERT_EQ(r.groups.size(), 2u);
  EXPECT_EQ(r.groups[0].name, "db");
  EXPECT_EQ(r.groups[1].name, "logs");
  // Never: the log fills the 1 GiB budget every interval and pushes the hot file out.
  EXPECT_LE(r.total.columns[kSimNever].dram_peak, kGiB + 1);
  // Always: no page cache at all.
  EXPECT_EQ(r.total.columns[kSimAlways].dram_peak, 0);
  // The oracle keeps the hot file cached and streams the log with DAX: faster than both.
  EXPECT_LT(r.total.columns[kSimOracle].time_ns, r.total.columns[kSimNever].time_ns);
  EXPECT_LT(r.total.columns[kSimOracle].time_ns, r.total.columns[kSimAlways].time_ns);
  // dax: keep leaves the recorded modes: the policy run is the never run.
  EXPECT_DOUBLE_EQ(r.total.columns[kSimPolicy].time_ns, r.total.columns[kSimNever].time_ns);
  EXPECT_EQ(r.total.columns[kSimPolicy].switches, 0u);
  EXPECT_EQ(r.time_per_interval.size(), 6u);
}

TEST(TheSimulator, RunsDaxAutoThroughEvaluateWithItsHysteresis) {
  Trace t = Parse(TwoFiles(120));
  SimResult r;
  std::string error;
  Policy p = Load(R"(defaults: { min_dwell: 10m }
rules:
  - name: cost
    match: { path: "/srv/pmem/**" }
    for: 30s
    dax: auto
)");
  ASSERT_TRUE(Simulate(t, p, {}, &r, &error)) << error;
  const SimGroup& logs = r.groups[1];
  // The log switches to DAX once, after `for:` (3 intervals plus the first decision).
  EXPECT_EQ(logs.columns[kSimPolicy].switches, 1u);
  EXPECT_EQ(r.groups[0].columns[kSimPolicy].switches, 0u);
  EXPECT_LT(r.total.columns[kSimPolicy].time_ns, r.total.columns[kSimNever].time_ns);
  EXPECT_LT(r.total.columns[kSimPolicy].time_ns, r.total.columns[kSimAlways].time_ns);
  EXPECT_GE(r.total.columns[kSimOracle].time_ns / r.total.columns[kSimPolicy].time_ns, 0.95);
}

// Rules on file.cache_hit_ratio see the modelled ratio of files read through
// the page cache, as the daemon sees the traced one.
TEST(TheSimulator, GivesRulesTheHitRatioOfPageCacheReads) {
  Trace t = Parse(TwoFiles(6));
  SimResult r;
  std::string error;
  Policy p = Load(R"(defaults: { dax: keep }
rules:
  - name: streamed
    match: { path: "/srv/pmem/**" }
    when: "file.cache_hit_ratio < 0.5"
    dax: on
)");
  ASSERT_TRUE(Simulate(t, p, {}, &r, &error)) << error;
  // The streamed log misses every page and goes to DAX; the hot file hits.
  EXPECT_EQ(r.groups[1].columns[kSimPolicy].switches, 1u);
  EXPECT_EQ(r.groups[0].columns[kSimPolicy].switches, 0u);
}

TEST(TheSimulator, ComparesItsHitRatiosWithTheRecordedOnes) {
  std::string text = std::string(kHeader) + "dram_budget 1073741824\n";
  for (int i = 1; i <= 4; ++i) {
    text += "t " + std::to_string(i * 10000000000LL) + "\n";
    // 64 MiB read over a 16 MiB range: the first interval misses 16 MiB.
    text += "f /srv/pmem/a size=16777216 mode=page-cache read=67108864 distinct=16777216 hit=" +
            std::string(i == 1 ? "0.75" : "1") + "\n";
  }
  SimResult r;
  std::string error;
  ASSERT_TRUE(Simulate(Parse(text), Load(""), {}, &r, &error)) << error;
  EXPECT_TRUE(r.hits.empty()) << "the replay with the recorded modes runs only when asked for";
  SimOptions o;
  o.hits = true;
  ASSERT_TRUE(Simulate(Parse(text), Load(""), o, &r, &error)) << error;
  ASSERT_EQ(r.hits.size(), 1u);
  EXPECT_DOUBLE_EQ(r.hits[0].measured, (0.75 + 3) / 4);
  EXPECT_DOUBLE_EQ(r.hits[0].predicted, (0.75 + 3) / 4);
}

TEST(TheSimulator, NeedsMediaFiguresForEveryMount) {
  Trace t = Parse("daxpolicy-trace 1\ninterval_ns 1000000000\nmount /srv/pmem\n");
  SimResult r;
  std::string error;
  EXPECT_FALSE(Simulate(t, Load(""), {}, &r, &error));
  EXPECT_EQ(error,
            "mount /srv/pmem: no media figures for this mount: the probe has not measured it and "
            "no cost.mounts entry covers it (the trace has none: name a preset with --media or "
            "add a cost.mounts entry to the policy)");
  SimOptions o;
  o.media = "nvdimm";
  EXPECT_FALSE(Simulate(t, Load(""), o, &r, &error));
  EXPECT_EQ(error, "unknown media 'nvdimm' (expected one of: optane-dcpmm, cxl, dram)");
  o.media = "cxl";
  EXPECT_TRUE(Simulate(t, Load(""), o, &r, &error)) << error;
}

// Each file's modes: the trace's changes, dated at the end of the interval
// before the one that shows them, next to the policy run's switches.
struct ModesCase {
  const char* name;
  // The file's traced mode in the 1 s intervals after the first ("" = absent).
  std::vector<const char*> recorded;
  std::vector<std::pair<double, DaxState>> want_recorded, want_policy;  // (s from start, mode)
};

class TheFileModes : public ::testing::TestWithParam<ModesCase> {};

TEST_P(TheFileModes, DateRecordedChangesAndPolicySwitches) {
  const ModesCase& c = GetParam();
  std::string text =
      "daxpolicy-trace 1\ninterval_ns 1000000000\nmount /srv/pmem\nt 1000000000\n"
      "f /srv/pmem/other size=4096 mode=page-cache read=0 resident=0\n";
  for (size_t i = 0; i < c.recorded.size(); ++i) {
    text += "t " + std::to_string((i + 2) * 1000000000LL) + "\n";
    if (*c.recorded[i] == 0) continue;
    text += "f /srv/pmem/f size=67108864 mode=" + std::string(c.recorded[i]) + " read=8388608";
    text += std::string(c.recorded[i]) == "dax" ? "\n" : " hit=0 resident=8388608\n";
  }
  SimOptions o;
  o.media = "optane-dcpmm";
  o.modes = true;
  SimResult r;
  std::string error;
  // A file the page cache does not serve goes to DAX at once, for at least 1h.
  Policy p = Load(R"(defaults: { min_dwell: 1h }
rules:
  - name: missing
    match: { path: "/srv/pmem/f" }
    when: "file.cache_hit_ratio < 0.1"
    dax: auto
)");
  ASSERT_TRUE(Simulate(Parse(text), p, o, &r, &error)) << error;
  ASSERT_EQ(r.modes.size(), 2u);
  EXPECT_EQ(r.modes[0].path, "/srv/pmem/other");
  EXPECT_TRUE(r.modes[0].recorded.empty() && r.modes[0].policy.empty());
  const SimFileModes& m = r.modes[1];
  EXPECT_EQ(m.path, "/srv/pmem/f");
  auto as_pairs = [&](const std::vector<SimSwitch>& s) {
    std::vector<std::pair<double, DaxState>> out;
    for (const SimSwitch& w : s) out.emplace_back((w.t_ns - r.start_ns) / 1e9, w.to);
    return out;
  };
  EXPECT_EQ(as_pairs(m.recorded), c.want_recorded);
  EXPECT_EQ(as_pairs(m.policy), c.want_policy);
}

constexpr DaxState kDaxMode = DaxState::kDax, kPc = DaxState::kPageCache;
INSTANTIATE_TEST_SUITE_P(
    Traces, TheFileModes,
    ::testing::Values(
        // Streamed from its first interval (ending at 2 s): both switch at its end.
        ModesCase{"SwitchedAfterItsFirstInterval",
                  {"page-cache", "dax", "dax"},
                  {{2, kDaxMode}},
                  {{2, kDaxMode}}},
        // Seen in DAX in the interval ending at 6 s: dated 5 s.
        ModesCase{"AppearingLater",
                  {"", "", "page-cache", "page-cache", "dax"},
                  {{5, kDaxMode}},
                  {{4, kDaxMode}}},
        // Absent in between: the date is still the end of the interval before.
        ModesCase{
            "AbsentInBetween", {"page-cache", "", "", "dax"}, {{4, kDaxMode}}, {{2, kDaxMode}}},
        // Recorded back and forth; the policy keeps a DAX file (no hit ratio, no rule).
        ModesCase{"BackAndForth", {"dax", "page-cache", "dax"}, {{2, kPc}, {3, kDaxMode}}, {}}),
    [](const auto& info) { return std::string(info.param.name); });

// A file that first appears after the first interval held no page cache
// before it (the trace format leaves idle, uncached files out), whatever its
// residency at the end of that interval: its first reads miss.
TEST(TheSimulator, StartsAFileThatAppearsLaterWithAnEmptyCache) {
  std::string text = std::string(kHeader);
  text += "t 10000000000\nf /srv/pmem/a size=4096 mode=page-cache read=0 resident=4096\n";
  for (int i = 2; i <= 3; ++i) {
    text += "t " + std::to_string(i * 10000000000LL) + "\n";
    // 64 MiB read once: with the recorded end-of-interval residency taken as
    // the start, the model would hit a quarter.
    text += "f /srv/pmem/b size=268435456 mode=page-cache read=67108864 hit=0 resident=67108864\n";
  }
  SimOptions o;
  o.hits = true;
  SimResult r;
  std::string error;
  ASSERT_TRUE(Simulate(Parse(text), Load(""), o, &r, &error)) << error;
  ASSERT_EQ(r.hits.size(), 1u);
  EXPECT_EQ(r.hits[0].path, "/srv/pmem/b");
  EXPECT_LT(r.hits[0].predicted, 0.2);
}

// The recommended config/examples/auto.yaml on the generated mixed workload
// (docs/simulate.md): better than both mount-wide guesses, with less DRAM than
// dax=never, and at least 95 % of the static oracle, for each media preset.

// The recommended config/examples/auto.yaml on the generated mixed workload
// (docs/simulate.md): better than both mount-wide guesses, with less DRAM than
// dax=never, and at least 95 % of the static oracle, for each media preset.
class TheRecommendedAutoPolicy : public ::testing::TestWithParam<const char*> {};

TEST_P(TheRecommendedAutoPolicy, BeatsBothGuessesAndReachesTheOracleOnTheMixedWorkload) {
  std::ifstream in(DAXPOLICY_SOURCE_DIR "/config/examples/auto.yaml");
  ASSERT_TRUE(in) << "config/examples/auto.yaml";
  std::stringstream text;
  text << in.rdbuf();
  LoadResult loaded = LoadPolicy({"auto.yaml", text.str()});
  ASSERT_TRUE(loaded.errors.empty()) << loaded.errors[0].ToString();
  std::string error;
  auto trace = GenerateWorkload(std::string("mixed:media=") + GetParam(), &error);
  ASSERT_TRUE(trace) << error;
  SimOptions o;
  o.media = GetParam();
  SimResult r;
  ASSERT_TRUE(Simulate(*trace, *loaded.policy, o, &r, &error)) << error;
  const auto& c = r.total.columns;
  EXPECT_LT(c[kSimPolicy].time_ns, c[kSimAlways].time_ns);
  EXPECT_LT(c[kSimPolicy].time_ns, c[kSimNever].time_ns);
  EXPECT_LE(c[kSimPolicy].dram_byte_ns, c[kSimNever].dram_byte_ns);
  EXPECT_GE(c[kSimOracle].time_ns / c[kSimPolicy].time_ns, 0.95);
  for (const SimGroup& g : r.groups) {
    // Every group, the logs included, gets most of what the oracle gets.
    EXPECT_GE(g.columns[kSimOracle].time_ns / g.columns[kSimPolicy].time_ns, 0.8) << g.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Media, TheRecommendedAutoPolicy, ::testing::Values("optane-dcpmm", "cxl"),
                         [](const auto& info) {
                           std::string name = info.param;
                           return name == "optane-dcpmm" ? std::string("Optane")
                                                         : std::string("Cxl");
                         });

TEST(TheWorkloadGenerators, AreDeterministicAndReadBackAsTraces) {
  std::string error;
  auto a = GenerateWorkload("mixed:duration=10m,seed=7", &error);
  ASSERT_TRUE(a) << error;
  auto b = GenerateWorkload("mixed:duration=10m,seed=7", &error);
  ASSERT_TRUE(b) << error;
  const std::string text = FormatTrace(*a);
  EXPECT_EQ(text, FormatTrace(*b));
  EXPECT_EQ(a->intervals.size(), 60u);
  auto back = ParseTrace(text, &error);
  ASSERT_TRUE(back) << error;
  for (const char* group :
       {"/srv/pmem/kv/", "/srv/pmem/logs/", "/srv/pmem/vm/base.qcow2", "/srv/pmem/moving/"}) {
    EXPECT_NE(text.find(group), std::string::npos) << group;
  }
}

TEST(TheWorkloadGenerators, NameTheParameterAtFault) {
  std::string error;
  EXPECT_FALSE(GenerateWorkload("kv:tablez=3", &error));
  EXPECT_EQ(error, "unknown parameter 'tablez' for workload 'kv'");
  EXPECT_FALSE(GenerateWorkload("db", &error));
  EXPECT_EQ(error, "unknown workload 'db' (expected one of: kv, logs, vm, moving, mixed)");
  EXPECT_FALSE(GenerateWorkload("logs:rate=5s", &error));
  EXPECT_EQ(error, "parameter 'rate' needs a rate (e.g. 64MiB/s) (got '5s')");
  EXPECT_FALSE(GenerateWorkload("kv+kv:tables=3", &error));
  EXPECT_EQ(error,
            "workload 'kv' appears twice in the spec ('mixed' is all four); name each "
            "workload once");
  EXPECT_FALSE(GenerateWorkload("mixed+logs", &error));
  EXPECT_EQ(error,
            "workload 'logs' appears twice in the spec ('mixed' is all four); name each "
            "workload once");
  EXPECT_FALSE(GenerateWorkload("vm:media=nvdimm", &error));
  EXPECT_EQ(error, "unknown media 'nvdimm' (expected one of: optane-dcpmm, cxl, dram)");
}

}  // namespace
}  // namespace daxpolicy::policy
