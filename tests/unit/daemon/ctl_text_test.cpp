// SPDX-License-Identifier: Apache-2.0
// daxpolicyctl's JSON encoding, tables and path handling.

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "daemon/ctl/json.h"
#include "daemon/ctl/text.h"

namespace daxpolicy::ctl {
namespace {

TEST(AJsonString, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(JsonString(""), "\"\"");
  EXPECT_EQ(JsonString("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(JsonString("\n\r\t\b\f"), "\"\\n\\r\\t\\b\\f\"");
  EXPECT_EQ(JsonString(std::string("\x01\x1f\x7f", 3)), "\"\\u0001\\u001f\\u007f\"");
  EXPECT_EQ(JsonString(std::string("a\0b", 3)), "\"a\\u0000b\"");
  EXPECT_EQ(JsonString("/srv/d\xc3\xa9j\xc3\xa0"), "\"/srv/d\xc3\xa9j\xc3\xa0\"");
  EXPECT_EQ(JsonString("/srv/\xff"), "\"/srv/\\ufffd\"");
}

TEST(AJsonNumber, PrintsIntegersAndShortestDoubles) {
  EXPECT_EQ(JsonNumber(uint64_t{18446744073709551615u}), "18446744073709551615");
  EXPECT_EQ(JsonNumber(int64_t{-1}), "-1");
  EXPECT_EQ(JsonNumber(350.5), "350.5");
  EXPECT_EQ(JsonNumber(900.0), "900");
  EXPECT_EQ(JsonNumber(0.1), "0.1");
  EXPECT_EQ(JsonNumber(std::numeric_limits<double>::quiet_NaN()), "null");
  EXPECT_EQ(JsonNumber(std::numeric_limits<double>::infinity()), "null");
}

TEST(AJsonObject, KeepsInsertionOrderAndNests) {
  std::string inner = JsonObject().Add("a", JsonBool(true)).str();
  EXPECT_EQ(JsonObject().Add("z", JsonNumber(uint64_t{1})).Add("k\"", inner).str(),
            "{\"z\":1,\"k\\\"\":{\"a\":true}}");
  EXPECT_EQ(JsonObject().str(), "{}");
  EXPECT_EQ(JsonArray({}), "[]");
  EXPECT_EQ(JsonArray({"1", "\"x\""}), "[1,\"x\"]");
}

TEST(ATable, AlignsColumnsAndLeavesNoTrailingSpaces) {
  EXPECT_EQ(FormatTable({"PATH", "STATE"}, {{"/a/long/path", "in-sync"}, {"/b", ""}}),
            "PATH          STATE\n"
            "/a/long/path  in-sync\n"
            "/b\n");
}

TEST(ATable, ShowsControlCharactersInCellsEscaped) {
  EXPECT_EQ(FormatTable({"P"}, {{"/a\nFAKE  row"}}), "P\n/a\\x0aFAKE  row\n");
  EXPECT_EQ(Printable("x\x1b[2Jy"), "x\\x1b[2Jy");
}

TEST(ATableRow, IsLaidOutLikeARowOfTheTable) {
  EXPECT_EQ(FormatRow({"/b", "in\x1b"}, {12, 7}), "/b            in\\x1b");
  EXPECT_EQ(FormatRow({"/b", ""}, {12, 7}), "/b");
  // A cell wider than its column (the widths came from an earlier read) is not cut.
  EXPECT_EQ(FormatRow({"/a/longer/path", "x"}, {4}), "/a/longer/path  x");
}

TEST(AnAbsolutePath, JoinsRelativeArgumentsToTheCurrentDirectory) {
  EXPECT_EQ(AbsolutePath("a.sst", "/srv/pmem/db"), "/srv/pmem/db/a.sst");
  EXPECT_EQ(AbsolutePath("./x/../a.sst", "/srv/pmem"), "/srv/pmem/a.sst");
  EXPECT_EQ(AbsolutePath("../logs/", "/srv/pmem/db"), "/srv/pmem/logs");
  EXPECT_EQ(AbsolutePath("x//y", "/"), "/x/y");
  EXPECT_EQ(AbsolutePath(".", "/srv"), "/srv");
}

TEST(AnAbsolutePath, LeavesAbsoluteArgumentsForTheDaemonToJudge) {
  EXPECT_EQ(AbsolutePath("/srv//x/../y", "/tmp"), "/srv//x/../y");
}

TEST(HumanBytes, UsesBinaryUnits) {
  EXPECT_EQ(HumanBytes(0), "0 B");
  EXPECT_EQ(HumanBytes(1023), "1023 B");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(16ull << 30), "16.0 GiB");
}

}  // namespace
}  // namespace daxpolicy::ctl
