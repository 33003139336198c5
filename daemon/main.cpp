// SPDX-License-Identifier: Apache-2.0
// daxpolicyd: decides per file between DAX and the page cache and applies it.

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "daemon/config_files.h"
#include "daemon/log.h"
#include "daemon/options.h"
#include "daemon/service.h"
#include "daxpolicy/version.h"

namespace daxpolicy::daemon {
int RunOnce(const Options& options, const policy::Policy& policy);
}  // namespace daxpolicy::daemon

namespace {

using daxpolicy::daemon::Options;

constexpr int kExitUsage = 2;

int CheckConfig(const Options& o) {
  std::string dropins =
      o.config_dir.empty() ? daxpolicy::daemon::DefaultDropinDir(o.config) : o.config_dir;
  auto result = daxpolicy::daemon::LoadPolicyFiles(o.config, dropins);
  for (const auto& e : result.errors) std::cerr << e.ToString() << "\n";
  if (!result.policy) {
    std::cerr << result.errors.size() << (result.errors.size() == 1 ? " error" : " errors")
              << " in the policy\n";
    return 1;
  }
  std::cout << "policy OK: " << result.policy->sources.size() << " file(s), "
            << result.policy->scopes.size() << " scope(s), " << result.policy->rules.size()
            << " rule(s)\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"daxpolicyd: per-file DAX or page-cache policy for persistent and CXL memory"};
  app.set_version_flag("--version", "daxpolicyd " + std::string(daxpolicy::kVersion));
  app.add_option("--config", o.config, "Policy file")->capture_default_str();
  app.add_option("--config-dir", o.config_dir,
                 "Drop-in directory (default: policy.d next to --config)");
  app.add_flag("--check-config", o.check_config, "Validate the policy, print errors, exit 0/1");
  app.add_flag("--observe", o.observe, "Decide and report, change nothing");
  app.add_flag("--once", o.once, "Run one sample-evaluate-apply cycle, print a summary, exit");
  app.add_flag("--session", o.session, "Use the session bus instead of the system bus");
  app.add_option("--state-dir", o.state_dir, "Journal of original flags")->capture_default_str();
  app.add_option("--metrics-listen", o.metrics_listen,
                 "Prometheus listen address (overrides the policy), or 'off'");
  std::string level = "info";
  app.add_option("--log-level", level, "error, warning, notice, info or debug")
      ->capture_default_str()
      ->check(CLI::IsMember({"error", "warning", "notice", "info", "debug"}));
  double cycle_timeout_s = static_cast<double>(o.cycle_timeout_ns) / 1e9;
  app.add_option("--cycle-timeout", cycle_timeout_s,
                 "Seconds a cycle may run before the watchdog keep-alive stops")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
  app.add_option("--procfs-root", o.procfs, "Root of procfs (tests)")->group("");
  app.add_option("--sysfs-root", o.sysfs, "Root of sysfs (tests)")->group("");
  bool no_early_cycles = false;
  app.add_flag("--no-early-cycles", no_early_cycles, "Cycles only at the interval (benchmarks)")
      ->group("");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; a bad command line exits 2 (the unit does
    // not restart on it: RestartPreventExitStatus).
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }
  o.cycle_timeout_ns = static_cast<int64_t>(cycle_timeout_s * 1e9);
  o.early_cycles = !no_early_cycles;
  daxpolicy::daemon::ParseLogLevel(level, &o.log_level);
  daxpolicy::daemon::SetLogLevel(o.log_level);

  if (o.check_config) return CheckConfig(o);

  std::string dropins =
      o.config_dir.empty() ? daxpolicy::daemon::DefaultDropinDir(o.config) : o.config_dir;
  auto loaded = daxpolicy::daemon::LoadPolicyFiles(o.config, dropins);
  if (!loaded.policy) {
    for (const auto& e : loaded.errors) daxpolicy::daemon::LogError(e.ToString());
    daxpolicy::daemon::LogError("refusing to start with an invalid policy");
    return 1;
  }
  if (o.once) return daxpolicy::daemon::RunOnce(o, *loaded.policy);
  daxpolicy::daemon::Service service(o, o.config, dropins);
  return service.Run(std::move(*loaded.policy));
}
