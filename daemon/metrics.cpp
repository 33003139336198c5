// SPDX-License-Identifier: Apache-2.0
#include "daemon/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <exception>
#include <utility>

#include "plugins/media/health.h"
#include "plugins/media/media_plugin.h"
#include "policy/listen.h"

namespace daxpolicy::daemon {

namespace {

constexpr const char* kModes[] = {"enforce", "observe"};
constexpr policy::FileState kFileStates[] = {
    policy::FileState::kUnmanaged, policy::FileState::kInSync,   policy::FileState::kPending,
    policy::FileState::kDeferred,  policy::FileState::kObserved, policy::FileState::kBlocked};
constexpr policy::DaxState kEffectiveStates[] = {policy::DaxState::kDax,
                                                 policy::DaxState::kPageCache};
constexpr policy::MediaHealth kHealthStates[] = {
    policy::MediaHealth::kOk, policy::MediaHealth::kWarning, policy::MediaHealth::kCritical,
    policy::MediaHealth::kUnknown};
// The engine's vocabulary (engine.h); every rule gets all of them at 0 so that
// rate() and increase() see a series from the rule's first scrape on.
constexpr const char* kTransitionTargets[] = {"dax", "page-cache"};
constexpr const char* kTransitionResults[] = {"changed", "blocked", "failed"};
constexpr const char* kSuppressReasons[] = {"for", "min_dwell", "budget", "observe"};
constexpr const char* kSamplerSources[] = {"scan", "sample", "system", "media"};

std::string RuleLabel(const std::string& rule) {
  return rule.empty() ? std::string(kDefaultsRuleLabel) : rule;
}

uint64_t Delta(uint64_t now, uint64_t* last) {
  uint64_t delta = now >= *last ? now - *last : now;  // smaller: the engine restarted counting
  *last = now;
  return delta;
}

}  // namespace

const std::vector<double>& CycleDurationBuckets() {
  // A cycle is a statx + cachestat per file plus the evaluation: about a
  // millisecond for a few files, seconds for a full scan of a large tree; the
  // default interval is 10 s, so anything beyond a minute is one bucket.
  static const std::vector<double> buckets{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                           0.5,   1,      2.5,   5,    10,    30,   60};
  return buckets;
}

Metrics::Metrics(std::string version) : registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  prometheus::Registry& r = *registry_;

  build_info_ = &BuildGauge()
                     .Name("daxpolicy_build_info")
                     .Help("Always 1; the label carries the daxpolicy version")
                     .Register(r);
  mode_ = &BuildGauge()
               .Name("daxpolicy_mode")
               .Help("1 for the mode in force (enforce or observe), 0 for the other")
               .Register(r);
  generation_ = &BuildGauge()
                     .Name("daxpolicy_policy_generation")
                     .Help("Number of the running policy; starts at 1, +1 per successful reload")
                     .Register(r);
  reload_ok_ = &BuildGauge()
                    .Name("daxpolicy_config_last_reload_successful")
                    .Help("1 if the last policy reload succeeded (or none happened), else 0")
                    .Register(r);
  files_ = &BuildGauge()
                .Name("daxpolicy_files")
                .Help("Tracked files and directories by state, as of the last cycle")
                .Register(r);
  files_effective_ = &BuildGauge()
                          .Name("daxpolicy_files_effective")
                          .Help("Managed regular files by effective access mode (statx)")
                          .Register(r);
  transitions_ = &BuildCounter()
                      .Name("daxpolicy_transitions_total")
                      .Help(
                          "Attempts to switch a file's DAX flag, by deciding rule, target "
                          "mode and result")
                      .Register(r);
  suppressed_ = &BuildCounter()
                     .Name("daxpolicy_transitions_suppressed_total")
                     .Help(
                         "Wanted switches held back, by rule and reason (for, min_dwell, "
                         "budget, observe)")
                     .Register(r);
  rule_matched_ = &BuildGauge()
                       .Name("daxpolicy_rule_matched_files")
                       .Help("Files each rule decided in the last cycle")
                       .Register(r);
  media_read_latency_ = &BuildGauge()
                             .Name("daxpolicy_media_read_latency_seconds")
                             .Help("Measured read latency of the memory device")
                             .Register(r);
  media_latency_ratio_ = &BuildGauge()
                              .Name("daxpolicy_media_latency_ratio")
                              .Help("Measured read latency of the device divided by DRAM's")
                              .Register(r);
  media_health_ = &BuildGauge()
                       .Name("daxpolicy_media_health")
                       .Help("1 for the device's current health state, 0 for the others")
                       .Register(r);
  cycle_duration_ = &BuildHistogram()
                         .Name("daxpolicy_cycle_duration_seconds")
                         .Help("Wall time of one sample-evaluate-apply cycle")
                         .Register(r);
  sampler_errors_ = &BuildCounter()
                         .Name("daxpolicy_sampler_errors_total")
                         .Help("Errors while collecting telemetry, by source")
                         .Register(r);
  auto_decisions_ = &BuildCounter()
                         .Name("daxpolicy_auto_decisions_total")
                         .Help(
                             "Switches decided by dax: auto (the cost model), by target mode, "
                             "once for:, min_dwell and the budget let them through")
                         .Register(r);

  trace_recording_ = &BuildGauge()
                          .Name("daxpolicy_trace_recording")
                          .Help("1 while the daemon records a trace (daxpolicyctl record), else 0")
                          .Register(r);
  trace_stops_ = &BuildCounter()
                      .Name("daxpolicy_trace_recording_stops_total")
                      .Help(
                          "Trace recordings that ended, by reason: stopped by a caller, "
                          "size-limit reached, error (a failed write or a removed file)")
                      .Register(r);

  build_info_->Add({{"version", std::move(version)}}).Set(1);
  for (const char* m : kModes) mode_series_[m] = &mode_->Add({{"mode", m}});
  mode_series_["enforce"]->Set(1);
  generation_series_ = &generation_->Add({});
  degraded_ = &BuildGauge()
                   .Name("daxpolicy_degraded")
                   .Help(
                       "1 while the daemon is degraded by this kind of problem (the reason is "
                       "in the Degraded D-Bus property and the journal)")
                   .Register(r);
  for (const char* kind : kDegradedKinds) {
    degraded_series_[kind] = &degraded_->Add({{"kind", kind}});
  }
  reload_ok_series_ = &reload_ok_->Add({});
  reload_ok_series_->Set(1);
  for (policy::FileState s : kFileStates) {
    std::string name(policy::FileStateName(s));
    files_series_[name] = &files_->Add({{"state", name}});
  }
  for (policy::DaxState s : kEffectiveStates) {
    std::string name(policy::DaxStateName(s));
    effective_series_[name] = &files_effective_->Add({{"effective", name}});
  }
  cycle_series_ = &cycle_duration_->Add({}, CycleDurationBuckets());
  for (const char* source : kSamplerSources) {
    sampler_series_[source] = &sampler_errors_->Add({{"source", source}});
  }
  for (const char* to : {"dax", "page-cache"})
    auto_series_[to] = &auto_decisions_->Add({{"to", to}});
  trace_recording_series_ = &trace_recording_->Add({});
  for (const char* reason : {"stopped", "size-limit", "error"}) {
    trace_stop_series_[reason] = &trace_stops_->Add({{"reason", reason}});
  }
}

Metrics::~Metrics() = default;

std::vector<std::string> Metrics::FamilyNames() {
  return {"daxpolicy_build_info",
          "daxpolicy_mode",
          "daxpolicy_policy_generation",
          "daxpolicy_config_last_reload_successful",
          "daxpolicy_degraded",
          "daxpolicy_files",
          "daxpolicy_files_effective",
          "daxpolicy_transitions_total",
          "daxpolicy_transitions_suppressed_total",
          "daxpolicy_rule_matched_files",
          "daxpolicy_media_read_latency_seconds",
          "daxpolicy_media_latency_ratio",
          "daxpolicy_media_health",
          "daxpolicy_cycle_duration_seconds",
          "daxpolicy_sampler_errors_total",
          "daxpolicy_auto_decisions_total",
          "daxpolicy_trace_recording",
          "daxpolicy_trace_recording_stops_total"};
}

void Metrics::Update(const MetricsSource& source, double cycle_seconds_observed) {
  const policy::Mode mode = source.mode();
  for (auto& [name, gauge] : mode_series_) {
    gauge->Set(name == policy::ModeName(mode) ? 1 : 0);
  }
  generation_series_->Set(static_cast<double>(source.generation()));
  reload_ok_series_->Set(source.last_reload_successful() ? 1 : 0);
  const RecorderStatus recording = source.recording();
  trace_recording_series_->Set(recording.recording ? 1 : 0);
  for (const auto& [reason, value] :
       {std::pair<std::string, uint64_t>{"stopped", recording.stopped},
        {"size-limit", recording.size_limits},
        {"error", recording.errors}}) {
    const uint64_t delta = Delta(value, &last_trace_stops_[reason]);
    if (delta > 0) trace_stop_series_[reason]->Increment(static_cast<double>(delta));
  }
  const std::vector<std::string> degraded = source.degraded_kinds();
  // A telemetry source's kind is its name: one added later gets its series
  // the first time it is degraded (and keeps it, at 0 once it works).
  for (const std::string& kind : degraded) {
    if (!degraded_series_.count(kind)) {
      degraded_series_.emplace(kind, &degraded_->Add({{"kind", kind}}));
    }
  }
  for (auto& [kind, gauge] : degraded_series_) {
    gauge->Set(std::find(degraded.begin(), degraded.end(), kind) != degraded.end() ? 1 : 0);
  }

  const EngineGauges gauges = source.Gauges();
  for (policy::FileState s : kFileStates) {
    auto it = gauges.files_by_state.find(s);
    files_series_[std::string(policy::FileStateName(s))]->Set(
        it == gauges.files_by_state.end() ? 0 : static_cast<double>(it->second));
  }
  for (policy::DaxState s : kEffectiveStates) {
    auto it = gauges.files_by_effective.find(s);
    effective_series_[std::string(policy::DaxStateName(s))]->Set(
        it == gauges.files_by_effective.end() ? 0 : static_cast<double>(it->second));
  }

  UpdateRules(source, gauges);

  for (const auto& [source_name, value] : source.counters().sampler_errors) {
    const uint64_t delta = Delta(value, &last_sampler_errors_[source_name]);
    auto it = sampler_series_.find(source_name);
    if (it == sampler_series_.end()) {
      it = sampler_series_.emplace(source_name, &sampler_errors_->Add({{"source", source_name}}))
               .first;
    }
    it->second->Increment(static_cast<double>(delta));
  }

  for (const auto& [to, value] : source.counters().auto_decisions) {
    const uint64_t delta = Delta(value, &last_auto_decisions_[to]);
    if (auto it = auto_series_.find(to); it != auto_series_.end() && delta) {
      it->second->Increment(static_cast<double>(delta));
    }
  }

  UpdateMedia(source.media());

  if (cycle_seconds_observed >= 0 && std::isfinite(cycle_seconds_observed)) {
    cycle_series_->Observe(cycle_seconds_observed);
  }
}

void Metrics::UpdateRules(const MetricsSource& source, const EngineGauges& gauges) {
  // The rules of the running policy, plus the defaults pseudo-rule.
  std::set<std::string> present{std::string(kDefaultsRuleLabel)};
  for (const auto& [rule, count] : gauges.rule_matched) present.insert(RuleLabel(rule));

  std::vector<std::string> gone;
  std::set_difference(rules_.begin(), rules_.end(), present.begin(), present.end(),
                      std::back_inserter(gone));
  for (const std::string& label : gone) RemoveRule(label);
  for (const std::string& label : present) {
    if (!rules_.count(label)) AddRule(label);
  }

  std::set<std::string> matched_labels;
  for (const auto& [rule, count] : gauges.rule_matched) {
    const std::string label = RuleLabel(rule);
    matched_labels.insert(label);
    auto it = matched_series_.find(label);
    if (it == matched_series_.end()) {
      it = matched_series_.emplace(label, &rule_matched_->Add({{"rule", label}})).first;
    }
    it->second->Set(static_cast<double>(count));
  }
  for (auto it = matched_series_.begin(); it != matched_series_.end();) {
    if (matched_labels.count(it->first)) {
      ++it;
    } else {
      rule_matched_->Remove(it->second);
      it = matched_series_.erase(it);
    }
  }

  const EngineCounters& counters = source.counters();
  for (const auto& [key, value] : counters.transitions) {
    const uint64_t delta = Delta(value, &last_transitions_[key]);
    const auto& [rule, to, result] = key;
    const std::string label = RuleLabel(rule);
    if (!present.count(label) || delta == 0) continue;
    RuleKey series_key{label, to, result};
    auto it = transition_series_.find(series_key);
    if (it == transition_series_.end()) {
      it = transition_series_
               .emplace(series_key,
                        &transitions_->Add({{"rule", label}, {"to", to}, {"result", result}}))
               .first;
    }
    it->second->Increment(static_cast<double>(delta));
  }
  for (const auto& [key, value] : counters.suppressed) {
    const uint64_t delta = Delta(value, &last_suppressed_[key]);
    const std::string label = RuleLabel(key.first);
    if (!present.count(label) || delta == 0) continue;
    SuppressedKey series_key{label, key.second};
    auto it = suppressed_series_.find(series_key);
    if (it == suppressed_series_.end()) {
      it = suppressed_series_
               .emplace(series_key, &suppressed_->Add({{"rule", label}, {"reason", key.second}}))
               .first;
    }
    it->second->Increment(static_cast<double>(delta));
  }
}

void Metrics::AddRule(const std::string& label) {
  rules_.insert(label);
  for (const char* to : kTransitionTargets) {
    for (const char* result : kTransitionResults) {
      transition_series_[{label, to, result}] =
          &transitions_->Add({{"rule", label}, {"to", to}, {"result", result}});
    }
  }
  for (const char* reason : kSuppressReasons) {
    suppressed_series_[{label, reason}] = &suppressed_->Add({{"rule", label}, {"reason", reason}});
  }
}

void Metrics::RemoveRule(const std::string& label) {
  rules_.erase(label);
  for (auto it = transition_series_.begin(); it != transition_series_.end();) {
    if (std::get<0>(it->first) == label) {
      transitions_->Remove(it->second);
      it = transition_series_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = suppressed_series_.begin(); it != suppressed_series_.end();) {
    if (it->first.first == label) {
      suppressed_->Remove(it->second);
      it = suppressed_series_.erase(it);
    } else {
      ++it;
    }
  }
  if (auto it = matched_series_.find(label); it != matched_series_.end()) {
    rule_matched_->Remove(it->second);
    matched_series_.erase(it);
  }
}

void Metrics::UpdateMedia(const media::MediaReport& report) {
  std::set<std::string> present;
  for (const media::MediaDevice& device : report.devices) present.insert(device.name);
  for (auto it = devices_.begin(); it != devices_.end();) {
    if (present.count(it->first)) {
      ++it;
      continue;
    }
    const std::string name = it->first;
    ++it;
    RemoveDevice(name);
  }

  for (const media::MediaDevice& device : report.devices) {
    DeviceSeries& series = devices_[device.name];
    const prometheus::Labels labels{{"device", device.name}};
    if (series.health.empty()) {
      for (policy::MediaHealth h : kHealthStates) {
        const std::string state = media::HealthName(h);
        series.health[state] = &media_health_->Add({{"device", device.name}, {"state", state}});
      }
    }
    const std::string current = media::HealthName(device.health.health);
    for (auto& [state, gauge] : series.health) gauge->Set(state == current ? 1 : 0);

    // Without a measurement the series is absent rather than a made-up number.
    if (device.have_latency) {
      if (!series.read_latency) series.read_latency = &media_read_latency_->Add(labels);
      if (!series.latency_ratio) series.latency_ratio = &media_latency_ratio_->Add(labels);
      series.read_latency->Set(device.read_latency_ns * 1e-9);
      series.latency_ratio->Set(device.latency_ratio);
    } else {
      if (series.read_latency) media_read_latency_->Remove(series.read_latency);
      if (series.latency_ratio) media_latency_ratio_->Remove(series.latency_ratio);
      series.read_latency = nullptr;
      series.latency_ratio = nullptr;
    }
  }
}

void Metrics::RemoveDevice(const std::string& name) {
  auto it = devices_.find(name);
  if (it == devices_.end()) return;
  DeviceSeries& series = it->second;
  if (series.read_latency) media_read_latency_->Remove(series.read_latency);
  if (series.latency_ratio) media_latency_ratio_->Remove(series.latency_ratio);
  for (auto& [state, gauge] : series.health) media_health_->Remove(gauge);
  devices_.erase(it);
}

std::string Metrics::Text() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  for (prometheus::MetricFamily& family : families) {
    std::stable_sort(family.metric.begin(), family.metric.end(),
                     [](const prometheus::ClientMetric& a, const prometheus::ClientMetric& b) {
                       return a.label < b.label;
                     });
  }
  return prometheus::TextSerializer().Serialize(families);
}

std::string MetricsListenAddress(const std::optional<std::string>& flag,
                                 const policy::Policy& policy) {
  return flag ? *flag : policy.daemon.metrics_listen;
}

namespace {

// The one validator of the setting (policy/listen.h), worded for the exporter.
Result<void> CheckListen(const std::string& listen) {
  if (auto why = policy::MetricsListenProblem(listen)) {
    return Error{"metrics listen address '" + listen + "': " + *why};
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<MetricsExposer>> MetricsExposer::Start(
    const std::string& listen, std::shared_ptr<prometheus::Registry> registry) {
  if (listen == "off") return std::unique_ptr<MetricsExposer>();
  if (Result<void> check = CheckListen(listen); !check) return check.error();
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", listen,                                       //
                                 "num_threads", std::to_string(kMetricsThreads),                  //
                                 "request_timeout_ms", std::to_string(kMetricsRequestTimeoutMs),  //
                                 "enable_keep_alive", "no"});
  } catch (const std::exception& e) {
    // civetweb says only "null context when constructing CivetServer" here.
    return Error{"cannot listen for metrics on " + listen +
                 ": bind failed (address in use, not local, or not permitted)"};
  }
  std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty()) return Error{"cannot listen for metrics on " + listen + ": no port bound"};
  exposer->RegisterCollectable(registry);
  return std::unique_ptr<MetricsExposer>(
      new MetricsExposer(std::move(exposer), listen, ports.front(), std::move(registry)));
}

MetricsExposer::MetricsExposer(std::unique_ptr<prometheus::Exposer> exposer, std::string listen,
                               int port, std::shared_ptr<prometheus::Registry> registry)
    : exposer_(std::move(exposer)),
      listen_(std::move(listen)),
      port_(port),
      registry_(std::move(registry)) {}

MetricsExposer::~MetricsExposer() = default;

}  // namespace daxpolicy::daemon
