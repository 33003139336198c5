// SPDX-License-Identifier: Apache-2.0
#pragma once

/// `daxpolicyctl simulate`: replay a recorded or generated trace through a
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
  bool hits = false;  // print predicted against measured hit ratios
};

/// Runs the command; prints to stdout/stderr; returns the exit status.
int RunSimulate(const SimulateArgs& args);

/// Rendering, exposed for tests.
std::string SimulationTable(const policy::SimResult& r, double budget);
std::string SimulationJson(const policy::SimResult& r, double budget);
std::string SimulationSvg(const policy::SimResult& r);

}  // namespace daxpolicy::ctl
