// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Human and machine renderings of a MediaReport (daxpolicy-media-probe and
/// debugging dumps).

#include <string>

#include "plugins/media/media_plugin.h"

namespace daxpolicy::media {

/// Multi-line text: degraded state, topology, devices with health, HMAT and
/// latency, mounts with their mapping and probe results.
std::string ReportToText(const MediaReport& report);

/// One JSON object with the keys "degraded", "degraded_reasons", "topology",
/// "firmware", "devices", "mounts", "refresh_ms", "probe_ms". Unavailable
/// numbers are null, never 0.
std::string ReportToJson(const MediaReport& report);

}  // namespace daxpolicy::media
