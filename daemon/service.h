// SPDX-License-Identifier: Apache-2.0
#pragma once

// The long-running daemon: one sd-event loop that drives the cycle timer,
// SIGHUP reload, SIGTERM/SIGINT stop, fanotify close events, the systemd
// watchdog and the D-Bus connection. A cycle's slow part (scan, sample,
// evaluate, apply) runs on one worker thread and reports back through an
// eventfd, so the loop answers D-Bus calls from the last published view while
// it runs (see engine.h). A reload reads and validates the policy files on a
// second worker thread the same way; the loop alone swaps the policy in and
// publishes. The Prometheus exposer's threads only read what
// Metrics publishes.

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "daemon/bus/manager_backend.h"
#include "daemon/early_cycle.h"
#include "daemon/engine.h"
#include "daemon/options.h"
#include "daemon/reload_queue.h"
#include "daemon/watchdog.h"
#include "plugins/unique_fd.h"
#include "policy/loader.h"

typedef struct sd_event sd_event;
typedef struct sd_event_source sd_event_source;
struct signalfd_siginfo;

namespace sdbus {
class IConnection;
}

namespace daxpolicy::bus {
class BusService;
class SdEventBusAttachment;
}  // namespace daxpolicy::bus

namespace daxpolicy::daemon {

class Metrics;
class MetricsExposer;
class EngineMetricsSource;
class CycleWorker;

class Service final : public bus::ManagerBackend {
 public:
  Service(Options options, std::string config, std::string dropin_dir);
  ~Service() override;

  // Runs until SIGTERM/SIGINT; returns the process exit code.
  int Run(policy::Policy policy);

  // bus::ManagerBackend, forwarded to the engine.
  ApiResult<FileView> GetFile(const std::string& path) const override;
  ApiResult<std::string> Explain(const std::string& path) const override;
  void ListFiles(std::optional<policy::FileState> state,
                 const std::function<void(const FileView&)>& visit) const override;
  const media::MediaReport& media() const override;
  std::string Degraded() const override;
  uint64_t ManagedFiles() const override;
  uint64_t PendingFiles() const override;
  ApiResult<uint32_t> AddHold(const std::string& path, policy::DaxState mode,
                              const std::string& reason, const Caller& caller) override;
  bool ReleaseHold(uint32_t cookie, const Caller& caller) override;
  size_t ReleaseHoldsOf(const std::string& owner) override;
  void ForEachHold(const Caller& caller,
                   const std::function<void(const HoldInfo&)>& visit) const override;
  std::vector<EndedHold> TakeEndedHolds() override;
  policy::Mode mode() const override;
  void SetMode(policy::Mode mode) override;
  uint64_t generation() const override;
  void Reload(const Caller& caller, ReloadDone done) override;
  std::string LastReloadResult() const override;
  ApiResult<std::string> StartRecording(const std::string& path, uint64_t max_bytes,
                                        const Caller& caller) override;
  ApiResult<bool> StopRecording(const Caller& caller) override;
  RecorderStatus Recording() const override;

 private:
  static int OnExtendStartTimeout(sd_event_source* source, uint64_t usec, void* userdata);
  static int OnTimer(sd_event_source* source, uint64_t usec, void* userdata);
  static int OnSignal(sd_event_source* source, const signalfd_siginfo* info, void* userdata);
  static int OnCloseEvent(sd_event_source* source, int fd, uint32_t revents, void* userdata);
  static int OnActivity(sd_event_source* source, int fd, uint32_t revents, void* userdata);
  static int OnCycleDone(sd_event_source* source, int fd, uint32_t revents, void* userdata);
  static int OnWatchdog(sd_event_source* source, uint64_t usec, void* userdata);
  static int OnReloadRead(sd_event_source* source, int fd, uint32_t revents, void* userdata);

  void StartCycle();
  void EndCycle();
  // Runs a cycle as soon as possible: now, or when the running one ends.
  void RequestCycle();
  // Sets the cycle timer to the next regular cycle or, when sooner, the early
  // cycle files created or written call for (early_); not while a cycle runs.
  void ArmTimer();
  void StopWorker();
  // Reload, staged like Kea: the files are read, parsed and validated on reload_worker_
  // (ReadPolicyForReload), the rest (what depends on the running daemon, binding a new
  // metrics listener, the swap, the log, Reloaded) on the loop thread (FinishReload).
  void ReadPolicyForReload();
  void FinishReload();
  // Emits Reloaded, publishes, answers the callers and starts the reload asked meanwhile.
  void EndReload(const ApiResult<bool>& result);
  // Ends the reloads still asked for when the daemon stops: their callers get an error.
  void AbandonReloads();
  // Signals the state changes and pending switches of the loop's own events (a cycle, close
  // events, a stuck cycle), then the properties that changed and the holds that ended. The
  // bus methods that change something (SetMode, Release) publish themselves, after their
  // log, and a reload publishes in EndReload, after Reloaded: nothing else publishes.
  // At most CycleReport::kMaxReportedChanges changes are signalled; the log says how many
  // more, with the `unreported` ones the engine left out already.
  void Publish(const std::vector<StateChange>& changes, const std::vector<PendingSwitch>& pending,
               uint64_t unreported);
  // The degraded log and the status line systemd shows.
  void UpdateStatus();
  bool StartMetrics(const std::string& listen);  // false: logged, and Degraded() says why
  // False when the bus name is owned by another process (exit 1).
  bool ConnectBus();

  Options options_;
  std::string config_;
  std::string dropin_dir_;
  sd_event* event_ = nullptr;
  sd_event_source* timer_ = nullptr;
  sd_event_source* fanotify_source_ = nullptr;
  // The file source's cue that files were created or written (an eventfd it
  // writes from its drain thread), and when the cycles it calls for run.
  std::shared_ptr<UniqueFd> activity_fd_;
  sd_event_source* activity_source_ = nullptr;
  EarlyCycles early_;
  uint64_t next_regular_usec_ = 0;        // the interval's next cycle (CLOCK_MONOTONIC µs)
  std::atomic<int64_t> cycle_cpu_ns_{0};  // the worker's CPU time in the last cycle
  sd_event_source* done_source_ = nullptr;
  sd_event_source* watchdog_timer_ = nullptr;
  uint64_t watchdog_usec_ = 0;  // WATCHDOG_USEC, 0 when systemd does not watch
  std::unique_ptr<CycleWatchdog> watchdog_;
  std::string stuck_;  // what the watchdog found stuck, "" while healthy
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<CycleWorker> worker_;  // declared after engine_: joined before it goes
  CycleJobPtr job_;                      // the cycle the worker has, if any
  bool cycle_requested_ = false;
  std::unique_ptr<EngineMetricsSource> metrics_source_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<MetricsExposer> exposer_;
  std::string metrics_listen_;
  std::string metrics_problem_;
  std::unique_ptr<sdbus::IConnection> connection_;
  std::unique_ptr<bus::BusService> bus_;
  std::unique_ptr<bus::SdEventBusAttachment> bus_attachment_;
  std::string bus_problem_;
  std::string last_reload_result_ = "initial policy loaded";
  struct ReloadRequest {
    Caller caller;
    ReloadDone done;
  };
  ReloadQueue<ReloadRequest> reloads_;
  std::unique_ptr<CycleWorker> reload_worker_;  // reads the policy files of a reload
  sd_event_source* reload_source_ = nullptr;
  std::mutex reload_mutex_;
  // What reload_worker_ read, validated and prepared for a reload.
  struct ReloadRead {
    std::vector<policy::Diagnostic> errors;
    std::shared_ptr<const policy::Policy> policy;  // set only when errors is empty
    std::shared_ptr<ScopeSet> scopes;  // the policy's scopes (Engine::PrepareScopes), or null
  };
  std::optional<ReloadRead> reload_read_;  // by reload_worker_, under reload_mutex_
  bool ready_sent_ = false;
  std::string last_degraded_;
};

}  // namespace daxpolicy::daemon
