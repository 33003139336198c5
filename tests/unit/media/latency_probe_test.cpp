// SPDX-License-Identifier: Apache-2.0
#include "plugins/media/latency_probe.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libpmem2.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>
#include <vector>

#include "tests/support/test_support.h"

namespace daxpolicy::media {
namespace {

using ::testing::HasSubstr;

struct AlignedBuffer {
  explicit AlignedBuffer(size_t n) : bytes(n), data(std::aligned_alloc(4096, n)) {}
  ~AlignedBuffer() { std::free(data); }
  size_t bytes;
  void* data;
};

const char* NextOf(const char* node) { return *reinterpret_cast<const char* const*>(node); }

// Follows the chain from start, checking every node lies in the buffer on a
// line boundary and is visited once; returns the nodes in visiting order.
std::vector<const char*> WalkCycle(const void* start, const AlignedBuffer& buf, size_t nodes) {
  const char* base = static_cast<const char*>(buf.data);
  std::set<const char*> seen;
  std::vector<const char*> order;
  const char* p = static_cast<const char*>(start);
  for (size_t i = 0; i < nodes; ++i) {
    EXPECT_GE(p, base);
    EXPECT_LT(p, base + buf.bytes);
    EXPECT_EQ((p - base) % kChaseNodeBytes, 0);
    EXPECT_TRUE(seen.insert(p).second) << "node visited twice at step " << i;
    order.push_back(p);
    p = NextOf(p);
  }
  EXPECT_EQ(p, start) << "the chain must close after visiting every node";
  return order;
}

TEST(APointerChase, CoversEveryNodeWhenAskedForAllOfThem) {
  AlignedBuffer buf(4096 * 16);
  const size_t n = buf.bytes / kChaseNodeBytes;
  void* start = BuildPointerChase(buf.data, buf.bytes, n, 42);
  ASSERT_NE(start, nullptr);
  EXPECT_EQ(WalkCycle(start, buf, n).size(), n);
}

TEST(APointerChase, ClampsTheNodeCountToTheBuffer) {
  AlignedBuffer buf(4096);
  void* start = BuildPointerChase(buf.data, buf.bytes, 1000000, 1);
  EXPECT_EQ(WalkCycle(start, buf, buf.bytes / kChaseNodeBytes).size(), 64u);
}

TEST(APointerChase, SpreadsASmallChainOverTheWholeBuffer) {
  AlignedBuffer buf(size_t{4} << 20);
  const size_t nodes = 1000;
  void* start = BuildPointerChase(buf.data, buf.bytes, nodes, 42);
  std::vector<const char*> order = WalkCycle(start, buf, nodes);
  std::vector<const char*> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  const char* base = static_cast<const char*>(buf.data);
  const size_t stratum = buf.bytes / nodes / kChaseNodeBytes * kChaseNodeBytes;
  for (size_t j = 0; j < nodes; ++j) {
    ASSERT_GE(static_cast<size_t>(sorted[j] - base), j * stratum) << j;
    ASSERT_LT(static_cast<size_t>(sorted[j] - base), (j + 1) * stratum) << j;
  }
  size_t adjacent = 0;
  for (size_t j = 0; j + 1 < nodes; ++j) {
    if (order[j + 1] - order[j] == static_cast<std::ptrdiff_t>(stratum)) ++adjacent;
  }
  EXPECT_LT(adjacent, 20u) << "a shuffled chain rarely steps to the next stratum";
}

TEST(APointerChase, DependsOnTheSeed) {
  AlignedBuffer a(4096), b(4096);
  BuildPointerChase(a.data, a.bytes, 64, 1);
  BuildPointerChase(b.data, b.bytes, 64, 2);
  EXPECT_NE(std::memcmp(a.data, b.data, a.bytes), 0);
}

TEST(APointerChase, NeedsTwoNodes) {
  AlignedBuffer buf(4096);
  EXPECT_EQ(BuildPointerChase(buf.data, 64, 10, 1), nullptr);
  EXPECT_EQ(BuildPointerChase(buf.data, buf.bytes, 1, 1), nullptr);
}

TEST(APointerChase, MeasuresAPositiveTimePerLoad) {
  AlignedBuffer buf(size_t{4} << 20);
  void* start = BuildPointerChase(buf.data, buf.bytes, 10000, 7);
  EvictChain(start, 10000);
  double ns = ChaseNsPerLoad(start, 10000);
  EXPECT_GT(ns, 0);
  EXPECT_LT(ns, 1e6);
}

int g_persist_calls = 0;
const void* g_last_persisted = nullptr;
void CountingPersist(const void* p, size_t size) {
  ++g_persist_calls;
  g_last_persisted = p;
  EXPECT_EQ(size, 8u);
}
void NoPersist(const void*, size_t) {}

TEST(AStorePersistLoop, PersistsEveryStoreAndKeepsTheChain) {
  AlignedBuffer buf(4096 * 4);
  const size_t n = buf.bytes / kChaseNodeBytes;
  void* start = BuildPointerChase(buf.data, buf.bytes, n, 3);
  std::vector<const char*> before = WalkCycle(start, buf, n);
  g_persist_calls = 0;
  double ns = StorePersistNsPerOp(start, 500, CountingPersist);
  EXPECT_EQ(g_persist_calls, 500);
  EXPECT_GT(ns, 0);
  // 500 steps over a 256-node cycle: the last store went to node 499 % 256.
  EXPECT_EQ(g_last_persisted, before[499 % n] + sizeof(void*));
  EXPECT_EQ(WalkCycle(start, buf, n), before) << "the links must survive the stores";
}

TEST(ALatencyMeasurement, ComparesTheMediaBufferWithDram) {
  ChaseConfig config;
  config.buffer_bytes = size_t{8} << 20;
  config.read_steps = 20000;
  config.write_steps = 1000;
  AlignedBuffer media(config.buffer_bytes);
  auto m = MeasureLatency(media.data, NoPersist, config);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_GT(m->read_latency_ns, 0);
  EXPECT_GT(m->write_latency_ns, 0);
  EXPECT_GT(m->dram_latency_ns, 0);
  EXPECT_DOUBLE_EQ(m->latency_ratio, m->read_latency_ns / m->dram_latency_ns);
  EXPECT_GT(m->latency_ratio, 0.1);
  EXPECT_LT(m->latency_ratio, 10);
  EXPECT_GT(m->measure_ms, 0);
  // Both buffers are DRAM here: a copy runs at well over 100 MB/s and below 1 TB/s.
  for (double bw : {m->read_bandwidth, m->dram_bandwidth, m->write_bandwidth}) {
    EXPECT_GT(bw, 1e8);
    EXPECT_LT(bw, 1e12);
  }
}

void CountingBytesPersist(const void* p, size_t size) {
  ++g_persist_calls;
  g_last_persisted = static_cast<const char*>(p) + size;
}

TEST(APersistLoop, FillsAndPersistsTheWholeRangeInChunks) {
  AlignedBuffer buf(size_t{3} << 20);
  g_persist_calls = 0;
  EXPECT_GT(PersistBytesPerSecond(buf.data, buf.bytes, CountingBytesPersist), 0);
  EXPECT_EQ(g_persist_calls, 3);
  EXPECT_EQ(g_last_persisted, static_cast<const char*>(buf.data) + buf.bytes);
  EXPECT_EQ(static_cast<unsigned char*>(buf.data)[buf.bytes - 1], 0xa5);
  EXPECT_GT(CopyBytesPerSecond(buf.data, buf.bytes), 0);
}

TEST(ALatencyMeasurement, RejectsABufferTooSmallToChase) {
  ChaseConfig config;
  config.buffer_bytes = 64;
  AlignedBuffer media(4096);
  auto m = MeasureLatency(media.data, NoPersist, config);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.error().message, HasSubstr("at least 2 cache lines"));
}

TEST(APmem2Error, TurnsSmallCodesIntoErrno) {
  Error e = Pmem2Error(-EACCES, "pmem2_map_new");
  EXPECT_EQ(e.code, EACCES);
  EXPECT_THAT(e.message, HasSubstr("pmem2_map_new: Permission denied"));
}

TEST(APmem2Error, NamesLibpmem2Codes) {
  Error e = Pmem2Error(PMEM2_E_GRANULARITY_NOT_SUPPORTED, "pmem2_map_new");
  EXPECT_EQ(e.code, EINVAL);
  EXPECT_THAT(e.message, HasSubstr("store granularity not available"));
  EXPECT_THAT(e.message, HasSubstr("-100009"));
  Error unknown = Pmem2Error(-100999, "x");
  EXPECT_THAT(unknown.message, HasSubstr("libpmem2 error -100999"));
}

TEST(AMountProbe, RejectsProbeDirectoriesOutsideTheMount) {
  daxpolicy::testing::TempDir mount;
  for (const char* dir : {"../escape", "/abs", "a//b", ".", ""}) {
    ProbeOptions o;
    o.probe_dir = dir;
    ProbeResult r = ProbeMount(mount.path().string(), o);
    EXPECT_EQ(r.outcome, ProbeResult::Outcome::kFailed) << dir;
    EXPECT_THAT(r.reason, HasSubstr("must be relative to the mount root")) << dir;
  }
}

TEST(AMountProbe, FailsWithTheErrnoForAMissingMountPoint) {
  ProbeResult r = ProbeMount("/nonexistent/daxpolicy-mount", ProbeOptions{});
  EXPECT_EQ(r.outcome, ProbeResult::Outcome::kFailed);
  EXPECT_THAT(r.reason, HasSubstr("No such file or directory"));
}

TEST(AnOutcomeName, SpellsEachOutcome) {
  EXPECT_STREQ(OutcomeName(ProbeResult::Outcome::kMeasured), "measured");
  EXPECT_STREQ(OutcomeName(ProbeResult::Outcome::kRefused), "refused");
  EXPECT_STREQ(OutcomeName(ProbeResult::Outcome::kFailed), "failed");
}

}  // namespace
}  // namespace daxpolicy::media
