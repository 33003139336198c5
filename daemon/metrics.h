// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Prometheus metrics of the daemon (the contract in DESIGN.md and
/// docs/metrics.md): every family is registered once, at construction; the event
/// loop calls Update() after each cycle; the exporter's HTTP threads only read
/// what Update() stored (prometheus-cpp values are atomic, and adding or removing
/// a series takes the family's own mutex).

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "daemon/engine.h"
#include "policy/policy.h"
#include "policy/result.h"

namespace prometheus {
class Counter;
class Exposer;
class Gauge;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace daxpolicy::daemon {

/// What Metrics reads after a cycle: the Engine's accessors plus the outcome of
/// the last reload, which only the event loop knows. Tests implement it with a
/// fake.
class MetricsSource {
 public:
  virtual ~MetricsSource() = default;
  /// Cumulative since the daemon started; Metrics turns them into counters by delta.
  virtual const EngineCounters& counters() const = 0;
  /// Numbers of the last cycle. `rule_matched` must name every rule of the
  /// running policy (with 0 when it matched nothing): it is the set of rules
  /// whose series exist.
  virtual EngineGauges Gauges() const = 0;
  virtual const media::MediaReport& media() const = 0;
  virtual policy::Mode mode() const = 0;
  virtual uint64_t generation() const = 0;
  /// False after a reload refused a bad policy, true again after a good one.
  virtual bool last_reload_successful() const = 0;
  /// The kinds of problem the daemon is degraded by (kDegradedKinds, or the
  /// Name() of another telemetry source), none when fine.
  virtual std::vector<std::string> degraded_kinds() const { return {}; }
  /// The trace recorder's state and its stops by reason.
  virtual RecorderStatus recording() const { return {}; }
};

/// The `kind` label values of daxpolicy_degraded, each series always present;
/// any other kind (a telemetry source's Name()) gets its series when first reported.
inline constexpr const char* kDegradedKinds[] = {"scope", "journal", "close-events", "access",
                                                 "media", "metrics", "bus"};

/// The production MetricsSource: an Engine plus the reload outcome the event
/// loop records with set_last_reload_successful().
class EngineMetricsSource final : public MetricsSource {
 public:
  explicit EngineMetricsSource(const Engine& engine) : engine_(engine) {}
  void set_last_reload_successful(bool ok) { last_reload_successful_ = ok; }
  /// Problems only the event loop knows ("metrics", "bus").
  void set_service_degraded(std::vector<std::string> kinds) {
    service_degraded_ = std::move(kinds);
  }

  const EngineCounters& counters() const override { return engine_.counters(); }
  EngineGauges Gauges() const override { return engine_.Gauges(); }
  const media::MediaReport& media() const override { return engine_.media(); }
  policy::Mode mode() const override { return engine_.mode(); }
  uint64_t generation() const override { return engine_.generation(); }
  bool last_reload_successful() const override { return last_reload_successful_; }
  std::vector<std::string> degraded_kinds() const override {
    std::vector<std::string> kinds = engine_.DegradedKinds();
    kinds.insert(kinds.end(), service_degraded_.begin(), service_degraded_.end());
    return kinds;
  }
  RecorderStatus recording() const override {
    return engine_.recorder() ? engine_.recorder()->Status() : RecorderStatus{};
  }

 private:
  const Engine& engine_;
  bool last_reload_successful_ = true;
  std::vector<std::string> service_degraded_;
};

/// Label value that stands for "no rule" (engine rule "": defaults.dax or an
/// application hold decided). Rule names must start with a letter or digit, so
/// it cannot collide with a rule.
inline constexpr std::string_view kDefaultsRuleLabel = "_defaults";

/// Upper bounds (seconds) of daxpolicy_cycle_duration_seconds: 1 ms .. 60 s.
const std::vector<double>& CycleDurationBuckets();

/// The metric families of the contract.
class Metrics {
 public:
  /// Registers every family and the series that always exist (build_info, both
  /// modes, all six file states, both effective states, the histogram).
  /// `version` is the daxpolicy_build_info label.
  explicit Metrics(std::string version);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  /// Copies the source's state into the series. Call from the event loop after
  /// every cycle, with the cycle's wall time in seconds; a negative value (an
  /// update after a reload or a mode change, with no cycle) observes nothing.
  ///
  /// Counters: EngineCounters are cumulative, so each series is incremented by
  /// the difference to the value seen at the previous Update. The last seen
  /// value is kept even while a rule is absent from the policy; a rule that is
  /// renamed away and back therefore counts only what happened after its
  /// return. A value smaller than the last seen one (a restarted engine) is
  /// taken as a reset and added whole.
  ///
  /// Series of a rule (transitions, suppressed, matched files) are removed when
  /// the rule is no longer in Gauges().rule_matched; those of a device when it
  /// is no longer in media().devices.
  void Update(const MetricsSource& source, double cycle_seconds_observed);

  /// The registry the exporter serves; shared so an Exposer can hold it.
  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  /// The text exposition format of the registry, series sorted by labels so the
  /// output is deterministic (golden tests, debugging).
  std::string Text() const;

  /// Names of the registered families ("daxpolicy_files", ...).
  static std::vector<std::string> FamilyNames();

 private:
  using RuleKey = std::tuple<std::string, std::string, std::string>;  // rule, to, result
  using SuppressedKey = std::pair<std::string, std::string>;          // rule, reason

  struct DeviceSeries {
    prometheus::Gauge* read_latency = nullptr;  // nullptr while the device has no latency
    prometheus::Gauge* latency_ratio = nullptr;
    std::map<std::string, prometheus::Gauge*> health;  // by state name
  };

  void UpdateRules(const MetricsSource& source, const EngineGauges& gauges);
  void AddRule(const std::string& label);
  void RemoveRule(const std::string& label);
  void UpdateMedia(const media::MediaReport& report);
  void RemoveDevice(const std::string& name);

  std::shared_ptr<prometheus::Registry> registry_;

  prometheus::Family<prometheus::Gauge>* build_info_;
  prometheus::Family<prometheus::Gauge>* mode_;
  prometheus::Family<prometheus::Gauge>* generation_;
  prometheus::Family<prometheus::Gauge>* reload_ok_;
  prometheus::Family<prometheus::Gauge>* degraded_;
  std::map<std::string, prometheus::Gauge*> degraded_series_;
  prometheus::Family<prometheus::Gauge>* files_;
  prometheus::Family<prometheus::Gauge>* files_effective_;
  prometheus::Family<prometheus::Counter>* transitions_;
  prometheus::Family<prometheus::Counter>* suppressed_;
  prometheus::Family<prometheus::Gauge>* rule_matched_;
  prometheus::Family<prometheus::Gauge>* media_read_latency_;
  prometheus::Family<prometheus::Gauge>* media_latency_ratio_;
  prometheus::Family<prometheus::Gauge>* media_health_;
  prometheus::Family<prometheus::Histogram>* cycle_duration_;
  prometheus::Family<prometheus::Counter>* sampler_errors_;
  prometheus::Family<prometheus::Counter>* auto_decisions_;
  prometheus::Family<prometheus::Gauge>* trace_recording_;
  prometheus::Family<prometheus::Counter>* trace_stops_;
  prometheus::Gauge* trace_recording_series_;
  std::map<std::string, prometheus::Counter*> trace_stop_series_;  // by reason
  std::map<std::string, uint64_t> last_trace_stops_;

  std::map<std::string, prometheus::Gauge*> mode_series_;  // by mode name
  prometheus::Gauge* generation_series_;
  prometheus::Gauge* reload_ok_series_;
  std::map<std::string, prometheus::Gauge*> files_series_;      // by state name
  std::map<std::string, prometheus::Gauge*> effective_series_;  // "dax", "page-cache"
  prometheus::Histogram* cycle_series_;

  // Per rule label: the series that exist while the rule is in the policy.
  std::set<std::string> rules_;
  std::map<RuleKey, prometheus::Counter*> transition_series_;
  std::map<SuppressedKey, prometheus::Counter*> suppressed_series_;
  std::map<std::string, prometheus::Gauge*> matched_series_;
  std::map<std::string, prometheus::Counter*> sampler_series_;
  std::map<std::string, prometheus::Counter*> auto_series_;  // "dax", "page-cache"
  std::map<std::string, DeviceSeries> devices_;

  // Last cumulative values seen, by engine key (rule "" for defaults).
  std::map<RuleKey, uint64_t> last_transitions_;
  std::map<SuppressedKey, uint64_t> last_suppressed_;
  std::map<std::string, uint64_t> last_sampler_errors_;
  std::map<std::string, uint64_t> last_auto_decisions_;
};

/// The metrics listen address in force: `--metrics-listen` when given, else
/// the policy's daemon.metrics.listen.
std::string MetricsListenAddress(const std::optional<std::string>& flag,
                                 const policy::Policy& policy);

/// HTTP worker threads of the exporter: each connection holds one until its
/// request is answered or times out, so idle or slow clients take threads away
/// from scrapes. With this many, a few idle connections leave most threads free.
inline constexpr int kMetricsThreads = 8;
/// A client must send its whole request within this time (civetweb's default
/// is 30 s, which let two idle connections stop every scrape for 30 s).
inline constexpr int kMetricsRequestTimeoutMs = 3000;

/// The Prometheus pull endpoint (`/metrics`) on its own HTTP threads
/// (kMetricsThreads), no keep-alive, kMetricsRequestTimeoutMs per request; the
/// event loop and D-Bus never wait for them.
class MetricsExposer {
 public:
  /// Binds `listen` ("HOST:PORT" with an IPv4 address or host name, or "PORT";
  /// port 0 picks a free one) and serves `registry`. "off" returns nullptr:
  /// no exporter. A malformed address, an IPv6 address (the civetweb of Debian
  /// 12 has no IPv6) or a bind failure is an Error naming the address.
  static Result<std::unique_ptr<MetricsExposer>> Start(
      const std::string& listen, std::shared_ptr<prometheus::Registry> registry);
  ~MetricsExposer();
  MetricsExposer(const MetricsExposer&) = delete;
  MetricsExposer& operator=(const MetricsExposer&) = delete;

  /// The TCP port actually bound (the chosen one when asked for port 0).
  int port() const { return port_; }
  /// The address as given to Start().
  const std::string& listen() const { return listen_; }

 private:
  MetricsExposer(std::unique_ptr<prometheus::Exposer> exposer, std::string listen, int port,
                 std::shared_ptr<prometheus::Registry> registry);
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::string listen_;
  int port_ = 0;
  std::shared_ptr<prometheus::Registry> registry_;  // the exposer keeps only a weak_ptr
};

}  // namespace daxpolicy::daemon
