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
      {"file.size > 8GiB || system.mem_pressure > 10 || file.size > 1GiB", Tri::kTrue},
      {"file.size > 8GiB || system.mem_pressure > 10 || file.size > 16GiB", Tri::kUnknown},
      {"file.size > 1GiB && system.mem_pressure > 10 && file.size > 8GiB", Tri::kFalse},
      {"file.size > 1GiB && system.mem_pressure > 10 && file.size > 2GiB", Tri::kUnknown},
      {"file.size > 1GiB && file.size > 2GiB && file.size > 3GiB", Tri::kTrue},
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

// "t || t || ... || t": a chain, not nesting, so the nesting limit never sees it.
std::string Chain(size_t terms, const std::string& term, const std::string& op) {
  std::string out;
  out.reserve(terms * (term.size() + op.size()));
  for (size_t i = 0; i < terms; ++i) out += (i ? op : "") + term;
  return out;
}

TEST(ExpressionLength, IsBoundedSoThatEvaluationCanTakeWhatCompiles) {
  // 250,000 OR'd terms once compiled into a left-deep tree whose evaluation
  // overflowed the stack; now the compiler refuses them, at the first comparison
  // past the limit.
  const std::string term = "file.size > 1";
  std::vector<ExprError> errors;
  EXPECT_FALSE(Expr::Compile(Chain(250'000, term, " || "), &errors).has_value());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message,
            "expression has more than 1000 comparisons; split it into several rules");
  EXPECT_EQ(errors[0].offset, kMaxComparisons * (term.size() + 4));
  errors.clear();
  EXPECT_FALSE(Expr::Compile(Chain(kMaxComparisons + 1, term, " && "), &errors).has_value());
  ASSERT_EQ(errors.size(), 1u);
}

TEST(ExpressionLength, EvaluatesTheLongestAllowedChainsTracedAndUntraced) {
  SnapshotBuilder b;
  uint32_t f = b.File("/srv/pmem/a", 4096);
  VarContext ctx{&b.snapshot(), &b.snapshot().files[f], 0};
  std::vector<ExprError> errors;
  // Every term false but the last: untraced evaluation reads the whole chain.
  auto any = Expr::Compile(
      Chain(kMaxComparisons - 1, "file.size > 1GiB", " || ") + " || file.size == 4KiB", &errors);
  ASSERT_TRUE(any.has_value()) << errors[0].message;
  EXPECT_EQ(any->Eval(ctx), Tri::kTrue);
  std::vector<ComparisonTrace> trace;
  EXPECT_EQ(any->EvalTraced(ctx, &trace), Tri::kTrue);
  EXPECT_EQ(trace.size(), kMaxComparisons);
  auto all = Expr::Compile(Chain(kMaxComparisons, "file.size >= 4KiB", " && "), &errors);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->Eval(ctx), Tri::kTrue);
  // Nesting at the limit, with a chain inside every level.
  std::string nested = "file.size < 1";
  for (int i = 1; i < kMaxNesting; ++i) nested = "(" + nested + " || file.size < 2)";
  auto deep = Expr::Compile("!" + nested, &errors);  // one level too many
  EXPECT_FALSE(deep.has_value());
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].message, "expression nests too deeply (more than 64 levels)");
  errors.clear();
  deep = Expr::Compile(nested, &errors);
  ASSERT_TRUE(deep.has_value()) << errors[0].message;
  EXPECT_EQ(deep->Eval(ctx), Tri::kFalse);
}

}  // namespace
}  // namespace daxpolicy::policy
