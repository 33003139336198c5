// SPDX-License-Identifier: Apache-2.0
// Globs, units and durations, table-driven.

#include <gtest/gtest.h>

#include <limits>

#include "policy/glob.h"
#include "policy/units.h"
#include "policy/variables.h"

namespace daxpolicy::policy {
namespace {

struct GlobCase {
  const char* pattern;
  const char* path;
  bool matches;
};

const GlobCase kGlobCases[] = {
    {"/srv/pmem/db/**/*.sst", "/srv/pmem/db/a.sst", true},
    {"/srv/pmem/db/**/*.sst", "/srv/pmem/db/x/y/z/a.sst", true},
    {"/srv/pmem/db/**/*.sst", "/srv/pmem/db/a.sst.tmp", false},
    {"/srv/pmem/db/**/*.sst", "/srv/pmem/dbx/a.sst", false},
    {"/srv/pmem/db/**", "/srv/pmem/db", true},
    {"/srv/pmem/db/**", "/srv/pmem/db/deep/er", true},
    {"/srv/pmem/db/**", "/srv/pmem/dbz", false},
    {"/srv/pmem/*.log", "/srv/pmem/a.log", true},
    {"/srv/pmem/*.log", "/srv/pmem/sub/a.log", false},  // '*' never crosses '/'
    {"/srv/pmem/?.img", "/srv/pmem/a.img", true},
    {"/srv/pmem/?.img", "/srv/pmem/ab.img", false},
    {"/srv/pmem/[ab]*", "/srv/pmem/beta", true},
    {"/srv/pmem/[ab]*", "/srv/pmem/gamma", false},
    {"/srv/pmem/[!ab]*", "/srv/pmem/gamma", true},
    {"/srv/pmem/[a-c]x", "/srv/pmem/bx", true},
    {"/srv/pmem/[a-c]x", "/srv/pmem/dx", false},
    {"/srv/pmem/\\*", "/srv/pmem/*", true},
    {"/srv/pmem/\\*", "/srv/pmem/a", false},
    {"/srv/**/vm/*.qcow2", "/srv/pmem/vm/a.qcow2", true},
    {"/srv/**/vm/*.qcow2", "/srv/vm/a.qcow2", true},
    {"/srv/**/vm/*.qcow2", "/srv/pmem/vm/x/a.qcow2", false},
    {"/srv/pmem/**/cache/**", "/srv/pmem/a/cache/b/c", true},
    {"/srv/pmem/*", "/srv/pmem", false},
    {"/srv/pmem/a*b*c", "/srv/pmem/aXXbYYc", true},
    {"/srv/pmem/a*b*c", "/srv/pmem/aXXbYY", false},
    {"/srv/pmem/name\nwith newline", "/srv/pmem/name\nwith newline", true},
    {"/srv/**/**/x", "/srv/x", true},
    {"/srv/**/a/**/b/**/c", "/srv/a/b/c", true},
    {"/srv/**/a/**/b/**/c", "/srv/q/a/r/b/s/t/c", true},
    {"/srv/**/a/**/b/**/c", "/srv/a/c/b", false},
    {"/srv/**/a/**/b/**/c", "/srv/a/b/c/d", false},
    {"/srv/**/*.x/**", "/srv/d/e.x", true},
    {"/srv/**/*.x/**", "/srv/d/e.x/f/g", true},
    {"/srv/**/*.x/**", "/srv/d/e.y/f", false},
    {"/**", "/anything/at/all", true},
    {"/**/*", "/a", true},
    {"/*/**/z", "/a/b/c/z", true},
    {"/*/**/z", "/z", false},
};

TEST(AGlob, MatchesPathsComponentWise) {
  for (const GlobCase& c : kGlobCases) {
    std::string error;
    size_t offset = 0;
    auto g = Glob::Compile(c.pattern, &error, &offset);
    ASSERT_TRUE(g.has_value()) << c.pattern << ": " << error;
    EXPECT_EQ(g->Matches(c.path), c.matches) << c.pattern << " vs " << c.path;
  }
}

// Many `**` against a deep directory chain that almost matches: a backtracking
// matcher tries every way to split the chain among the `**` (exponential in
// their number); the automaton reads each component once per pattern segment.
TEST(AGlob, MatchesPathologicalPatternsInLinearSteps) {
  for (size_t pairs : {12, 40}) {  // 28 and 84 segments: both ways of keeping the active set
    std::string pattern = "/srv";
    for (size_t i = 0; i < pairs; ++i) pattern += "/**/a";
    pattern += "/**/x/**/b";
    std::string path = "/srv";
    const size_t depth = 2000;
    for (size_t i = 0; i < depth; ++i) path += "/a";
    std::string error;
    size_t offset = 0;
    auto g = Glob::Compile(pattern, &error, &offset);
    ASSERT_TRUE(g.has_value()) << error;
    const size_t segments = 2 * pairs + 4;  // "srv" is the literal prefix
    uint64_t steps = 0;
    EXPECT_FALSE(g->Matches(path + "/b", &steps)) << pairs;  // no "x": every split fails
    EXPECT_LE(steps, segments * (depth + 1)) << pairs;
    steps = 0;
    EXPECT_TRUE(g->Matches(path + "/x/b", &steps)) << pairs;
    EXPECT_LE(steps, segments * (depth + 2)) << pairs;
    EXPECT_FALSE(g->Matches(path + "/x/c/b/d")) << pairs;
    EXPECT_TRUE(g->Matches(path + "/x/c/b")) << pairs;
  }
}

TEST(AGlob, ExposesItsLiteralPrefixForFastFiltering) {
  std::string error;
  size_t offset = 0;
  EXPECT_EQ(Glob::Compile("/srv/pmem/db/**/*.sst", &error, &offset)->literal_prefix(),
            "/srv/pmem/db");
  EXPECT_EQ(Glob::Compile("/*/x", &error, &offset)->literal_prefix(), "/");
  EXPECT_TRUE(Glob::Compile("/srv/pmem/**", &error, &offset)->MatchesWholeSubtree());
  EXPECT_FALSE(Glob::Compile("/srv/pmem/**/*.x", &error, &offset)->MatchesWholeSubtree());
}

TEST(AGlob, RejectsMalformedPatternsWithAnOffset) {
  struct Bad {
    const char* pattern;
    const char* error;
    size_t offset;
  } cases[] = {
      {"", "empty path pattern", 0},
      {"rel/**", "path pattern 'rel/**' is not absolute", 0},
      {"/a//b", "empty path component ('//') in '/a//b'", 3},
      {"/a/../b", "'..' is not allowed in path pattern '/a/../b'", 3},
      {"/a/b**", "'**' must be a whole path component in '/a/b**'", 4},
      {"/a/[bc", "unclosed '[' in path pattern '/a/[bc'", 3},
      {"/a/b\\", "trailing '\\' in path pattern '/a/b\\'", 4},
  };
  for (const Bad& c : cases) {
    std::string error;
    size_t offset = 99;
    EXPECT_FALSE(Glob::Compile(c.pattern, &error, &offset).has_value()) << c.pattern;
    EXPECT_EQ(error, c.error);
    EXPECT_EQ(offset, c.offset) << c.pattern;
  }
}

TEST(PathIsWithin, ComparesWholeComponents) {
  EXPECT_TRUE(PathIsWithin("/srv/pmem", "/srv/pmem"));
  EXPECT_TRUE(PathIsWithin("/srv/pmem/a", "/srv/pmem"));
  EXPECT_FALSE(PathIsWithin("/srv/pmemx", "/srv/pmem"));
  EXPECT_FALSE(PathIsWithin("/srv", "/srv/pmem"));
  EXPECT_TRUE(PathIsWithin("/anything", "/"));
}

TEST(Quantities, ParseEveryUnitOfTheContract) {
  struct Case {
    const char* text;
    double value;
    UnitKind kind;
  } cases[] = {
      {"0.8", 0.8, UnitKind::kNone},
      {"12", 12, UnitKind::kNone},
      {"1B", 1, UnitKind::kSize},
      {"1KiB", 1024, UnitKind::kSize},
      {"1MiB", 1048576, UnitKind::kSize},
      {"1GiB", 1073741824.0, UnitKind::kSize},
      {"2TiB", 2199023255552.0, UnitKind::kSize},
      {"1.5MiB", 1572864, UnitKind::kSize},
      {"300ns", 300, UnitKind::kDuration},
      {"2us", 2000, UnitKind::kDuration},
      {"5ms", 5e6, UnitKind::kDuration},
      {"10s", 1e10, UnitKind::kDuration},
      {"5m", 3e11, UnitKind::kDuration},
      {"2h", 7.2e12, UnitKind::kDuration},
      {"1h30m", 5.4e12, UnitKind::kDuration},
      {"80%", 80, UnitKind::kPercent},
      {"10MiB/s", 10485760, UnitKind::kRate},
      {"100B/s", 100, UnitKind::kRate},
  };
  for (const Case& c : cases) {
    std::string error;
    auto q = ParseQuantity(c.text, &error);
    ASSERT_TRUE(q.has_value()) << c.text << ": " << error;
    EXPECT_DOUBLE_EQ(q->value, c.value) << c.text;
    EXPECT_EQ(q->kind, c.kind) << c.text;
  }
}

TEST(Quantities, RejectUnknownUnitsAndNonNumbers) {
  for (const char* bad : {"", "MiB", "1MB", "1 MiB", "1kib", "1d", "-1", "1.2.3s", "abc"}) {
    std::string error;
    EXPECT_FALSE(ParseQuantity(bad, &error).has_value()) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(Quantities, RejectValuesThatDoNotFitTheirType) {
  const std::string huge(80, '7');
  const std::string cases[] = {
      huge + "0m",                  // one unit, beyond int64 nanoseconds
      "999999999999h",              // likewise, below the double limit
      huge,                         // plain number beyond 2^64
      "16777216TiB",                // exactly 2^64 bytes
      std::string(400, '9') + "B",  // strtod gives infinity
      std::string(400, '9') + "MiB/s",
  };
  for (const std::string& text : cases) {
    std::string error;
    EXPECT_FALSE(ParseQuantity(text, &error).has_value()) << text;
    EXPECT_EQ(error, "'" + text + "' is too large") << text;
  }
  std::string error;
  EXPECT_FALSE(ParseSize("16777216TiB", &error).has_value());
  EXPECT_EQ(ParseSize("16777215TiB", &error), 16777215ULL << 40);
  EXPECT_TRUE(ParseQuantity("100000h", &error).has_value()) << error;
}

TEST(Durations, NeedAUnitAndComposeLeftToRight) {
  std::string error;
  EXPECT_EQ(ParseDuration("1h2m3s", &error), 3723 * kNanosPerSecond);
  EXPECT_EQ(ParseDuration("250ms", &error), 250'000'000);
  EXPECT_FALSE(ParseDuration("10", &error).has_value());
  EXPECT_EQ(error, "duration '10' needs a unit (ns, us, ms, s, m or h)");
  EXPECT_FALSE(ParseDuration("5MiB", &error).has_value());
  EXPECT_FALSE(ParseDuration("99999999999999h", &error).has_value());
  EXPECT_EQ(error, "duration '99999999999999h' is too long");
}

TEST(Formatting, IsReadable) {
  EXPECT_EQ(FormatSize(1024 * 1024), "1 MiB");
  EXPECT_EQ(FormatSize(1.5 * 1024 * 1024 * 1024), "1.5 GiB");
  EXPECT_EQ(FormatSize(512), "512 B");
  EXPECT_EQ(FormatDuration(350), "350ns");
  EXPECT_EQ(FormatDuration(90 * kNanosPerSecond), "1m30s");
  EXPECT_EQ(FormatDuration(3 * 3600 * kNanosPerSecond), "3h0m0s");
  EXPECT_EQ(FormatDuration(-90 * kNanosPerSecond), "-1m30s");
  EXPECT_EQ(FormatDuration(std::numeric_limits<int64_t>::min()), "-2562047h47m16s");
  // explain prints measured values; one that does not fit int64 nanoseconds is still printed.
  EXPECT_EQ(FormatValue(ValueKind::kDuration, 4.5e77), "4.5e+77ns");
  EXPECT_EQ(FormatValue(ValueKind::kLatency, 350), "350ns");
}

}  // namespace
}  // namespace daxpolicy::policy
