// SPDX-License-Identifier: Apache-2.0
#include "daemon/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>

#include "policy/policy.h"
#include "tests/support/test_support.h"
#include "tests/unit/daemon/metrics_fake_source.h"

namespace daxpolicy::daemon {
namespace {

using testing::Device;
using testing::FakeMetricsSource;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::TypicalSource;

const std::filesystem::path kGolden =
    std::filesystem::path(DAXPOLICY_SOURCE_DIR) / "tests/fixtures/metrics/typical.prom";

// The value of the series written exactly as `series` (name plus labels in
// serializer order), or nullopt when the text has no such line.
std::optional<double> Value(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return std::nullopt;
}

// A family without series is not serialized, so this needs a rule and a device.
TEST(TheMetrics, ExposeEveryFamilyOfTheContractOnceThereIsARuleAndADevice) {
  Metrics metrics("1.2.3");
  FakeMetricsSource source = TypicalSource();
  metrics.Update(source, 0.01);
  const std::string text = metrics.Text();
  for (const std::string& name : Metrics::FamilyNames()) {
    EXPECT_THAT(text, HasSubstr("# TYPE " + name + " ")) << name;
  }
  EXPECT_EQ(Value(text, "daxpolicy_build_info{version=\"1.2.3\"}"), 1);
}

TEST(AFreshMetricsRegistry, HasAllSixFileStatesAndBothEffectiveModesAtZero) {
  Metrics metrics("1");
  const std::string text = metrics.Text();
  for (const char* state : {"unmanaged", "in-sync", "pending", "deferred", "observed", "blocked"}) {
    EXPECT_EQ(Value(text, std::string("daxpolicy_files{state=\"") + state + "\"}"), 0) << state;
  }
  EXPECT_EQ(Value(text, "daxpolicy_files_effective{effective=\"dax\"}"), 0);
  EXPECT_EQ(Value(text, "daxpolicy_files_effective{effective=\"page-cache\"}"), 0);
  EXPECT_EQ(Value(text, "daxpolicy_config_last_reload_successful"), 1);
  EXPECT_EQ(Value(text, "daxpolicy_mode{mode=\"enforce\"}"), 1);
  EXPECT_EQ(Value(text, "daxpolicy_mode{mode=\"observe\"}"), 0);
}

TEST(TheSerializedRegistry, MatchesTheGoldenTextForATypicalSource) {
  Metrics metrics("0.1.0");
  FakeMetricsSource source = TypicalSource();
  metrics.Update(source, 0.0042);
  metrics.Update(source, 0.3);
  const std::string text = metrics.Text();
  if (const char* update = std::getenv("DAXPOLICY_UPDATE_GOLDEN"); update && *update == '1') {
    daxpolicy::testing::WriteFile(kGolden, text);
    FAIL() << "golden file rewritten from this run; review the diff and run again without "
              "DAXPOLICY_UPDATE_GOLDEN";
  }
  EXPECT_EQ(text, daxpolicy::testing::ReadFile(kGolden))
      << "regenerate with DAXPOLICY_UPDATE_GOLDEN=1 after an intended change";
}

TEST(TheMetrics, ShowWhetherATraceIsRecordedAndCountItsStopsByReason) {
  Metrics metrics("1");
  FakeMetricsSource source;
  metrics.Update(source, -1);
  std::string text = metrics.Text();
  EXPECT_EQ(Value(text, "daxpolicy_trace_recording"), 0);
  for (const char* reason : {"stopped", "size-limit", "error"}) {
    EXPECT_EQ(Value(text, std::string("daxpolicy_trace_recording_stops_total{reason=\"") + reason +
                              "\"}"),
              0)
        << reason;
  }
  source.recording_.recording = true;
  metrics.Update(source, -1);
  EXPECT_EQ(Value(metrics.Text(), "daxpolicy_trace_recording"), 1);
  source.recording_.recording = false;
  source.recording_.errors = 1;
  source.recording_.size_limits = 2;
  metrics.Update(source, -1);
  metrics.Update(source, -1);  // counted once
  text = metrics.Text();
  EXPECT_EQ(Value(text, "daxpolicy_trace_recording"), 0);
  EXPECT_EQ(Value(text, "daxpolicy_trace_recording_stops_total{reason=\"error\"}"), 1);
  EXPECT_EQ(Value(text, "daxpolicy_trace_recording_stops_total{reason=\"size-limit\"}"), 2);
  EXPECT_EQ(Value(text, "daxpolicy_trace_recording_stops_total{reason=\"stopped\"}"), 0);
}

TEST(TheSerializedRegistry, NeverCarriesAPathPidOrInodeLabel) {
  Metrics metrics("1");
  FakeMetricsSource source = TypicalSource();
  metrics.Update(source, 0.01);
  const std::string text = metrics.Text();
  for (const char* label : {"path=", "pid=", "inode=", "ino=", "file="}) {
    EXPECT_THAT(text, Not(HasSubstr(label))) << label;
  }
}

TEST(ARuleThatDisappearsOnReload, LosesEverySeriesItHad) {
  Metrics metrics("1");
  FakeMetricsSource source = TypicalSource();
  metrics.Update(source, 0.01);
  ASSERT_THAT(metrics.Text(), HasSubstr("rule=\"reread-heavy\""));

  source.gauges_.rule_matched.erase("reread-heavy");
  source.generation_ = 4;
  metrics.Update(source, -1);
  const std::string text = metrics.Text();
  EXPECT_THAT(text, Not(HasSubstr("rule=\"reread-heavy\"")));
  EXPECT_EQ(Value(text, "daxpolicy_rule_matched_files{rule=\"large-streams\"}"), 80);
  EXPECT_EQ(Value(text,
                  "daxpolicy_transitions_total{result=\"changed\",rule=\"large-streams\","
                  "to=\"dax\"}"),
            7);
  EXPECT_EQ(Value(text, "daxpolicy_policy_generation"), 4);
}

TEST(ANewRule, StartsWithEveryTransitionAndSuppressionSeriesAtZero) {
  Metrics metrics("1");
  FakeMetricsSource source;
  source.gauges_.rule_matched = {{"cold", 0}};
  metrics.Update(source, 0.01);
  const std::string text = metrics.Text();
  for (const char* to : {"dax", "page-cache"}) {
    for (const char* result : {"changed", "blocked", "failed"}) {
      EXPECT_EQ(Value(text, std::string("daxpolicy_transitions_total{result=\"") + result +
                                "\",rule=\"cold\",to=\"" + to + "\"}"),
                0);
    }
  }
  for (const char* reason : {"for", "min_dwell", "budget", "observe"}) {
    EXPECT_EQ(Value(text, std::string("daxpolicy_transitions_suppressed_total{reason=\"") + reason +
                              "\",rule=\"cold\"}"),
              0);
  }
  EXPECT_EQ(Value(text, "daxpolicy_rule_matched_files{rule=\"cold\"}"), 0);
}

TEST(TransitionCounters, AddOnlyTheIncreaseOfTheCumulativeEngineCounters) {
  Metrics metrics("1");
  FakeMetricsSource source = TypicalSource();
  metrics.Update(source, 0.01);
  metrics.Update(source, 0.01);  // nothing new happened
  const std::string series =
      "daxpolicy_transitions_total{result=\"changed\",rule=\"large-streams\",to=\"dax\"}";
  EXPECT_EQ(Value(metrics.Text(), series), 7);

  source.counters_.transitions[{"large-streams", "dax", "changed"}] = 10;
  metrics.Update(source, 0.01);
  EXPECT_EQ(Value(metrics.Text(), series), 10);
}

TEST(TransitionCounters, CountTheDefaultsUnderTheirOwnRuleLabel) {
  Metrics metrics("1");
  FakeMetricsSource source = TypicalSource();
  source.counters_.transitions[{"", "page-cache", "changed"}] = 4;
  metrics.Update(source, 0.01);
  const std::string text = metrics.Text();
  EXPECT_EQ(Value(text,
                  "daxpolicy_transitions_total{result=\"changed\",rule=\"_defaults\","
                  "to=\"page-cache\"}"),
            4);
  EXPECT_EQ(Value(text,
                  "daxpolicy_transitions_suppressed_total{reason=\"budget\","
                  "rule=\"_defaults\"}"),
            2);
}

TEST(ARuleRenamedAwayAndBack, DoesNotCountItsOldTransitionsTwice) {
  Metrics metrics("1");
  FakeMetricsSource source = TypicalSource();
  metrics.Update(source, 0.01);
  const std::string series =
      "daxpolicy_transitions_total{result=\"changed\",rule=\"large-streams\",to=\"dax\"}";
  ASSERT_EQ(Value(metrics.Text(), series), 7);

  // Reload 1 renames the rule: the engine keeps its cumulative count of 7.
  source.gauges_.rule_matched.erase("large-streams");
  source.gauges_.rule_matched["streams"] = 80;
  source.counters_.transitions[{"streams", "dax", "changed"}] = 2;
  metrics.Update(source, 0.01);
  EXPECT_EQ(Value(metrics.Text(), series), std::nullopt);

  // Reload 2 renames it back; one more switch happens under the old name.
  source.gauges_.rule_matched.erase("streams");
  source.gauges_.rule_matched["large-streams"] = 80;
  source.counters_.transitions[{"large-streams", "dax", "changed"}] = 8;
  metrics.Update(source, 0.01);
  EXPECT_EQ(Value(metrics.Text(), series), 1);
}

TEST(TransitionCounters, TakeACumulativeValueThatWentDownAsAReset) {
  Metrics metrics("1");
  FakeMetricsSource source = TypicalSource();
  metrics.Update(source, 0.01);
  source.counters_.transitions[{"large-streams", "dax", "changed"}] = 2;
  metrics.Update(source, 0.01);
  EXPECT_EQ(Value(metrics.Text(),
                  "daxpolicy_transitions_total{result=\"changed\",rule=\"large-streams\","
                  "to=\"dax\"}"),
            9);
}

TEST(SamplerErrorCounters, CountNewSourcesAndDeltas) {
  Metrics metrics("1");
  FakeMetricsSource source = TypicalSource();
  source.counters_.sampler_errors["fanotify"] = 1;
  metrics.Update(source, 0.01);
  source.counters_.sampler_errors["sample"] = 5;
  metrics.Update(source, 0.01);
  const std::string text = metrics.Text();
  EXPECT_EQ(Value(text, "daxpolicy_sampler_errors_total{source=\"sample\"}"), 5);
  EXPECT_EQ(Value(text, "daxpolicy_sampler_errors_total{source=\"fanotify\"}"), 1);
  EXPECT_EQ(Value(text, "daxpolicy_sampler_errors_total{source=\"scan\"}"), 0);
}

TEST(AutoDecisionCounters, CountSwitchesByTargetModeAsDeltas) {
  Metrics metrics("1");
  FakeMetricsSource source = TypicalSource();
  metrics.Update(source, 0.01);
  EXPECT_EQ(Value(metrics.Text(), "daxpolicy_auto_decisions_total{to=\"dax\"}"), 0);
  source.counters_.auto_decisions["dax"] = 3;
  metrics.Update(source, 0.01);
  source.counters_.auto_decisions["dax"] = 4;
  source.counters_.auto_decisions["page-cache"] = 2;
  metrics.Update(source, 0.01);
  const std::string text = metrics.Text();
  EXPECT_EQ(Value(text, "daxpolicy_auto_decisions_total{to=\"dax\"}"), 4);
  EXPECT_EQ(Value(text, "daxpolicy_auto_decisions_total{to=\"page-cache\"}"), 2);
}

TEST(MediaHealth, HasOneSeriesPerStateWithOneForTheCurrentState) {
  Metrics metrics("1");
  FakeMetricsSource source = TypicalSource();
  source.media_.devices[0].health.health = policy::MediaHealth::kWarning;
  metrics.Update(source, 0.01);
  std::string text = metrics.Text();
  EXPECT_EQ(Value(text, "daxpolicy_media_health{device=\"pmem0\",state=\"ok\"}"), 0);
  EXPECT_EQ(Value(text, "daxpolicy_media_health{device=\"pmem0\",state=\"warning\"}"), 1);
  EXPECT_EQ(Value(text, "daxpolicy_media_health{device=\"pmem0\",state=\"critical\"}"), 0);
  EXPECT_EQ(Value(text, "daxpolicy_media_health{device=\"pmem0\",state=\"unknown\"}"), 0);

  source.media_.devices[0].health.health = policy::MediaHealth::kCritical;
  metrics.Update(source, 0.01);
  text = metrics.Text();
  EXPECT_EQ(Value(text, "daxpolicy_media_health{device=\"pmem0\",state=\"warning\"}"), 0);
  EXPECT_EQ(Value(text, "daxpolicy_media_health{device=\"pmem0\",state=\"critical\"}"), 1);
}

TEST(MediaLatency, IsInSecondsAndAbsentWhileNotMeasured) {
  Metrics metrics("1");
  FakeMetricsSource source = TypicalSource();
  source.media_.devices.push_back(Device("pmem1", policy::MediaHealth::kUnknown, 0, 0));
  metrics.Update(source, 0.01);
  const std::string text = metrics.Text();
  EXPECT_EQ(Value(text, "daxpolicy_media_read_latency_seconds{device=\"pmem0\"}"), 350e-9);
  EXPECT_EQ(Value(text, "daxpolicy_media_latency_ratio{device=\"pmem0\"}"), 3.5);
  EXPECT_EQ(Value(text, "daxpolicy_media_read_latency_seconds{device=\"pmem1\"}"), std::nullopt);
  EXPECT_EQ(Value(text, "daxpolicy_media_latency_ratio{device=\"pmem1\"}"), std::nullopt);
  EXPECT_EQ(Value(text, "daxpolicy_media_health{device=\"pmem1\",state=\"unknown\"}"), 1);
}

TEST(ADeviceThatDisappears, LosesEverySeriesItHad) {
  Metrics metrics("1");
  FakeMetricsSource source = TypicalSource();
  source.media_.devices.push_back(Device("pmem1", policy::MediaHealth::kOk, 500, 5));
  metrics.Update(source, 0.01);
  ASSERT_THAT(metrics.Text(), HasSubstr("device=\"pmem1\""));
  source.media_.devices.pop_back();
  metrics.Update(source, 0.01);
  const std::string text = metrics.Text();
  EXPECT_THAT(text, Not(HasSubstr("device=\"pmem1\"")));
  EXPECT_EQ(Value(text, "daxpolicy_media_health{device=\"pmem0\",state=\"ok\"}"), 1);
}

TEST(TheModeGauge, MarksObserveWhenTheEngineObserves) {
  Metrics metrics("1");
  FakeMetricsSource source = TypicalSource();
  source.mode_ = policy::Mode::kObserve;
  source.reload_ok_ = false;
  metrics.Update(source, -1);
  const std::string text = metrics.Text();
  EXPECT_EQ(Value(text, "daxpolicy_mode{mode=\"enforce\"}"), 0);
  EXPECT_EQ(Value(text, "daxpolicy_mode{mode=\"observe\"}"), 1);
  EXPECT_EQ(Value(text, "daxpolicy_config_last_reload_successful"), 0);
}

TEST(TheDegradedGauge, HasEveryKindAndMarksTheCurrentOnes) {
  Metrics metrics("1");
  FakeMetricsSource source = TypicalSource();
  metrics.Update(source, -1);
  for (const char* kind : kDegradedKinds) {
    EXPECT_EQ(Value(metrics.Text(), "daxpolicy_degraded{kind=\"" + std::string(kind) + "\"}"), 0)
        << kind;
  }
  source.degraded_ = {"media", "bus"};
  metrics.Update(source, -1);
  const std::string text = metrics.Text();
  EXPECT_EQ(Value(text, "daxpolicy_degraded{kind=\"media\"}"), 1);
  EXPECT_EQ(Value(text, "daxpolicy_degraded{kind=\"bus\"}"), 1);
  EXPECT_EQ(Value(text, "daxpolicy_degraded{kind=\"scope\"}"), 0);
  source.degraded_.clear();
  metrics.Update(source, -1);
  EXPECT_EQ(Value(metrics.Text(), "daxpolicy_degraded{kind=\"media\"}"), 0);
}

TEST(TheDegradedGauge, AddsTheKindOfASourceItDoesNotKnow) {
  Metrics metrics("1");
  FakeMetricsSource source = TypicalSource();
  source.degraded_ = {"thermal"};  // a telemetry source added after kDegradedKinds
  metrics.Update(source, -1);
  EXPECT_EQ(Value(metrics.Text(), "daxpolicy_degraded{kind=\"thermal\"}"), 1);
  source.degraded_.clear();
  metrics.Update(source, -1);
  EXPECT_EQ(Value(metrics.Text(), "daxpolicy_degraded{kind=\"thermal\"}"), 0);
}

TEST(TheCycleHistogram, ObservesOnlyNonNegativeDurations) {
  Metrics metrics("1");
  FakeMetricsSource source = TypicalSource();
  metrics.Update(source, -1);
  EXPECT_EQ(Value(metrics.Text(), "daxpolicy_cycle_duration_seconds_count"), 0);
  metrics.Update(source, 0.02);
  metrics.Update(source, 90);
  const std::string text = metrics.Text();
  EXPECT_EQ(Value(text, "daxpolicy_cycle_duration_seconds_count"), 2);
  EXPECT_EQ(Value(text, "daxpolicy_cycle_duration_seconds_bucket{le=\"0.025\"}"), 1);
  EXPECT_EQ(Value(text, "daxpolicy_cycle_duration_seconds_bucket{le=\"60\"}"), 1);
  EXPECT_EQ(Value(text, "daxpolicy_cycle_duration_seconds_bucket{le=\"+Inf\"}"), 2);
}

TEST(TheMetricsListenAddress, ComesFromTheFlagBeforeThePolicy) {
  policy::Policy policy;
  policy.daemon.metrics_listen = "127.0.0.1:9999";
  EXPECT_EQ(MetricsListenAddress(std::nullopt, policy), "127.0.0.1:9999");
  EXPECT_EQ(MetricsListenAddress(std::string("off"), policy), "off");
}

TEST(TheMetricsExposer, IsNotStartedWhenTheAddressIsOff) {
  Metrics metrics("1");
  auto exposer = MetricsExposer::Start("off", metrics.registry());
  ASSERT_TRUE(exposer.ok()) << exposer.error().message;
  EXPECT_EQ(exposer.value(), nullptr);
}

TEST(TheMetricsExposer, RefusesAnIpv6AddressWithAClearMessage) {
  Metrics metrics("1");
  auto exposer = MetricsExposer::Start("[::1]:9847", metrics.registry());
  ASSERT_FALSE(exposer.ok());
  EXPECT_EQ(exposer.error().message,
            "metrics listen address '[::1]:9847': IPv6 is not supported by this build's HTTP "
            "server; use an IPv4 address such as 127.0.0.1:9847");
}

TEST(TheMetricsExposer, RefusesMalformedAddresses) {
  Metrics metrics("1");
  for (const char* listen : {"", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000", ":9847",
                             "127.0.0.1:9847s", "a b:1"}) {
    auto exposer = MetricsExposer::Start(listen, metrics.registry());
    ASSERT_FALSE(exposer.ok()) << listen;
    EXPECT_THAT(exposer.error().message,
                HasSubstr("metrics listen address '" + std::string(listen) + "'"));
  }
}

TEST(TheMetricsExposer, ReportsTheActualPortOfPortZero) {
  Metrics metrics("1");
  auto exposer = MetricsExposer::Start("127.0.0.1:0", metrics.registry());
  ASSERT_TRUE(exposer.ok()) << exposer.error().message;
  ASSERT_NE(exposer.value(), nullptr);
  EXPECT_GT(exposer.value()->port(), 0);
  EXPECT_EQ(exposer.value()->listen(), "127.0.0.1:0");
}

TEST(TheMetricsExposer, ReturnsABindFailureAsAnErrorNamingTheAddress) {
  Metrics metrics("1");
  auto first = MetricsExposer::Start("127.0.0.1:0", metrics.registry());
  ASSERT_TRUE(first.ok()) << first.error().message;
  const std::string taken = "127.0.0.1:" + std::to_string(first.value()->port());
  auto second = MetricsExposer::Start(taken, metrics.registry());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().message, "cannot listen for metrics on " + taken +
                                        ": bind failed (address in use, not local, or not "
                                        "permitted)");
}

}  // namespace
}  // namespace daxpolicy::daemon
