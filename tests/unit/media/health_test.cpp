// SPDX-License-Identifier: Apache-2.0
#include "plugins/media/health.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <ndctl/libndctl.h>

#include "tests/unit/media/fake_media.h"

namespace daxpolicy::media {
namespace {

using policy::MediaHealth;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

DimmInfo Dimm(const std::string& name, std::optional<SmartData> smart) {
  DimmInfo d;
  d.devname = name;
  d.smart_supported = smart.has_value();
  d.smart = smart;
  return d;
}

SmartData WithHealthBits(unsigned bits) {
  SmartData s = testing::HealthySmart();
  s.health_bits = bits;
  return s;
}

TEST(ADimmAssessment, IsOkForAHealthyDimm) {
  HealthAssessment a = AssessDimm(Dimm("nmem0", testing::HealthySmart()));
  EXPECT_EQ(a.health, MediaHealth::kOk);
  EXPECT_THAT(a.reasons, IsEmpty());
}

TEST(ADimmAssessment, MapsSmartHealthStates) {
  struct Row {
    unsigned bits;
    MediaHealth expected;
    const char* reason;
  } rows[] = {
      {ND_SMART_NON_CRITICAL_HEALTH, MediaHealth::kWarning, "nmem0: health non-critical"},
      {ND_SMART_CRITICAL_HEALTH, MediaHealth::kCritical, "nmem0: health critical"},
      {ND_SMART_FATAL_HEALTH, MediaHealth::kCritical, "nmem0: health fatal"},
      {ND_SMART_FATAL_HEALTH | ND_SMART_NON_CRITICAL_HEALTH, MediaHealth::kCritical,
       "nmem0: health fatal"},
  };
  for (const Row& row : rows) {
    HealthAssessment a = AssessDimm(Dimm("nmem0", WithHealthBits(row.bits)));
    EXPECT_EQ(a.health, row.expected) << row.bits;
    EXPECT_THAT(a.reasons, ElementsAre(row.reason)) << row.bits;
  }
}

TEST(ADimmAssessment, ReportsEveryProblemOfAnUnhealthyDimm) {
  SmartData s = WithHealthBits(ND_SMART_CRITICAL_HEALTH);
  s.life_used_percent = 95;
  s.unsafe_shutdowns = 7;
  HealthAssessment a = AssessDimm(Dimm("nmem1", s));
  EXPECT_EQ(a.health, MediaHealth::kCritical);
  EXPECT_THAT(a.reasons, ElementsAre("nmem1: health critical", "nmem1: life used 95%"));
}

TEST(ADimmAssessment, WarnsAboutWearOnAnOtherwiseHealthyDimm) {
  SmartData s = testing::HealthySmart();
  s.life_used_percent = 95;
  HealthAssessment a = AssessDimm(Dimm("nmem0", s));
  EXPECT_EQ(a.health, MediaHealth::kWarning);
  EXPECT_THAT(a.reasons, ElementsAre("nmem0: life used 95%"));
}

TEST(ADimmAssessment, WarnsWhenSparesRunLow) {
  SmartData s = testing::HealthySmart();
  s.spares_percent = 5;
  HealthAssessment a = AssessDimm(Dimm("nmem0", s));
  EXPECT_EQ(a.health, MediaHealth::kWarning);
  EXPECT_THAT(a.reasons, ElementsAre("nmem0: spares 5%"));
}

TEST(ADimmAssessment, IsUnknownWithTheReasonForADimmWithoutSmart) {
  DimmInfo d = Dimm("nmem2", std::nullopt);
  d.smart_unavailable_reason = "DIMM family has no SMART health command";
  HealthAssessment a = AssessDimm(d);
  EXPECT_EQ(a.health, MediaHealth::kUnknown);
  EXPECT_THAT(a.reasons, ElementsAre("nmem2: DIMM family has no SMART health command"));
}

TEST(ADimmAssessment, IsUnknownWhenSmartHasNoHealthField) {
  SmartData s = testing::HealthySmart();
  s.health_bits.reset();
  HealthAssessment a = AssessDimm(Dimm("nmem0", s));
  EXPECT_EQ(a.health, MediaHealth::kUnknown);
  EXPECT_THAT(a.reasons, ElementsAre(HasSubstr("no valid health state")));
}

TEST(CombinedHealth, TakesTheWorstDimm) {
  DimmInfo ok = Dimm("nmem0", testing::HealthySmart());
  DimmInfo bad = Dimm("nmem1", WithHealthBits(ND_SMART_CRITICAL_HEALTH));
  HealthAssessment a = CombineHealth({&ok, &bad}, 0);
  EXPECT_EQ(a.health, MediaHealth::kCritical);
  EXPECT_THAT(a.reasons, ElementsAre("nmem1: health critical"));
}

TEST(CombinedHealth, IsUnknownWhenOneDimmCannotTell) {
  DimmInfo ok = Dimm("nmem0", testing::HealthySmart());
  DimmInfo dark = Dimm("nmem1", std::nullopt);
  dark.smart_unavailable_reason = "SMART command failed: Permission denied";
  HealthAssessment a = CombineHealth({&ok, &dark}, 0);
  EXPECT_EQ(a.health, MediaHealth::kUnknown);
  EXPECT_THAT(a.reasons, ElementsAre("nmem1: SMART command failed: Permission denied"));
}

TEST(CombinedHealth, WarnsAboutBadBlocks) {
  DimmInfo ok = Dimm("nmem0", testing::HealthySmart());
  HealthAssessment a = CombineHealth({&ok}, 3);
  EXPECT_EQ(a.health, MediaHealth::kWarning);
  EXPECT_THAT(a.reasons, ElementsAre("3 bad-block range(s)"));
}

TEST(CombinedHealth, IsUnknownWithoutDimms) {
  HealthAssessment a = CombineHealth({}, 0);
  EXPECT_EQ(a.health, MediaHealth::kUnknown);
  EXPECT_THAT(a.reasons, ElementsAre(HasSubstr("no DIMMs")));
}

TEST(AHealthName, UsesThePolicyVocabulary) {
  EXPECT_STREQ(HealthName(MediaHealth::kOk), "ok");
  EXPECT_STREQ(HealthName(MediaHealth::kWarning), "warning");
  EXPECT_STREQ(HealthName(MediaHealth::kCritical), "critical");
  EXPECT_STREQ(HealthName(MediaHealth::kUnknown), "unknown");
}

}  // namespace
}  // namespace daxpolicy::media
