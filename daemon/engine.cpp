// SPDX-License-Identifier: Apache-2.0
#include "daemon/engine.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <mutex>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "daemon/bus/validate.h"
#include "daemon/journal/journal.h"
#include "daemon/log.h"
#include "plugins/access/access_source.h"
#include "plugins/driver/dax_driver.h"
#include "plugins/driver/safe_open.h"
#include "plugins/files/close_watcher.h"
#include "plugins/files/sampler.h"
#include "plugins/files/scanner.h"
#include "plugins/host/dax_capability.h"
#include "plugins/host/holders.h"
#include "plugins/host/mount_table.h"
#include "plugins/host/system_telemetry.h"
#include "plugins/media/media_plugin.h"
#include "plugins/registry.h"

namespace daxpolicy::daemon {

using policy::Decision;
using policy::DevOf;
using policy::FileKey;
using policy::FileKind;
using policy::FileRecord;
using policy::KeyOf;

namespace {

int64_t WallClockNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string DaxName(DaxState s) { return std::string(policy::DaxStateName(s)); }

// FileRecord::daemon_state: bit 7 = published, bits 0-2 state, 3-4 physical, 5-6 effective.
uint8_t Pack(FileState s, DaxState physical, DaxState effective) {
  return static_cast<uint8_t>(0x80 | static_cast<unsigned>(s) |
                              (static_cast<unsigned>(physical) << 3) |
                              (static_cast<unsigned>(effective) << 5));
}

// The scope roots of one policy, shared by the working state and every view
// made under it (views outlive a reload until the next cycle ends).
struct ScopeSet {
  struct Scope {
    std::string path;
    int root_fd = -1;  // O_PATH directory of the scope root
    bool usable = false;
    std::string flag_blocked;  // why the per-file flag cannot work here ("" = it can)
    uint64_t dev = 0;
    uint64_t mount_id = 0;  // statx STATX_MNT_ID of the root at setup (0 = unknown)
    bool covered = false;   // a mount is over the root: never scanned
    media::MountInput media_input;
  };
  std::vector<Scope> list;
  ScopeSet() = default;
  ScopeSet(const ScopeSet&) = delete;
  ScopeSet& operator=(const ScopeSet&) = delete;
  ~ScopeSet() {
    for (Scope& s : list) {
      if (s.root_fd >= 0) close(s.root_fd);
    }
  }
};

// Per-file result of a cycle, parallel to snap.files.
// 24 bytes a file: only what GetFile/Explain need from the decision.
struct Status {
  FileState state = FileState::kUnmanaged;
  DaxState desired = DaxState::kUnknown;
  bool held = false;
  policy::Reason reason = policy::Reason::kNone;  // the decision's reason
  int32_t rule = -1;
  int32_t apply_reason = -1;  // index into apply_reasons when the driver refused
  int64_t wait_ns = 0;        // the decision's wait
};

using PendingHolders = std::map<FileKey, std::vector<HolderInfo>>;

// What a pending file's close event found (loop thread), replayed on the
// working state at the next BeginCycle and on a view published meanwhile.
struct CloseUpdate {
  FileKey key;
  DaxState effective = DaxState::kUnknown;
  uint8_t packed = 0;  // Pack(state, physical, effective) as signalled
  std::string path;
};

// A file that became pending: its close events are watched from EndCycle on.
struct TrackRequest {
  FileKey key;
  int root_fd = -1;
  std::string relative;
};

FileState StateAfterApply(const FileRecord& f, DaxState desired,
                          const std::vector<policy::MountRecord>& mounts) {
  if (f.kind == FileKind::kDirectory) return FileState::kInSync;
  if (f.physical != desired) return FileState::kBlocked;
  if (f.effective == desired) return FileState::kInSync;
  const std::string& blocked = mounts[f.mount].effective_blocked_reason;
  if (desired == DaxState::kDax && !blocked.empty()) return FileState::kBlocked;
  return FileState::kPending;
}

uint64_t WatchToken(const FileKey& key) { return (key.dev << 40) ^ key.ino; }

// Path relative to the scope root of file f.
std::string RelativePath(const ScopeSet& scopes, const FileRecord& f, const std::string& abs) {
  const std::string& root = scopes.list[f.mount].path;
  return abs.size() > root.size() ? abs.substr(root.size() + 1) : std::string();
}

EngineGauges CountGauges(const policy::Policy& policy, const policy::Snapshot& snap,
                         const std::vector<Status>& status) {
  EngineGauges g;
  for (FileState s : {FileState::kUnmanaged, FileState::kInSync, FileState::kPending,
                      FileState::kDeferred, FileState::kObserved, FileState::kBlocked}) {
    g.files_by_state[s] = 0;
  }
  g.files_by_effective[DaxState::kDax] = 0;
  g.files_by_effective[DaxState::kPageCache] = 0;
  for (const policy::Rule& r : policy.rules) g.rule_matched[r.name] = 0;
  for (uint32_t i = 0; i < status.size() && i < snap.files.size(); ++i) {
    const Status& s = status[i];
    ++g.files_by_state[s.state];
    const FileRecord& f = snap.files[i];
    if (s.state != FileState::kUnmanaged && f.kind == FileKind::kRegular &&
        (f.available & policy::kHaveEffective) && f.effective != DaxState::kUnknown) {
      ++g.files_by_effective[f.effective];
    }
    if (s.rule >= 0) ++g.rule_matched[policy.rules[static_cast<size_t>(s.rule)].name];
  }
  return g;
}

}  // namespace

// What the loop answers from: the result of the last finished cycle, plus what
// close events changed since. Owned and touched by the loop thread only.
struct Engine::View {
  std::shared_ptr<const policy::Policy> policy;
  std::shared_ptr<const ScopeSet> scopes;
  uint64_t epoch = 0;  // the working state it was copied from (see Impl::epoch)
  policy::Snapshot snap;
  std::vector<Status> status;
  std::vector<std::string> apply_reasons;
  // (identity, file index), sorted: 24 bytes a file, binary-searched by GetFile.
  std::vector<std::pair<FileKey, uint32_t>> index;
  PendingHolders pending_holders;
  policy::RuleState rule_state;
  media::MediaReport media_report;
  EngineGauges gauges;

  // The fields of file i that GetFileState and ListFiles share (not path,
  // reason or holders).
  void Fill(uint32_t i, FileView* out) const {
    const FileRecord& f = snap.files[i];
    const Status& s = status[i];
    out->managed = s.state != FileState::kUnmanaged;
    out->desired = s.desired;
    out->physical = (f.available & policy::kHavePhysical) ? f.physical : DaxState::kUnknown;
    out->effective = f.kind == FileKind::kDirectory           ? DaxState::kUnknown
                     : (f.available & policy::kHaveEffective) ? f.effective
                                                              : DaxState::kUnknown;
    out->state = s.state;
    out->rule = s.rule >= 0 ? policy->rules[static_cast<size_t>(s.rule)].name : "";
  }

  std::optional<uint32_t> Find(const FileKey& key) const {
    auto it = std::lower_bound(index.begin(), index.end(), std::make_pair(key, uint32_t{0}));
    if (it == index.end() || it->first != key) return std::nullopt;
    return it->second;
  }

  // A file's effective state as a close event found it: the state, counts and
  // gauges follow. Returns false when the file is not in this view.
  bool ApplyEffective(const FileKey& key, DaxState eff) {
    std::optional<uint32_t> i = Find(key);
    if (!i) return false;
    FileRecord& f = snap.files[*i];
    Status& st = status[*i];
    const FileState before = st.state;
    const bool counted = before != FileState::kUnmanaged && f.kind == FileKind::kRegular &&
                         (f.available & policy::kHaveEffective) &&
                         f.effective != DaxState::kUnknown;
    if (counted) --gauges.files_by_effective[f.effective];
    f.effective = eff;
    f.available |= policy::kHaveEffective;
    if (before != FileState::kUnmanaged) st.state = StateAfterApply(f, st.desired, snap.mounts);
    if (st.state != FileState::kUnmanaged && f.kind == FileKind::kRegular) {
      ++gauges.files_by_effective[eff];
    }
    --gauges.files_by_state[before];
    ++gauges.files_by_state[st.state];
    f.daemon_state = Pack(st.state, f.physical, f.effective);
    if (st.state != FileState::kPending) pending_holders.erase(key);
    return true;
  }
};

struct CycleJob {
  int64_t now_ns = 0;
  policy::Mode mode = policy::Mode::kEnforce;  // at BeginCycle
  policy::Holds holds;                         // copy: the loop may change its own meanwhile
  std::chrono::steady_clock::time_point started;
  CycleReport report;
  EngineCounters delta;  // added to the engine's counters at EndCycle
  std::vector<Status> status;
  std::vector<std::string> apply_reasons;
  std::vector<TrackRequest> track;
  std::unique_ptr<Engine::View> view;     // made by RunWork, published by EndCycle
  std::unique_ptr<Engine::View> retired;  // the view before the last: freed by RunWork
  // The rule timers of the published view: RunWork starts from a copy of them
  // (both threads only read the view's).
  const policy::RuleState* rule_state = nullptr;
};

void CycleJobDeleter::operator()(CycleJob* job) const { delete job; }

struct Engine::Impl {
  // --- Loop thread ---
  host::Roots roots;
  std::vector<std::string> degraded;  // per-scope and feature problems (set by SetUpScopes)
  std::unique_ptr<files::CloseWatcher> watcher;
  std::string watcher_problem;
  HoldTable holds;
  std::unique_ptr<View> view;
  // The view the last EndCycle replaced; freeing 100,000s of entries is left to
  // the next RunWork rather than done on the loop thread.
  std::unique_ptr<View> retired;
  std::vector<CloseUpdate> close_updates;  // since the last BeginCycle
  // Set by the loop (fanotify overflow), taken by the next scan.
  std::atomic<bool> rescan_requested{false};

  // --- Working state: RunWork only (and SetUpScopes/BeginCycle while no job is out) ---
  std::shared_ptr<const policy::Policy> policy;  // the policy the working state scans for
  std::shared_ptr<const ScopeSet> scopes;
  uint64_t epoch = 0;  // bumped by SetUpScopes: snap indices of older views do not apply
  policy::Snapshot snap;
  std::unique_ptr<files::Scanner> scanner;
  files::FileSampler sampler;
  std::unique_ptr<driver::DaxDriver> enforce_driver;
  std::unique_ptr<driver::DaxDriver> observe_driver;
  std::unique_ptr<journal::Journal> journal;
  // What is wrong with the journal, for Degraded() on the loop thread ("" = nothing).
  mutable std::mutex journal_status_mu;
  std::string journal_status;
  // Opens the journal if needed; false (and journal_status says why) when it cannot be.
  bool OpenJournal(const std::string& state_dir) {
    std::string status;
    if (!journal) {
      auto j = journal::Journal::Open(state_dir);
      if (!j.ok()) {
        status = "state journal unavailable: " + j.error().message +
                 "; no flag is changed until it works";
      } else {
        journal = std::move(*j);
        for (const std::string& p : journal->problems()) LogWarning("journal: " + p);
      }
    }
    if (journal) {
      const std::vector<std::string> damage = journal->Damage();
      if (!damage.empty()) {
        status = "state journal " + journal->state_dir() + " is damaged (" + damage.front() +
                 (damage.size() > 1 ? "; and " + std::to_string(damage.size() - 1) + " more" : "") +
                 "): originals recorded there may be lost; check them, then remove its corrupt/";
      }
    }
    std::lock_guard<std::mutex> lock(journal_status_mu);
    journal_status = std::move(status);
    return journal != nullptr;
  }
  std::unique_ptr<media::MediaPlugin> media;
  media::MediaReport media_report;
  access::AccessSource access{access::AccessSource::Options{}};
  // Why access tracing works only in part, for Degraded() on the loop thread.
  mutable std::mutex access_status_mu;
  std::string access_status;
  int64_t last_probe_ns = 0;
  bool probed_once = false;
  policy::RuleState rule_state;  // during RunWork only; the view holds it between cycles
  PendingHolders pending_holders;
  // What was last published per file before a reload rebuilt the snapshot
  // (sorted): the first cycle after it signals only files whose state changed.
  std::vector<std::pair<FileKey, uint8_t>> carried_states;
  int64_t last_full_scan_ns = 0;
  bool scanned_once = false;
  driver::KernelVersion kernel = driver::KernelVersion::Running();
  std::optional<host::KernelDaxSupport> kernel_support;
};

Engine::Engine(Options options, policy::Policy policy)
    : impl_(std::make_unique<Impl>()),
      options_(std::move(options)),
      policy_(std::make_shared<const policy::Policy>(std::move(policy))) {}

Engine::~Engine() = default;

Result<std::unique_ptr<Engine>> Engine::Create(const Options& options, policy::Policy policy) {
  std::unique_ptr<Engine> e(new Engine(options, std::move(policy)));
  Impl& m = *e->impl_;
  m.roots.proc = options.procfs;
  m.roots.sys = options.sysfs;
  e->mode_ = options.observe ? policy::Mode::kObserve : e->policy_->daemon.mode;
  utsname u{};
  if (uname(&u) == 0) {
    auto support = host::AssessKernelRelease(u.release);
    if (support.ok()) m.kernel_support = *support;
  }
  plugins::DriverSettings ds{m.kernel, options.procfs};
  m.enforce_driver = plugins::MakeDriver("inode-flag", ds);
  m.observe_driver = plugins::MakeDriver("observe", ds);
  media::MediaPluginOptions mopts;
  mopts.sysfs_root = options.sysfs;
  mopts.probe.probe_dir = e->policy_->daemon.probe_dir;
  mopts.log = [](media::LogLevel level, std::string_view msg) {
    if (level == media::LogLevel::kError) {
      LogWarning(std::string("media: ") + std::string(msg));
    } else {
      LogDebug(std::string("media: ") + std::string(msg));
    }
  };
  m.media = std::make_unique<media::MediaPlugin>(media::MakeLibNvdimmSource(mopts.log), mopts);
  auto watcher = files::CloseWatcher::Create(getpid());
  if (watcher.ok()) {
    m.watcher = std::move(*watcher);
  } else {
    m.watcher_problem = "close events unavailable (" + watcher.error().message +
                        "); pending files are re-checked every cycle";
  }
  e->SetUpScopes();
  return e;
}

void Engine::SetUpScopes() {
  Impl& m = *impl_;
  m.carried_states.clear();
  if (m.view) {
    m.carried_states.reserve(m.view->index.size());
    for (const auto& [key, i] : m.view->index) {
      const uint8_t published = m.view->snap.files[i].daemon_state;
      if (published & 0x80) m.carried_states.emplace_back(key, published);
    }
  }
  m.degraded.clear();
  // A journal that cannot be opened or was found damaged shows at start, not at the first change.
  if (mode_.load() == policy::Mode::kEnforce) m.OpenJournal(options_.state_dir);
  m.policy = policy_;
  ++m.epoch;
  m.snap = policy::Snapshot();
  m.scanned_once = false;
  m.close_updates.clear();
  m.snap.page_size = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  auto scopes = std::make_shared<ScopeSet>();
  auto table = host::MountTable::Load(m.roots);
  if (!table.ok()) m.degraded.push_back("cannot read the mount table: " + table.error().message);
  std::vector<files::ScanScope> scan_scopes;
  for (const std::string& path : policy_->scopes) {
    ScopeSet::Scope s;
    s.path = path;
    policy::MountRecord rec;
    rec.mount_point = path;
    s.root_fd = open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (s.root_fd < 0) {
      int err = errno;
      m.degraded.push_back("scope " + path + " cannot be opened: " + std::strerror(err));
      s.flag_blocked = "scope root cannot be opened";
    } else {
      struct stat st {};
      struct statfs sfs {};
      fstat(s.root_fd, &st);
      s.dev = st.st_dev;
      rec.dev = st.st_dev;
      struct statx sx {};
      if (statx(s.root_fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) == 0 &&
          (sx.stx_mask & STATX_MNT_ID)) {
        s.mount_id = sx.stx_mnt_id;
      }
      const host::MountEntry* mount = table.ok() ? table->Place(path) : nullptr;
      std::string over = table.ok() ? table->MountOverProblem(path, s.mount_id) : "";
      s.covered = mount != nullptr && !over.empty();
      if (mount == nullptr || s.covered) {
        s.flag_blocked =
            mount == nullptr ? "no mount found for the scope in the mount table" : over;
        m.degraded.push_back("scope " + path + ": " + s.flag_blocked);
      } else {
        host::DaxCheckInput in;
        in.block_size = fstatfs(s.root_fd, &sfs) == 0 ? static_cast<uint64_t>(sfs.f_bsize) : 0;
        in.page_size = m.snap.page_size;
        in.kernel = m.kernel_support;
        host::MountDaxCapability cap = host::AssessMountDax(*mount, m.roots, in);
        if (!cap.per_file_flag.ok) {
          s.flag_blocked = cap.per_file_flag.reason;
          m.degraded.push_back("scope " + path + ": per-file DAX cannot work: " + s.flag_blocked);
        }
        if (!cap.effective.ok) rec.effective_blocked_reason = cap.effective.reason;
        rec.mount_point = mount->mount_point;
        s.media_input =
            media::MountInput{mount->mount_point, mount->major, mount->minor, mount->fs_type, {}};
        for (const auto* list : {&mount->mount_options, &mount->super_options}) {
          for (const auto& o : *list) {
            if (!s.media_input.mount_options.empty()) s.media_input.mount_options += ",";
            s.media_input.mount_options += o;
          }
        }
        if (m.watcher) {
          auto w = m.watcher->WatchFilesystem(path);
          if (!w.ok() && m.watcher_problem.empty()) {
            m.watcher_problem = "close events unavailable on " + path + " (" + w.error().message +
                                "); pending files are re-checked every cycle";
          }
        }
      }
      s.usable = true;
    }
    files::ScanScope ss;
    ss.path = path;
    ss.mount = static_cast<uint16_t>(scopes->list.size());
    ss.dev = s.dev;
    ss.mount_id = s.mount_id;
    if (s.usable && !s.covered) scan_scopes.push_back(ss);
    m.snap.mounts.push_back(rec);
    scopes->list.push_back(std::move(s));
  }
  // The scanner never enters protect patterns or the media probe directories.
  std::vector<std::string> probe_dirs;
  for (const ScopeSet::Scope& s : scopes->list) {
    if (!s.media_input.mount_point.empty()) {
      std::string root = s.media_input.mount_point == "/" ? "" : s.media_input.mount_point;
      probe_dirs.push_back(root + "/" + policy_->daemon.probe_dir);
    }
  }
  m.scopes = std::move(scopes);
  std::shared_ptr<const policy::Policy> p = policy_;
  m.scanner =
      std::make_unique<files::Scanner>(scan_scopes, [p, probe_dirs](std::string_view path, bool) {
        for (const std::string& d : probe_dirs) {
          if (policy::PathIsWithin(path, d)) return true;
        }
        return p->ProtectedBy(path) != nullptr;
      });
  // Before the first cycle under these scopes, the last view (if any) stays
  // published; at start there is an empty one, so every query says "not scanned yet".
  if (!m.view) {
    m.view = std::make_unique<View>();
    m.view->policy = m.policy;
    m.view->scopes = m.scopes;
    m.view->epoch = m.epoch;
    m.view->snap = m.snap;
    m.view->gauges = CountGauges(*m.policy, m.view->snap, m.view->status);
  }
}

CycleReport Engine::RunCycle(int64_t now_ns) {
  CycleJobPtr job = BeginCycle(now_ns);
  if (!job) return CycleReport{};
  RunWork(*job);
  return EndCycle(std::move(job));
}

CycleJobPtr Engine::BeginCycle(int64_t now_ns) {
  if (cycle_running_) return nullptr;
  Impl& m = *impl_;
  CycleJobPtr job(new CycleJob());
  job->now_ns = now_ns;
  job->mode = mode_.load();
  m.holds.Prune([&m](uint64_t dev) {
    for (const ScopeSet::Scope& s : m.scopes->list) {
      if (s.usable && s.dev == dev) return s.root_fd;
    }
    return -1;
  });
  job->holds = m.holds.effective();
  job->started = std::chrono::steady_clock::now();
  // The loop's knowledge since the last cycle goes to the working state while
  // nothing else touches it: which files are still pending, and what close
  // events found (so their changes are not signalled a second time).
  m.pending_holders = m.view->pending_holders;
  if (m.view->epoch == m.epoch) {
    for (const CloseUpdate& u : m.close_updates) {
      std::optional<uint32_t> i = m.view->Find(u.key);
      if (!i || *i >= m.snap.files.size() || m.snap.files[*i].ino != u.key.ino) continue;
      FileRecord& f = m.snap.files[*i];
      f.effective = u.effective;
      f.daemon_state = u.packed;
    }
  }
  m.close_updates.clear();
  job->retired = std::move(m.retired);
  job->rule_state = &m.view->rule_state;
  cancel_ = false;
  cycle_running_ = true;
  return job;
}

void Engine::RunWork(CycleJob& job) {
  Impl& m = *impl_;
  const policy::Policy& pol = *m.policy;
  CycleReport& report = job.report;
  EngineCounters& counters = job.delta;
  ++counters.cycles;
  job.retired.reset();
  // The view keeps the only copy of the rule timers between cycles.
  m.rule_state = *job.rule_state;

  // 1. Scan and sample (full scans on the rescan interval, incremental otherwise).
  bool full = !m.scanned_once || job.now_ns - m.last_full_scan_ns >= pol.daemon.rescan_ns;
  if (m.rescan_requested.exchange(false)) m.scanner->RequestFullRescan();
  m.sampler.ResetStats();
  files::ScanStats scan = m.scanner->Scan(
      &m.snap, full ? files::ScanMode::kFull : files::ScanMode::kIncremental, &m.sampler);
  if (full) m.last_full_scan_ns = job.now_ns;
  m.scanned_once = true;
  report.full_scan = scan.full;
  if (scan.error_count) counters.sampler_errors["scan"] += scan.error_count;
  for (const auto& err : scan.errors) {
    LogDebug("scan: " + journal::PrintablePath(err.path) + ": " + err.what + ": " +
             std::strerror(err.err));
  }
  const files::SampleStats& ss = m.sampler.stats();
  if (ss.errors) counters.sampler_errors["sample"] += ss.errors;
  if (ss.cache_unavailable) counters.sampler_errors["cache"] += ss.cache_unavailable;
  m.snap.wall_clock_ns = WallClockNs();

  // 2. System telemetry.
  host::SystemTelemetry sys = host::ReadSystemTelemetry(m.roots);
  m.snap.system.have_mem_pressure = sys.pressure.has_value();
  if (sys.pressure) m.snap.system.mem_pressure = sys.pressure->some_avg10;
  m.snap.system.have_page_cache_ratio = sys.meminfo && sys.meminfo->page_cache_ratio.has_value();
  if (m.snap.system.have_page_cache_ratio) {
    m.snap.system.page_cache_ratio = *sys.meminfo->page_cache_ratio;
  }
  if (!sys.meminfo) counters.sampler_errors["system"] += 1;

  // 2b. Access tracing: reads, misses and writes of the scanned files since the last cycle.
  uint64_t access_errors = 0;
  m.access.Sample(&m.snap, job.now_ns, &access_errors);
  if (access_errors) counters.sampler_errors[access::AccessSource::kName] += access_errors;
  {
    std::string status = m.access.Degraded();
    std::lock_guard<std::mutex> lock(m.access_status_mu);
    m.access_status = std::move(status);
  }

  // 3. Media: topology every cycle, latency probes on their own interval.
  std::vector<media::MountInput> inputs;
  for (const ScopeSet::Scope& s : m.scopes->list) {
    if (!s.media_input.mount_point.empty()) inputs.push_back(s.media_input);
  }
  bool probe = !m.probed_once || job.now_ns - m.last_probe_ns >= pol.daemon.probe_interval_ns;
  m.media_report = m.media->Refresh(inputs, probe);
  if (probe) {
    m.last_probe_ns = job.now_ns;
    m.probed_once = true;
  }
  media::FillSnapshot(m.media_report, &m.snap);

  // 4. Holders of files that were pending (and of every file when rules read file.holders).
  UpdateHolders(job);

  // 5. Evaluate.
  policy::Decisions decisions =
      policy::Evaluate(pol, m.snap, m.rule_state, job.holds, {job.mode, job.now_ns});
  for (size_t r = 0; r < decisions.rules.size(); ++r) {
    const policy::RuleCounters& c = decisions.rules[r];
    const std::string& name = pol.rules[r].name;
    if (c.suppressed_for) counters.suppressed[{name, "for"}] += c.suppressed_for;
    if (c.suppressed_min_dwell) counters.suppressed[{name, "min_dwell"}] += c.suppressed_min_dwell;
    if (c.suppressed_budget) counters.suppressed[{name, "budget"}] += c.suppressed_budget;
    if (c.suppressed_observe) counters.suppressed[{name, "observe"}] += c.suppressed_observe;
  }
  const policy::RuleCounters& dc = decisions.defaults;
  if (dc.suppressed_min_dwell) counters.suppressed[{"", "min_dwell"}] += dc.suppressed_min_dwell;
  if (dc.suppressed_budget) counters.suppressed[{"", "budget"}] += dc.suppressed_budget;
  if (dc.suppressed_observe) counters.suppressed[{"", "observe"}] += dc.suppressed_observe;
  if (decisions.auto_to_dax) counters.auto_decisions["dax"] += decisions.auto_to_dax;
  if (decisions.auto_to_page_cache) {
    counters.auto_decisions["page-cache"] += decisions.auto_to_page_cache;
  }

  // 6. Apply, originals journaled first in one durable write.
  job.status.assign(m.snap.files.size(), {});
  job.apply_reasons.clear();
  ApplyDecisions(decisions, job);

  // 7. Pending files: holders and close tracking; state changes; the new view.
  FinishWork(job);
  report.files = m.snap.files.size();
}

void Engine::UpdateHolders(CycleJob& job) {
  Impl& m = *impl_;
  bool all = m.policy->UsesVariable(policy::Var::kFileHolders);
  // Pending files (always regular) are looked up on their own; every file only
  // when a rule reads file.holders.
  std::vector<host::FileId> ids;
  if (all) {
    for (const FileRecord& f : m.snap.files) {
      if (f.kind == FileKind::kRegular) ids.push_back({DevOf(m.snap, f), f.ino});
    }
  } else {
    for (const auto& [k, holders] : m.pending_holders) ids.push_back({k.dev, k.ino});
  }
  if (ids.empty()) return;
  auto scan = host::FindHolders(m.roots, ids, getpid());
  if (!scan.ok()) {
    job.delta.sampler_errors["holders"] += 1;
    return;
  }
  if (all) {
    for (FileRecord& f : m.snap.files) {
      if (f.kind != FileKind::kRegular) continue;
      auto it = scan->holders.find({DevOf(m.snap, f), f.ino});
      size_t n = it == scan->holders.end() ? 0 : it->second.size();
      f.holders = static_cast<uint16_t>(std::min<size_t>(n, 65535));
      f.available |= policy::kHaveHolders;
    }
  }
  for (auto& [k, out] : m.pending_holders) {
    out.clear();
    if (auto it = scan->holders.find({k.dev, k.ino}); it != scan->holders.end()) {
      for (const host::Holder& h : it->second) {
        out.push_back(HolderInfo{static_cast<uint32_t>(h.pid), h.comm, h.map_sync});
      }
    }
  }
}

void Engine::ApplyDecisions(const policy::Decisions& decisions, CycleJob& job) {
  Impl& m = *impl_;
  const ScopeSet& scopes = *m.scopes;
  std::vector<Status>& status = job.status;
  std::vector<std::string>& apply_reasons = job.apply_reasons;
  EngineCounters& counters = job.delta;
  std::vector<uint32_t> to_apply;
  std::string path;
  // Many files are refused for the same reason (a device without DAX): keep
  // each text once.
  std::unordered_map<std::string, int32_t> reason_ids;
  auto reason_id = [&](const std::string& text) {
    auto [it, added] = reason_ids.emplace(text, static_cast<int32_t>(apply_reasons.size()));
    if (added) apply_reasons.push_back(text);
    return it->second;
  };
  for (const Decision& d : decisions.files) {
    Status& st = status[d.file];
    st.reason = d.reason;
    st.wait_ns = d.wait_ns;
    st.state = d.state;
    st.desired = d.desired;
    st.rule = d.rule;
    st.held = d.held;
    if (!d.apply) continue;
    const FileRecord& f = m.snap.files[d.file];
    const ScopeSet::Scope& scope = scopes.list[f.mount];
    if (!scope.flag_blocked.empty()) {
      st.state = FileState::kBlocked;
      st.apply_reason = reason_id(scope.flag_blocked);
      continue;
    }
    to_apply.push_back(d.file);
  }
  if (to_apply.empty()) return;

  const bool enforce = job.mode == policy::Mode::kEnforce;
  // Without a durable record of the originals nothing may change: the whole
  // batch is blocked with the reason.
  auto block_batch = [&](const std::string& why) {
    LogError(why);
    counters.sampler_errors["journal"] += 1;
    const int32_t id = reason_id(why);
    for (uint32_t i : to_apply) {
      status[i].state = FileState::kBlocked;
      status[i].apply_reason = id;
    }
  };
  // Originals first, in one durable write for the whole batch.
  if (enforce) {
    if (!m.journal && !m.OpenJournal(options_.state_dir)) {
      std::string why;
      {
        std::lock_guard<std::mutex> lock(m.journal_status_mu);
        why = m.journal_status;
      }
      block_batch(why);
      return;
    }
    m.journal->SetScopes(m.policy->scopes);
    std::vector<journal::JournalEntry> batch;
    for (uint32_t i : to_apply) {
      const FileRecord& f = m.snap.files[i];
      m.snap.PathOf(f, &path);
      journal::JournalEntry e;
      e.key = journal::FileKey{DevOf(m.snap, f), f.ino};
      e.scope_root = scopes.list[f.mount].path;
      e.path = RelativePath(scopes, f, path);
      e.original = f.physical;
      batch.push_back(std::move(e));
    }
    auto recorded = m.journal->RecordOriginals(batch);
    if (!recorded.ok()) {
      block_batch("cannot record original flags: " + recorded.error().message +
                  "; nothing is changed this cycle");
      return;
    }
  }
  // MAP_SYNC users of files about to lose DAX, in one pass over /proc.
  std::set<FileKey> map_sync;
  std::vector<host::FileId> turning_off;
  for (uint32_t i : to_apply) {
    const FileRecord& f = m.snap.files[i];
    if (status[i].desired == DaxState::kPageCache && f.kind == FileKind::kRegular) {
      turning_off.push_back({DevOf(m.snap, f), f.ino});
    }
  }
  bool map_sync_known = true;
  if (!turning_off.empty()) {
    auto scan = host::FindHolders(m.roots, turning_off, getpid());
    if (scan.ok()) {
      for (const auto& [id, holders] : scan->holders) {
        for (const host::Holder& h : holders) {
          if (h.map_sync) map_sync.insert(FileKey{id.dev, id.ino});
        }
      }
    } else {
      map_sync_known = false;
    }
  }
  driver::ApplyHooks hooks;
  hooks.maps_sync = [&](uint64_t dev, uint64_t ino) -> Result<bool> {
    if (!map_sync_known) return Error{"cannot tell whether a process maps the file MAP_SYNC", 0};
    return map_sync.count(FileKey{dev, ino}) > 0;
  };
  for (uint32_t i : to_apply) {
    FileRecord& f = m.snap.files[i];
    Status& st = status[i];
    // The mode may become observe while this runs (SetMode from the loop), and
    // a shutdown may cancel: from then on nothing changes; the rest is observed.
    const bool change = enforce && mode_.load() == policy::Mode::kEnforce && !cancel_.load();
    driver::DaxDriver* drv = change ? m.enforce_driver.get() : m.observe_driver.get();
    m.snap.PathOf(f, &path);
    const ScopeSet::Scope& scope = scopes.list[f.mount];
    hooks.before_change = nullptr;
    if (m.journal && change) hooks.before_change = m.journal->BeforeChangeHook(scope.path);
    driver::FileRef ref{scope.root_fd, RelativePath(scopes, f, path), {DevOf(m.snap, f), f.ino}};
    auto outcome = drv->Apply(ref, st.desired, hooks);
    // A hold, not the rule, decided this change: counted with the defaults.
    std::string rule =
        st.held || st.rule < 0 ? "" : m.policy->rules[static_cast<size_t>(st.rule)].name;
    std::string to = DaxName(st.desired);
    // Logged once when a file becomes blocked, not at every retry.
    auto log_blocked = [&](const std::string& why) {
      std::optional<uint32_t> was = m.view->Find(KeyOf(m.snap, f));
      if (was && *was < m.view->status.size() &&
          m.view->status[*was].state == FileState::kBlocked) {
        return;
      }
      std::string shown = journal::PrintablePath(path);
      LogEvent(Event::kSwitchBlocked, LogLevel::kNotice,
               "cannot switch " + shown + " to " + to + ": " + why,
               {field::Path(path), field::Rule(rule), field::To(to), field::Reason(why)});
    };
    if (!outcome.ok()) {
      ++counters.transitions[{rule, to, "failed"}];
      st.state = FileState::kBlocked;
      st.apply_reason = reason_id(outcome.error().message);
      ++job.report.blocked;
      log_blocked(outcome.error().message);
      continue;
    }
    const driver::ApplyOutcome& o = *outcome;
    if (o.blocked()) {
      ++counters.transitions[{rule, to, "blocked"}];
      st.state = FileState::kBlocked;
      st.apply_reason = reason_id(o.reason);
      ++job.report.blocked;
      log_blocked(o.reason);
      continue;
    }
    if (o.result == driver::ApplyResult::kObserved) {
      st.state = FileState::kObserved;
      continue;
    }
    if (o.result == driver::ApplyResult::kChanged) {
      ++counters.transitions[{rule, to, "changed"}];
      ++job.report.applied;
      LogEvent(
          Event::kSwitchApplied, LogLevel::kInfo,
          "switched " + journal::PrintablePath(path) + " to " + to +
              (st.held        ? " (application hold)"
               : rule.empty() ? " (defaults)"
                              : " (rule '" + rule + "')"),
          {field::Path(path), field::Rule(rule), field::From(DaxName(f.physical)), field::To(to)});
    }
    f.physical = o.physical_after;
    f.available |= policy::kHavePhysical;
    if (o.kind == FileKind::kRegular && o.effective != DaxState::kUnknown) {
      f.effective = o.effective;
      f.available |= policy::kHaveEffective;
    }
    st.state = StateAfterApply(f, st.desired, m.snap.mounts);
    if (o.result == driver::ApplyResult::kChanged && st.state == FileState::kPending) {
      LogEvent(Event::kSwitchPending, LogLevel::kInfo,
               journal::PrintablePath(path) + " becomes " + to +
                   " when the processes holding it close it",
               {field::Path(path), field::Rule(rule), field::To(to)});
    }
  }
  // Originals of files this batch did not change after all are dropped again.
  if (m.journal && enforce) {
    if (auto settled = m.journal->SettleBatch(); !settled.ok()) {
      LogWarning("journal: " + settled.error().message);
    }
  }
}

void Engine::FinishWork(CycleJob& job) {
  Impl& m = *impl_;
  const ScopeSet& scopes = *m.scopes;
  CycleReport& report = job.report;
  auto view = std::make_unique<View>();
  PendingHolders still_pending;
  std::vector<host::FileId> new_pending;
  std::string path;
  view->index.reserve(m.snap.files.size());
  for (uint32_t i = 0; i < m.snap.files.size(); ++i) {
    FileRecord& f = m.snap.files[i];
    const Status& st = job.status[i];
    FileKey key = KeyOf(m.snap, f);
    view->index.emplace_back(key, i);
    if (st.state == FileState::kPending && f.kind == FileKind::kRegular) {
      auto old = m.pending_holders.find(key);
      if (old != m.pending_holders.end()) {
        still_pending[key] = old->second;
      } else {
        still_pending[key] = {};
        new_pending.push_back({key.dev, key.ino});
      }
    }
    if (f.daemon_state == 0 && !m.carried_states.empty()) {
      auto c = std::lower_bound(m.carried_states.begin(), m.carried_states.end(),
                                std::make_pair(key, uint8_t{0}));
      if (c != m.carried_states.end() && c->first == key) f.daemon_state = c->second;
    }
    uint8_t packed = Pack(st.state, f.physical, f.effective);
    if (f.daemon_state != packed) {
      // First sighting of an unmanaged file is not news; everything else is.
      bool news = (f.daemon_state & 0x80) || st.state != FileState::kUnmanaged;
      if (news) {
        m.snap.PathOf(f, &path);
        std::string rule = st.rule >= 0 ? m.policy->rules[static_cast<size_t>(st.rule)].name : "";
        report.changes.push_back(StateChange{path, st.state, f.physical, f.effective, rule});
      }
      f.daemon_state = packed;
    }
  }
  std::sort(view->index.begin(), view->index.end());
  m.carried_states = {};
  m.pending_holders = std::move(still_pending);
  if (!new_pending.empty()) {
    auto scan = host::FindHolders(m.roots, new_pending, getpid());
    for (const host::FileId& id : new_pending) {
      FileKey key{id.dev, id.ino};
      std::vector<HolderInfo>& out = m.pending_holders[key];
      if (scan.ok()) {
        if (auto it = scan->holders.find(id); it != scan->holders.end()) {
          for (const host::Holder& h : it->second) {
            out.push_back(HolderInfo{static_cast<uint32_t>(h.pid), h.comm, h.map_sync});
          }
        }
      }
      auto found = std::lower_bound(view->index.begin(), view->index.end(),
                                    std::make_pair(key, uint32_t{0}));
      const uint32_t i = found->second;
      const FileRecord& f = m.snap.files[i];
      m.snap.PathOf(f, &path);
      report.pending.push_back(PendingSwitch{path, job.status[i].desired, out});
      job.track.push_back(
          TrackRequest{key, scopes.list[f.mount].root_fd, RelativePath(scopes, f, path)});
    }
  }
  // The view is a copy: the working snapshot must stay for the next
  // incremental scan, and the loop must be able to read while it runs.
  view->policy = m.policy;
  view->scopes = m.scopes;
  view->epoch = m.epoch;
  view->snap = m.snap;
  view->status = std::move(job.status);
  view->apply_reasons = std::move(job.apply_reasons);
  view->pending_holders = m.pending_holders;
  view->rule_state = std::move(m.rule_state);
  m.rule_state = policy::RuleState();
  view->media_report = m.media_report;
  view->gauges = CountGauges(*m.policy, view->snap, view->status);
  job.view = std::move(view);
}

CycleReport Engine::EndCycle(CycleJobPtr job) {
  Impl& m = *impl_;
  cycle_running_ = false;
  CycleReport report = std::move(job->report);
  std::unique_ptr<View> view = std::move(job->view);
  // Close events handled while the job was out: they saw the file after the
  // job sampled it, so they win; a change the job found too is not signalled twice.
  for (const CloseUpdate& u : m.close_updates) {
    if (!view->ApplyEffective(u.key, u.effective)) continue;
    std::erase_if(report.changes, [&](const StateChange& c) {
      return c.path == u.path && Pack(c.state, c.physical, c.effective) == u.packed;
    });
    std::erase_if(report.pending, [&](const PendingSwitch& p) { return p.path == u.path; });
  }
  for (const TrackRequest& t : job->track) {
    if (!m.watcher || !view->pending_holders.count(t.key)) continue;
    auto r = m.watcher->Track(t.root_fd, t.relative, WatchToken(t.key));
    if (!r.ok())
      LogDebug("close watch of " + journal::PrintablePath(t.relative) + ": " + r.error().message);
  }
  // Counters are the loop's: add what the job counted.
  for (const auto& [k, n] : job->delta.transitions) counters_.transitions[k] += n;
  for (const auto& [k, n] : job->delta.suppressed) counters_.suppressed[k] += n;
  for (const auto& [k, n] : job->delta.sampler_errors) counters_.sampler_errors[k] += n;
  for (const auto& [k, n] : job->delta.auto_decisions) counters_.auto_decisions[k] += n;
  counters_.cycles += job->delta.cycles;
  m.retired = std::move(m.view);
  m.view = std::move(view);
  if (scopes_stale_) {
    scopes_stale_ = false;
    SetUpScopes();
  }
  report.duration_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::steady_clock::now() - job->started)
                           .count();
  return report;
}

std::vector<StateChange> Engine::OnCloseEvents(int64_t /*now_ns*/) {
  Impl& m = *impl_;
  std::vector<StateChange> changes;
  if (!m.watcher) return changes;
  auto drained = m.watcher->Drain();
  if (!drained.ok()) {
    counters_.sampler_errors["fanotify"] += 1;
    return changes;
  }
  if (drained->overflow) m.rescan_requested = true;
  if (drained->closed.empty() && !drained->overflow) return changes;
  // A close ends one open file description; others may remain. Re-check the
  // closed files (every pending file after an overflow lost events) with statx
  // (no fd held) rather than trusting the event.
  std::unordered_set<uint64_t> closed;
  for (const files::CloseEvent& e : drained->closed) closed.insert(e.token);
  View& v = *m.view;
  const driver::FlagReader reader(driver::SafeOpenOptions{options_.procfs, true});
  std::string path;
  std::vector<FileKey> keys;
  for (const auto& [key, holders] : v.pending_holders) {
    if (drained->overflow || closed.count(WatchToken(key))) keys.push_back(key);
  }
  for (const FileKey& key : keys) {
    std::optional<uint32_t> idx = v.Find(key);
    if (!idx) {
      v.pending_holders.erase(key);
      continue;
    }
    const FileRecord& f = v.snap.files[*idx];
    v.snap.PathOf(f, &path);
    DaxState eff = reader.ReadEffective(
        {v.scopes->list[f.mount].root_fd, RelativePath(*v.scopes, f, path), {key.dev, f.ino}});
    if (eff == DaxState::kUnknown || eff == f.effective) continue;
    v.ApplyEffective(key, eff);
    const Status& st = v.status[*idx];
    std::string rule = st.rule >= 0 ? v.policy->rules[static_cast<size_t>(st.rule)].name : "";
    changes.push_back(StateChange{path, st.state, f.physical, f.effective, rule});
    m.close_updates.push_back(CloseUpdate{key, eff, f.daemon_state, path});
    if (st.state != FileState::kPending && m.watcher) m.watcher->Untrack(WatchToken(key));
  }
  return changes;
}

int Engine::close_watcher_fd() const { return impl_->watcher ? impl_->watcher->fd() : -1; }

void Engine::ReplacePolicy(policy::Policy policy) {
  policy_ = std::make_shared<const policy::Policy>(std::move(policy));
  ++generation_;
  // A new policy may change scopes and what is protected: start from a full scan.
  if (cycle_running_) {
    scopes_stale_ = true;
  } else {
    SetUpScopes();
  }
}

void Engine::SetMode(policy::Mode mode) { mode_ = mode; }

std::optional<ApiFailure> Engine::Locate(const std::string& path, uint32_t* index) const {
  const View& v = *impl_->view;
  const std::string shown = "'" + journal::PrintablePath(path) + "'";
  if (auto problem = bus::PathProblem(path)) {
    return ApiFailure{ApiError::kInvalidArgument, *problem};
  }
  if (v.policy->ScopeOf(path) == nullptr) {
    return ApiFailure{ApiError::kNotManaged, shown + " is outside every scope of the policy"};
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    return ApiFailure{ApiError::kNotManaged, shown + ": " + std::strerror(errno)};
  }
  std::optional<uint32_t> found = v.Find(FileKey{static_cast<uint64_t>(st.st_dev), st.st_ino});
  if (!found) {
    std::string why = S_ISLNK(st.st_mode) ? "is a symbolic link (never followed)"
                      : !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)
                          ? "is neither a regular file nor a directory"
                      : v.policy->ProtectedBy(path) ? "is protected by the policy"
                                                    : "has not been scanned yet";
    return ApiFailure{ApiError::kNotManaged, shown + " " + why};
  }
  *index = *found;
  return std::nullopt;
}

ApiResult<FileView> Engine::GetFile(const std::string& path) const {
  const View& v = *impl_->view;
  ApiResult<FileView> r;
  uint32_t i = 0;
  if (auto failure = Locate(path, &i)) {
    r.failure = std::move(failure);
    return r;
  }
  FileView out;
  out.path = path;
  v.Fill(i, &out);
  out.reason = ReasonOf(v, i);
  if (auto h = v.pending_holders.find(KeyOf(v.snap, v.snap.files[i]));
      h != v.pending_holders.end()) {
    out.holders = h->second;
  }
  r.value = std::move(out);
  return r;
}

std::string Engine::ReasonOf(const View& v, uint32_t i) const {
  const Status& s = v.status[i];
  Decision d;
  d.file = i;
  d.rule = s.rule;
  d.reason = s.reason;
  d.wait_ns = s.wait_ns;
  d.held = s.held;
  if (s.apply_reason >= 0) return v.apply_reasons[static_cast<size_t>(s.apply_reason)];
  if (s.held) {
    const policy::Holds& holds = impl_->holds.effective();
    if (auto h = holds.find(KeyOf(v.snap, v.snap.files[i])); h != holds.end()) {
      std::string why = "application hold: " + h->second.reason;
      std::string rest = policy::ReasonText(*v.policy, v.snap, d);
      return rest.empty() ? why : why + "; " + rest;
    }
  }
  return policy::ReasonText(*v.policy, v.snap, d);
}

ApiResult<std::string> Engine::Explain(const std::string& path) const {
  const View& v = *impl_->view;
  ApiResult<std::string> r;
  uint32_t i = 0;
  if (auto failure = Locate(path, &i)) {
    r.failure = std::move(failure);
    return r;
  }
  policy::Explanation e = policy::Explain(*v.policy, v.snap, v.rule_state, impl_->holds.effective(),
                                          {mode_.load(), 0}, i);
  std::string text = policy::FormatExplanation(e, v.snap);
  const Status& s = v.status[i];
  if (s.apply_reason >= 0) {
    text += "  last apply: refused: " + v.apply_reasons[static_cast<size_t>(s.apply_reason)] + "\n";
  }
  const FileRecord& f = v.snap.files[i];
  if (!v.snap.mounts[f.mount].effective_blocked_reason.empty()) {
    text += "  device:    " + v.snap.mounts[f.mount].effective_blocked_reason + "\n";
  }
  if (auto h = v.pending_holders.find(KeyOf(v.snap, f));
      h != v.pending_holders.end() && !h->second.empty()) {
    text += "  holders:  ";
    for (const HolderInfo& holder : h->second) {
      text += " " + std::to_string(holder.pid) + " (" + holder.command +
              (holder.map_sync ? ", MAP_SYNC" : "") + ")";
    }
    text += "\n";
  }
  r.value = std::move(text);
  return r;
}

void Engine::ForEachFile(std::optional<FileState> state,
                         const std::function<void(const FileView&)>& visit) const {
  const View& v = *impl_->view;
  FileView fv;
  for (uint32_t i = 0; i < v.snap.files.size(); ++i) {
    if (state && v.status[i].state != *state) continue;
    v.snap.PathOf(v.snap.files[i], &fv.path);
    v.Fill(i, &fv);
    visit(fv);
  }
}

const media::MediaReport& Engine::media() const { return impl_->view->media_report; }

std::vector<std::string> Engine::DegradedKinds() const {
  const Impl& m = *impl_;
  std::vector<std::string> kinds;
  if (!m.degraded.empty()) kinds.push_back("scope");
  {
    std::lock_guard<std::mutex> lock(m.journal_status_mu);
    if (!m.journal_status.empty()) kinds.push_back("journal");
  }
  if (!m.watcher_problem.empty()) kinds.push_back("close-events");
  {
    std::lock_guard<std::mutex> lock(m.access_status_mu);
    if (!m.access_status.empty()) kinds.push_back("access");
  }
  if (!m.view->media_report.Degraded().empty()) kinds.push_back("media");
  return kinds;
}

std::string Engine::Degraded() const {
  const Impl& m = *impl_;
  std::vector<std::string> parts = m.degraded;
  {
    std::lock_guard<std::mutex> lock(m.journal_status_mu);
    if (!m.journal_status.empty()) parts.push_back(m.journal_status);
  }
  if (!m.watcher_problem.empty()) parts.push_back(m.watcher_problem);
  {
    std::lock_guard<std::mutex> lock(m.access_status_mu);
    if (!m.access_status.empty()) parts.push_back(m.access_status);
  }
  std::string media = m.view->media_report.Degraded();
  if (!media.empty()) parts.push_back(media);
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

uint64_t Engine::ManagedFiles() const {
  const View& v = *impl_->view;
  return v.status.size() - v.gauges.files_by_state.at(FileState::kUnmanaged);
}

uint64_t Engine::PendingFiles() const {
  return impl_->view->gauges.files_by_state.at(FileState::kPending);
}

ApiResult<uint32_t> Engine::AddHold(const std::string& path, DaxState mode,
                                    const std::string& reason, const Caller& caller) {
  Impl& m = *impl_;
  ApiResult<uint32_t> r;
  if (mode != DaxState::kDax && mode != DaxState::kPageCache) {
    r.failure = ApiFailure{ApiError::kInvalidArgument, "mode must be dax or page-cache"};
    return r;
  }
  // Protected files are never scanned, so Locate() refuses them too.
  uint32_t i = 0;
  if (auto failure = Locate(path, &i)) {
    r.failure = std::move(failure);
    return r;
  }
  const View& v = *m.view;
  const ScopeSet::Scope& scope = v.scopes->list[v.snap.files[i].mount];
  std::string target_error;
  std::optional<HoldTarget> target;
  {
    // One resolution beneath the scope root that follows no symlink and crosses no mount:
    // the owner checked and the file held are the same file.
    driver::SafeOpener opener(driver::SafeOpenOptions{options_.procfs, true});
    auto opened = opener.OpenPath(scope.root_fd, RelativePath(*v.scopes, v.snap.files[i], path));
    if (!opened.ok()) {
      r.failure =
          ApiFailure{ApiError::kNotManaged,
                     bus::QuoteArgument(path) + " cannot be held: " + opened.blocked().reason};
      return r;
    }
    target = Identify(opened->fd.get(), &target_error);
  }
  if (!target) {
    r.failure = ApiFailure{ApiError::kNotManaged,
                           bus::QuoteArgument(path) + " cannot be held: " + target_error};
    return r;
  }
  if (!caller.root() && target->uid != caller.uid) {
    r.failure = ApiFailure{ApiError::kPermissionDenied,
                           "uid " + std::to_string(caller.uid) + " may not hold " +
                               bus::QuoteArgument(path) + ": only its owner (uid " +
                               std::to_string(target->uid) + ") or root may"};
    return r;
  }
  if (target->dev != scope.dev) {
    r.failure = ApiFailure{ApiError::kNotManaged,
                           bus::QuoteArgument(path) + " is on another filesystem than its scope"};
    return r;
  }
  auto added = m.holds.Add(*target, path, mode, reason, caller);
  if (added.cookie == 0) {
    r.failure = ApiFailure{ApiError::kPermissionDenied, added.error};
    return r;
  }
  r.value = added.cookie;
  return r;
}

bool Engine::ReleaseHold(uint32_t cookie, const Caller& caller) {
  return impl_->holds.Release(cookie, caller);
}

size_t Engine::ReleaseHoldsOf(const std::string& owner) { return impl_->holds.ReleaseOwner(owner); }

void Engine::ForEachHold(const Caller& caller,
                         const std::function<void(const HoldInfo&)>& visit) const {
  impl_->holds.ForEach(caller, visit);
}

std::vector<EndedHold> Engine::TakeEndedHolds() { return impl_->holds.TakeEnded(); }

EngineGauges Engine::Gauges() const {
  EngineGauges g = impl_->view->gauges;
  // Every rule of the newest policy has its series from the first scrape on,
  // even before a cycle has run under it; rules gone from it lose theirs.
  std::map<std::string, uint64_t> matched;
  for (const policy::Rule& r : policy_->rules) {
    auto it = g.rule_matched.find(r.name);
    matched[r.name] = it == g.rule_matched.end() ? 0 : it->second;
  }
  g.rule_matched = std::move(matched);
  return g;
}

std::map<FileState, std::vector<std::pair<std::string, std::string>>> Engine::Summary() const {
  std::map<FileState, std::vector<std::pair<std::string, std::string>>> out;
  const View& v = *impl_->view;
  std::string path;
  for (uint32_t i = 0; i < v.status.size(); ++i) {
    if (v.status[i].state != FileState::kBlocked) continue;
    v.snap.PathOf(v.snap.files[i], &path);
    out[FileState::kBlocked].emplace_back(path, ReasonOf(v, i));
  }
  return out;
}

}  // namespace daxpolicy::daemon
