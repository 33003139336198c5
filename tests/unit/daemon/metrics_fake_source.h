// SPDX-License-Identifier: Apache-2.0
#pragma once

// A MetricsSource whose every answer the test sets directly.

#include <string>
#include <vector>

#include "daemon/metrics.h"
#include "plugins/media/media_plugin.h"

namespace daxpolicy::daemon::testing {

class FakeMetricsSource : public MetricsSource {
 public:
  const EngineCounters& counters() const override { return counters_; }
  EngineGauges Gauges() const override { return gauges_; }
  const media::MediaReport& media() const override { return media_; }
  policy::Mode mode() const override { return mode_; }
  uint64_t generation() const override { return generation_; }
  bool last_reload_successful() const override { return reload_ok_; }
  std::vector<std::string> degraded_kinds() const override { return degraded_; }
  RecorderStatus recording() const override { return recording_; }

  EngineCounters counters_;
  EngineGauges gauges_;
  media::MediaReport media_;
  policy::Mode mode_ = policy::Mode::kEnforce;
  uint64_t generation_ = 1;
  bool reload_ok_ = true;
  std::vector<std::string> degraded_;
  RecorderStatus recording_;
};

// A device as the media plugin reports it; latency_ns <= 0: not measured.
inline media::MediaDevice Device(const std::string& name, policy::MediaHealth health,
                                 double latency_ns, double ratio) {
  media::MediaDevice d;
  d.name = name;
  d.kind = "fsdax";
  d.health.health = health;
  d.have_latency = latency_ns > 0;
  d.read_latency_ns = latency_ns;
  d.latency_ratio = ratio;
  return d;
}

// A source with two rules, one device and files in most states.
inline FakeMetricsSource TypicalSource() {
  using policy::DaxState;
  using policy::FileState;
  FakeMetricsSource s;
  s.generation_ = 3;
  s.gauges_.files_by_state = {{FileState::kUnmanaged, 4},
                              {FileState::kInSync, 120},
                              {FileState::kPending, 2},
                              {FileState::kDeferred, 5},
                              {FileState::kBlocked, 1}};
  s.gauges_.files_by_effective = {{DaxState::kDax, 80}, {DaxState::kPageCache, 48}};
  s.gauges_.rule_matched = {{"large-streams", 80}, {"reread-heavy", 40}};
  s.counters_.transitions = {{{"large-streams", "dax", "changed"}, 7},
                             {{"reread-heavy", "page-cache", "changed"}, 3},
                             {{"reread-heavy", "page-cache", "blocked"}, 1}};
  s.counters_.suppressed = {{{"reread-heavy", "min_dwell"}, 5}, {{"", "budget"}, 2}};
  s.counters_.sampler_errors = {{"sample", 2}};
  s.counters_.cycles = 10;
  s.media_.devices = {Device("pmem0", policy::MediaHealth::kOk, 350, 3.5)};
  return s;
}

}  // namespace daxpolicy::daemon::testing
