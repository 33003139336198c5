// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Synthetic access traces for the simulator (docs/trace-format.md lists the
/// workloads and their parameters). Deterministic for a given seed.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/trace.h"

namespace daxpolicy::policy {

// A spec is "NAME[:key=value,...]" and several may be joined with '+':
// "kv:tables=32+logs". NAME is kv, logs, vm, moving or mixed (all four); each
// workload may be named once. Besides its own parameters, any part may set
// those of every workload (duration, interval, budget, pressure, seed, media).
// Returns nullopt and *error naming the part of the spec at fault.
std::optional<Trace> GenerateWorkload(std::string_view spec, std::string* error);

// The workloads and their parameters with defaults, for --help and docs.
std::string WorkloadHelp();

}  // namespace daxpolicy::policy
