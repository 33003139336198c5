// SPDX-License-Identifier: Apache-2.0
// The cost model and dax: auto: estimates, the margin, hysteresis, holds, explain.

#include "policy/cost.h"

#include <gtest/gtest.h>

#include "policy/evaluate.h"
#include "policy/loader.h"
#include "tests/unit/policy/snapshot_builder.h"

namespace daxpolicy::policy {
namespace {

using testing::SnapshotBuilder;
constexpr int64_t kSec = kNanosPerSecond;
constexpr double kMiB = 1024.0 * 1024;
constexpr double kGiB = 1024 * kMiB;

struct CostCase {
  const char* name;
  const char* media;
  CostInput in;
  CostChoice want;
};

CostInput Input(double size, double read_bytes, bool page_cache, double hit, double resident,
                double pressure = 0) {
  CostInput in;
  in.interval_s = 10;
  in.commit_s = 600;
  in.size_bytes = size;
  in.read_bytes = read_bytes;
  in.in_page_cache = page_cache;
  in.hit_ratio = hit;
  in.resident_bytes = resident;
  in.mem_pressure = pressure;
  return in;
}

class ACostCase : public ::testing::TestWithParam<CostCase> {};

TEST_P(ACostCase, ChoosesTheCheaperModeOnlyWhenItWinsByTheMargin) {
  const CostCase& c = GetParam();
  CostSettings settings;
  std::optional<MediaParams> media = MediaPreset(c.media);
  ASSERT_TRUE(media);
  CostEstimate e = EstimateCost(c.in, *media, settings.constants);
  EXPECT_EQ(ChooseByCost(e, settings, c.in.interval_s), c.want)
      << FormatCost(e, *media, settings, c.in.interval_s);
}

const CostCase kCostCases[] = {
    // 1 GiB read per 10 s from a 64 MiB file that the cache already serves.
    {"hot_small_file_on_optane", "optane-dcpmm", Input(64 * kMiB, kGiB, true, 0.99, 64 * kMiB),
     CostChoice::kPageCache},
    {"hot_small_file_on_cxl", "cxl", Input(64 * kMiB, kGiB, true, 0.99, 64 * kMiB),
     CostChoice::kPageCache},
    // The same reads now under DAX: the prediction covers the fill once.
    {"hot_small_file_now_dax", "optane-dcpmm", Input(64 * kMiB, kGiB, false, -1, 0),
     CostChoice::kPageCache},
    // 1 GiB per 10 s streamed through a 100 GiB log: every byte misses.
    {"log_streamed_once", "optane-dcpmm", Input(100 * kGiB, kGiB, false, -1, 0), CostChoice::kDax},
    {"log_streamed_once_measured", "optane-dcpmm", Input(100 * kGiB, kGiB, true, 0.0, 2 * kGiB),
     CostChoice::kDax},
    // Nothing read, 1 GiB held while the system stalls 20 % of the time on memory.
    {"idle_cached_file_under_pressure", "optane-dcpmm", Input(kGiB, 0, true, -1, kGiB, 20),
     CostChoice::kDax},
    // A page held with no pressure is not worth a switch (min_saving).
    {"idle_cached_page_without_pressure", "optane-dcpmm", Input(kGiB, 0, true, -1, 4096, 0),
     CostChoice::kUndecided},
    // Media as fast as DRAM: the page cache saves only the DAX call overhead.
    {"dram_backed_namespace", "dram", Input(64 * kMiB, kGiB, true, 1.0, 64 * kMiB),
     CostChoice::kUndecided},
    {"nothing_at_all", "cxl", Input(kGiB, 0, false, -1, 0), CostChoice::kUndecided},
};

INSTANTIATE_TEST_SUITE_P(Table, ACostCase, ::testing::ValuesIn(kCostCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(ACostEstimate, SumsItsTermsAndPricesDramByPressure) {
  const MediaParams m = *MediaPreset("optane-dcpmm");
  CostConstants k;
  CostInput in = Input(kGiB, 2.9e9, true, 0.5, kGiB / 2, 10);
  in.read_calls = 1000;
  CostEstimate e = EstimateCost(in, m, k);
  EXPECT_DOUBLE_EQ(e.dax_media_ns, 1e9);  // 2.9 GB at 2.9 GB/s
  EXPECT_DOUBLE_EQ(e.dax_latency_ns, 1000 * 305.0);
  EXPECT_DOUBLE_EQ(e.dax_call_ns, 1000 * (k.call_ns + k.dax_call_ns));
  EXPECT_DOUBLE_EQ(e.dax_ns, e.dax_media_ns + e.dax_latency_ns + e.dax_call_ns);
  EXPECT_FALSE(e.hit_ratio_predicted);
  EXPECT_DOUBLE_EQ(e.pc_hit_copy_ns, 1.45e9 / 7.4e9 * 1e9);
  EXPECT_DOUBLE_EQ(e.pc_dram_bytes, kGiB / 2);
  EXPECT_DOUBLE_EQ(e.pc_dram_ns, 0.5 * 10 * k.dram_price_ns * 0.10);
  EXPECT_DOUBLE_EQ(e.pc_ns, e.pc_hit_copy_ns + e.pc_miss_fill_ns + e.pc_latency_ns + e.pc_call_ns +
                                e.pc_write_ns + e.pc_dram_ns);
}

TEST(ACostEstimate, PredictsHitsFromTheReadsOverTheCommitment) {
  const MediaParams m = *MediaPreset("optane-dcpmm");
  // 10 MiB per 10 s of a 100 MiB file, committed for 600 s: 600 MiB read, 100 MiB filled.
  CostEstimate e = EstimateCost(Input(100 * kMiB, 10 * kMiB, false, -1, 0), m, CostConstants{});
  EXPECT_TRUE(e.hit_ratio_predicted);
  EXPECT_NEAR(e.hit_ratio, 1 - 100.0 / 600, 1e-12);
  EXPECT_DOUBLE_EQ(e.pc_dram_bytes, 100 * kMiB);
}

TEST(AMediaParams, NamesTheFigureOutOfRange) {
  MediaParams m = *MediaPreset("cxl");
  EXPECT_EQ(m.Problem(), "");
  m.read_bandwidth = 5;  // bytes/s: a unit mistake
  EXPECT_EQ(m.Problem(), "read_bandwidth must be between 1MB/s and 1TB/s");
  m = *MediaPreset("cxl");
  m.dram_latency_ns = 0;
  EXPECT_EQ(m.Problem(), "dram_latency is missing");
  EXPECT_FALSE(MediaPreset("optane"));
}

// --- dax: auto in Evaluate -------------------------------------------------

Policy Load(const std::string& body) {
  std::string text = "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\n" + body;
  LoadResult r = LoadPolicy({"p.yaml", text});
  EXPECT_TRUE(r.errors.empty()) << (r.errors.empty() ? "" : r.errors[0].ToString());
  return r.policy ? std::move(*r.policy) : Policy{};
}

const char* kAutoPolicy = R"(defaults: { min_dwell: 10m }
cost:
  mounts: [ { path: /srv/pmem, media: optane-dcpmm } ]
rules:
  - name: cost
    match: { path: "/srv/pmem/**" }
    for: 30s
    dax: auto
)";

// A 100 GiB log read at 100 MiB/s with no hits: DAX is cheaper.
void Streaming(SnapshotBuilder& b, uint32_t f) {
  FileRecord& r = b.at(f);
  r.available |= kHaveAccess | kHaveHitRatio;
  r.read_bytes_rate = static_cast<float>(100 * kMiB);
  r.cache_hit_ratio = 0;
}
void Idle(SnapshotBuilder& b, uint32_t f) {
  FileRecord& r = b.at(f);
  r.available |= kHaveAccess;
  r.read_bytes_rate = 0;
  r.cache_hit_ratio = 0;
}

TEST(DaxAuto, SwitchesToTheCheaperModeOnlyAfterItsPreferenceHeldForTheRuleDuration) {
  Policy p = Load(kAutoPolicy);
  SnapshotBuilder b;
  uint32_t f = b.File("/srv/pmem/logs/a.log", uint64_t{100} << 30);
  Streaming(b, f);
  RuleState rs;
  Decisions d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 0});
  EXPECT_TRUE(d.files[f].by_auto);
  EXPECT_EQ(d.files[f].desired, DaxState::kDax);
  EXPECT_EQ(d.files[f].reason, Reason::kFor);
  EXPECT_EQ(ReasonText(p, b.snapshot(), d.files[f]),
            "rule 'cost' (dax: auto) has preferred dax for 0ns of the required 30s");
  d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 30 * kSec});
  EXPECT_TRUE(d.files[f].apply);
  EXPECT_EQ(d.auto_to_dax, 1u);
  EXPECT_EQ(d.auto_to_page_cache, 0u);
}

TEST(DaxAuto, RestartsTheDurationWhenThePreferenceLapses) {
  Policy p = Load(kAutoPolicy);
  SnapshotBuilder b;
  uint32_t f = b.File("/srv/pmem/logs/a.log", uint64_t{100} << 30);
  b.Cache(f, 1);  // one resident page: nothing worth a switch once idle
  RuleState rs;
  Streaming(b, f);
  Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 0});
  Idle(b, f);
  Decisions d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 20 * kSec});
  EXPECT_EQ(d.files[f].reason, Reason::kAutoUndecided);
  EXPECT_EQ(d.files[f].state, FileState::kInSync);
  EXPECT_FALSE(d.files[f].apply);
  Streaming(b, f);
  d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 40 * kSec});
  EXPECT_EQ(d.files[f].reason, Reason::kFor);
  EXPECT_EQ(d.files[f].wait_ns, 30 * kSec);
}

TEST(DaxAuto, KeepsTheFileManagedAndAsItIsWithoutAccessFigures) {
  Policy p = Load(kAutoPolicy);
  SnapshotBuilder b;
  uint32_t f = b.File("/srv/pmem/logs/a.log", uint64_t{100} << 30, DaxState::kDax, DaxState::kDax);
  RuleState rs;
  Decisions d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 0});
  EXPECT_EQ(d.files[f].desired, DaxState::kDax);
  EXPECT_EQ(d.files[f].state, FileState::kInSync);
  EXPECT_EQ(d.files[f].reason, Reason::kAutoNoAccess);
  EXPECT_FALSE(d.files[f].apply);
}

TEST(DaxAuto, UsesTheProbesFiguresAndSaysWhenThereAreNone) {
  Policy p = Load("defaults: { dax: auto, min_dwell: 0s }\n");
  SnapshotBuilder b;
  uint32_t f = b.File("/srv/pmem/logs/a.log", uint64_t{100} << 30);
  Streaming(b, f);
  RuleState rs;
  Decisions d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 0});
  EXPECT_EQ(d.files[f].reason, Reason::kAutoNoMedia);
  EXPECT_FALSE(d.files[f].apply);
  b.Media(/*read_ns=*/305, /*ratio=*/3.0);
  d = Evaluate(p, b.snapshot(), rs, {}, {Mode::kEnforce, 0});
  EXPECT_TRUE(d.files[f].apply);  // defaults have no `for:`
  EXPECT_EQ(d.files[f].desired, DaxState::kDax);
  Explanation e = Explain(p, b.snapshot(), rs, {}, {Mode::kEnforce, 0}, f);
  EXPECT_NE(e.cost.find("probe of pmem0"), std::string::npos) << e.cost;
}

TEST(DaxAuto, GivesWayToAnApplicationHold) {
  Policy p = Load(kAutoPolicy);
  SnapshotBuilder b;
  uint32_t f = b.File("/srv/pmem/logs/a.log", uint64_t{100} << 30, DaxState::kDax, DaxState::kDax);
  Streaming(b, f);
  Holds holds{{KeyOf(b.snapshot(), b.at(f)), Hold{DaxState::kPageCache, "db", 1}}};
  RuleState rs;
  Decisions d = Evaluate(p, b.snapshot(), rs, holds, {Mode::kEnforce, 0});
  EXPECT_TRUE(d.files[f].held);
  EXPECT_FALSE(d.files[f].by_auto);
  EXPECT_TRUE(d.files[f].apply);
  EXPECT_EQ(d.auto_to_page_cache + d.auto_to_dax, 0u);
}

TEST(DaxAuto, ExplainShowsBothEstimatesTheirTermsAndTheMargin) {
  Policy p = Load(kAutoPolicy);
  SnapshotBuilder b;
  uint32_t f = b.File("/srv/pmem/logs/a.log", uint64_t{100} << 30);
  Streaming(b, f);
  RuleState rs;
  Explanation e = Explain(p, b.snapshot(), rs, {}, {Mode::kEnforce, 0}, f);
  std::string text = FormatExplanation(e, b.snapshot());
  for (const char* want :
       {"cost (dax: auto, last interval):", "optane-dcpmm preset (Yang et al., FAST'20)",
        "    dax:        ", "media reads", "    page cache: ", "misses", "DRAM",
        "hit ratio 0.00 measured", "    margin:     dax saves", "needs 20% and 1ms: dax"}) {
    EXPECT_NE(text.find(want), std::string::npos) << want << "\n" << text;
  }
}

// Access tracing without the miss tracepoint gives rates but no hit ratio: the
// ratio left at 0 is not a measurement, the model predicts one instead.
TEST(DaxAuto, PredictsTheHitRatioWhenAccessTracingMeasuredNone) {
  Policy p = Load(kAutoPolicy);
  SnapshotBuilder b;
  uint32_t f = b.File("/srv/pmem/db/hot.db", uint64_t{64} << 20);
  FileRecord& r = b.at(f);
  r.available |= kHaveAccess;
  r.read_bytes_rate = static_cast<float>(100 * kMiB);
  r.cache_hit_ratio = 0;
  RuleState rs;
  std::string text =
      FormatExplanation(Explain(p, b.snapshot(), rs, {}, {Mode::kEnforce, 0}, f), b.snapshot());
  EXPECT_NE(text.find(" predicted"), std::string::npos) << text;
  EXPECT_EQ(text.find("hit ratio 0.00 measured"), std::string::npos) << text;
  b.at(f).available |= kHaveHitRatio;
  text = FormatExplanation(Explain(p, b.snapshot(), rs, {}, {Mode::kEnforce, 0}, f), b.snapshot());
  EXPECT_NE(text.find("hit ratio 0.00 measured"), std::string::npos) << text;
}

TEST(DaxAuto, ReportsMediaFiguresOutOfRange) {
  Policy p = Load(R"(defaults: { dax: auto }
cost:
  mounts: [ { path: /srv/pmem, read_latency: 300ns, dram_bandwidth: 4MiB/s } ]
)");
  SnapshotBuilder b;
  uint32_t f = b.File("/srv/pmem/a", 1 << 20);
  Streaming(b, f);
  std::string why;
  std::string path = "/srv/pmem/a";
  auto m = MediaParamsFor(p, b.snapshot(), b.at(f), path, &why);
  ASSERT_TRUE(m) << why;  // 4 MiB/s is in range; the media bandwidth is derived from it
  EXPECT_NEAR(m->read_bandwidth, 4 * kMiB * 101 / 300, 1);
  EXPECT_EQ(m->Problem(), "");
  p.cost_mounts[0].set.dram_bandwidth = 0.5;  // only a policy built in code can do this
  EXPECT_FALSE(MediaParamsFor(p, b.snapshot(), b.at(f), path, &why));
  EXPECT_NE(why.find("must be between 1MB/s and 1TB/s"), std::string::npos) << why;
}

}  // namespace
}  // namespace daxpolicy::policy
