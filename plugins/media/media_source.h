// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The "media" telemetry source: the memory devices behind the scopes' mounts
/// (topology every cycle, latency probes at most every probe interval), into
/// Snapshot::media and MountRecord::media, and the report the daemon shows.

#include <memory>
#include <string>
#include <string_view>

#include "plugins/media/media_plugin.h"
#include "plugins/telemetry.h"

namespace daxpolicy::media {

class MediaSource final : public plugins::TelemetrySource {
 public:
  explicit MediaSource(std::unique_ptr<MediaPlugin> plugin) : plugin_(std::move(plugin)) {}
  std::string_view Name() const override { return "media"; }
  void Sample(plugins::SampleContext& ctx) override;
  /// The last report's degraded reasons ("" when fine).
  std::string Degraded() const override { return degraded_; }

 private:
  std::unique_ptr<MediaPlugin> plugin_;
  int64_t last_probe_ns_ = 0;
  bool probed_once_ = false;
  std::string degraded_;
};

}  // namespace daxpolicy::media
