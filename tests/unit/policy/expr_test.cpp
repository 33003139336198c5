// SPDX-License-Identifier: Apache-2.0
// The when-language: units, precedence, three-valued logic for unavailable data.

#include "policy/expr.h"

#include <gtest/gtest.h>

#include "policy/units.h"
#include "tests/unit/policy/snapshot_builder.h"

namespace daxpolicy::policy {
namespace {

using testing::SnapshotBuilder;

Tri EvalOn(const std::string& text, SnapshotBuilder& b, uint32_t file) {
  std::vector<ExprError> errors;
  auto e = Expr::Compile(text, &errors);
  EXPECT_TRUE(e.has_value()) << text << ": " << (errors.empty() ? "" : errors[0].message);
  if (!e) return Tri::kUnknown;
  VarContext ctx{&b.snapshot(), &b.snapshot().files[file], 10 * kNanosPerSecond};
  return e->Eval(ctx);
}

struct Case {
  const char* expr;
  Tri expected;
};

// One file: 4 GiB (1048576 pages), 1h old, 86% resident, 10% recently evicted,
// on media with 300ns reads, ratio 2.5, health ok; no PSI, no access tracing.
class AnExpression : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = b_.File("/srv/pmem/db/a.sst", 4ull << 30);
    b_.Cache(file_, 900000, 110000);  // 0.858 resident, 0.105 recently evicted
    b_.Media(300, 2.5);
  }
  SnapshotBuilder b_;
  uint32_t file_ = 0;
};

TEST_F(AnExpression, ComparesNumbersWithUnits) {
  const Case cases[] = {
      {"file.size >= 4GiB", Tri::kTrue},
      {"file.size > 4GiB", Tri::kFalse},
      {"file.size == 4294967296", Tri::kTrue},
      {"4GiB <= file.size", Tri::kTrue},
      {"file.age > 59m", Tri::kTrue},
      {"file.age > 1h1s", Tri::kFalse},
      {"file.cache_resident_ratio >= 0.8", Tri::kTrue},
      {"file.cache_resident_ratio >= 80%", Tri::kTrue},
      {"file.cache_resident_ratio > 0.86", Tri::kFalse},
      {"file.recently_evicted_ratio >= 0.1", Tri::kTrue},
      {"file.cache_pages > 0", Tri::kTrue},
      {"file.dirty_ratio == 0", Tri::kTrue},
      {"media.read_latency_ns == 300", Tri::kTrue},
      {"media.read_latency_ns < 1us", Tri::kTrue},
      {"media.write_latency_ns == 600ns", Tri::kTrue},
      {"media.latency_ratio >= 2", Tri::kTrue},
      {"media.health == 'ok'", Tri::kTrue},
      {"media.health != \"critical\"", Tri::kTrue},
      {"file.size != file.size", Tri::kFalse},
  };
  for (const Case& c : cases) EXPECT_EQ(EvalOn(c.expr, b_, file_), c.expected) << c.expr;
}

TEST_F(AnExpression, BindsNotTighterThanAndTighterThanOr) {
  const Case cases[] = {
      {"file.size > 1GiB || file.size > 8GiB && file.size > 16GiB", Tri::kTrue},
      {"(file.size > 1GiB || file.size > 8GiB) && file.size > 16GiB", Tri::kFalse},
      {"!file.size > 1GiB", Tri::kFalse},
      {"!(file.size > 8GiB) && media.latency_ratio > 2", Tri::kTrue},
      {"!!(file.size > 1GiB)", Tri::kTrue},
      {"((((file.size > 1GiB))))", Tri::kTrue},
  };
  for (const Case& c : cases) EXPECT_EQ(EvalOn(c.expr, b_, file_), c.expected) << c.expr;
}

TEST_F(AnExpression, TreatsUnavailableDataAsUnknownWhichNeverBecomesTrue) {
  // system.mem_pressure (no PSI) and file.read_bytes_rate (no tracing) are unavailable.
  const Case cases[] = {
      {"system.mem_pressure > 10", Tri::kUnknown},
      {"!(system.mem_pressure > 10)", Tri::kUnknown},
      {"system.mem_pressure > 10 && file.size > 1GiB", Tri::kUnknown},
      {"system.mem_pressure > 10 && file.size > 8GiB", Tri::kFalse},
      {"system.mem_pressure > 10 || file.size > 1GiB", Tri::kTrue},
      {"system.mem_pressure > 10 || file.size > 8GiB", Tri::kUnknown},
      {"file.read_bytes_rate > 1MiB/s", Tri::kUnknown},
      {"file.reuse > 2", Tri::kUnknown},
      {"file.cache_hit_ratio < 0.5", Tri::kUnknown},
      {"system.cache_hit_ratio < 0.5", Tri::kUnknown},
  };
  for (const Case& c : cases) EXPECT_EQ(EvalOn(c.expr, b_, file_), c.expected) << c.expr;
}

TEST_F(AnExpression, ReportsEachComparisonWithItsLiveValueWhenTraced) {
  std::vector<ExprError> errors;
  auto e = Expr::Compile("media.latency_ratio >= 2 && system.mem_pressure > 10%", &errors);
  ASSERT_TRUE(e.has_value());
  VarContext ctx{&b_.snapshot(), &b_.snapshot().files[file_], 0};
  std::vector<ComparisonTrace> trace;
  EXPECT_EQ(e->EvalTraced(ctx, &trace), Tri::kUnknown);
  ASSERT_EQ(trace.size(), 2u);
  EXPECT_EQ(trace[0].text, "media.latency_ratio >= 2");
  EXPECT_EQ(trace[0].result, Tri::kTrue);
  EXPECT_EQ(trace[0].lhs_value, "2.5");
  EXPECT_EQ(trace[0].rhs_value, "2");
  EXPECT_EQ(trace[1].text, "system.mem_pressure > 10%");
  EXPECT_EQ(trace[1].result, Tri::kUnknown);
  EXPECT_EQ(trace[1].lhs_value, "unavailable");
  EXPECT_EQ(trace[1].unavailable,
            "system.mem_pressure: PSI is unavailable (/proc/pressure/memory missing)");
}

TEST_F(AnExpression, SeesNoMediaVariablesWhenTheMountHasNoDevice) {
  b_.snapshot().mounts[0].media = -1;
  EXPECT_EQ(EvalOn("media.latency_ratio >= 2", b_, file_), Tri::kUnknown);
  EXPECT_EQ(EvalOn("media.health == 'unknown'", b_, file_), Tri::kUnknown);
}

TEST_F(AnExpression, HasNoCacheVariablesForDirectoriesOrUnsampledFiles) {
  uint32_t dir = b_.Dir("/srv/pmem/db");
  EXPECT_EQ(EvalOn("file.cache_pages >= 0", b_, dir), Tri::kUnknown);
  uint32_t mincore_only = b_.File("/srv/pmem/db/b", 4096);
  b_.Cache(mincore_only, 1);
  b_.at(mincore_only).available |= kHaveEvictedOnly;
  EXPECT_EQ(EvalOn("file.cache_resident_ratio == 1", b_, mincore_only), Tri::kTrue);
  EXPECT_EQ(EvalOn("file.recently_evicted_ratio >= 0", b_, mincore_only), Tri::kUnknown);
}

TEST_F(AnExpression, SeesNoPageCacheOnAnEffectiveDaxFile) {
  uint32_t f = b_.File("/srv/pmem/dax", 1 << 20, DaxState::kDax, DaxState::kDax);
  EXPECT_EQ(EvalOn("file.cache_resident_ratio == 0", b_, f), Tri::kTrue);
  EXPECT_EQ(EvalOn("file.cache_pages == 0", b_, f), Tri::kTrue);
  EXPECT_EQ(EvalOn("file.dirty_ratio == 0", b_, f), Tri::kTrue);
  EXPECT_EQ(EvalOn("file.recently_evicted_ratio >= 0", b_, f), Tri::kUnknown);
}

TEST(ExpressionNesting, IsBoundedInsteadOfOverflowingTheStack) {
  std::string deep(10000, '(');
  std::vector<ExprError> errors;
  EXPECT_FALSE(Expr::Compile(deep + "file.size > 1", &errors).has_value());
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].message, "expression nests too deeply (more than 64 levels)");
}

}  // namespace
}  // namespace daxpolicy::policy
