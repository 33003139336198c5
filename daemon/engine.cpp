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
#include <set>

#include "daemon/journal/journal.h"
#include "daemon/log.h"
#include "plugins/driver/dax_driver.h"
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
using policy::FileKey;
using policy::FileKind;
using policy::FileRecord;

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

// A normalized absolute path: no "", ".", ".." components, no trailing '/'.
bool NormalizedAbsolute(const std::string& p) {
  if (p.empty() || p[0] != '/' || p.size() > 4096) return false;
  if (p == "/") return true;
  if (p.back() == '/') return false;
  size_t pos = 1;
  while (pos <= p.size()) {
    size_t end = p.find('/', pos);
    if (end == std::string::npos) end = p.size();
    std::string_view c(p.data() + pos, end - pos);
    if (c.empty() || c == "." || c == "..") return false;
    pos = end + 1;
  }
  return p.find('\0') == std::string::npos;
}

}  // namespace

struct Engine::Impl {
  struct Scope {
    std::string path;
    int root_fd = -1;  // O_PATH directory of the scope root
    bool usable = false;
    std::string flag_blocked;  // why the per-file flag cannot work here ("" = it can)
    uint64_t dev = 0;
    media::MountInput media_input;
  };
  // Per-file result of the last cycle, parallel to snapshot.files.
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

  host::Roots roots;
  std::vector<Scope> scopes;
  std::vector<std::string> degraded;  // per-scope and feature problems
  policy::Snapshot snap;
  std::unique_ptr<files::Scanner> scanner;
  files::FileSampler sampler;
  std::unique_ptr<driver::DaxDriver> enforce_driver;
  std::unique_ptr<driver::DaxDriver> observe_driver;
  std::unique_ptr<journal::Journal> journal;
  std::unique_ptr<media::MediaPlugin> media;
  media::MediaReport media_report;
  int64_t last_probe_ns = 0;
  bool probed_once = false;
  std::unique_ptr<files::CloseWatcher> watcher;
  std::string watcher_problem;
  policy::RuleState rule_state;
  policy::Holds holds;
  std::map<uint32_t, HoldInfo> hold_info;
  std::map<uint32_t, FileKey> hold_keys;
  uint32_t next_cookie = 1;
  std::vector<Status> status;
  std::vector<std::string> apply_reasons;
  // (identity, file index), sorted: 24 bytes a file, binary-searched by GetFile.
  std::vector<std::pair<FileKey, uint32_t>> index;

  std::optional<uint32_t> Find(const FileKey& key) const {
    auto it = std::lower_bound(index.begin(), index.end(), std::make_pair(key, uint32_t{0}));
    if (it == index.end() || it->first != key) return std::nullopt;
    return it->second;
  }
  std::map<FileKey, std::vector<HolderInfo>> pending_holders;
  int64_t last_full_scan_ns = 0;
  // Kept current by the cycle and close events: the bus reads them on every
  // property get, which must not walk every file.
  uint64_t managed_count = 0;
  uint64_t pending_count = 0;
  bool scanned_once = false;
  driver::KernelVersion kernel = driver::KernelVersion::Running();
  std::optional<host::KernelDaxSupport> kernel_support;

  ~Impl() { CloseScopes(); }

  void CloseScopes() {
    for (Scope& s : scopes) {
      if (s.root_fd >= 0) close(s.root_fd);
      s.root_fd = -1;
    }
    scopes.clear();
  }

  uint64_t DevOf(const FileRecord& f) const {
    return f.mount < snap.mounts.size() ? snap.mounts[f.mount].dev : 0;
  }
  FileKey KeyOf(const FileRecord& f) const { return FileKey{DevOf(f), f.ino}; }

  // Path relative to the scope root of file f.
  std::string RelativePath(const FileRecord& f, const std::string& abs) const {
    const std::string& root = scopes[f.mount].path;
    return abs.size() > root.size() ? abs.substr(root.size() + 1) : std::string();
  }
};

Engine::Engine(Options options, policy::Policy policy)
    : impl_(std::make_unique<Impl>()), options_(std::move(options)), policy_(std::move(policy)) {}

Engine::~Engine() = default;

Result<std::unique_ptr<Engine>> Engine::Create(const Options& options, policy::Policy policy) {
  std::unique_ptr<Engine> e(new Engine(options, std::move(policy)));
  Impl& m = *e->impl_;
  m.roots.proc = options.procfs;
  m.roots.sys = options.sysfs;
  e->mode_ = options.observe ? policy::Mode::kObserve : e->policy_.daemon.mode;
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
  mopts.probe.probe_dir = e->policy_.daemon.probe_dir;
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
  m.CloseScopes();
  m.degraded.clear();
  m.snap = policy::Snapshot();
  m.status.clear();
  m.index.clear();
  m.managed_count = m.pending_count = 0;
  m.scanned_once = false;
  m.snap.page_size = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  auto table = host::MountTable::Load(m.roots);
  if (!table.ok()) m.degraded.push_back("cannot read the mount table: " + table.error().message);
  std::vector<files::ScanScope> scan_scopes;
  for (const std::string& path : policy_.scopes) {
    Impl::Scope s;
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
      const host::MountEntry* mount = table.ok() ? table->Place(path) : nullptr;
      if (mount == nullptr) {
        s.flag_blocked = "no mount found for the scope in the mount table";
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
    ss.mount = static_cast<uint16_t>(m.scopes.size());
    ss.dev = s.dev;
    if (s.usable) scan_scopes.push_back(ss);
    m.snap.mounts.push_back(rec);
    m.scopes.push_back(std::move(s));
  }
  // The scanner never enters protect patterns or the media probe directories.
  std::vector<std::string> probe_dirs;
  for (const Impl::Scope& s : m.scopes) {
    if (!s.media_input.mount_point.empty()) {
      std::string root = s.media_input.mount_point == "/" ? "" : s.media_input.mount_point;
      probe_dirs.push_back(root + "/" + policy_.daemon.probe_dir);
    }
  }
  const policy::Policy* p = &policy_;
  m.scanner =
      std::make_unique<files::Scanner>(scan_scopes, [p, probe_dirs](std::string_view path, bool) {
        for (const std::string& d : probe_dirs) {
          if (policy::PathIsWithin(path, d)) return true;
        }
        return p->ProtectedBy(path) != nullptr;
      });
}

CycleReport Engine::RunCycle(int64_t now_ns) {
  Impl& m = *impl_;
  CycleReport report;
  const auto started = std::chrono::steady_clock::now();
  ++counters_.cycles;

  // 1. Scan and sample (full scans on the rescan interval, incremental otherwise).
  bool full = !m.scanned_once || now_ns - m.last_full_scan_ns >= policy_.daemon.rescan_ns;
  m.sampler.ResetStats();
  files::ScanStats scan = m.scanner->Scan(
      &m.snap, full ? files::ScanMode::kFull : files::ScanMode::kIncremental, &m.sampler);
  if (full) m.last_full_scan_ns = now_ns;
  m.scanned_once = true;
  report.full_scan = scan.full;
  if (scan.error_count) counters_.sampler_errors["scan"] += scan.error_count;
  for (const auto& err : scan.errors) {
    LogDebug("scan: " + journal::PrintablePath(err.path) + ": " + err.what + ": " +
             std::strerror(err.err));
  }
  const files::SampleStats& ss = m.sampler.stats();
  if (ss.errors) counters_.sampler_errors["sample"] += ss.errors;
  if (ss.cache_unavailable) counters_.sampler_errors["cache"] += ss.cache_unavailable;
  m.snap.wall_clock_ns = WallClockNs();

  // 2. System telemetry.
  host::SystemTelemetry sys = host::ReadSystemTelemetry(m.roots);
  m.snap.system.have_mem_pressure = sys.pressure.has_value();
  if (sys.pressure) m.snap.system.mem_pressure = sys.pressure->some_avg10;
  m.snap.system.have_page_cache_ratio = sys.meminfo && sys.meminfo->page_cache_ratio.has_value();
  if (m.snap.system.have_page_cache_ratio) {
    m.snap.system.page_cache_ratio = *sys.meminfo->page_cache_ratio;
  }
  if (!sys.meminfo) counters_.sampler_errors["system"] += 1;

  // 3. Media: topology every cycle, latency probes on their own interval.
  std::vector<media::MountInput> inputs;
  for (const Impl::Scope& s : m.scopes) {
    if (!s.media_input.mount_point.empty()) inputs.push_back(s.media_input);
  }
  bool probe = !m.probed_once || now_ns - m.last_probe_ns >= policy_.daemon.probe_interval_ns;
  m.media_report = m.media->Refresh(inputs, probe);
  if (probe) {
    m.last_probe_ns = now_ns;
    m.probed_once = true;
  }
  media::FillSnapshot(m.media_report, &m.snap);

  // 4. Holders of files that were pending (and of every file when rules read file.holders).
  UpdateHolders();

  // 5. Evaluate.
  policy::Decisions decisions =
      policy::Evaluate(policy_, m.snap, m.rule_state, m.holds, {mode_, now_ns});
  for (size_t r = 0; r < decisions.rules.size(); ++r) {
    const policy::RuleCounters& c = decisions.rules[r];
    const std::string& name = policy_.rules[r].name;
    if (c.suppressed_for) counters_.suppressed[{name, "for"}] += c.suppressed_for;
    if (c.suppressed_min_dwell) counters_.suppressed[{name, "min_dwell"}] += c.suppressed_min_dwell;
    if (c.suppressed_budget) counters_.suppressed[{name, "budget"}] += c.suppressed_budget;
    if (c.suppressed_observe) counters_.suppressed[{name, "observe"}] += c.suppressed_observe;
  }
  const policy::RuleCounters& dc = decisions.defaults;
  if (dc.suppressed_min_dwell) counters_.suppressed[{"", "min_dwell"}] += dc.suppressed_min_dwell;
  if (dc.suppressed_budget) counters_.suppressed[{"", "budget"}] += dc.suppressed_budget;
  if (dc.suppressed_observe) counters_.suppressed[{"", "observe"}] += dc.suppressed_observe;

  // 6. Apply, originals journaled first in one durable write.
  m.status.assign(m.snap.files.size(), {});
  m.apply_reasons.clear();
  ApplyDecisions(decisions, &report);

  // 7. Pending files: holders, close tracking, signals; state changes.
  FinishCycle(&report);
  report.files = m.snap.files.size();
  report.duration_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::steady_clock::now() - started)
                           .count();
  last_cycle_seconds_ = static_cast<double>(report.duration_ns) / 1e9;
  return report;
}

void Engine::UpdateHolders() {
  Impl& m = *impl_;
  bool all = policy_.UsesVariable(policy::Var::kFileHolders);
  std::vector<host::FileId> ids;
  for (const FileRecord& f : m.snap.files) {
    if (f.kind != FileKind::kRegular) continue;
    FileKey k = m.KeyOf(f);
    if (all || m.pending_holders.count(k)) ids.push_back({k.dev, k.ino});
  }
  if (ids.empty()) return;
  auto scan = host::FindHolders(m.roots, ids, getpid());
  if (!scan.ok()) {
    counters_.sampler_errors["holders"] += 1;
    return;
  }
  for (FileRecord& f : m.snap.files) {
    if (f.kind != FileKind::kRegular) continue;
    FileKey k = m.KeyOf(f);
    auto it = scan->holders.find({k.dev, k.ino});
    size_t n = it == scan->holders.end() ? 0 : it->second.size();
    if (all) {
      f.holders = static_cast<uint16_t>(std::min<size_t>(n, 65535));
      f.available |= policy::kHaveHolders;
    }
    if (m.pending_holders.count(k)) {
      std::vector<HolderInfo>& out = m.pending_holders[k];
      out.clear();
      if (it != scan->holders.end()) {
        for (const host::Holder& h : it->second) {
          out.push_back(HolderInfo{static_cast<uint32_t>(h.pid), h.comm, h.map_sync});
        }
      }
    }
  }
}

void Engine::ApplyDecisions(const policy::Decisions& decisions, CycleReport* report) {
  Impl& m = *impl_;
  std::vector<uint32_t> to_apply;
  std::string path;
  for (const Decision& d : decisions.files) {
    Impl::Status& st = m.status[d.file];
    st.reason = d.reason;
    st.wait_ns = d.wait_ns;
    st.state = d.state;
    st.desired = d.desired;
    st.rule = d.rule;
    st.held = d.held;
    if (!d.apply) continue;
    const FileRecord& f = m.snap.files[d.file];
    const Impl::Scope& scope = m.scopes[f.mount];
    if (!scope.flag_blocked.empty()) {
      st.state = FileState::kBlocked;
      st.apply_reason = static_cast<int32_t>(m.apply_reasons.size());
      m.apply_reasons.push_back(scope.flag_blocked);
      continue;
    }
    to_apply.push_back(d.file);
  }
  if (to_apply.empty()) return;

  driver::DaxDriver* drv =
      mode_ == policy::Mode::kObserve ? m.observe_driver.get() : m.enforce_driver.get();
  // Without a durable record of the originals nothing may change: the whole
  // batch is blocked with the reason.
  auto block_batch = [&](const std::string& why) {
    LogError(why);
    counters_.sampler_errors["journal"] += 1;
    for (uint32_t i : to_apply) {
      m.status[i].state = FileState::kBlocked;
      m.status[i].apply_reason = static_cast<int32_t>(m.apply_reasons.size());
    }
    m.apply_reasons.push_back(why);
  };
  // Originals first, in one durable write for the whole batch.
  if (mode_ == policy::Mode::kEnforce) {
    if (!m.journal) {
      auto j = journal::Journal::Open(options_.state_dir);
      if (!j.ok()) {
        block_batch("state journal unavailable: " + j.error().message +
                    "; nothing is changed until it works");
        return;
      }
      m.journal = std::move(*j);
      for (const std::string& p : m.journal->problems()) LogWarning("journal: " + p);
    }
    std::vector<journal::JournalEntry> batch;
    for (uint32_t i : to_apply) {
      const FileRecord& f = m.snap.files[i];
      m.snap.PathOf(f, &path);
      journal::JournalEntry e;
      e.key = journal::FileKey{m.DevOf(f), f.ino};
      e.scope_root = m.scopes[f.mount].path;
      e.path = m.RelativePath(f, path);
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
    if (m.status[i].desired == DaxState::kPageCache && f.kind == FileKind::kRegular) {
      turning_off.push_back({m.DevOf(f), f.ino});
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
    Impl::Status& st = m.status[i];
    m.snap.PathOf(f, &path);
    const Impl::Scope& scope = m.scopes[f.mount];
    if (m.journal) hooks.before_change = m.journal->BeforeChangeHook(scope.path);
    driver::FileRef ref{scope.root_fd, m.RelativePath(f, path), {m.DevOf(f), f.ino}};
    auto outcome = drv->Apply(ref, st.desired, hooks);
    // A hold, not the rule, decided this change: counted with the defaults.
    std::string rule =
        st.held || st.rule < 0 ? "" : policy_.rules[static_cast<size_t>(st.rule)].name;
    std::string to = DaxName(st.desired);
    if (!outcome.ok()) {
      ++counters_.transitions[{rule, to, "failed"}];
      st.state = FileState::kBlocked;
      st.apply_reason = static_cast<int32_t>(m.apply_reasons.size());
      m.apply_reasons.push_back(outcome.error().message);
      ++report->blocked;
      continue;
    }
    const driver::ApplyOutcome& o = *outcome;
    if (o.blocked()) {
      ++counters_.transitions[{rule, to, "blocked"}];
      st.state = FileState::kBlocked;
      st.apply_reason = static_cast<int32_t>(m.apply_reasons.size());
      m.apply_reasons.push_back(o.reason);
      ++report->blocked;
      continue;
    }
    if (o.result == driver::ApplyResult::kObserved) {
      st.state = FileState::kObserved;
      continue;
    }
    if (o.result == driver::ApplyResult::kChanged) {
      ++counters_.transitions[{rule, to, "changed"}];
      ++report->applied;
      LogInfo("switched " + journal::PrintablePath(path) + " to " + to +
              (st.held        ? " (application hold)"
               : rule.empty() ? " (defaults)"
                              : " (rule '" + rule + "')"));
    }
    f.physical = o.physical_after;
    f.available |= policy::kHavePhysical;
    if (o.kind == FileKind::kRegular && o.effective != DaxState::kUnknown) {
      f.effective = o.effective;
      f.available |= policy::kHaveEffective;
    }
    st.state = StateAfterApply(f, st.desired);
  }
}

FileState Engine::StateAfterApply(const FileRecord& f, DaxState desired) const {
  if (f.kind == FileKind::kDirectory) return FileState::kInSync;
  if (f.physical != desired) return FileState::kBlocked;
  if (f.effective == desired) return FileState::kInSync;
  const std::string& blocked = impl_->snap.mounts[f.mount].effective_blocked_reason;
  if (desired == DaxState::kDax && !blocked.empty()) return FileState::kBlocked;
  return FileState::kPending;
}

void Engine::FinishCycle(CycleReport* report) {
  Impl& m = *impl_;
  std::map<FileKey, std::vector<HolderInfo>> still_pending;
  std::vector<host::FileId> new_pending;
  std::string path;
  m.index.clear();
  m.index.reserve(m.snap.files.size());
  for (uint32_t i = 0; i < m.snap.files.size(); ++i) {
    FileRecord& f = m.snap.files[i];
    const Impl::Status& st = m.status[i];
    FileKey key = m.KeyOf(f);
    m.index.emplace_back(key, i);
    if (st.state == FileState::kPending && f.kind == FileKind::kRegular) {
      auto old = m.pending_holders.find(key);
      if (old != m.pending_holders.end()) {
        still_pending[key] = old->second;
      } else {
        still_pending[key] = {};
        new_pending.push_back({key.dev, key.ino});
      }
    }
    uint8_t packed = Pack(st.state, f.physical, f.effective);
    if (f.daemon_state != packed) {
      // First sighting of an unmanaged file is not news; everything else is.
      bool news = (f.daemon_state & 0x80) || st.state != FileState::kUnmanaged;
      if (news) {
        m.snap.PathOf(f, &path);
        std::string rule = st.rule >= 0 ? policy_.rules[static_cast<size_t>(st.rule)].name : "";
        report->changes.push_back(StateChange{path, st.state, f.physical, f.effective, rule});
      }
      f.daemon_state = packed;
    }
  }
  std::sort(m.index.begin(), m.index.end());
  CountStates();
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
      uint32_t i = *m.Find(key);
      const FileRecord& f = m.snap.files[i];
      m.snap.PathOf(f, &path);
      report->pending.push_back(PendingSwitch{path, m.status[i].desired, out});
      if (m.watcher) {
        const Impl::Scope& scope = m.scopes[f.mount];
        std::string rel = m.RelativePath(f, path);
        auto t = m.watcher->Track(scope.root_fd, rel, (key.dev << 40) ^ key.ino);
        if (!t.ok())
          LogDebug("close watch of " + journal::PrintablePath(path) + ": " + t.error().message);
      }
    }
  }
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
  if (drained->overflow) m.scanner->RequestFullRescan();
  if (drained->closed.empty() && !drained->overflow) return changes;
  // A close ends one open file description; others may remain. Re-check every
  // pending file with statx (no fd held) rather than trusting the event.
  const driver::FlagReader reader(driver::SafeOpenOptions{options_.procfs, true});
  std::string path;
  for (auto it = m.pending_holders.begin(); it != m.pending_holders.end();) {
    std::optional<uint32_t> idx = m.Find(it->first);
    if (!idx) {
      it = m.pending_holders.erase(it);
      continue;
    }
    FileRecord& f = m.snap.files[*idx];
    m.snap.PathOf(f, &path);
    const Impl::Scope& scope = m.scopes[f.mount];
    DaxState eff =
        reader.ReadEffective({scope.root_fd, m.RelativePath(f, path), {it->first.dev, f.ino}});
    if (eff != DaxState::kUnknown && eff != f.effective) {
      f.effective = eff;
      Impl::Status& st = m.status[*idx];
      if (st.state == FileState::kPending) --m.pending_count;
      st.state = StateAfterApply(f, st.desired);
      if (st.state == FileState::kPending) ++m.pending_count;
      f.daemon_state = Pack(st.state, f.physical, f.effective);
      std::string rule = st.rule >= 0 ? policy_.rules[static_cast<size_t>(st.rule)].name : "";
      changes.push_back(StateChange{path, st.state, f.physical, f.effective, rule});
      if (st.state != FileState::kPending) {
        if (m.watcher) m.watcher->Untrack((it->first.dev << 40) ^ it->first.ino);
        it = m.pending_holders.erase(it);
        continue;
      }
    }
    ++it;
  }
  return changes;
}

int Engine::close_watcher_fd() const { return impl_->watcher ? impl_->watcher->fd() : -1; }

void Engine::ReplacePolicy(policy::Policy policy) {
  policy_ = std::move(policy);
  ++generation_;
  // A new policy may change scopes and what is protected: start from a full scan.
  SetUpScopes();
}

void Engine::SetMode(policy::Mode mode) { mode_ = mode; }

std::optional<ApiFailure> Engine::Locate(const std::string& path, uint32_t* index) const {
  const Impl& m = *impl_;
  const std::string shown = "'" + journal::PrintablePath(path) + "'";
  if (!NormalizedAbsolute(path)) {
    return ApiFailure{ApiError::kInvalidArgument,
                      "path must be absolute and normalized (no '.', '..' or '//'): " + shown};
  }
  if (policy_.ScopeOf(path) == nullptr) {
    return ApiFailure{ApiError::kNotManaged, shown + " is outside every scope of the policy"};
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    return ApiFailure{ApiError::kNotManaged, shown + ": " + std::strerror(errno)};
  }
  std::optional<uint32_t> found = m.Find(FileKey{static_cast<uint64_t>(st.st_dev), st.st_ino});
  if (!found) {
    std::string why = S_ISLNK(st.st_mode) ? "is a symbolic link (never followed)"
                      : !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)
                          ? "is neither a regular file nor a directory"
                      : policy_.ProtectedBy(path) ? "is protected by the policy"
                                                  : "has not been scanned yet";
    return ApiFailure{ApiError::kNotManaged, shown + " " + why};
  }
  *index = *found;
  return std::nullopt;
}

ApiResult<FileView> Engine::GetFile(const std::string& path) const {
  const Impl& m = *impl_;
  ApiResult<FileView> r;
  uint32_t i = 0;
  if (auto failure = Locate(path, &i)) {
    r.failure = std::move(failure);
    return r;
  }
  FileView v;
  v.path = path;
  const FileRecord& f = m.snap.files[i];
  const Impl::Status& s = m.status[i];
  v.managed = s.state != FileState::kUnmanaged;
  v.desired = s.desired;
  v.physical = (f.available & policy::kHavePhysical) ? f.physical : DaxState::kUnknown;
  v.effective = f.kind == FileKind::kDirectory           ? DaxState::kUnknown
                : (f.available & policy::kHaveEffective) ? f.effective
                                                         : DaxState::kUnknown;
  v.state = s.state;
  v.rule = s.rule >= 0 ? policy_.rules[static_cast<size_t>(s.rule)].name : "";
  v.reason = ReasonOf(i);
  if (auto h = m.pending_holders.find(m.KeyOf(f)); h != m.pending_holders.end()) {
    v.holders = h->second;
  }
  r.value = std::move(v);
  return r;
}

std::string Engine::ReasonOf(uint32_t i) const {
  const Impl& m = *impl_;
  const Impl::Status& s = m.status[i];
  Decision d;
  d.file = i;
  d.rule = s.rule;
  d.reason = s.reason;
  d.wait_ns = s.wait_ns;
  d.held = s.held;
  if (s.apply_reason >= 0) return m.apply_reasons[static_cast<size_t>(s.apply_reason)];
  if (s.held) {
    auto key = m.KeyOf(m.snap.files[i]);
    if (auto h = m.holds.find(key); h != m.holds.end()) {
      std::string why = "application hold: " + h->second.reason;
      std::string rest = policy::ReasonText(policy_, m.snap, d);
      return rest.empty() ? why : why + "; " + rest;
    }
  }
  return policy::ReasonText(policy_, m.snap, d);
}

ApiResult<std::string> Engine::Explain(const std::string& path) const {
  const Impl& m = *impl_;
  ApiResult<std::string> r;
  uint32_t i = 0;
  if (auto failure = Locate(path, &i)) {
    r.failure = std::move(failure);
    return r;
  }
  policy::Explanation e = policy::Explain(policy_, m.snap, m.rule_state, m.holds, {mode_, 0}, i);
  std::string text = policy::FormatExplanation(e, m.snap);
  const Impl::Status& s = m.status[i];
  if (s.apply_reason >= 0) {
    text += "  last apply: refused: " + m.apply_reasons[static_cast<size_t>(s.apply_reason)] + "\n";
  }
  const FileRecord& f = m.snap.files[i];
  if (!m.snap.mounts[f.mount].effective_blocked_reason.empty()) {
    text += "  device:    " + m.snap.mounts[f.mount].effective_blocked_reason + "\n";
  }
  if (auto h = m.pending_holders.find(m.KeyOf(f));
      h != m.pending_holders.end() && !h->second.empty()) {
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

std::vector<FileView> Engine::ListFiles(std::optional<FileState> state) const {
  const Impl& m = *impl_;
  std::vector<FileView> out;
  std::string path;
  for (uint32_t i = 0; i < m.snap.files.size(); ++i) {
    const Impl::Status& s = m.status[i];
    if (state && s.state != *state) continue;
    const FileRecord& f = m.snap.files[i];
    FileView v;
    m.snap.PathOf(f, &v.path);
    v.managed = s.state != FileState::kUnmanaged;
    v.desired = s.desired;
    v.physical = (f.available & policy::kHavePhysical) ? f.physical : DaxState::kUnknown;
    v.effective = f.kind == FileKind::kDirectory ? DaxState::kUnknown : f.effective;
    v.state = s.state;
    v.rule = s.rule >= 0 ? policy_.rules[static_cast<size_t>(s.rule)].name : "";
    if (state) v.reason = ReasonOf(i);
    out.push_back(std::move(v));
  }
  return out;
}

const media::MediaReport& Engine::media() const { return impl_->media_report; }

std::string Engine::Degraded() const {
  const Impl& m = *impl_;
  std::vector<std::string> parts = m.degraded;
  if (!m.watcher_problem.empty()) parts.push_back(m.watcher_problem);
  std::string media = m.media_report.Degraded();
  if (!media.empty()) parts.push_back(media);
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

uint64_t Engine::ManagedFiles() const { return impl_->managed_count; }

uint64_t Engine::PendingFiles() const { return impl_->pending_count; }

void Engine::CountStates() {
  Impl& m = *impl_;
  m.managed_count = m.pending_count = 0;
  for (const auto& s : m.status) {
    m.managed_count += s.state != FileState::kUnmanaged;
    m.pending_count += s.state == FileState::kPending;
  }
}

ApiResult<uint32_t> Engine::AddHold(const std::string& path, DaxState mode,
                                    const std::string& reason, const std::string& owner,
                                    uid_t uid) {
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
  const FileKey key = m.KeyOf(m.snap.files[i]);
  uint32_t cookie = m.next_cookie++;
  m.holds[key] = policy::Hold{mode, reason, cookie};
  m.hold_keys[cookie] = key;
  m.hold_info[cookie] = HoldInfo{cookie, path, mode, reason, owner, uid};
  r.value = cookie;
  return r;
}

bool Engine::ReleaseHold(uint32_t cookie) {
  Impl& m = *impl_;
  auto it = m.hold_keys.find(cookie);
  if (it == m.hold_keys.end()) return false;
  auto h = m.holds.find(it->second);
  if (h != m.holds.end() && h->second.cookie == cookie) m.holds.erase(h);
  m.hold_keys.erase(it);
  m.hold_info.erase(cookie);
  return true;
}

size_t Engine::ReleaseHoldsOf(const std::string& owner) {
  std::vector<uint32_t> cookies;
  for (const auto& [cookie, info] : impl_->hold_info) {
    if (info.owner == owner) cookies.push_back(cookie);
  }
  for (uint32_t c : cookies) ReleaseHold(c);
  return cookies.size();
}

std::vector<HoldInfo> Engine::Holds() const {
  std::vector<HoldInfo> out;
  for (const auto& [cookie, info] : impl_->hold_info) out.push_back(info);
  return out;
}

ApiResult<uid_t> Engine::FileOwner(const std::string& path) const {
  ApiResult<uid_t> r;
  if (!NormalizedAbsolute(path)) {
    r.failure = ApiFailure{ApiError::kInvalidArgument, "path must be absolute and normalized"};
    return r;
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    r.failure = ApiFailure{ApiError::kNotManaged, path + ": " + std::strerror(errno)};
    return r;
  }
  r.value = st.st_uid;
  return r;
}

EngineGauges Engine::Gauges() const {
  const Impl& m = *impl_;
  EngineGauges g;
  for (FileState s : {FileState::kUnmanaged, FileState::kInSync, FileState::kPending,
                      FileState::kDeferred, FileState::kObserved, FileState::kBlocked}) {
    g.files_by_state[s] = 0;
  }
  g.files_by_effective[DaxState::kDax] = 0;
  g.files_by_effective[DaxState::kPageCache] = 0;
  for (const policy::Rule& r : policy_.rules) g.rule_matched[r.name] = 0;
  for (uint32_t i = 0; i < m.status.size() && i < m.snap.files.size(); ++i) {
    const Impl::Status& s = m.status[i];
    ++g.files_by_state[s.state];
    const FileRecord& f = m.snap.files[i];
    if (s.state != FileState::kUnmanaged && f.kind == FileKind::kRegular &&
        (f.available & policy::kHaveEffective) && f.effective != DaxState::kUnknown) {
      ++g.files_by_effective[f.effective];
    }
    if (s.rule >= 0) ++g.rule_matched[policy_.rules[static_cast<size_t>(s.rule)].name];
  }
  g.last_cycle_seconds = last_cycle_seconds_;
  return g;
}

std::map<FileState, std::vector<std::pair<std::string, std::string>>> Engine::Summary() const {
  std::map<FileState, std::vector<std::pair<std::string, std::string>>> out;
  const Impl& m = *impl_;
  std::string path;
  for (uint32_t i = 0; i < m.status.size(); ++i) {
    if (m.status[i].state != FileState::kBlocked) continue;
    m.snap.PathOf(m.snap.files[i], &path);
    out[FileState::kBlocked].emplace_back(path, ReasonOf(i));
  }
  return out;
}

}  // namespace daxpolicy::daemon
