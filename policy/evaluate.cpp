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
      return DaxState::kUnknown;
  }
  return DaxState::kUnknown;
}

bool KindMatches(MatchKind want, FileKind have) {
  return want == MatchKind::kAny || (want == MatchKind::kFile && have == FileKind::kRegular) ||
         (want == MatchKind::kDirectory && have == FileKind::kDirectory);
}

constexpr int64_t kMinute = 60 * kNanosPerSecond;

}  // namespace

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
    if (policy_.daemon.holds == HoldsPolicy::kHonor && !holds_.empty()) {
      if (auto h = holds_.find(key); h != holds_.end()) {
        d.held = true;
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
    const bool timing = rule && rule->for_ns > 0 && !d.held;
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
          if (entry->for_rule != rule->id) {
            entry->for_rule = rule->id;
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
      int64_t since = (seen && seen->for_rule == rule->id) ? seen->for_since_ns : options_.now_ns;
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
    if (out) ++out->applies;
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
  Decisions out;
  out.files.reserve(snapshot.files.size());
  out.rules.resize(policy.rules.size());
  ++state.round_;
  while (!state.switches_.empty() && state.switches_.front() <= options.now_ns - kMinute) {
    state.switches_.pop_front();
  }
  Evaluator ev(policy, snapshot, holds, options);
  std::string path;
  for (uint32_t i = 0; i < snapshot.files.size(); ++i) {
    snapshot.PathOf(snapshot.files[i], &path);
    out.files.push_back(ev.Decide(i, path, &state, state, nullptr, &out));
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
  return out;
}

}  // namespace daxpolicy::policy
