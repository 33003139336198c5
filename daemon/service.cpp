// SPDX-License-Identifier: Apache-2.0
#include "daemon/service.h"

#include <sdbus-c++/sdbus-c++.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "daemon/bus/bus_service.h"
#include "daemon/bus/sd_event_glue.h"
#include "daemon/config_files.h"
#include "daemon/journal/journal.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/wiring.h"
#include "daxpolicy/version.h"
#include "plugins/media/media_plugin.h"

namespace daxpolicy::daemon {

namespace {

// Nice value of the cycle worker thread (Linux applies it per thread).
constexpr int kWorkerNice = 10;

// A cycle for a deferred file starts this long after its wait ends.
constexpr int64_t kWaitSlackNs = 10'000'000;
// sd-event lets a timer fire up to 250 ms late by default, to wake the
// machine less often; an early cycle due in 200 ms would then often come
// after twice that. One wake-up per cycle either way.
constexpr uint64_t kCycleTimerAccuracyUsec = 1000;

// CPU time of the calling thread, ns.
int64_t ThreadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// The engine's monotonic clock in µs (sd-event timers are CLOCK_MONOTONIC).
uint64_t NowUsec(const Engine& engine) {
  return static_cast<uint64_t>(engine.clock().MonotonicNs()) / 1000;
}

}  // namespace

// One thread that runs one task at a time and makes an eventfd readable when
// a task is done, for the event loop to pick up the result.
class CycleWorker {
 public:
  static Result<std::unique_ptr<CycleWorker>> Create() {
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) return ErrnoError(errno, "eventfd");
    return std::unique_ptr<CycleWorker>(new CycleWorker(fd));
  }
  ~CycleWorker() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();  // a task that is running finishes first
    close(fd_);
  }
  int fd() const { return fd_; }
  void Post(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      task_ = std::move(task);
    }
    cv_.notify_one();
  }
  // Clears the eventfd's readiness.
  void Acknowledge() {
    uint64_t n = 0;
    while (read(fd_, &n, sizeof n) < 0 && errno == EINTR) {
    }
  }

 private:
  explicit CycleWorker(int fd) : fd_(fd), thread_([this] { Loop(); }) {}
  void Loop() {
    // Scanning is background work: when the CPUs are busy, answering D-Bus
    // calls (the loop thread) and the applications come first.
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kWorkerNice) != 0) {
      LogDebug(std::string("cycle worker keeps its priority: ") + std::strerror(errno));
    }
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || task_; });
        if (!task_) return;
        task = std::move(task_);
        task_ = nullptr;
      }
      task();
      uint64_t one = 1;
      while (write(fd_, &one, sizeof one) < 0 && errno == EINTR) {
      }
    }
  }
  int fd_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::function<void()> task_;
  bool stop_ = false;
  std::thread thread_;  // last: started once the members above exist
};

Service::Service(Options options, std::string config, std::string dropin_dir)
    : options_(std::move(options)),
      config_(std::move(config)),
      dropin_dir_(std::move(dropin_dir)) {}

Service::~Service() {
  reload_worker_.reset();  // a policy being read is read to the end, and dropped
  StopWorker();
  // The bus objects go first: handlers must not run against a dying engine.
  bus_attachment_.reset();
  bus_.reset();
  connection_.reset();
  exposer_.reset();
  if (timer_) sd_event_source_unref(timer_);
  if (fanotify_source_) sd_event_source_unref(fanotify_source_);
  if (activity_source_) sd_event_source_unref(activity_source_);
  if (done_source_) sd_event_source_unref(done_source_);
  if (reload_source_) sd_event_source_unref(reload_source_);
  if (watchdog_timer_) sd_event_source_unref(watchdog_timer_);
  if (event_) sd_event_unref(event_);
}

int Service::Run(policy::Policy policy) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGHUP);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  if (int r = sd_event_new(&event_); r < 0) {
    LogError(std::string("cannot create the event loop: ") + std::strerror(-r));
    return 1;
  }
  for (int sig : {SIGHUP, SIGTERM, SIGINT}) {
    if (int r = sd_event_add_signal(event_, nullptr, sig, &Service::OnSignal, this); r < 0) {
      LogError(std::string("cannot watch signals: ") + std::strerror(-r));
      return 1;
    }
  }
  std::string listen = MetricsListenAddress(options_.metrics_listen, policy);
  std::function<void()> cue;
  if (options_.early_cycles) {
    activity_fd_ = std::make_shared<UniqueFd>(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!activity_fd_->valid()) {
      LogWarning(std::string("new files wait for the interval: eventfd: ") + std::strerror(errno));
    } else {
      cue = [fd = activity_fd_] {
        const uint64_t one = 1;
        // Only a counter at its maximum refuses: the loop has a cue to read then.
        if (write(fd->get(), &one, sizeof one) < 0) return;
      };
    }
  }
  EngineParts parts = MakeEngineParts(options_, policy, std::move(cue));
  auto engine = Engine::Create(options_, std::move(policy), std::move(parts));
  if (!engine.ok()) {
    LogError(engine.error().message);
    return 1;
  }
  engine_ = std::move(*engine);
  auto worker = CycleWorker::Create();
  if (!worker.ok()) {
    LogError("cannot start the cycle worker: " + worker.error().message);
    return 1;
  }
  worker_ = std::move(*worker);
  if (int r = sd_event_add_io(event_, &done_source_, worker_->fd(), EPOLLIN, &Service::OnCycleDone,
                              this);
      r < 0) {
    LogError(std::string("cannot watch the cycle worker: ") + std::strerror(-r));
    return 1;
  }
  auto reload_worker = CycleWorker::Create();
  if (!reload_worker.ok()) {
    LogError("cannot start the reload worker: " + reload_worker.error().message);
    return 1;
  }
  reload_worker_ = std::move(*reload_worker);
  if (int r = sd_event_add_io(event_, &reload_source_, reload_worker_->fd(), EPOLLIN,
                              &Service::OnReloadRead, this);
      r < 0) {
    LogError(std::string("cannot watch the reload worker: ") + std::strerror(-r));
    return 1;
  }
  metrics_source_ = std::make_unique<EngineMetricsSource>(*engine_);
  metrics_ = std::make_unique<Metrics>(kVersion);
  // A metrics address that cannot be bound at start is a configuration error:
  // exit 1 (the unit does not restart on it) rather than run unobserved.
  if (!StartMetrics(listen)) return 1;
  if (!ConnectBus()) return 1;
  if (int fd = engine_->close_watcher_fd(); fd >= 0) {
    if (int r =
            sd_event_add_io(event_, &fanotify_source_, fd, EPOLLIN, &Service::OnCloseEvent, this);
        r < 0) {
      LogWarning(std::string("close events not watched: ") + std::strerror(-r));
    }
  }
  if (activity_fd_ && activity_fd_->valid()) {
    if (int r = sd_event_add_io(event_, &activity_source_, activity_fd_->get(), EPOLLIN,
                                &Service::OnActivity, this);
        r < 0) {
      LogWarning(std::string("new files wait for the interval: ") + std::strerror(-r));
    }
  }
  // WATCHDOG=1 at half the period, but only while no cycle runs past --cycle-timeout; the
  // same check without systemd's watchdog still reports a stuck cycle.
  watchdog_ = std::make_unique<CycleWatchdog>(options_.cycle_timeout_ns);
  if (sd_watchdog_enabled(0, &watchdog_usec_) <= 0) watchdog_usec_ = 0;
  if (int r = sd_event_add_time(event_, &watchdog_timer_, CLOCK_MONOTONIC, NowUsec(*engine_), 0,
                                &Service::OnWatchdog, this);
      r < 0) {
    LogError(std::string("cannot arm the watchdog timer: ") + std::strerror(-r));
    return 1;
  }
  sd_event_source_set_enabled(watchdog_timer_, SD_EVENT_ON);
  next_regular_usec_ = NowUsec(*engine_);
  if (int r = sd_event_add_time(event_, &timer_, CLOCK_MONOTONIC, next_regular_usec_, 0,
                                &Service::OnTimer, this);
      r < 0) {
    LogError(std::string("cannot arm the cycle timer: ") + std::strerror(-r));
    return 1;
  }
  sd_event_source_set_time_accuracy(timer_, kCycleTimerAccuracyUsec);
  // READY=1 waits for the first cycle; a huge scope may take longer than the
  // unit's start timeout, so the timeout is extended while that cycle runs.
  if (int r = sd_event_add_time(event_, nullptr, CLOCK_MONOTONIC, NowUsec(*engine_), 0,
                                &Service::OnExtendStartTimeout, this);
      r < 0) {
    LogWarning(std::string("cannot arm the start-timeout extension: ") + std::strerror(-r));
  }
  // daemon.record: a trace from the first cycle on; a failure is logged, the daemon runs.
  if (const uint64_t max = engine_->policy().daemon.record_max_bytes; max > 0) {
    Caller policy_caller;
    policy_caller.sender = "daemon.record";
    policy_caller.uid = geteuid();
    policy_caller.pid = getpid();
    auto recording = StartRecording("", max, policy_caller);
    if (!recording.ok() && recording.failure) {
      LogError("daemon.record: cannot record a trace: " + recording.failure->message);
    }
  }
  LogNotice("started: " + std::to_string(engine_->policy().scopes.size()) + " scope(s), " +
            std::to_string(engine_->policy().rules.size()) + " rule(s), mode " +
            std::string(policy::ModeName(engine_->mode())));
  int r = sd_event_loop(event_);
  sd_notify(0, "STOPPING=1\nSTATUS=stopping");
  AbandonReloads();
  StopWorker();
  LogNotice("stopped");
  return r < 0 ? 1 : 0;
}

bool Service::StartMetrics(const std::string& listen) {
  exposer_.reset();  // the old address is released before the new one is bound
  metrics_listen_ = listen;
  metrics_problem_.clear();
  auto ex = MetricsExposer::Start(listen, metrics_->registry());
  if (!ex.ok()) {
    metrics_problem_ = "metrics exporter not running: " + ex.error().message;
    LogError(metrics_problem_);
    return false;
  }
  exposer_ = std::move(*ex);
  if (exposer_) {
    LogInfo("metrics on http://" + listen + "/metrics (port " + std::to_string(exposer_->port()) +
            ")");
  }
  return true;
}

bool Service::ConnectBus() {
  try {
    auto connection = bus::OpenBusConnection(options_.session);
    if (!connection.ok()) throw std::runtime_error(connection.error().message);
    connection_ = std::move(*connection);
    if (auto named = bus::RequestBusName(*connection_); !named.ok()) {
      // The bus answers but the name is not ours: another daxpolicyd owns it
      // (two daemons would fight over the same files), or the bus policy
      // does not let us own it. Either way: exit 1, do not run half-way.
      LogError(std::string(options_.session ? "session" : "system") +
               " bus: " + named.error().message + " (is another daxpolicyd running?)");
      connection_.reset();
      return false;
    }
    auto svc = bus::BusService::Create(*connection_, *this, engine_->clock());
    if (!svc.ok()) throw std::runtime_error(svc.error().message);
    bus_ = std::move(*svc);
    auto att = bus::AttachToSdEvent(event_, *connection_, [this](const std::string& message) {
      bus_problem_ = "D-Bus connection lost: " + message;
      LogError(bus_problem_);
    });
    if (!att.ok()) throw std::runtime_error(att.error().message);
    bus_attachment_ = std::move(*att);
  } catch (const std::exception& e) {
    bus_attachment_.reset();
    bus_.reset();
    connection_.reset();
    bus_problem_ = std::string("D-Bus unavailable (") + (options_.session ? "session" : "system") +
                   " bus): " + e.what();
    LogError(bus_problem_ + "; the policy is still enforced, but nothing is published on D-Bus");
  }
  return true;
}

void Service::StopWorker() {
  if (!worker_) return;
  // A running cycle stops changing flags and is waited for; what it did is
  // journaled, what it did not do is left to the next start.
  if (job_) engine_->Cancel();
  worker_.reset();
  if (job_) (void)engine_->EndCycle(std::move(job_));
}

int Service::OnExtendStartTimeout(sd_event_source* source, uint64_t /*usec*/, void* userdata) {
  // Every kExtendStartPeriod: "give me kExtendStartBy more", until READY=1.
  constexpr uint64_t kExtendStartPeriod = 10'000'000, kExtendStartBy = 30'000'000;
  auto* self = static_cast<Service*>(userdata);
  if (self->ready_sent_) return 0;  // the floating source stays off
  std::string msg = "EXTEND_TIMEOUT_USEC=" + std::to_string(kExtendStartBy) +
                    "\nSTATUS=first cycle running: scanning the scopes";
  sd_notify(0, msg.c_str());
  sd_event_source_set_time(source, NowUsec(*self->engine_) + kExtendStartPeriod);
  sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
  return 0;
}

int Service::OnTimer(sd_event_source* /*source*/, uint64_t /*usec*/, void* userdata) {
  static_cast<Service*>(userdata)->StartCycle();
  return 0;
}

int Service::OnSignal(sd_event_source* /*source*/, const signalfd_siginfo* info, void* userdata) {
  auto* self = static_cast<Service*>(userdata);
  if (info->ssi_signo == SIGHUP) {
    // Like a D-Bus Reload: logged, and Reloaded emitted, once when it ends.
    Caller sender;
    sender.sender = "SIGHUP";
    sender.uid = info->ssi_uid;
    sender.pid = static_cast<pid_t>(info->ssi_pid);
    self->Reload(sender, nullptr);
  } else {
    LogNotice(std::string("received ") + strsignal(static_cast<int>(info->ssi_signo)) +
              ", stopping");
    sd_event_exit(self->event_, 0);
  }
  return 0;
}

int Service::OnCloseEvent(sd_event_source* /*source*/, int /*fd*/, uint32_t /*revents*/,
                          void* userdata) {
  auto* self = static_cast<Service*>(userdata);
  std::vector<StateChange> changes = self->engine_->OnCloseEvents();
  if (!changes.empty()) {
    self->UpdateStatus();
    self->Publish(changes, {}, 0);
  }
  return 0;
}

int Service::OnActivity(sd_event_source* /*source*/, int fd, uint32_t /*revents*/, void* userdata) {
  auto* self = static_cast<Service*>(userdata);
  uint64_t n = 0;
  while (read(fd, &n, sizeof n) < 0 && errno == EINTR) {
  }
  self->early_.Activity(static_cast<int64_t>(NowUsec(*self->engine_)) * 1000);
  self->ArmTimer();
  return 0;
}

int Service::OnWatchdog(sd_event_source* source, uint64_t usec, void* userdata) {
  auto* self = static_cast<Service*>(userdata);
  std::optional<std::string> stuck =
      self->watchdog_->Stuck(static_cast<int64_t>(NowUsec(*self->engine_)) * 1000);
  if (!stuck) {
    if (self->watchdog_usec_ > 0) sd_notify(0, "WATCHDOG=1");
  } else {
    if (self->stuck_.empty()) LogError(*stuck + "; systemd restarts the daemon");
    self->stuck_ = *stuck;
    sd_notify(0, ("STATUS=" + *stuck).c_str());
    self->Publish({}, {}, 0);  // Degraded says it too
  }
  // Half the watchdog period, and often enough to notice a stuck cycle soon after its bound.
  uint64_t period = self->watchdog_usec_ > 0 ? self->watchdog_usec_ / 2 : 5'000'000;
  period = std::min<uint64_t>(
      period, std::max<uint64_t>(static_cast<uint64_t>(self->watchdog_->bound_ns() / 4000), 1000));
  sd_event_source_set_time(source, usec + period);
  return 0;
}

int Service::OnCycleDone(sd_event_source* /*source*/, int /*fd*/, uint32_t /*revents*/,
                         void* userdata) {
  static_cast<Service*>(userdata)->EndCycle();
  return 0;
}

void Service::StartCycle() {
  if (job_) {
    cycle_requested_ = true;
    return;
  }
  job_ = engine_->BeginCycle();
  if (!job_) return;
  const uint64_t now = NowUsec(*engine_);
  if (now < next_regular_usec_) {
    LogDebug(early_.activity() ? "cycle started early: files were created or written in a scope"
                               : "cycle started early: a deferred file's wait ended");
  }
  watchdog_->CycleStarted(static_cast<int64_t>(now) * 1000);
  early_.CycleStarted();
  cycle_requested_ = false;
  Engine* engine = engine_.get();
  CycleJob* job = job_.get();
  std::atomic<int64_t>* cpu = &cycle_cpu_ns_;
  worker_->Post([engine, job, cpu] {
    const int64_t t0 = ThreadCpuNs();
    engine->RunWork(*job);
    cpu->store(ThreadCpuNs() - t0, std::memory_order_relaxed);
  });
}

void Service::RequestCycle() {
  if (job_) {
    cycle_requested_ = true;
    return;
  }
  next_regular_usec_ = NowUsec(*engine_);
  ArmTimer();
}

void Service::ArmTimer() {
  if (job_) return;  // EndCycle arms it
  uint64_t next = next_regular_usec_;
  if (std::optional<int64_t> due = early_.Due()) {
    next = std::min(next, static_cast<uint64_t>(std::max<int64_t>(*due, 0) / 1000));
  }
  sd_event_source_set_time(timer_, next);
  sd_event_source_set_enabled(timer_, SD_EVENT_ONESHOT);
}

void Service::EndCycle() {
  worker_->Acknowledge();
  if (!job_) return;
  const int64_t loop_cpu0 = ThreadCpuNs();
  CycleReport report = engine_->EndCycle(std::move(job_));
  watchdog_->CycleEnded();
  const int64_t ended_ns = static_cast<int64_t>(NowUsec(*engine_)) * 1000;
  early_.CycleEnded(ended_ns,
                    cycle_cpu_ns_.load(std::memory_order_relaxed) + ThreadCpuNs() - loop_cpu0,
                    report.scheduled_walk);
  if (report.next_wait_ns > 0 && options_.early_cycles) {
    // Waits count from the cycle's start; a little after, so the wait is over.
    early_.WaitEnds(ended_ns - report.duration_ns + report.next_wait_ns + kWaitSlackNs);
  }
  if (!stuck_.empty()) {
    LogWarning("the stuck cycle ended after " + std::to_string(report.duration_ns / 1'000'000'000) +
               "s; watchdog keep-alive resumes");
    stuck_.clear();
  }
  // The next cycle starts an interval after this one ended, at once when a
  // reload or a hold asked for one meanwhile, or sooner when files were
  // created or written (ArmTimer).
  next_regular_usec_ =
      cycle_requested_
          ? NowUsec(*engine_)
          : NowUsec(*engine_) + static_cast<uint64_t>(engine_->policy().daemon.interval_ns / 1000);
  cycle_requested_ = false;
  ArmTimer();
  std::vector<std::string> service_degraded;
  if (!metrics_problem_.empty()) service_degraded.push_back("metrics");
  if (!bus_problem_.empty()) service_degraded.push_back("bus");
  metrics_source_->set_service_degraded(std::move(service_degraded));
  metrics_->Update(*metrics_source_, static_cast<double>(report.duration_ns) / 1e9);
  UpdateStatus();
  Publish(report.changes, report.pending, report.unreported_changes);
  if (!ready_sent_) {
    sd_notify(0, "READY=1");
    ready_sent_ = true;
  }
}

void Service::Publish(const std::vector<StateChange>& changes,
                      const std::vector<PendingSwitch>& pending, uint64_t unreported) {
  const size_t signalled = std::min(changes.size(), CycleReport::kMaxReportedChanges);
  unreported += changes.size() - signalled;
  if (unreported != 0) {
    LogInfo(std::to_string(unreported) +
            " more state changes this cycle were not signalled (see ListFiles)");
  }
  if (!bus_) return;
  for (size_t i = 0; i < signalled; ++i) {
    if (auto r = bus_->EmitStateChanged(changes[i]); !r.ok()) {
      LogDebug("StateChanged: " + r.error().message);
    }
  }
  for (const PendingSwitch& p : pending) {
    if (auto r = bus_->EmitSwitchPending(p); !r.ok())
      LogDebug("SwitchPending: " + r.error().message);
  }
  // The bus layer compares with what it last published and sends only what changed.
  if (auto r = bus_->Publish(); !r.ok()) LogDebug(r.error().message);
}

void Service::UpdateStatus() {
  uint64_t managed = engine_->ManagedFiles(), pending = engine_->PendingFiles();
  std::string degraded = Degraded();
  if (degraded != last_degraded_) {
    if (!degraded.empty()) {
      LogEvent(Event::kDegraded, LogLevel::kWarning, "degraded: " + degraded,
               {field::Degraded(degraded)});
    } else {
      LogEvent(Event::kDegraded, LogLevel::kNotice, "no longer degraded", {field::Degraded("")});
    }
  }
  last_degraded_ = degraded;
  std::string status = "STATUS=" + std::to_string(managed) + " managed, " +
                       std::to_string(pending) + " pending, mode " +
                       std::string(policy::ModeName(engine_->mode())) +
                       (Recording().recording ? ", recording a trace" : "") +
                       (degraded.empty() ? "" : "; degraded: " + degraded);
  sd_notify(0, status.c_str());
}

// Where a daemon setting was given, for FILE:LINE:COL, or the main file when it was not.
static std::string SettingWhere(const policy::SourceLocation& where, const std::string& config) {
  return where.line > 0 ? where.ToString() : config;
}

void Service::Reload(const Caller& caller, ReloadDone done) {
  const std::string who = Describe(caller);
  ReloadRequest request{caller, std::move(done)};
  switch (reloads_.Ask(std::move(request))) {
    case ReloadQueue<ReloadRequest>::Asked::kStartNow:
      ReadPolicyForReload();
      return;
    case ReloadQueue<ReloadRequest>::Asked::kQueued:
      LogInfo("reload asked by " + who +
              " while the policy is being read for another one: it reloads again after it");
      return;
    case ReloadQueue<ReloadRequest>::Asked::kRefused: {
      const std::string message = "a reload is being read and " +
                                  std::to_string(kMaxWaitingReloads) +
                                  " more are waiting; try again when Reloaded is signalled";
      LogWarning("reload asked by " + who + " refused: " + message);
      ApiResult<bool> r;
      r.failure = ApiFailure{ApiError::kLimitExceeded, message};
      if (request.done) request.done(r);  // Ask left a refused request as it was
      return;
    }
  }
}

void Service::ReadPolicyForReload() {
  sd_notify(0, "RELOADING=1\nSTATUS=reloading the policy");
  // Reading, parsing and validating a policy of any size happens here, off the loop: D-Bus
  // and the watchdog go on answering. So does preparing its scopes (opening the roots,
  // the mount table and DAX checks), when the policy is valid and keeps the probe
  // directory: the loop then only swaps. Only the engine's mount inspector is shared.
  reload_worker_->Post([this, config = config_, dropin_dir = dropin_dir_,
                        probe_dir = engine_->policy().daemon.probe_dir] {
    policy::LoadResult loaded = LoadPolicyFiles(config, dropin_dir);
    ReloadRead read;
    read.errors = std::move(loaded.errors);
    if (loaded.policy) {
      read.policy = std::make_shared<const policy::Policy>(std::move(*loaded.policy));
      if (read.policy->daemon.probe_dir == probe_dir) {
        read.scopes = engine_->PrepareScopes(read.policy);
      }
    }
    std::lock_guard<std::mutex> lock(reload_mutex_);
    reload_read_ = std::move(read);
  });
}

int Service::OnReloadRead(sd_event_source* /*source*/, int /*fd*/, uint32_t /*revents*/,
                          void* userdata) {
  auto* self = static_cast<Service*>(userdata);
  self->reload_worker_->Acknowledge();
  self->FinishReload();
  return 0;
}

void Service::AbandonReloads() {
  reload_worker_.reset();  // a policy being read is read to the end, and dropped
  ApiResult<bool> r;
  r.failure = ApiFailure{ApiError::kFailed, "daxpolicyd stopped before the reload was applied"};
  for (ReloadRequest& request : reloads_.TakeAll()) {
    if (request.done) request.done(r);
  }
}

void Service::FinishReload() {
  std::optional<ReloadRead> read;
  {
    std::lock_guard<std::mutex> lock(reload_mutex_);
    read.swap(reload_read_);
  }
  if (!read || !reloads_.reading()) return;
  // Staged like Kea: the files were loaded and validated, and the scopes prepared, on the
  // worker; here what depends on the running daemon is checked and what the new policy
  // needs (its metrics listener) is prepared, and only then the policy is swapped. Any
  // failure leaves the running policy and all of its resources as they were and is reported
  // as a failure everywhere.
  ReloadRead& loaded = *read;
  const Caller caller = reloads_.current().front().caller;
  const size_t others = reloads_.current().size() - 1;
  const std::string asked_by =
      Describe(caller) + (others == 0 ? "" : " and " + std::to_string(others) + " more");
  ApiResult<bool> r;
  std::vector<std::string> errors;
  for (const auto& e : loaded.errors) errors.push_back(e.ToString());
  std::unique_ptr<MetricsExposer> new_exposer;
  std::string listen = metrics_listen_;
  if (loaded.policy) {
    // Settings that only a restart applies are refused, not half applied.
    const policy::DaemonSettings& now = engine_->policy().daemon;
    const policy::DaemonSettings& next = loaded.policy->daemon;
    if (next.probe_dir != now.probe_dir) {
      errors.push_back(SettingWhere(next.probe_dir_where, config_) +
                       ": daemon.probe.dir cannot change while daxpolicyd runs (it uses '" +
                       now.probe_dir + "'); restart daxpolicyd to use '" + next.probe_dir + "'");
    }
    listen = MetricsListenAddress(options_.metrics_listen, *loaded.policy);
  }
  if (errors.empty() && listen != metrics_listen_) {
    auto ex = MetricsExposer::Start(listen, metrics_->registry());
    auto port_of = [](const std::string& l) { return l.substr(l.rfind(':') + 1); };
    if (!ex.ok() && exposer_ && port_of(listen) == port_of(metrics_listen_) &&
        port_of(listen) != "0") {
      // The new address needs the old one's port: release it, and take it back on failure.
      exposer_.reset();
      ex = MetricsExposer::Start(listen, metrics_->registry());
      if (!ex.ok()) StartMetrics(metrics_listen_);
    }
    if (ex.ok()) {
      new_exposer = std::move(*ex);
    } else {
      errors.push_back(SettingWhere(loaded.policy->daemon.metrics_listen_where, config_) + ": " +
                       ex.error().message + " (the running exporter stays)");
    }
  }
  if (!errors.empty()) {
    std::string text;
    for (const auto& e : errors) text += (text.empty() ? "" : "\n") + e;
    last_reload_result_ = "failed: " + std::to_string(errors.size()) +
                          " error(s); the running policy (generation " +
                          std::to_string(engine_->generation()) + ") stays:\n" + text;
    // One journal entry (newlines escaped), the errors also one per field.
    std::vector<LogField> fields{field::Path(config_), field::Generation(engine_->generation()),
                                 field::Caller(caller.sender), field::CallerUid(caller.uid),
                                 field::CallerPid(caller.pid)};
    for (const auto& e : errors) fields.push_back({"DAXPOLICY_ERROR", e});
    LogEvent(Event::kReloadFailed, LogLevel::kError,
             "reload asked by " + asked_by + " refused: " + last_reload_result_, fields);
    metrics_source_->set_last_reload_successful(false);
    metrics_->Update(*metrics_source_, -1);
    sd_notify(0, "READY=1");
    UpdateStatus();
    r.failure = ApiFailure{ApiError::kPolicyInvalid, last_reload_result_};
    EndReload(r);
    return;
  }
  policy::Mode mode = options_.observe ? policy::Mode::kObserve : loaded.policy->daemon.mode;
  if (!loaded.scopes) loaded.scopes = engine_->PrepareScopes(loaded.policy);
  engine_->ReplacePolicy(std::move(loaded.policy), std::move(loaded.scopes));
  engine_->SetMode(mode);
  if (listen != metrics_listen_) {
    exposer_ = std::move(new_exposer);
    metrics_listen_ = listen;
    metrics_problem_.clear();
    if (exposer_) {
      LogInfo("metrics on http://" + listen + "/metrics (port " + std::to_string(exposer_->port()) +
              ")");
    }
  }
  last_reload_result_ =
      "ok: generation " + std::to_string(engine_->generation()) + " from " + config_;
  LogEvent(
      Event::kReloadOk, LogLevel::kNotice,
      "reload asked by " + asked_by + ": " + last_reload_result_,
      {field::Path(config_), field::Generation(engine_->generation()), field::Caller(caller.sender),
       field::CallerUid(caller.uid), field::CallerPid(caller.pid)});
  metrics_source_->set_last_reload_successful(true);
  // Apply the new policy now rather than at the next tick.
  RequestCycle();
  sd_notify(0, "READY=1");
  r.value = true;
  EndReload(r);
}

void Service::EndReload(const ApiResult<bool>& result) {
  // Reloaded once per reload and the properties it changed, then each caller's answer.
  if (bus_) {
    if (auto e = bus_->EmitReloaded(result.ok(), last_reload_result_); !e.ok()) {
      LogDebug(e.error().message);
    }
    if (auto e = bus_->Publish(); !e.ok()) LogDebug(e.error().message);
  }
  for (ReloadRequest& request : reloads_.Finish()) {
    if (request.done) request.done(result);
  }
  // Those who asked meanwhile get a reload that reads the files after they asked.
  if (reloads_.StartNext()) ReadPolicyForReload();
}

std::string Service::LastReloadResult() const { return last_reload_result_; }

ApiResult<FileView> Service::GetFile(const std::string& path) const {
  return engine_->GetFile(path);
}
ApiResult<std::string> Service::Explain(const std::string& path) const {
  return engine_->Explain(path);
}
void Service::ListFiles(std::optional<policy::FileState> state,
                        const std::function<void(const FileView&)>& visit) const {
  engine_->ForEachFile(state, visit);
}
const media::MediaReport& Service::media() const { return engine_->media(); }
std::string Service::Degraded() const {
  std::string out = engine_->Degraded();
  for (const std::string* p : {&metrics_problem_, &bus_problem_, &stuck_}) {
    if (!p->empty()) out += (out.empty() ? "" : "; ") + *p;
  }
  return out;
}
uint64_t Service::ManagedFiles() const { return engine_->ManagedFiles(); }
uint64_t Service::PendingFiles() const { return engine_->PendingFiles(); }
ApiResult<uint32_t> Service::AddHold(const std::string& path, policy::DaxState mode,
                                     const std::string& reason, const Caller& caller) {
  auto r = engine_->AddHold(path, mode, reason, caller);
  // Act on it now rather than at the next tick (the bus layer logs it).
  if (r.ok()) RequestCycle();
  return r;
}
bool Service::ReleaseHold(uint32_t cookie, const Caller& caller) {
  return engine_->ReleaseHold(cookie, caller);
}
size_t Service::ReleaseHoldsOf(const std::string& owner) { return engine_->ReleaseHoldsOf(owner); }
void Service::ForEachHold(const Caller& caller,
                          const std::function<void(const HoldInfo&)>& visit) const {
  engine_->ForEachHold(caller, visit);
}
std::vector<EndedHold> Service::TakeEndedHolds() { return engine_->TakeEndedHolds(); }
policy::Mode Service::mode() const { return engine_->mode(); }
void Service::SetMode(policy::Mode mode) {
  if (mode == engine_->mode()) return;
  engine_->SetMode(mode);
  metrics_->Update(*metrics_source_, -1);
  UpdateStatus();
}
uint64_t Service::generation() const { return engine_->generation(); }

ApiResult<std::string> Service::StartRecording(const std::string& path, uint64_t max_bytes,
                                               const Caller& caller) {
  ApiResult<std::string> r;
  TraceRecorder* recorder = engine_->recorder();
  if (recorder == nullptr) {
    r.failure = ApiFailure{ApiError::kFailed, "this daxpolicyd cannot record traces"};
    return r;
  }
  if (max_bytes == 0) max_bytes = kDefaultTraceMaxBytes;
  if (max_bytes < kMinTraceMaxBytes || max_bytes > kMaxTraceMaxBytes) {
    r.failure = ApiFailure{ApiError::kInvalidArgument,
                           "the maximum trace size must be between 64 KiB and 2 GiB (what "
                           "daxpolicyctl simulate reads), not " +
                               std::to_string(max_bytes) + " bytes"};
    return r;
  }
  if (recorder->Status().recording) {
    r.failure = ApiFailure{ApiError::kFailed, "a trace is being recorded to '" +
                                                  journal::PrintablePath(recorder->Status().path) +
                                                  "' already: stop it first"};
    return r;
  }
  std::string file = path;
  if (file.empty()) {
    auto def = DefaultTracePath(options_.state_dir, engine_->clock().WallNs());
    if (!def.ok()) {
      r.failure = ApiFailure{ApiError::kFailed, def.error().message};
      return r;
    }
    file = *def;
  }
  auto sink = CreateTraceFile(file);
  if (!sink.ok()) {
    r.failure =
        ApiFailure{sink.error().code == EINVAL ? ApiError::kInvalidArgument : ApiError::kFailed,
                   sink.error().message};
    return r;
  }
  auto started = recorder->Start(std::move(*sink), file, max_bytes, Describe(caller));
  if (!started.ok()) {
    unlink(file.c_str());  // created above, never written
    r.failure = ApiFailure{ApiError::kFailed, started.error().message};
    return r;
  }
  metrics_->Update(*metrics_source_, -1);
  UpdateStatus();
  r.value = file;
  return r;
}

ApiResult<bool> Service::StopRecording(const Caller& caller) {
  ApiResult<bool> r;
  TraceRecorder* recorder = engine_->recorder();
  if (recorder == nullptr || !recorder->Stop(Describe(caller))) {
    r.failure = ApiFailure{ApiError::kFailed, "no trace is being recorded"};
    return r;
  }
  metrics_->Update(*metrics_source_, -1);
  UpdateStatus();
  r.value = true;
  return r;
}

RecorderStatus Service::Recording() const {
  TraceRecorder* recorder = engine_->recorder();
  return recorder ? recorder->Status() : RecorderStatus{};
}

}  // namespace daxpolicy::daemon
