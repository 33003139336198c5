// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The daemon's engine parts: the one place that chooses the real drivers,
/// telemetry sources, holder finder, close watcher, mount inspector, journal
/// and clock.

#include "daemon/engine_parts.h"
#include "daemon/options.h"
#include "policy/policy.h"

namespace daxpolicy::daemon {

EngineParts MakeEngineParts(const Options& options, const policy::Policy& policy);

}  // namespace daxpolicy::daemon
