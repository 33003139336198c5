// SPDX-License-Identifier: Apache-2.0
// daxpolicyd --once: one full cycle, then a summary of what was decided and done.

#include <cstdio>

#include "daemon/engine.h"
#include "daemon/journal/journal.h"
#include "daemon/log.h"
#include "daemon/options.h"
#include "daemon/wiring.h"

namespace daxpolicy::daemon {

int RunOnce(const Options& options, const policy::Policy& policy) {
  auto engine = Engine::Create(options, policy, MakeEngineParts(options, policy));
  if (!engine.ok()) {
    LogError(engine.error().message);
    return 1;
  }
  Engine& e = **engine;
  CycleReport r = e.RunCycle();
  EngineGauges g = e.Gauges();

  std::printf("daxpolicyd --once: mode %s, %llu files in %zu scope(s), cycle %.1f ms\n",
              std::string(policy::ModeName(e.mode())).c_str(),
              static_cast<unsigned long long>(r.files), policy.scopes.size(), r.duration_ns / 1e6);
  std::printf("changed %llu physical flag(s), %llu refused\n",
              static_cast<unsigned long long>(r.applied),
              static_cast<unsigned long long>(r.blocked));
  std::printf("files by state:");
  for (const auto& [state, n] : g.files_by_state) {
    std::printf(" %s=%llu", std::string(policy::FileStateName(state)).c_str(),
                static_cast<unsigned long long>(n));
  }
  std::printf("\nmanaged files by effective state: dax=%llu page-cache=%llu\n",
              static_cast<unsigned long long>(g.files_by_effective[DaxState::kDax]),
              static_cast<unsigned long long>(g.files_by_effective[DaxState::kPageCache]));
  for (const auto& [rule, n] : g.rule_matched) {
    std::printf("rule %s: %llu file(s)\n", rule.c_str(), static_cast<unsigned long long>(n));
  }
  for (const PendingSwitch& p : r.pending) {
    std::printf("pending %s -> %s:", journal::PrintablePath(p.path).c_str(),
                std::string(policy::DaxStateName(p.desired)).c_str());
    if (p.holders.empty()) std::printf(" (no holder found)");
    for (const HolderInfo& h : p.holders) {
      std::printf(" %u (%s%s)", h.pid, h.command.c_str(), h.map_sync ? ", MAP_SYNC" : "");
    }
    std::printf("\n");
  }
  auto summary = e.Summary();
  for (const auto& [path, reason] : summary[FileState::kBlocked]) {
    std::printf("blocked %s: %s\n", journal::PrintablePath(path).c_str(), reason.c_str());
  }
  std::string degraded = e.Degraded();
  if (!degraded.empty()) std::printf("degraded: %s\n", degraded.c_str());
  return 0;
}

}  // namespace daxpolicy::daemon
