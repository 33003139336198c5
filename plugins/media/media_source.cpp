// SPDX-License-Identifier: Apache-2.0
#include "plugins/media/media_source.h"

#include <vector>

namespace daxpolicy::media {

void MediaSource::Sample(plugins::SampleContext& ctx) {
  std::vector<MountInput> inputs;
  for (const plugins::ScopeInfo& s : ctx.scopes.list) {
    if (!s.media.mount_point.empty()) inputs.push_back(s.media);
  }
  const bool probe = !probed_once_ || ctx.mono_ns - last_probe_ns_ >= ctx.probe_interval_ns;
  MediaReport report = plugin_->Refresh(inputs, probe);
  if (probe) {
    last_probe_ns_ = ctx.mono_ns;
    probed_once_ = true;
  }
  FillSnapshot(report, &ctx.snapshot);
  degraded_ = report.Degraded();
  if (ctx.media_report != nullptr) *ctx.media_report = std::move(report);
}

}  // namespace daxpolicy::media
