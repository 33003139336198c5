// SPDX-License-Identifier: Apache-2.0
#pragma once

/// `daxpolicyctl simulate`: replay a trace file or a generated one through a
/// policy and report the policy against dax=always, dax=never and the static
/// oracle (docs/trace-format.md, docs/cost-model.md).

#include <string>

#include "policy/simulate.h"

namespace daxpolicy::ctl {

struct SimulateArgs {
  std::string trace_file;  // "" with generate set
  std::string generate;    // workload spec
  std::string policy_file;
  std::string dropin_dir;  // "" = <dir of policy_file>/policy.d
  std::string media;
  std::string budget;      // a size, "" = the trace's
  std::string chart_file;  // SVG
  std::string save_trace;  // write the (generated) trace here
  bool json = false;
  bool hits = false;   // print predicted against measured hit ratios
  bool modes = false;  // print each file's recorded modes and the policy run's
};

/// The exit status of a usage error (both or neither of TRACE and --generate, a
/// bad --generate spec, an unknown --media preset, a bad --budget), as for every
/// daxpolicyctl command.
inline constexpr int kSimulateUsage = 2;

/// Runs the command; prints to stdout/stderr; returns the exit status: 0, 1
/// (an unreadable or malformed trace or policy, a file that cannot be written)
/// or kSimulateUsage.
int RunSimulate(const SimulateArgs& args);

/// Rendering, exposed for tests.
std::string SimulationTable(const policy::SimResult& r, double budget);
std::string SimulationJson(const policy::SimResult& r, double budget);
std::string SimulationSvg(const policy::SimResult& r);

}  // namespace daxpolicy::ctl
