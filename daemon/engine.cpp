// SPDX-License-Identifier: Apache-2.0
#include "daemon/engine.h"

#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <numeric>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "daemon/bus/validate.h"
#include "daemon/journal/journal.h"
#include "daemon/log.h"
#include "daemon/scopes.h"
#include "plugins/driver/dax_driver.h"
#include "plugins/driver/safe_open.h"
#include "policy/units.h"

namespace daxpolicy::daemon {

using policy::Decision;
using policy::DevOf;
using policy::FileKey;
using policy::FileKind;
using policy::FileRecord;
using policy::KeyOf;

namespace {

std::string DaxName(DaxState s) { return std::string(policy::DaxStateName(s)); }

// The state a file was last published in, as one byte: bit 7 = published,
// bits 0-2 state, 3-4 physical, 5-6 effective.
uint8_t Pack(FileState s, DaxState physical, DaxState effective) {
  return static_cast<uint8_t>(0x80 | static_cast<unsigned>(s) |
                              (static_cast<unsigned>(physical) << 3) |
                              (static_cast<unsigned>(effective) << 5));
}

using PendingHolders = std::map<FileKey, std::vector<HolderInfo>>;

// What a pending file's close event found (loop thread): applied to the view
// at once, and to what the next cycle compares its states with.
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
  const std::string& root = scopes.scopes.list[f.mount].path;
  return abs.size() > root.size() ? abs.substr(root.size() + 1) : std::string();
}

std::vector<HolderInfo> HoldersOf(const host::HolderScan& scan, const FileKey& key) {
  std::vector<HolderInfo> out;
  if (auto it = scan.holders.find({key.dev, key.ino}); it != scan.holders.end()) {
    for (const host::Holder& h : it->second) {
      out.push_back(HolderInfo{static_cast<uint32_t>(h.pid), h.comm, h.map_sync});
    }
  }
  return out;
}

constexpr uint32_t kNoFile = UINT32_MAX;

// Whether two samples of a file give the policy the same inputs (every field
// but where its name is kept).
bool SameSample(const FileRecord& a, const FileRecord& b) {
  auto bits = [](float f) { return std::bit_cast<uint32_t>(f); };
  return a.ino == b.ino && a.size == b.size && a.mtime_ns == b.mtime_ns && a.mount == b.mount &&
         a.available == b.available && a.holders == b.holders && a.cache_pages == b.cache_pages &&
         a.dirty_pages == b.dirty_pages && a.recently_evicted_pages == b.recently_evicted_pages &&
         bits(a.read_bytes_rate) == bits(b.read_bytes_rate) &&
         bits(a.cache_hit_ratio) == bits(b.cache_hit_ratio) &&
         bits(a.write_bytes_rate) == bits(b.write_bytes_rate) && a.kind == b.kind &&
         a.physical == b.physical && a.effective == b.effective;
}

bool SameMounts(const std::vector<policy::MountRecord>& a,
                const std::vector<policy::MountRecord>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].dev != b[i].dev || a[i].media != b[i].media || a[i].mount_point != b[i].mount_point ||
        a[i].effective_blocked_reason != b[i].effective_blocked_reason) {
      return false;
    }
  }
  return true;
}

bool SameSystem(const policy::SystemSample& a, const policy::SystemSample& b) {
  return a.have_mem_pressure == b.have_mem_pressure && a.mem_pressure == b.mem_pressure &&
         a.have_page_cache_ratio == b.have_page_cache_ratio &&
         a.page_cache_ratio == b.page_cache_ratio &&
         a.have_cache_hit_ratio == b.have_cache_hit_ratio &&
         a.cache_hit_ratio == b.cache_hit_ratio && a.access_window_ns == b.access_window_ns &&
         a.access_withheld == b.access_withheld;
}

bool SameMedia(const std::vector<policy::MediaSample>& a,
               const std::vector<policy::MediaSample>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const policy::MediaSample& x = a[i];
    const policy::MediaSample& y = b[i];
    if (x.name != y.name || x.have_latency != y.have_latency ||
        x.read_latency_ns != y.read_latency_ns || x.write_latency_ns != y.write_latency_ns ||
        x.latency_ratio != y.latency_ratio || x.health != y.health ||
        x.have_numa_node != y.have_numa_node || x.numa_node != y.numa_node ||
        x.have_bandwidth != y.have_bandwidth || x.read_bandwidth != y.read_bandwidth ||
        x.dram_bandwidth != y.dram_bandwidth || x.write_bandwidth != y.write_bandwidth) {
      return false;
    }
  }
  return true;
}

bool SameHolds(const policy::Holds& a, const policy::Holds& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [key, hold] : a) {
    auto it = b.find(key);
    if (it == b.end() || it->second.mode != hold.mode) return false;
  }
  return true;
}

// The index of the first rule whose decision reads one of `vars` (or, with
// `by_auto`, that is dax: auto); rules.size() when only the defaults' dax: auto
// does; kNoFile when nothing does. A file decided by an earlier rule cannot
// change when those inputs do: the rules before it did not match without
// them, and its own rule does not read them.
size_t FirstReader(const policy::Policy& pol, std::initializer_list<policy::Var> vars,
                   bool by_auto) {
  for (size_t r = 0; r < pol.rules.size(); ++r) {
    const policy::Rule& rule = pol.rules[r];
    if (by_auto && rule.dax == policy::DaxSetting::kAuto) return r;
    if (!rule.when) continue;
    for (policy::Var v : vars) {
      if (rule.when->Uses(v)) return r;
    }
  }
  if (by_auto && pol.defaults.dax == policy::DaxSetting::kAuto) return pol.rules.size();
  return kNoFile;
}

}  // namespace

// What the view keeps of a file's decision: 8 bytes (the few waits apart).
struct Status {
  int32_t rule = -1;
  FileState state = FileState::kUnmanaged;
  DaxState desired = DaxState::kUnknown;
  bool held = false;
  policy::Reason reason = policy::Reason::kNone;
};
static_assert(sizeof(Status) == 8);

// What the loop answers from: the result of the last finished cycle, plus what
// close events changed since. The snapshot, index and published states are
// immutable once published (the next cycle's worker reads them); the rest is
// the loop's.
struct Engine::View {
  std::shared_ptr<const policy::Policy> policy;
  std::shared_ptr<const ScopeSet> scopes;
  // Shared with the working state: the next scan reads it to build its table.
  std::shared_ptr<const policy::Snapshot> snap;
  // File indices sorted by identity (dev, ino): 4 bytes a file.
  std::vector<uint32_t> order;
  // Pack()ed state each file was published in (what the next cycle compares with).
  std::vector<uint8_t> published;

  // --- The loop's (close events change them) ---
  std::vector<Status> status;                       // per file: the decision, its state as applied
  std::vector<std::pair<uint32_t, int64_t>> waits;  // (file, Decision::wait_ns), sorted
  std::vector<std::string> apply_reasons;
  std::vector<std::pair<uint32_t, uint32_t>> apply_reason_of;  // (file, reason), sorted
  // Files the driver refused to change, in the last try (sorted): blocked
  // until the next, which min_dwell or the budget may put off.
  std::vector<uint32_t> driver_refused;
  std::unordered_map<uint32_t, DaxState> effective_now;  // close events since
  PendingHolders pending_holders;
  policy::RuleState rule_state;
  media::MediaReport media_report;
  // Telemetry sources' (Name(), Degraded()) where it is not "".
  std::vector<std::pair<std::string, std::string>> degraded;
  EngineGauges gauges;
  // What the cycle decided under: a file whose inputs are the same the next
  // cycle keeps its decision (Engine::Decide).
  bool decided = false;  // false: the empty view before the first cycle
  policy::Mode mode = policy::Mode::kEnforce;
  policy::Holds holds;

  size_t size() const { return status.size(); }

  // File i's decision as the cycle made it (for ReasonText).
  Decision DecisionOf(uint32_t i) const {
    const Status& s = status[i];
    Decision d;
    d.file = i;
    d.rule = s.rule;
    d.held = s.held;
    d.desired = s.desired;
    d.state = s.state;
    d.reason = s.reason;
    auto it = std::lower_bound(waits.begin(), waits.end(), std::make_pair(i, int64_t{0}),
                               [](const auto& a, const auto& b) { return a.first < b.first; });
    if (it != waits.end() && it->first == i) d.wait_ns = it->second;
    return d;
  }

  DaxState Effective(uint32_t i) const {
    auto it = effective_now.find(i);
    return it != effective_now.end() ? it->second : snap->files[i].effective;
  }

  // File i is blocked by the driver's refusal and waits (min_dwell, the
  // budget) for its next try.
  bool WaitsForNextTry(uint32_t i) const {
    const Status& s = status[i];
    return mode == policy::Mode::kEnforce && s.state == FileState::kBlocked &&
           (s.reason == policy::Reason::kMinDwell || s.reason == policy::Reason::kBudget) &&
           std::binary_search(driver_refused.begin(), driver_refused.end(), i);
  }

  const std::string* ApplyReason(uint32_t i) const {
    auto it = std::lower_bound(apply_reason_of.begin(), apply_reason_of.end(),
                               std::make_pair(i, uint32_t{0}));
    if (it == apply_reason_of.end() || it->first != i) return nullptr;
    return &apply_reasons[it->second];
  }

  // The fields of file i that GetFileState and ListFiles share (not path,
  // reason or holders).
  void Fill(uint32_t i, FileView* out) const {
    const FileRecord& f = snap->files[i];
    const Status& s = status[i];
    out->managed = s.state != FileState::kUnmanaged;
    out->desired = s.desired;
    out->physical = (f.available & policy::kHavePhysical) ? f.physical : DaxState::kUnknown;
    out->effective = f.kind == FileKind::kDirectory           ? DaxState::kUnknown
                     : (f.available & policy::kHaveEffective) ? Effective(i)
                                                              : DaxState::kUnknown;
    out->state = s.state;
    out->rule = s.rule >= 0 ? policy->rules[static_cast<size_t>(s.rule)].name : "";
  }

  std::optional<uint32_t> Find(const FileKey& key) const {
    auto it = std::lower_bound(order.begin(), order.end(), key, [&](uint32_t i, const FileKey& k) {
      return KeyOf(*snap, snap->files[i]) < k;
    });
    if (it == order.end() || KeyOf(*snap, snap->files[*it]) != key) return std::nullopt;
    return *it;
  }

  // A file's effective state as a close event found it: the state, counts and
  // gauges follow. Returns the file's index, or nothing when it is not in this view.
  std::optional<uint32_t> ApplyEffective(const FileKey& key, DaxState eff) {
    std::optional<uint32_t> i = Find(key);
    if (!i) return std::nullopt;
    FileRecord f = snap->files[*i];
    f.effective = Effective(*i);
    Status& st = status[*i];
    const FileState before = st.state;
    const bool counted = before != FileState::kUnmanaged && f.kind == FileKind::kRegular &&
                         (f.available & policy::kHaveEffective) &&
                         f.effective != DaxState::kUnknown;
    if (counted) --gauges.files_by_effective[f.effective];
    f.effective = eff;
    effective_now[*i] = eff;
    if (before != FileState::kUnmanaged) st.state = StateAfterApply(f, st.desired, snap->mounts);
    if (st.state != FileState::kUnmanaged && f.kind == FileKind::kRegular) {
      ++gauges.files_by_effective[eff];
    }
    --gauges.files_by_state[before];
    ++gauges.files_by_state[st.state];
    if (st.state != FileState::kPending) pending_holders.erase(key);
    return i;
  }
};

namespace {

EngineGauges CountGauges(const policy::Policy& policy, const policy::Snapshot& snap,
                         const std::vector<Status>& status) {
  EngineGauges g;
  for (FileState s : {FileState::kUnmanaged, FileState::kInSync, FileState::kPending,
                      FileState::kDeferred, FileState::kObserved, FileState::kBlocked}) {
    g.files_by_state[s] = 0;
  }
  g.files_by_effective[DaxState::kDax] = 0;
  g.files_by_effective[DaxState::kPageCache] = 0;
  // Counted in arrays, then named: a map lookup per file would cost more
  // than the rest of the count.
  uint64_t by_state[8] = {};
  uint64_t by_effective[4] = {};
  std::vector<uint64_t> by_rule(policy.rules.size(), 0);
  for (uint32_t i = 0; i < status.size() && i < snap.files.size(); ++i) {
    const Status& s = status[i];
    ++by_state[static_cast<unsigned>(s.state) & 7];
    const FileRecord& f = snap.files[i];
    if (s.state != FileState::kUnmanaged && f.kind == FileKind::kRegular &&
        (f.available & policy::kHaveEffective) && f.effective != DaxState::kUnknown) {
      ++by_effective[static_cast<unsigned>(f.effective) & 3];
    }
    if (s.rule >= 0 && static_cast<size_t>(s.rule) < by_rule.size()) {
      ++by_rule[static_cast<size_t>(s.rule)];
    }
  }
  for (auto& [state, n] : g.files_by_state) n = by_state[static_cast<unsigned>(state) & 7];
  for (auto& [state, n] : g.files_by_effective) n = by_effective[static_cast<unsigned>(state) & 3];
  for (size_t r = 0; r < policy.rules.size(); ++r)
    g.rule_matched[policy.rules[r].name] += by_rule[r];
  return g;
}

}  // namespace

struct CycleJob {
  plugins::Instant now;
  policy::Mode mode = policy::Mode::kEnforce;  // at BeginCycle
  policy::Holds holds;                         // copy: the loop may change its own meanwhile
  CycleReport report;
  EngineCounters delta;  // added to the engine's counters at EndCycle
  // The published view when the job began: Publish compares with it (its
  // immutable part only), and RunWork starts from a copy of its rule timers.
  const Engine::View* previous = nullptr;
  policy::Snapshot snap;  // the working snapshot this cycle builds
  media::MediaReport media_report;
  std::vector<std::pair<std::string, std::string>> degraded;
  // Each file's decision as the view keeps it (Decide writes them as the
  // policy is evaluated: a whole Decision per file is never held), and the
  // waits of the few files that have one, by file.
  std::vector<Status> status;
  std::vector<std::pair<uint32_t, int64_t>> waits;
  std::vector<uint32_t> to_apply;  // files whose flag Apply() changes
  std::vector<std::string> apply_reasons;
  std::vector<std::pair<uint32_t, uint32_t>> apply_reason_of;
  std::vector<uint32_t> driver_refused;
  std::unordered_map<std::string, uint32_t> reason_ids;
  // The cycle's one pass over /proc (Sample's when rules read file.holders, else Apply's).
  bool holders_looked_up = false;
  std::optional<host::HolderScan> holder_scan;
  std::vector<TrackRequest> track;
  std::unique_ptr<Engine::View> view;     // made by Publish, published by EndCycle
  std::unique_ptr<Engine::View> retired;  // the view before the last: freed by RunWork
  // MatchPrevious(): snap's files sorted by identity, and each file's index
  // in the previous view's snapshot (kNoFile: new to this cycle).
  bool matched = false;
  std::vector<uint32_t> order;
  bool same_files = false;          // file i is file i of the previous view, for every i
  std::vector<uint32_t> old_index;  // else: per file
  uint32_t OldIndex(uint32_t i) const { return same_files ? i : old_index[i]; }
  // Decide: the files to evaluate, and the identities of files gone since.
  std::vector<uint32_t> to_decide;
  std::vector<FileKey> gone;

  // Pairs each file of `snap` with its record in `previous` by identity. When
  // every index holds the same file as before (the steady state: no file came
  // or went), the previous order is kept as it is, without sorting.
  void MatchPrevious() {
    matched = true;
    const policy::Snapshot& old = *previous->snap;
    // Read only: a const table never copies a chunk it shares with the view's.
    const policy::FileTable& files = std::as_const(snap.files);
    const size_t n = files.size();
    bool same = n == old.files.size() && previous->order.size() == n &&
                snap.mounts.size() == old.mounts.size();
    for (size_t k = 0; same && k < snap.mounts.size(); ++k) {
      same = snap.mounts[k].dev == old.mounts[k].dev;
    }
    constexpr size_t kChunk = policy::FileTable::kChunkRecords;
    for (size_t i = 0; same && i < n; ++i) {
      // A chunk the tables share holds the same files: skipped unread.
      if (i % kChunk == 0 && files.SameChunk(old.files, i / kChunk)) {
        i += kChunk - 1;
        continue;
      }
      same = files[i].ino == old.files[i].ino && files[i].mount == old.files[i].mount;
    }
    same_files = same;
    if (same) {
      order = previous->order;
      return;
    }
    old_index.resize(n);
    order.resize(n);
    std::iota(order.begin(), order.end(), 0u);
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      return KeyOf(snap, files[a]) < KeyOf(snap, files[b]);
    });
    // Both orders are sorted by identity: one pass over them pairs every file.
    const std::vector<uint32_t>& old_order = previous->order;
    size_t p = 0;
    for (uint32_t i : order) {
      old_index[i] = kNoFile;
      const FileKey key = KeyOf(snap, files[i]);
      while (p < old_order.size() && KeyOf(old, old.files[old_order[p]]) < key) ++p;
      if (p < old_order.size() && KeyOf(old, old.files[old_order[p]]) == key) {
        old_index[i] = old_order[p];
      }
    }
  }

  // Many files are refused for the same reason (a device without DAX): each
  // text is kept once.
  void Refuse(uint32_t file, const std::string& text) {
    auto [it, added] = reason_ids.emplace(text, static_cast<uint32_t>(apply_reasons.size()));
    if (added) apply_reasons.push_back(text);
    apply_reason_of.emplace_back(file, it->second);
    status[file].state = FileState::kBlocked;
  }
};

void CycleJobDeleter::operator()(CycleJob* job) const { delete job; }

struct Engine::Impl {
  EngineParts parts;
  // --- Loop thread ---
  // The scope set whose per-scope and feature problems Degraded() reports (set by SetUpScopes).
  std::shared_ptr<const ScopeSet> degraded_scopes;
  std::string watcher_problem;
  HoldTable holds;
  std::unique_ptr<View> view;
  // The view the last EndCycle replaced; freeing 100,000s of entries is left to
  // the next RunWork rather than done on the loop thread.
  std::unique_ptr<View> retired;
  std::vector<CloseUpdate> close_updates;  // since the last BeginCycle
  // Set by the loop (close event queue overflow), taken by the next Sample.
  std::atomic<bool> rescan_requested{false};
  uint64_t scope_generation = 0;

  // --- Working state: RunWork only (and SetUpScopes/BeginCycle while no job is out) ---
  std::shared_ptr<const policy::Policy> policy;  // the policy the working state scans for
  std::shared_ptr<const ScopeSet> scopes;
  // The last cycle's snapshot under these scopes (shared with the view), or
  // nullptr after SetUpScopes: the next scan starts from it.
  std::shared_ptr<const policy::Snapshot> last;
  std::unique_ptr<ChangeJournal> journal;
  // What is wrong with the journal, for Degraded() on the loop thread ("" = nothing).
  mutable std::mutex journal_status_mu;
  std::string journal_status;
  // Opens the journal if needed; false (and journal_status says why) when it cannot be.
  bool OpenJournal() {
    std::string status;
    if (!journal) {
      auto j = parts.journal();
      if (!j.ok()) {
        status = "state journal unavailable: " + j.error().message +
                 "; no flag is changed until it works";
      } else {
        journal = std::move(*j);
        for (const std::string& p : journal->Problems()) LogWarning("journal: " + p);
      }
    }
    if (journal) {
      const std::vector<std::string> damage = journal->Damage();
      if (!damage.empty()) {
        status = "state journal " + journal->StateDir() + " is damaged (" + damage.front() +
                 (damage.size() > 1 ? "; and " + std::to_string(damage.size() - 1) + " more" : "") +
                 "): originals recorded there may be lost; check them, then remove its corrupt/";
      }
    }
    std::lock_guard<std::mutex> lock(journal_status_mu);
    journal_status = std::move(status);
    return journal != nullptr;
  }
  policy::RuleState rule_state;  // during RunWork only; the view holds it between cycles
  PendingHolders pending_holders;
  // States close events published since the view the next Publish compares with.
  std::map<FileKey, uint8_t> close_published;
  // Files the driver refused in the last Apply (worker thread only).
  std::unordered_set<FileKey, policy::FileKeyHash> refused_by_driver;
  int64_t last_full_scan_ns = 0;
  bool scanned_once = false;
};

Engine::Engine(Options options, policy::Policy policy, EngineParts parts)
    : impl_(std::make_unique<Impl>()),
      options_(std::move(options)),
      policy_(std::make_shared<const policy::Policy>(std::move(policy))) {
  impl_->parts = std::move(parts);
}

Engine::~Engine() = default;

Result<std::unique_ptr<Engine>> Engine::Create(const Options& options, policy::Policy policy,
                                               EngineParts parts) {
  std::string missing = !parts.enforce_driver   ? "enforce driver"
                        : !parts.observe_driver ? "observe driver"
                        : !parts.clock          ? "clock"
                        : !parts.mounts         ? "mount inspector"
                        : !parts.holders        ? "holder finder"
                        : !parts.journal        ? "journal opener"
                                                : "";
  if (!missing.empty()) return Error{"engine: no " + missing + " given", EINVAL};
  std::unique_ptr<Engine> e(new Engine(options, std::move(policy), std::move(parts)));
  Impl& m = *e->impl_;
  m.watcher_problem = m.parts.close_watcher_problem;
  e->mode_ = options.observe ? policy::Mode::kObserve : e->policy_->daemon.mode;
  e->SetUpScopes(e->PrepareScopes(e->policy_));
  return e;
}

std::shared_ptr<ScopeSet> Engine::PrepareScopes(
    std::shared_ptr<const policy::Policy> policy) const {
  return daemon::PrepareScopes(std::move(policy), *impl_->parts.mounts);
}

void Engine::SetUpScopes(std::shared_ptr<ScopeSet> prepared) {
  Impl& m = *impl_;
  m.policy = policy_;
  prepared->scopes.generation = ++m.scope_generation;
  WatchScopes(*prepared, m.parts.close_watcher.get(), &m.watcher_problem);
  m.scopes = std::move(prepared);
  m.degraded_scopes = m.scopes;
  // A journal that cannot be opened or was found damaged shows at start, not at the first change.
  if (mode_.load() == policy::Mode::kEnforce) m.OpenJournal();
  // A new policy may change scopes and what is protected: start from a full scan.
  m.last = nullptr;
  m.scanned_once = false;
  // Before the first cycle under these scopes, the last view (if any) stays
  // published; at start there is an empty one, so every query says "not scanned yet".
  if (!m.view) {
    m.view = std::make_unique<View>();
    m.view->policy = m.policy;
    m.view->scopes = m.scopes;
    auto empty = std::make_shared<policy::Snapshot>();
    empty->mounts = m.scopes->mounts;
    m.view->snap = std::move(empty);
    m.view->gauges = CountGauges(*m.policy, *m.view->snap, m.view->status);
  }
}

CycleReport Engine::RunCycle() {
  CycleJobPtr job = BeginCycle();
  if (!job) return CycleReport{};
  RunWork(*job);
  return EndCycle(std::move(job));
}

CycleJobPtr Engine::BeginCycle() {
  if (cycle_running_) return nullptr;
  Impl& m = *impl_;
  CycleJobPtr job(new CycleJob());
  job->now = m.parts.clock->Now();
  job->mode = mode_.load();
  m.holds.Prune([&m](uint64_t dev) {
    for (const plugins::ScopeInfo& s : m.scopes->scopes.list) {
      if (s.usable && s.dev == dev) return s.root_fd;
    }
    return -1;
  });
  job->holds = m.holds.effective();
  // The loop's knowledge since the last cycle goes to the working state while
  // nothing else touches it: which files are still pending, and what close
  // events found (so their changes are not signalled a second time).
  m.pending_holders = m.view->pending_holders;
  for (const CloseUpdate& u : m.close_updates) m.close_published[u.key] = u.packed;
  m.close_updates.clear();
  job->retired = std::move(m.retired);
  job->previous = m.view.get();
  cancel_ = false;
  cycle_running_ = true;
  return job;
}

void Engine::RunWork(CycleJob& job) {
  Sample(job);
  Record(job);
  Decide(job);
  Journal(job);
  Apply(job);
  Publish(job);
}

namespace {

// Whether the last cycle published `f` as blocked.
bool BlockedLastCycle(const CycleJob& job, const FileRecord& f) {
  std::optional<uint32_t> was = job.previous->Find(KeyOf(job.snap, f));
  return was && (job.previous->published[*was] & 0x7) == static_cast<unsigned>(FileState::kBlocked);
}

// The reason the driver refused file d.file's change to the mode d still
// wants, in the last try, when the file has been blocked by it since; else
// nullptr.
const std::string* RefusedByDriverLastCycle(const CycleJob& job, const Decision& d) {
  const uint32_t o = job.OldIndex(d.file);
  if (o == kNoFile) return nullptr;
  const auto& prev = *job.previous;
  if (o >= prev.status.size() || o >= prev.published.size()) return nullptr;
  if ((prev.published[o] & 0x7) != static_cast<unsigned>(FileState::kBlocked)) return nullptr;
  if (prev.status[o].desired != d.desired) return nullptr;
  if (!std::binary_search(prev.driver_refused.begin(), prev.driver_refused.end(), o)) {
    return nullptr;
  }
  return prev.ApplyReason(o);
}

// Why the last cycle refused file f's change, or nullptr.
const std::string* RefusalLastCycle(const CycleJob& job, const FileRecord& f) {
  std::optional<uint32_t> was = job.previous->Find(KeyOf(job.snap, f));
  return was ? job.previous->ApplyReason(*was) : nullptr;
}

// A refusal's reason while the file waits `wait_ns` for its next try.
std::string WaitingReason(const std::string& refused, int64_t wait_ns) {
  if (wait_ns <= 0) return refused;
  return refused + "; tried again in " + policy::FormatDuration(wait_ns);
}

// The cycle's one pass over /proc.
void LookUpHolders(host::HolderFinder& finder, CycleJob& job, std::vector<host::FileId> ids) {
  job.holders_looked_up = true;
  if (ids.empty()) return;
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  auto scan = finder.Find(ids);
  if (!scan.ok()) {
    job.delta.sampler_errors["holders"] += 1;
    return;
  }
  job.holder_scan = std::move(*scan);
}

}  // namespace

void Engine::Sample(CycleJob& job) {
  Impl& m = *impl_;
  const policy::Policy& pol = *m.policy;
  ++job.delta.cycles;
  job.retired.reset();
  // The view keeps the only copy of the rule timers between cycles.
  m.rule_state = job.previous->rule_state;

  const bool rescan = m.rescan_requested.exchange(false);
  const bool full =
      !m.scanned_once || job.now.mono_ns - m.last_full_scan_ns >= pol.daemon.rescan_ns;
  if (full) m.last_full_scan_ns = job.now.mono_ns;
  m.scanned_once = true;
  job.snap.page_size = m.parts.page_size;
  job.snap.mounts = m.scopes->mounts;
  plugins::SampleContext ctx(job.snap, m.scopes->scopes);
  ctx.previous = m.last.get();
  ctx.mono_ns = job.now.mono_ns;
  ctx.wall_ns = job.now.wall_ns;
  ctx.full_scan = full || rescan;
  ctx.probe_interval_ns = pol.daemon.probe_interval_ns;
  ctx.media_report = &job.media_report;
  for (const auto& source : m.parts.sources) {
    source->Sample(ctx);
    std::string degraded = source->Degraded();
    if (!degraded.empty()) job.degraded.emplace_back(source->Name(), std::move(degraded));
  }
  for (const auto& [name, n] : ctx.errors) job.delta.sampler_errors[name] += n;
  job.report.full_scan = ctx.scanned_full;
  job.report.scheduled_walk = full && ctx.scanned_full;
  job.snap.wall_clock_ns = m.parts.clock->WallNs();
  job.report.files = job.snap.files.size();

  // Rules that read file.holders need every file's count before deciding:
  // the cycle's one pass over /proc is made here, for every regular file.
  if (pol.UsesVariable(policy::Var::kFileHolders)) {
    std::vector<host::FileId> ids;
    for (const FileRecord& f : job.snap.files) {
      if (f.kind == FileKind::kRegular) ids.push_back({DevOf(job.snap, f), f.ino});
    }
    LookUpHolders(*m.parts.holders, job, std::move(ids));
    if (job.holder_scan) {
      // Written only where it changes: unchanged records stay shared with the view's table.
      for (size_t i = 0; i < job.snap.files.size(); ++i) {
        FileRecord f = std::as_const(job.snap.files)[i];
        if (f.kind != FileKind::kRegular) continue;
        auto it = job.holder_scan->holders.find({DevOf(job.snap, f), f.ino});
        size_t n = it == job.holder_scan->holders.end() ? 0 : it->second.size();
        f.holders = static_cast<uint16_t>(std::min<size_t>(n, 65535));
        f.available |= policy::kHaveHolders;
        job.snap.files.Set(i, f);
      }
    }
  }
}

void Engine::Record(CycleJob& job) {
  Impl& m = *impl_;
  if (m.parts.recorder) m.parts.recorder->Record(job.snap, *m.policy, job.now.mono_ns);
}

TraceRecorder* Engine::recorder() const { return impl_->parts.recorder.get(); }

bool Engine::SelectFiles(CycleJob& job, std::vector<uint32_t>* carried_observe) {
  Impl& m = *impl_;
  const policy::Policy& pol = *m.policy;
  const View& prev = *job.previous;
  const policy::Snapshot& snap = job.snap;
  const policy::Snapshot& old = *prev.snap;
  // Everything, when an input of every file changed (or there is nothing to
  // carry): a new policy or scopes, the reconciliation walk, the mode, the
  // holds, the mounts.
  if (!prev.decided || prev.policy != m.policy || prev.scopes != m.scopes || job.report.full_scan ||
      prev.mode != job.mode || !SameHolds(prev.holds, job.holds) ||
      snap.page_size != old.page_size || !SameMounts(snap.mounts, old.mounts) ||
      prev.status.size() != old.files.size() || prev.published.size() != old.files.size()) {
    return false;
  }
  using policy::Var;
  // Global inputs that changed: the files decided by the first rule that
  // reads them, or a later one, are evaluated again.
  size_t global_from = kNoFile;
  if (!SameSystem(snap.system, old.system)) {
    global_from =
        std::min(global_from, FirstReader(pol,
                                          {Var::kSystemCacheHitRatio, Var::kSystemMemPressure,
                                           Var::kSystemPageCacheRatio, Var::kFileReuse},
                                          true));
  }
  // Figures withheld, or no longer: every access variable of a covered file
  // changed its availability without its record changing.
  if (snap.system.access_withheld != old.system.access_withheld) {
    global_from =
        std::min(global_from, FirstReader(pol,
                                          {Var::kFileReadBytesRate, Var::kFileWriteBytesRate,
                                           Var::kFileReuse, Var::kFileCacheHitRatio},
                                          true));
  }
  if (!SameMedia(snap.media, old.media)) {
    global_from = std::min(
        global_from, FirstReader(pol,
                                 {Var::kMediaReadLatencyNs, Var::kMediaWriteLatencyNs,
                                  Var::kMediaLatencyRatio, Var::kMediaHealth, Var::kMediaNumaNode},
                                 true));
  }
  // file.age moves with the clock: a file is due when it crossed a threshold
  // a rule compares it with since the last cycle.
  const size_t age_from = FirstReader(pol, {Var::kFileAge}, false);
  std::vector<double> ages;
  if (age_from != kNoFile) {
    for (const policy::Rule& r : pol.rules) {
      if (r.when && !r.when->Thresholds(Var::kFileAge, &ages)) return false;
    }
  }
  auto from = [&](size_t first, int32_t rule) {
    return first != kNoFile &&
           (rule < 0 ? first <= pol.rules.size() : static_cast<size_t>(rule) >= first);
  };
  const size_t n = snap.files.size();
  const bool same_dirs = snap.dir_paths == old.dir_paths;
  // The scanner lays the names out again each cycle, the same way when no
  // directory changed: then equal offsets are equal names, and one
  // comparison of the arenas replaces a million of names.
  const bool same_names = snap.names == old.names;
  job.status.assign(n, Status{});
  carried_observe->assign(pol.rules.size() + 1, 0);
  // Where both tables hold one chunk, the same files at the same indices with
  // the same samples, names and directories: those records are not read.
  constexpr size_t kChunk = policy::FileTable::kChunkRecords;
  const bool skip_shared = job.same_files && same_names && same_dirs;
  bool shared = false;
  for (uint32_t i = 0; i < n; ++i) {
    if (i % kChunk == 0) shared = skip_shared && snap.files.SameChunk(old.files, i / kChunk);
    const uint32_t o = job.OldIndex(i);
    const FileRecord& f = snap.files[i];
    bool redo = o == kNoFile;
    if (!redo && !shared) {
      const FileRecord& was = old.files[o];
      const bool same_name =
          same_names && f.name_offset == was.name_offset && f.name_length == was.name_length;
      redo = !SameSample(f, was) || (!same_name && snap.Name(f) != old.Name(was)) ||
             (same_dirs ? f.dir != was.dir : snap.dir_paths[f.dir] != old.dir_paths[was.dir]);
    }
    if (!redo) {
      // The decision as that cycle published it: close events since change
      // the view's state (the loop's), not the published one, and this job
      // compares its own sample with them at EndCycle. (The loop writes only
      // Status::state; the other fields are read here.)
      const Status& s = prev.status[o];
      const auto state = static_cast<FileState>(prev.published[o] & 0x7);
      // Deferred files wait on `for`, min_dwell or the budget, which the
      // clock ends; blocked ones are tried again every cycle, and so are
      // changes a cancelled cycle only observed.
      redo = state == FileState::kDeferred || state == FileState::kBlocked ||
             (state == FileState::kObserved && job.mode != policy::Mode::kObserve) ||
             from(global_from, s.rule);
      if (!redo && from(age_from, s.rule) && (f.available & policy::kHaveSize)) {
        const double lo = static_cast<double>(old.wall_clock_ns - f.mtime_ns);
        const double hi = static_cast<double>(snap.wall_clock_ns - f.mtime_ns);
        redo = std::any_of(ages.begin(), ages.end(), [&](double t) { return lo <= t && t <= hi; });
      }
      if (!redo) {
        job.status[i] = Status{s.rule, state, s.desired, s.held, s.reason};
        if (s.reason == policy::Reason::kObserveMode) {
          ++(*carried_observe)[s.rule >= 0 ? static_cast<size_t>(s.rule) : pol.rules.size()];
        }
        continue;
      }
    }
    job.to_decide.push_back(i);
  }
  if (!job.same_files) {
    std::vector<bool> kept(old.files.size(), false);
    for (uint32_t o : job.old_index) {
      if (o != kNoFile) kept[o] = true;
    }
    for (uint32_t o = 0; o < old.files.size(); ++o) {
      if (!kept[o]) job.gone.push_back(KeyOf(old, old.files[o]));
    }
  }
  return true;
}

void Engine::Decide(CycleJob& job) {
  Impl& m = *impl_;
  const policy::Policy& pol = *m.policy;
  EngineCounters& counters = job.delta;
  const policy::EvalOptions eval{job.mode, job.now.mono_ns};
  auto each = [&](const Decision& d) {
    job.status[d.file] = Status{d.rule, d.state, d.desired, d.held, d.reason};
    if (d.wait_ns != 0) {
      job.waits.emplace_back(d.file, d.wait_ns);
      int64_t& next = job.report.next_wait_ns;
      if (d.wait_ns > 0 && (next == 0 || d.wait_ns < next)) next = d.wait_ns;
    }
    // A refused try counts as a switch, so min_dwell (or the budget) puts
    // the next one off: a file the driver refused stays blocked, with the
    // refusal's reason, until then. (In observe mode nothing is tried.)
    if (d.state == FileState::kDeferred && job.mode == policy::Mode::kEnforce &&
        (d.reason == policy::Reason::kMinDwell || d.reason == policy::Reason::kBudget)) {
      if (const std::string* why = RefusedByDriverLastCycle(job, d)) {
        job.Refuse(d.file, *why);
        job.driver_refused.push_back(d.file);
        return;
      }
    }
    if (!d.apply) return;
    const plugins::ScopeInfo& scope =
        m.scopes->scopes.list[std::as_const(job.snap.files)[d.file].mount];
    if (!scope.flag_blocked.empty()) {
      job.Refuse(d.file, scope.flag_blocked);
    } else {
      job.to_apply.push_back(d.file);
    }
  };
  std::vector<uint32_t> carried_observe;  // per rule, then the defaults
  if (!job.matched) job.MatchPrevious();
  policy::Decisions decisions;
  if (!SelectFiles(job, &carried_observe)) {
    job.status.assign(job.snap.files.size(), Status{});
    decisions = policy::Evaluate(pol, job.snap, m.rule_state, job.holds, eval, each);
    job.report.decided = job.snap.files.size();
  } else {
    decisions = policy::EvaluateFiles(pol, job.snap, m.rule_state, job.holds, eval, job.to_decide,
                                      job.gone, each);
    job.report.decided = job.to_decide.size();
    for (size_t r = 0; r < carried_observe.size(); ++r) {
      if (carried_observe[r] == 0) continue;
      if (r < pol.rules.size()) {
        decisions.rules[r].suppressed_observe += carried_observe[r];
      } else {
        decisions.defaults.suppressed_observe += carried_observe[r];
      }
    }
  }
  job.to_decide = {};
  job.gone = {};
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
}

void Engine::Journal(CycleJob& job) {
  Impl& m = *impl_;
  if (job.to_apply.empty() || job.mode != policy::Mode::kEnforce) return;
  const ScopeSet& scopes = *m.scopes;
  // Without a durable record of the originals nothing may change: the whole
  // batch is blocked with the reason.
  auto block_batch = [&](const std::string& why) {
    LogError(why);
    job.delta.sampler_errors["journal"] += 1;
    for (uint32_t i : job.to_apply) job.Refuse(i, why);
    job.to_apply.clear();
  };
  if (!m.journal && !m.OpenJournal()) {
    std::string why;
    {
      std::lock_guard<std::mutex> lock(m.journal_status_mu);
      why = m.journal_status;
    }
    block_batch(why);
    return;
  }
  m.journal->SetScopes(m.policy->scopes);
  // Originals first, in one durable write for the whole batch. A file the
  // driver refused in the last cycle is tried again but left out: most such
  // tries are refused again before any change, and the journal would be
  // written twice a cycle for it (its original, then forgotten). Should a try
  // get as far as a change, the driver's before-change hook records the
  // original first, in a write of its own: so only while few are left out
  // (should many become changeable at once, say after a chattr -R, their
  // one-by-one writes would cost more than the batch).
  constexpr size_t kMaxLeftOut = 64;
  size_t refused_before = 0;
  if (!m.refused_by_driver.empty()) {
    for (uint32_t i : job.to_apply) {
      refused_before +=
          m.refused_by_driver.count(KeyOf(job.snap, std::as_const(job.snap.files)[i]));
    }
  }
  const bool leave_out = refused_before <= kMaxLeftOut;
  std::vector<journal::JournalEntry> batch;
  std::string path;
  for (uint32_t i : job.to_apply) {
    const FileRecord& f = std::as_const(job.snap.files)[i];
    if (leave_out && m.refused_by_driver.count(KeyOf(job.snap, f)) > 0) continue;
    job.snap.PathOf(f, &path);
    journal::JournalEntry e;
    e.key = journal::FileKey{DevOf(job.snap, f), f.ino};
    e.scope_root = scopes.scopes.list[f.mount].path;
    e.path = RelativePath(scopes, f, path);
    e.original = f.physical;
    batch.push_back(std::move(e));
  }
  auto recorded = m.journal->RecordOriginals(batch);
  if (!recorded.ok()) {
    block_batch("cannot record original flags: " + recorded.error().message +
                "; nothing is changed this cycle");
  }
}

void Engine::Apply(CycleJob& job) {
  Impl& m = *impl_;
  const ScopeSet& scopes = *m.scopes;
  std::vector<Status>& status = job.status;
  EngineCounters& counters = job.delta;
  // The cycle's one pass over /proc, unless Sample made it: holders of files
  // that were or may become pending, and MAP_SYNC users of files losing DAX.
  if (!job.holders_looked_up) {
    std::vector<host::FileId> ids;
    for (const auto& [k, holders] : m.pending_holders) ids.push_back({k.dev, k.ino});
    for (uint32_t i : job.to_apply) {
      const FileRecord& f = std::as_const(job.snap.files)[i];
      if (f.kind == FileKind::kRegular) ids.push_back({DevOf(job.snap, f), f.ino});
    }
    for (uint32_t i = 0; i < status.size(); ++i) {
      const FileRecord& f = std::as_const(job.snap.files)[i];
      if (status[i].state == FileState::kPending && f.kind == FileKind::kRegular) {
        ids.push_back({DevOf(job.snap, f), f.ino});
      }
    }
    LookUpHolders(*m.parts.holders, job, std::move(ids));
  }
  for (auto& [k, out] : m.pending_holders) {
    if (job.holder_scan) out = HoldersOf(*job.holder_scan, k);
  }
  m.refused_by_driver.clear();  // Journal, earlier in this cycle, has read it
  if (job.to_apply.empty()) return;

  const bool enforce = job.mode == policy::Mode::kEnforce;
  driver::ApplyHooks hooks;
  hooks.maps_sync = [&](uint64_t dev, uint64_t ino) -> Result<bool> {
    if (!job.holder_scan) return Error{"cannot tell whether a process maps the file MAP_SYNC", 0};
    auto it = job.holder_scan->holders.find({dev, ino});
    if (it == job.holder_scan->holders.end()) return false;
    return std::any_of(it->second.begin(), it->second.end(),
                       [](const host::Holder& h) { return h.map_sync; });
  };
  std::string path;
  for (uint32_t i : job.to_apply) {
    // A copy, written back when the flags change: the record's chunk of the
    // table stays shared with the view's when nothing changes.
    FileRecord f = std::as_const(job.snap.files)[i];
    Status& st = status[i];
    // The mode may become observe while this runs (SetMode from the loop), and
    // a shutdown may cancel: from then on nothing changes; the rest is observed.
    const bool change = enforce && mode_.load() == policy::Mode::kEnforce && !cancel_.load();
    driver::DaxDriver* drv = change ? m.parts.enforce_driver.get() : m.parts.observe_driver.get();
    job.snap.PathOf(f, &path);
    const plugins::ScopeInfo& scope = scopes.scopes.list[f.mount];
    hooks.before_change = nullptr;
    if (m.journal && change) hooks.before_change = m.journal->BeforeChangeHook(scope.path);
    driver::FileRef ref{scope.root_fd, RelativePath(scopes, f, path), {DevOf(job.snap, f), f.ino}};
    auto outcome = drv->Apply(ref, st.desired, hooks);
    // A hold, not the rule, decided this change: counted with the defaults.
    std::string rule =
        st.held || st.rule < 0 ? "" : m.policy->rules[static_cast<size_t>(st.rule)].name;
    std::string to = DaxName(st.desired);
    // Logged when a file becomes blocked, or its refusal's reason changes;
    // not at every retry.
    auto log_blocked = [&](const std::string& why) {
      if (BlockedLastCycle(job, f)) {
        const std::string* was = RefusalLastCycle(job, f);
        if (was == nullptr || *was == why) return;
      }
      std::string shown = journal::PrintablePath(path);
      LogEvent(Event::kSwitchBlocked, LogLevel::kNotice,
               "cannot switch " + shown + " to " + to + ": " + why,
               {field::Path(path), field::Rule(rule), field::To(to), field::Reason(why)});
    };
    if (!outcome.ok()) {
      m.refused_by_driver.insert(KeyOf(job.snap, f));
      job.driver_refused.push_back(i);
      ++counters.transitions[{rule, to, "failed"}];
      job.Refuse(i, outcome.error().message);
      ++job.report.blocked;
      log_blocked(outcome.error().message);
      continue;
    }
    const driver::ApplyOutcome& o = *outcome;
    if (o.blocked()) {
      m.refused_by_driver.insert(KeyOf(job.snap, f));
      job.driver_refused.push_back(i);
      ++counters.transitions[{rule, to, "blocked"}];
      job.Refuse(i, o.reason);
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
    job.snap.files.Set(i, f);
    st.state = StateAfterApply(f, st.desired, job.snap.mounts);
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

void Engine::Publish(CycleJob& job) {
  Impl& m = *impl_;
  const ScopeSet& scopes = *m.scopes;
  CycleReport& report = job.report;
  const policy::Snapshot& snap = job.snap;
  const View& previous = *job.previous;
  auto view = std::make_unique<View>();
  view->status = std::move(job.status);
  view->waits = std::move(job.waits);
  const std::vector<Status>& status = view->status;
  // What each file was last published as in the previous view (0 for a file
  // new to this cycle). Each is replaced by its state now below.
  if (!job.matched) job.MatchPrevious();
  view->order = std::move(job.order);
  view->published.resize(snap.files.size());
  for (uint32_t i = 0; i < snap.files.size(); ++i) {
    const uint32_t o = job.OldIndex(i);
    view->published[i] = o == kNoFile ? 0 : previous.published[o];
  }
  job.old_index = {};
  PendingHolders still_pending;
  std::string path;
  for (uint32_t i = 0; i < snap.files.size(); ++i) {
    const FileRecord& f = snap.files[i];
    const Status& st = status[i];
    const FileKey key = KeyOf(snap, f);
    const bool pending = st.state == FileState::kPending && f.kind == FileKind::kRegular;
    if (pending) {
      if (auto old = m.pending_holders.find(key); old != m.pending_holders.end()) {
        still_pending[key] = std::move(old->second);
      } else {
        // Newly pending: its holders came with the cycle's pass over /proc.
        std::vector<HolderInfo> holders =
            job.holder_scan ? HoldersOf(*job.holder_scan, key) : std::vector<HolderInfo>{};
        snap.PathOf(f, &path);
        report.pending.push_back(PendingSwitch{path, st.desired, holders});
        job.track.push_back(
            TrackRequest{key, scopes.scopes.list[f.mount].root_fd, RelativePath(scopes, f, path)});
        still_pending[key] = std::move(holders);
      }
    }
    // What this file was last published as: a close event since, or the last view.
    uint8_t before = view->published[i];
    if (auto c = m.close_published.find(key); c != m.close_published.end()) before = c->second;
    const uint8_t packed = Pack(st.state, f.physical, f.effective);
    view->published[i] = packed;
    if (before != packed) {
      if (!(before & 0x80) && st.state == FileState::kUnmanaged) {
        // First sighting of an unmanaged file is not news; everything else is.
      } else if (report.changes.size() >= CycleReport::kMaxReportedChanges) {
        ++report.unreported_changes;
      } else {
        snap.PathOf(f, &path);
        std::string rule = st.rule >= 0 ? m.policy->rules[static_cast<size_t>(st.rule)].name : "";
        report.changes.push_back(StateChange{path, st.state, f.physical, f.effective, rule});
      }
    }
  }
  m.close_published.clear();
  m.pending_holders = std::move(still_pending);
  view->policy = m.policy;
  view->scopes = m.scopes;
  report.table_chunks = snap.files.chunk_count();
  report.shared_chunks = snap.files.SharedChunks(previous.snap->files);
  view->snap = std::make_shared<const policy::Snapshot>(std::move(job.snap));
  m.last = view->snap;
  view->apply_reasons = std::move(job.apply_reasons);
  std::sort(job.apply_reason_of.begin(), job.apply_reason_of.end());
  view->apply_reason_of = std::move(job.apply_reason_of);
  std::sort(job.driver_refused.begin(), job.driver_refused.end());
  view->driver_refused = std::move(job.driver_refused);
  view->pending_holders = m.pending_holders;
  view->rule_state = std::move(m.rule_state);
  m.rule_state = policy::RuleState();
  view->media_report = std::move(job.media_report);
  view->degraded = std::move(job.degraded);
  view->gauges = CountGauges(*m.policy, *view->snap, view->status);
  view->decided = true;
  view->mode = job.mode;
  view->holds = std::move(job.holds);
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
    if (!m.parts.close_watcher || !view->pending_holders.count(t.key)) continue;
    auto r = m.parts.close_watcher->Track(t.root_fd, t.relative, WatchToken(t.key));
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
  if (pending_scopes_) SetUpScopes(std::move(pending_scopes_));
  report.duration_ns = m.parts.clock->MonotonicNs() - job->now.mono_ns;
  return report;
}

std::vector<StateChange> Engine::OnCloseEvents() {
  Impl& m = *impl_;
  std::vector<StateChange> changes;
  files::CloseEventSource* watcher = m.parts.close_watcher.get();
  if (!watcher) return changes;
  auto drained = watcher->Drain();
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
    const FileRecord& f = v.snap->files[*idx];
    v.snap->PathOf(f, &path);
    DaxState eff = m.parts.enforce_driver->ReadEffective({v.scopes->scopes.list[f.mount].root_fd,
                                                          RelativePath(*v.scopes, f, path),
                                                          {key.dev, f.ino}});
    if (eff == DaxState::kUnknown || eff == v.Effective(*idx)) continue;
    v.ApplyEffective(key, eff);
    const Status& st = v.status[*idx];
    std::string rule = st.rule >= 0 ? v.policy->rules[static_cast<size_t>(st.rule)].name : "";
    const uint8_t packed = Pack(st.state, f.physical, eff);
    changes.push_back(StateChange{path, st.state, f.physical, eff, rule});
    m.close_updates.push_back(CloseUpdate{key, eff, packed, path});
    if (st.state != FileState::kPending) watcher->Untrack(WatchToken(key));
  }
  return changes;
}

int Engine::close_watcher_fd() const {
  return impl_->parts.close_watcher ? impl_->parts.close_watcher->fd() : -1;
}

void Engine::ReplacePolicy(policy::Policy policy) {
  auto shared = std::make_shared<const policy::Policy>(std::move(policy));
  std::shared_ptr<ScopeSet> scopes = PrepareScopes(shared);
  ReplacePolicy(std::move(shared), std::move(scopes));
}

void Engine::ReplacePolicy(std::shared_ptr<const policy::Policy> policy,
                           std::shared_ptr<ScopeSet> scopes) {
  policy_ = std::move(policy);
  ++generation_;
  pending_scopes_ = std::move(scopes);
  if (!cycle_running_) SetUpScopes(std::move(pending_scopes_));
}

void Engine::SetMode(policy::Mode mode) { mode_ = mode; }

const plugins::Clock& Engine::clock() const { return *impl_->parts.clock; }

std::optional<ApiFailure> Engine::Locate(const std::string& path, uint32_t* index) const {
  const View& v = *impl_->view;
  const std::string shown = "'" + journal::PrintablePath(path) + "'";
  if (auto problem = bus::RawPathProblem(path)) {
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
  if (auto h = v.pending_holders.find(KeyOf(*v.snap, v.snap->files[i]));
      h != v.pending_holders.end()) {
    out.holders = h->second;
  }
  r.value = std::move(out);
  return r;
}

std::string Engine::ReasonOf(const View& v, uint32_t i) const {
  const Decision d = v.DecisionOf(i);
  if (const std::string* refused = v.ApplyReason(i)) {
    return v.WaitsForNextTry(i) ? WaitingReason(*refused, d.wait_ns) : *refused;
  }
  if (d.held) {
    const policy::Holds& holds = impl_->holds.effective();
    if (auto h = holds.find(KeyOf(*v.snap, v.snap->files[i])); h != holds.end()) {
      std::string why = "application hold: " + h->second.reason;
      std::string rest = policy::ReasonText(*v.policy, *v.snap, d);
      return rest.empty() ? why : why + "; " + rest;
    }
  }
  return policy::ReasonText(*v.policy, *v.snap, d);
}

ApiResult<std::string> Engine::Explain(const std::string& path) const {
  const View& v = *impl_->view;
  ApiResult<std::string> r;
  uint32_t i = 0;
  if (auto failure = Locate(path, &i)) {
    r.failure = std::move(failure);
    return r;
  }
  // Evaluated now: waits (for, min_dwell, budget) count from the clock's now.
  policy::Explanation e =
      policy::Explain(*v.policy, *v.snap, v.rule_state, impl_->holds.effective(),
                      {mode_.load(), impl_->parts.clock->MonotonicNs()}, i);
  const std::string* refused = v.ApplyReason(i);
  const bool waits = refused != nullptr && v.WaitsForNextTry(i) &&
                     e.decision.state == FileState::kDeferred &&
                     e.decision.reason == v.status[i].reason;
  if (waits) {
    // As GetFileState shows it: blocked by the refusal until the next try.
    e.decision.state = FileState::kBlocked;
    e.reason = WaitingReason(*refused, e.decision.wait_ns);
  }
  std::string text = policy::FormatExplanation(e, *v.snap);
  if (refused != nullptr && !waits) text += "  last apply: refused: " + *refused + "\n";
  const FileRecord& f = v.snap->files[i];
  if (!v.snap->mounts[f.mount].effective_blocked_reason.empty()) {
    text += "  device:    " + v.snap->mounts[f.mount].effective_blocked_reason + "\n";
  }
  if (auto h = v.pending_holders.find(KeyOf(*v.snap, f));
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
  for (uint32_t i = 0; i < v.size(); ++i) {
    if (state && v.status[i].state != *state) continue;
    v.snap->PathOf(v.snap->files[i], &fv.path);
    v.Fill(i, &fv);
    visit(fv);
  }
}

const media::MediaReport& Engine::media() const { return impl_->view->media_report; }

std::vector<std::pair<std::string, std::string>> Engine::DegradedParts() const {
  const Impl& m = *impl_;
  std::vector<std::pair<std::string, std::string>> parts;
  // Scope problems are listed up to a bound, so that a policy of many unusable scopes
  // does not make Degraded (and every status update) megabytes long.
  const std::vector<std::string>& scope_problems = m.degraded_scopes->problems;
  const size_t shown = std::min(scope_problems.size(), kDegradedScopeProblems);
  for (size_t i = 0; i < shown; ++i) parts.emplace_back("scope", scope_problems[i]);
  if (shown < scope_problems.size()) {
    parts.emplace_back(
        "scope", "and " + std::to_string(scope_problems.size() - shown) + " more scope problems");
  }
  {
    std::lock_guard<std::mutex> lock(m.journal_status_mu);
    if (!m.journal_status.empty()) parts.emplace_back("journal", m.journal_status);
  }
  if (!m.watcher_problem.empty()) parts.emplace_back("close-events", m.watcher_problem);
  // A telemetry source's kind is its name ("access", "media", ...).
  for (const auto& [source, d] : m.view->degraded) parts.emplace_back(source, d);
  return parts;
}

std::vector<std::string> Engine::DegradedKinds() const {
  std::vector<std::string> kinds;
  for (const auto& [kind, text] : DegradedParts()) {
    if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) kinds.push_back(kind);
  }
  return kinds;
}

std::string Engine::Degraded() const {
  std::string out;
  for (const auto& [kind, text] : DegradedParts()) out += (out.empty() ? "" : "; ") + text;
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
  const FileRecord& f = v.snap->files[i];
  const plugins::ScopeInfo& scope = v.scopes->scopes.list[f.mount];
  std::string target_error;
  std::optional<HoldTarget> target;
  {
    // One resolution beneath the scope root that follows no symlink and crosses no mount:
    // the owner checked and the file held are the same file.
    driver::SafeOpener opener(driver::SafeOpenOptions{options_.procfs, true});
    auto opened = opener.OpenPath(scope.root_fd, RelativePath(*v.scopes, f, path));
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
    v.snap->PathOf(v.snap->files[i], &path);
    out[FileState::kBlocked].emplace_back(path, ReasonOf(v, i));
  }
  return out;
}

}  // namespace daxpolicy::daemon
