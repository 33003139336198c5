// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The daemon's engine parts: the one place that chooses the real drivers,
/// telemetry sources, holder finder, close watcher, mount inspector, journal
/// and clock.

#include <functional>

#include "daemon/engine_parts.h"
#include "daemon/options.h"
#include "policy/policy.h"

namespace daxpolicy::daemon {

// `activity`, when set, is the file source's cue that a file was created,
// moved into a scope or closed after writing (files::FileSource::SetActivityCue;
// called on its drain thread).
EngineParts MakeEngineParts(const Options& options, const policy::Policy& policy,
                            std::function<void()> activity = {});

}  // namespace daxpolicy::daemon
