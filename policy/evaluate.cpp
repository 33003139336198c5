// SPDX-License-Identifier: Apache-2.0
#include "policy/evaluate.h"

#include <algorithm>

#include "policy/units.h"
#include "policy/variables.h"

namespace daxpolicy::policy {

std::string_view FileStateName(FileState s) {
  switch (s) {
    case FileState::kUnmanaged:
      return "unmanaged";
    case FileState::kInSync:
      return "in-sync";
    case FileState::kPending:
      return "pending";
    case FileState::kDeferred:
      return "deferred";
    case FileState::kObserved:
      return "observed";
    case FileState::kBlocked:
      return "blocked";
  }
  return "?";
}

std::string_view DaxStateName(DaxState s) {
  switch (s) {
    case DaxState::kDax:
      return "dax";
    case DaxState::kPageCache:
      return "page-cache";
    case DaxState::kUnknown:
      return "unknown";
  }
  return "?";
}

namespace {

DaxState ToState(DaxSetting s) {
  switch (s) {
    case DaxSetting::kOn:
      return DaxState::kDax;
    case DaxSetting::kOff:
      return DaxState::kPageCache;
    case DaxSetting::kKeep:
    case DaxSetting::kAuto:  // decided by the cost model
      return DaxState::kUnknown;
  }
  return DaxState::kUnknown;
}

bool KindMatches(MatchKind want, FileKind have) {
  return want == MatchKind::kAny || (want == MatchKind::kFile && have == FileKind::kRegular) ||
         (want == MatchKind::kDirectory && have == FileKind::kDirectory);
}

constexpr int64_t kMinute = 60 * kNanosPerSecond;

// dax: auto times the preference for each direction separately, so a rule's
// `for:` restarts when the cheaper mode changes.
constexpr uint64_t kAutoTimerDax = 0x6461782d6175746full;
constexpr uint64_t kAutoTimerPageCache = 0x70632d6175746f21ull;

const MediaSample* MediaOfMount(const Snapshot& snapshot, const FileRecord& f) {
  if (f.mount >= snapshot.mounts.size()) return nullptr;
  int m = snapshot.mounts[f.mount].media;
  if (m < 0 || static_cast<size_t>(m) >= snapshot.media.size()) return nullptr;
  return &snapshot.media[static_cast<size_t>(m)];
}

}  // namespace

std::optional<MediaParams> MediaParamsFor(const Policy& policy, const Snapshot& snapshot,
                                          const FileRecord& f, std::string_view path,
                                          std::string* why) {
  MediaParams p;
  const CostMount* cm = policy.CostMountOf(path);
  if (cm && !cm->preset.empty()) {
    p = *MediaPreset(cm->preset);
  } else if (const MediaSample* m = MediaOfMount(snapshot, f);
             m && m->have_latency && m->latency_ratio > 0) {
    p.read_latency_ns = m->read_latency_ns;
    p.dram_latency_ns = m->read_latency_ns / m->latency_ratio;
    if (m->have_bandwidth) {
      p.read_bandwidth = m->read_bandwidth;
      p.dram_bandwidth = m->dram_bandwidth;
      p.write_bandwidth = m->write_bandwidth;
    }
    p.source = "probe of " + m->name;
  }
  if (cm) {
    const MediaParams& s = cm->set;
    bool any = false;
    for (auto [from, to] : {std::pair{s.read_latency_ns, &p.read_latency_ns},
                            {s.dram_latency_ns, &p.dram_latency_ns},
                            {s.read_bandwidth, &p.read_bandwidth},
                            {s.dram_bandwidth, &p.dram_bandwidth},
                            {s.write_bandwidth, &p.write_bandwidth}}) {
      if (from > 0) {
        *to = from;
        any = true;
      }
    }
    if (any) {
      p.source = (p.source.empty() ? "" : p.source + ", ") + "figures of cost.mounts " + cm->path +
                 " (" + cm->where.ToString() + ")";
    }
  }
  if (!(p.read_latency_ns > 0)) {
    *why =
        "no media figures for this mount: the probe has not measured it and no cost.mounts "
        "entry covers it";
    return std::nullopt;
  }
  // What neither source gives: DRAM figures of the dram preset, media
  // bandwidth scaled from DRAM's by the latency ratio, writes as fast as reads.
  const MediaParams dram = *MediaPreset("dram");
  bool derived = false;
  if (!(p.dram_latency_ns > 0)) p.dram_latency_ns = dram.dram_latency_ns, derived = true;
  if (!(p.dram_bandwidth > 0)) p.dram_bandwidth = dram.dram_bandwidth, derived = true;
  if (!(p.read_bandwidth > 0)) {
    p.read_bandwidth = p.dram_bandwidth * p.dram_latency_ns / p.read_latency_ns;
    derived = true;
  }
  if (!(p.write_bandwidth > 0)) p.write_bandwidth = p.read_bandwidth, derived = true;
  if (derived) p.source += "; missing figures derived (docs/cost-model.md)";
  if (std::string problem = p.Problem(); !problem.empty()) {
    *why = "media figures out of range (" + p.source + "): " + problem;
    return std::nullopt;
  }
  return p;
}

CostInput CostInputFor(const Policy& policy, const Snapshot& snapshot, const FileRecord& f) {
  CostInput in;
  in.interval_s = static_cast<double>(policy.daemon.interval_ns) / kNanosPerSecond;
  in.size_bytes = (f.available & kHaveSize) ? static_cast<double>(f.size) : 0;
  const bool access = HasAccessFigures(snapshot, f);
  in.read_bytes = access ? f.read_bytes_rate * in.interval_s : 0;
  in.write_bytes = access ? f.write_bytes_rate * in.interval_s : 0;
  in.in_page_cache = !((f.available & kHaveEffective) && f.effective == DaxState::kDax);
  in.hit_ratio = (in.in_page_cache && (f.available & kHaveHitRatio)) ? f.cache_hit_ratio : -1;
  in.resident_bytes = (in.in_page_cache && (f.available & kHaveCache))
                          ? static_cast<double>(f.cache_pages) * snapshot.page_size
                          : 0;
  in.mem_pressure = snapshot.system.have_mem_pressure ? snapshot.system.mem_pressure : 0;
  in.commit_s = static_cast<double>(policy.defaults.min_dwell_ns) / kNanosPerSecond;
  return in;
}

class Evaluator {
 public:
  Evaluator(const Policy& policy, const Snapshot& snapshot, const Holds& holds,
            const EvalOptions& options)
      : policy_(policy), snapshot_(snapshot), holds_(holds), options_(options) {}

  // Decides one file. With `trace`, every rule is evaluated and recorded. With
  // `state` mutable, sustained conditions, switches and the budget are updated.
  Decision Decide(uint32_t index, const std::string& path, RuleState* mutable_state,
                  const RuleState& state, Explanation* trace, Decisions* out) {
    const FileRecord& f = snapshot_.files[index];
    Decision d;
    d.file = index;
    const FileKey key = KeyOf(snapshot_, f);

    if (policy_.ScopeOf(path) == nullptr) {
      d.reason = Reason::kOutsideScopes;
      return d;
    }
    if (const ProtectEntry* p = policy_.ProtectedBy(path)) {
      if (trace) trace->protected_by = p->glob.pattern() + " (" + p->where.ToString() + ")";
      d.reason = Reason::kProtected;
      return d;
    }

    VarContext ctx{&snapshot_, &f, policy_.daemon.interval_ns};
    int winner = -1;
    for (size_t r = 0; r < policy_.rules.size(); ++r) {
      const Rule& rule = policy_.rules[r];
      if (out) ++out->rule_checks;
      bool matched =
          trace ? TraceRule(rule, f, path, ctx, winner < 0, trace) : Matches(rule, f, path, ctx);
      if (matched && winner < 0) {
        winner = static_cast<int>(r);
        if (!trace) break;
      }
    }

    const Rule* rule = winner >= 0 ? &policy_.rules[static_cast<size_t>(winner)] : nullptr;
    d.rule = winner;
    d.desired = rule ? ToState(rule->dax) : ToState(policy_.defaults.dax);
    Reason auto_reason = Reason::kNone;
    if ((rule ? rule->dax : policy_.defaults.dax) == DaxSetting::kAuto) {
      d.by_auto = true;
      d.desired = DecideAuto(f, path, &auto_reason, trace);
    }
    if (policy_.daemon.holds == HoldsPolicy::kHonor && !holds_.empty()) {
      if (auto h = holds_.find(key); h != holds_.end()) {
        d.held = true;
        d.by_auto = false;
        auto_reason = Reason::kNone;
        d.desired = h->second.mode;
        if (trace) trace->hold_reason = h->second.reason;
      }
    }
    RuleCounters* counters = rule ? (out ? &out->rules[static_cast<size_t>(winner)] : nullptr)
                                  : (out ? &out->defaults : nullptr);
    if (counters && rule) ++counters->matched;

    // Sustained-condition bookkeeping for the winning rule.
    RuleState::PerFile* entry = nullptr;
    const RuleState::PerFile* seen = nullptr;
    // The map is only consulted when its entry matters: a sustained condition to
    // time, or a wanted change to check against min_dwell. Most files need neither.
    const bool timing =
        rule && rule->for_ns > 0 && !d.held && (!d.by_auto || auto_reason == Reason::kNone);
    const uint64_t timer =
        !rule ? 0
        : !d.by_auto
            ? rule->id
            : rule->id ^ (d.desired == DaxState::kDax ? kAutoTimerDax : kAutoTimerPageCache);
    const bool wants_change =
        d.desired != DaxState::kUnknown && (f.available & kHavePhysical) && d.desired != f.physical;
    if (mutable_state && (timing || (wants_change && !mutable_state->files_.empty()))) {
      auto& files = mutable_state->files_;
      if (timing) {
        entry = &files.try_emplace(key).first->second;
      } else if (auto it = files.find(key); it != files.end()) {
        entry = &it->second;
      }
      if (entry) {
        entry->seen_round = mutable_state->round_;
        if (timing) {
          if (entry->for_rule != timer) {
            entry->for_rule = timer;
            entry->for_since_ns = options_.now_ns;
          }
        } else {
          entry->for_rule = 0;
        }
      }
      seen = entry;
    } else if (!mutable_state) {
      if (auto it = state.files_.find(key); it != state.files_.end()) seen = &it->second;
    }

    if (auto_reason != Reason::kNone) {
      // dax: auto without a clear winner keeps the file as it is, managed.
      d.reason = auto_reason;
      if (!(f.available & kHavePhysical)) return d;
      d.desired = f.physical;
    }
    if (d.desired == DaxState::kUnknown) {
      d.reason = rule ? Reason::kRuleSaysKeep : Reason::kNoRuleDefaultKeep;
      return d;
    }
    if (!(f.available & kHavePhysical)) {
      d.state = FileState::kBlocked;
      d.reason = Reason::kPhysicalUnknown;
      return d;
    }
    const std::string& blocked = f.mount < snapshot_.mounts.size()
                                     ? snapshot_.mounts[f.mount].effective_blocked_reason
                                     : kEmpty;
    if (d.desired == f.physical) {
      StateInPlace(f, blocked, &d);
      return d;
    }

    // A change is wanted: hysteresis, budget and mode may hold it back.
    if (timing) {
      int64_t since = (seen && seen->for_rule == timer) ? seen->for_since_ns : options_.now_ns;
      int64_t held_for = options_.now_ns - since;
      if (held_for < rule->for_ns) {
        d.state = FileState::kDeferred;
        d.reason = Reason::kFor;
        d.wait_ns = rule->for_ns - held_for;
        if (counters) ++counters->suppressed_for;
        return d;
      }
    }
    if (!d.held && seen && seen->switched &&
        options_.now_ns - seen->last_switch_ns < policy_.defaults.min_dwell_ns) {
      d.state = FileState::kDeferred;
      d.reason = Reason::kMinDwell;
      d.wait_ns = policy_.defaults.min_dwell_ns - (options_.now_ns - seen->last_switch_ns);
      if (counters) ++counters->suppressed_min_dwell;
      return d;
    }
    // `state` is *mutable_state when there is one.
    const std::deque<int64_t>& switches = state.switches_;
    if (switches.size() >= policy_.defaults.max_switches_per_minute) {
      d.state = FileState::kDeferred;
      d.reason = Reason::kBudget;
      d.wait_ns = switches.front() + kMinute - options_.now_ns;
      if (counters) ++counters->suppressed_budget;
      return d;
    }
    if (options_.mode == Mode::kObserve) {
      d.state = FileState::kObserved;
      d.reason = Reason::kObserveMode;
      if (counters) ++counters->suppressed_observe;
      return d;
    }
    d.apply = true;
    if (out) {
      ++out->applies;
      if (d.by_auto) ++(d.desired == DaxState::kDax ? out->auto_to_dax : out->auto_to_page_cache);
    }
    if (mutable_state) {
      if (!entry) {
        entry = &mutable_state->files_[key];
        entry->seen_round = mutable_state->round_;
      }
      entry->switched = true;
      entry->last_switch_ns = options_.now_ns;
      mutable_state->switches_.push_back(options_.now_ns);
    }
    // Provisional: the caller re-reads the flags after applying.
    AwaitEffective(f, blocked, &d);
    return d;
  }

 private:
  // dax: auto: the cheaper mode when it wins by the margin; otherwise kUnknown
  // with *why saying what was missing or that neither won.
  DaxState DecideAuto(const FileRecord& f, std::string_view path, Reason* why,
                      Explanation* trace) const {
    if (f.kind == FileKind::kDirectory || !HasAccessFigures(snapshot_, f)) {
      *why = Reason::kAutoNoAccess;
      return DaxState::kUnknown;
    }
    std::string problem;
    std::optional<MediaParams> media = MediaParamsFor(policy_, snapshot_, f, path, &problem);
    if (!media) {
      *why = Reason::kAutoNoMedia;
      if (trace) trace->cost = "    " + problem + "\n";
      return DaxState::kUnknown;
    }
    const CostInput in = CostInputFor(policy_, snapshot_, f);
    const CostEstimate e = EstimateCost(in, *media, policy_.cost.constants);
    if (trace) trace->cost = FormatCost(e, *media, policy_.cost, in.interval_s);
    switch (ChooseByCost(e, policy_.cost, in.interval_s)) {
      case CostChoice::kDax:
        return DaxState::kDax;
      case CostChoice::kPageCache:
        return DaxState::kPageCache;
      case CostChoice::kUndecided:
        break;
    }
    *why = Reason::kAutoUndecided;
    return DaxState::kUnknown;
  }

  // Physical already equals desired: in sync, pending on holders, or blocked by the device.
  static void StateInPlace(const FileRecord& f, const std::string& blocked, Decision* d) {
    if (f.kind != FileKind::kDirectory) {
      if (!(f.available & kHaveEffective)) {
        d->state = FileState::kBlocked;
        d->reason = Reason::kPhysicalUnknown;
        return;
      }
      if (f.effective == d->desired) {
        d->state = FileState::kInSync;
        return;
      }
    }
    AwaitEffective(f, blocked, d);
  }

  // The physical flag is (or is about to be) the desired one; the effective
  // state follows once nothing holds the file, unless the device cannot do DAX.
  // Directories have no effective state (statx never reports DAX on them).
  static void AwaitEffective(const FileRecord& f, const std::string& blocked, Decision* d) {
    if (f.kind == FileKind::kDirectory) {
      d->state = FileState::kInSync;
    } else if (d->desired == DaxState::kDax && !blocked.empty()) {
      d->state = FileState::kBlocked;
      d->reason = Reason::kEffectiveBlocked;
    } else {
      d->state = FileState::kPending;
      d->reason = Reason::kWaitingForHolders;
    }
  }

  static bool SizeOk(const Rule& rule, const FileRecord& f) {
    if (!rule.size) return true;
    if (!(f.available & kHaveSize)) return false;
    return Compare(static_cast<double>(f.size), rule.size->op,
                   static_cast<double>(rule.size->bytes));
  }

  // The first of the rule's path patterns that matches, or nullptr.
  static const Glob* MatchingPath(const Rule& rule, std::string_view path) {
    for (const Glob& g : rule.paths) {
      if (g.Matches(path)) return &g;
    }
    return nullptr;
  }

  static bool PathOk(const Rule& rule, std::string_view path) {
    return rule.paths.empty() || MatchingPath(rule, path) != nullptr;
  }

  static bool Matches(const Rule& rule, const FileRecord& f, std::string_view path,
                      const VarContext& ctx) {
    if (!KindMatches(rule.kind, f.kind)) return false;
    if (!PathOk(rule, path)) return false;
    if (!SizeOk(rule, f)) return false;
    return !rule.when || rule.when->Eval(ctx) == Tri::kTrue;
  }

  static bool TraceRule(const Rule& rule, const FileRecord& f, std::string_view path,
                        const VarContext& ctx, bool first_match, Explanation* trace) {
    RuleTrace t;
    t.name = rule.name;
    t.where = rule.where.ToString();
    t.kind_ok = KindMatches(rule.kind, f.kind);
    t.path_ok = false;
    if (rule.paths.empty()) {
      t.path_ok = true;
      t.path_detail = "no path pattern: every file in the scopes";
    } else if (const Glob* g = MatchingPath(rule, path)) {
      t.path_ok = true;
      t.path_detail = "matches " + g->pattern();
    } else {
      t.path_detail = "matches none of";
      for (const Glob& other : rule.paths) t.path_detail += " " + other.pattern();
    }
    t.size_ok = SizeOk(rule, f);
    if (rule.size) {
      t.size_detail = (f.available & kHaveSize)
                          ? "size " + FormatSize(static_cast<double>(f.size)) + " " +
                                std::string(CmpOpText(rule.size->op)) + " " +
                                FormatSize(static_cast<double>(rule.size->bytes)) + ": " +
                                (t.size_ok ? "true" : "false")
                          : "size unavailable: false";
    }
    t.when = rule.when ? rule.when->EvalTraced(ctx, &t.comparisons) : Tri::kTrue;
    t.matched = t.kind_ok && t.path_ok && t.size_ok && t.when == Tri::kTrue;
    t.winner = t.matched && first_match;
    trace->rules.push_back(std::move(t));
    return trace->rules.back().matched;
  }

  static inline const std::string kEmpty;
  const Policy& policy_;
  const Snapshot& snapshot_;
  const Holds& holds_;
  const EvalOptions& options_;
};

Decisions Evaluate(const Policy& policy, const Snapshot& snapshot, RuleState& state,
                   const Holds& holds, const EvalOptions& options) {
  std::vector<Decision> files;
  files.reserve(snapshot.files.size());
  Decisions out = Evaluate(policy, snapshot, state, holds, options,
                           [&](const Decision& d) { files.push_back(d); });
  out.files = std::move(files);
  return out;
}

// What every evaluation round starts with: a tally per rule, the next round
// number, and the switch budget's window moved on to the last minute.
Decisions BeginRound(const Policy& policy, const EvalOptions& options, RuleState& state) {
  Decisions out;
  out.rules.resize(policy.rules.size());
  ++state.round_;
  while (!state.switches_.empty() && state.switches_.front() <= options.now_ns - kMinute) {
    state.switches_.pop_front();
  }
  return out;
}

Decisions Evaluate(const Policy& policy, const Snapshot& snapshot, RuleState& state,
                   const Holds& holds, const EvalOptions& options,
                   const std::function<void(const Decision&)>& each) {
  Decisions out = BeginRound(policy, options, state);
  Evaluator ev(policy, snapshot, holds, options);
  std::string path;
  for (uint32_t i = 0; i < snapshot.files.size(); ++i) {
    snapshot.PathOf(snapshot.files[i], &path);
    each(ev.Decide(i, path, &state, state, nullptr, &out));
  }
  // A condition not timed this round is broken (or its file vanished); a switch
  // is remembered until min_dwell has passed.
  for (auto it = state.files_.begin(); it != state.files_.end();) {
    RuleState::PerFile& p = it->second;
    if (p.seen_round != state.round_) p.for_rule = 0;
    bool recent = p.switched && options.now_ns - p.last_switch_ns < policy.defaults.min_dwell_ns;
    if (p.for_rule == 0 && !recent) {
      it = state.files_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

Decisions EvaluateFiles(const Policy& policy, const Snapshot& snapshot, RuleState& state,
                        const Holds& holds, const EvalOptions& options,
                        const std::vector<uint32_t>& files, const std::vector<FileKey>& gone,
                        const std::function<void(const Decision&)>& each) {
  Decisions out = BeginRound(policy, options, state);
  Evaluator ev(policy, snapshot, holds, options);
  std::string path;
  for (uint32_t i : files) {
    snapshot.PathOf(snapshot.files[i], &path);
    each(ev.Decide(i, path, &state, state, nullptr, &out));
  }
  // As in Evaluate, for the files decided here only: the others' conditions
  // and switches stand as their last evaluation left them.
  for (uint32_t i : files) {
    if (state.files_.empty()) break;
    auto it = state.files_.find(KeyOf(snapshot, snapshot.files[i]));
    if (it == state.files_.end()) continue;
    RuleState::PerFile& p = it->second;
    if (p.seen_round != state.round_) p.for_rule = 0;
    bool recent = p.switched && options.now_ns - p.last_switch_ns < policy.defaults.min_dwell_ns;
    if (p.for_rule == 0 && !recent) state.files_.erase(it);
  }
  for (const FileKey& key : gone) state.files_.erase(key);
  return out;
}

std::string ReasonText(const Policy& policy, const Snapshot& snapshot, const Decision& d) {
  const Rule* rule = d.rule >= 0 ? &policy.rules[static_cast<size_t>(d.rule)] : nullptr;
  std::string rule_name = rule ? "rule '" + rule->name + "'" : "defaults";
  switch (d.reason) {
    case Reason::kNone:
      return "";
    case Reason::kOutsideScopes:
      return "outside every scope";
    case Reason::kProtected:
      return "protected by a 'protect' pattern";
    case Reason::kNoRuleDefaultKeep:
      return "no rule matched and defaults.dax is keep";
    case Reason::kRuleSaysKeep:
      return rule_name + " says keep";
    case Reason::kPhysicalUnknown:
      return "the file's DAX flags could not be read";
    case Reason::kEffectiveBlocked: {
      const FileRecord& f = snapshot.files[d.file];
      return f.mount < snapshot.mounts.size() ? snapshot.mounts[f.mount].effective_blocked_reason
                                              : "the device cannot do DAX";
    }
    case Reason::kWaitingForHolders:
      return "the physical flag is set; the effective state follows once every process has "
             "closed and unmapped the file";
    case Reason::kFor:
      if (d.by_auto) {
        return rule_name + " (dax: auto) has preferred " + std::string(DaxStateName(d.desired)) +
               " for " + FormatDuration(rule->for_ns - d.wait_ns) + " of the required " +
               FormatDuration(rule->for_ns);
      }
      return "the condition of " + rule_name + " has held for " +
             FormatDuration(rule->for_ns - d.wait_ns) + " of the required " +
             FormatDuration(rule->for_ns);
    case Reason::kMinDwell:
      return "min_dwell: the file switched less than " +
             FormatDuration(policy.defaults.min_dwell_ns) + " ago; next switch possible in " +
             FormatDuration(d.wait_ns);
    case Reason::kBudget:
      return "switch budget of " + std::to_string(policy.defaults.max_switches_per_minute) +
             " per minute is used up; retry in " + FormatDuration(d.wait_ns);
    case Reason::kObserveMode:
      return "observe mode: the change is reported, not applied";
    case Reason::kAutoNoAccess:
      return "dax: auto keeps the file as it is: no access figures for it (access tracing "
             "is unavailable, or it is a directory)";
    case Reason::kAutoNoMedia:
      return "dax: auto keeps the file as it is: no usable media figures for its mount "
             "(see cost)";
    case Reason::kAutoUndecided:
      return "dax: auto keeps the file as it is: neither mode is cheaper by the margin "
             "(see cost)";
  }
  return "";
}

Explanation Explain(const Policy& policy, const Snapshot& snapshot, const RuleState& state,
                    const Holds& holds, const EvalOptions& options, uint32_t file) {
  Explanation e;
  snapshot.PathOf(snapshot.files[file], &e.path);
  if (const std::string* s = policy.ScopeOf(e.path)) e.scope = *s;
  Evaluator ev(policy, snapshot, holds, options);
  e.decision = ev.Decide(file, e.path, nullptr, state, &e, nullptr);
  e.reason = ReasonText(policy, snapshot, e.decision);
  return e;
}

namespace {

// "  access:    read 2 MiB/s, reuse 5, cache hit ratio 0.98, write 0 B/s (window 10s)",
// or why there are no access figures.
std::string AccessLine(const Snapshot& snapshot, const FileRecord& f) {
  VarContext ctx{&snapshot, &f, snapshot.system.access_window_ns};
  std::string_view why;
  auto read = ReadVar(Var::kFileReadBytesRate, ctx, &why);
  if (!read) return "  access:    unavailable: " + std::string(why) + "\n";
  std::string out = "  access:    read " + FormatValue(ValueKind::kRate, *read);
  if (auto reuse = ReadVar(Var::kFileReuse, ctx, &why)) {
    out += ", reuse " + FormatValue(ValueKind::kFactor, *reuse);
  }
  if (auto hit = ReadVar(Var::kFileCacheHitRatio, ctx, &why)) {
    out += ", cache hit ratio " + FormatValue(ValueKind::kRatio, *hit);
  } else {
    out += ", cache hit ratio n/a (" + std::string(why) + ")";
  }
  if (auto write = ReadVar(Var::kFileWriteBytesRate, ctx, &why)) {
    out += ", write " + FormatValue(ValueKind::kRate, *write);
  }
  return out + " (window " + FormatDuration(snapshot.system.access_window_ns) + ")\n";
}

}  // namespace

std::string FormatExplanation(const Explanation& e, const Snapshot& snapshot) {
  const FileRecord& f = snapshot.files[e.decision.file];
  const Decision& d = e.decision;
  std::string out = e.path + "\n";
  out += "  state:     " + std::string(FileStateName(d.state));
  if (!e.reason.empty()) out += " (" + e.reason + ")";
  out += "\n";
  out += "  desired:   " +
         std::string(d.desired == DaxState::kUnknown ? "keep" : DaxStateName(d.desired));
  if (d.held) out += " (application hold: " + e.hold_reason + ")";
  out += "\n  physical:  " +
         std::string((f.available & kHavePhysical) ? DaxStateName(f.physical) : "unknown");
  out += "\n  effective: " +
         std::string(f.kind == FileKind::kDirectory
                         ? "n/a (directories are never DAX; new files inherit the flag)"
                     : (f.available & kHaveEffective) ? DaxStateName(f.effective)
                                                      : "unknown");
  out += "\n";
  if (e.scope.empty()) {
    out += "  scope:     none: the daemon never touches this file\n";
    return out;
  }
  out += "  scope:     " + e.scope + "\n";
  if (f.kind == FileKind::kRegular) out += AccessLine(snapshot, f);
  if (!e.protected_by.empty()) {
    out += "  protected: " + e.protected_by + "\n";
    return out;
  }
  if (e.rules.empty()) out += "  rules:     the policy has no rules\n";
  bool won = false;
  for (const RuleTrace& t : e.rules) {
    out += "  rule '" + t.name + "' (" + t.where + "): ";
    if (t.winner) {
      out += "MATCHED, decides this file\n";
    } else if (t.matched) {
      out += "would match, but an earlier rule won\n";
    } else {
      out += "no match";
      if (t.kind_ok && t.path_ok && t.size_ok && t.when == Tri::kUnknown) {
        out += " (its condition is unknown: some data is unavailable)";
      }
      out += won ? " (an earlier rule won anyway)\n" : "\n";
    }
    won |= t.winner;
    if (!t.kind_ok) {
      out += "    type: not a " +
             std::string(f.kind == FileKind::kDirectory ? "file" : "directory") + " rule\n";
    }
    out += "    path: " + t.path_detail + "\n";
    if (!t.size_detail.empty()) out += "    " + t.size_detail + "\n";
    if (!t.comparisons.empty()) {
      out += "    when: " + std::string(TriName(t.when)) + "\n";
      for (const ComparisonTrace& c : t.comparisons) {
        out += "      " + c.text + "  ->  " + std::string(TriName(c.result)) + " (" + c.lhs_value +
               " vs " + c.rhs_value + ")\n";
        if (!c.unavailable.empty()) out += "        unavailable: " + c.unavailable + "\n";
      }
    }
  }
  if (!won) out += "  no rule matched: defaults apply\n";
  if (!e.cost.empty()) out += "  cost (dax: auto, last interval):\n" + e.cost;
  return out;
}

}  // namespace daxpolicy::policy
