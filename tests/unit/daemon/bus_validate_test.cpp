// SPDX-License-Identifier: Apache-2.0
// The argument checks of the D-Bus service (and daxpolicyctl).

#include <gtest/gtest.h>

#include <string>

#include "daemon/bus/validate.h"

namespace daxpolicy::bus {
namespace {

TEST(APathCheck, AcceptsAbsoluteNormalizedPaths) {
  for (const char* p : {"/", "/srv/pmem", "/srv/pmem/db/a.sst", "/srv/pmem/.hidden",
                        "/srv/pmem/..x", "/srv/pmem/x..", "/srv/pmem/d\xc3\xa9j\xc3\xa0"}) {
    EXPECT_EQ(PathProblem(p), std::nullopt) << p;
  }
  EXPECT_EQ(PathProblem("/" + std::string(4095, 'a')), std::nullopt);
}

TEST(APathCheck, SaysWhatIsWrongWithABadPath) {
  EXPECT_EQ(PathProblem(""), "the path is empty");
  EXPECT_EQ(PathProblem("srv/x"), "the path 'srv/x' is not absolute");
  EXPECT_EQ(PathProblem("./x"), "the path './x' is not absolute");
  EXPECT_EQ(PathProblem("/srv/../etc"),
            "the path '/srv/../etc' is not normalized (it contains a '..' component)");
  EXPECT_EQ(PathProblem("/.."), "the path '/..' is not normalized (it contains a '..' component)");
  EXPECT_EQ(PathProblem("/srv/."),
            "the path '/srv/.' is not normalized (it contains a '.' component)");
  EXPECT_EQ(PathProblem("//srv"), "the path '//srv' is not normalized (it contains '//')");
  EXPECT_EQ(PathProblem("/srv/"), "the path '/srv/' ends with '/'");
  EXPECT_EQ(PathProblem("/" + std::string(4096, 'a')),
            "the path is 4097 bytes long, more than the 4096 allowed");
  EXPECT_EQ(PathProblem(std::string("/a\0b", 4)), "the path contains a NUL byte");
  EXPECT_EQ(PathProblem("/srv/\xff"), "the path is not valid UTF-8");
}

TEST(BusEscaping, LeavesValidUtf8AloneAndEscapesEverythingElse) {
  EXPECT_EQ(EscapeForBus("/srv/d\xc3\xa9j\xc3\xa0"), "/srv/d\xc3\xa9j\xc3\xa0");
  EXPECT_EQ(EscapeForBus("/srv/\xff\xfe"), "/srv/\\xff\\xfe");
  EXPECT_EQ(EscapeForBus("a\\b"), "a\\\\b");
  EXPECT_EQ(EscapeForBus(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(EscapeForBus("\xc0\xaf"), "\\xc0\\xaf");  // overlong '/'
  EXPECT_EQ(EscapeForBus("\xe2\x82"), "\\xe2\\x82");  // cut short
  for (const std::string& raw :
       {std::string("/srv/\xff"), std::string("a\\xff"), std::string("\\\\"),
        std::string("x\xed\xa0\x80y"), std::string("\x01\x7f\x80", 3)}) {
    const std::string sent = EscapeForBus(raw);
    EXPECT_TRUE(IsValidUtf8(sent)) << sent;
    EXPECT_EQ(sent.find('\0'), std::string::npos);
    EXPECT_EQ(UnescapeFromBus(sent), raw) << sent;
  }
  // Lenient on input: a backslash before anything else stands for itself.
  EXPECT_EQ(UnescapeFromBus("a\\qb\\x4"), "a\\qb\\x4");
}

TEST(BusEscaping, QuotesOnlyABoundedPrefixOfAnArgument) {
  EXPECT_EQ(QuoteArgument("abc"), "'abc'");
  const std::string quoted = QuoteArgument(std::string(5000, 'a'));
  EXPECT_EQ(quoted, "'" + std::string(kMaxQuotedBytes, 'a') + "'... (5000 bytes)");
  EXPECT_LT(PathProblem(std::string(4000, 'a'))->size(), 200u);
}

TEST(AUtf8Check, RejectsMalformedAndOverlongSequences) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("\xc3\xa9"));          // é
  EXPECT_TRUE(IsValidUtf8("\xe2\x82\xac"));      // €
  EXPECT_TRUE(IsValidUtf8("\xf0\x9f\x98\x80"));  // U+1F600
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));              // truncated
  EXPECT_FALSE(IsValidUtf8("\xc3\x28"));          // bad continuation
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\xaf"));      // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
}

TEST(AModeName, MapsOnlyTheContractNames) {
  EXPECT_EQ(HoldModeByName("dax"), policy::DaxState::kDax);
  EXPECT_EQ(HoldModeByName("page-cache"), policy::DaxState::kPageCache);
  for (const char* bad : {"", "DAX", "on", "off", "keep", "unknown", "page_cache"}) {
    EXPECT_EQ(HoldModeByName(bad), std::nullopt) << bad;
  }
}

TEST(AStateName, MapsEveryContractStateAndNothingElse) {
  EXPECT_EQ(FileStateByName("unmanaged"), policy::FileState::kUnmanaged);
  EXPECT_EQ(FileStateByName("in-sync"), policy::FileState::kInSync);
  EXPECT_EQ(FileStateByName("pending"), policy::FileState::kPending);
  EXPECT_EQ(FileStateByName("deferred"), policy::FileState::kDeferred);
  EXPECT_EQ(FileStateByName("observed"), policy::FileState::kObserved);
  EXPECT_EQ(FileStateByName("blocked"), policy::FileState::kBlocked);
  for (const char* bad : {"", "in_sync", "Pending", "all"}) {
    EXPECT_EQ(FileStateByName(bad), std::nullopt) << bad;
  }
}

TEST(ADesiredName, SaysKeepForUnknown) {
  EXPECT_EQ(DesiredName(policy::DaxState::kUnknown), "keep");
  EXPECT_EQ(DesiredName(policy::DaxState::kDax), "dax");
  EXPECT_EQ(DesiredName(policy::DaxState::kPageCache), "page-cache");
}

}  // namespace
}  // namespace daxpolicy::bus
