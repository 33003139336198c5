// SPDX-License-Identifier: Apache-2.0
#include "plugins/files/file_source.h"

#include <cstring>
#include <utility>
#include <vector>

namespace daxpolicy::files {

FileSource::FileSource(ErrorLog log, ScanLimits limits) : log_(std::move(log)), limits_(limits) {}

void FileSource::Sample(plugins::SampleContext& ctx) {
  if (!scanner_ || generation_ != ctx.scopes.generation) {
    std::vector<ScanScope> scopes;
    for (const plugins::ScopeInfo& s : ctx.scopes.list) {
      if (!s.usable) continue;
      ScanScope ss;
      ss.path = s.path;
      ss.mount = s.mount;
      ss.dev = s.dev;
      ss.mount_id = s.mount_id;
      scopes.push_back(std::move(ss));
    }
    scanner_ = std::make_unique<Scanner>(std::move(scopes), ctx.scopes.excluded, limits_);
    generation_ = ctx.scopes.generation;
  }
  sampler_.ResetStats();
  ScanStats scan = scanner_->Scan(ctx.previous, &ctx.snapshot,
                                  ctx.full_scan ? ScanMode::kFull : ScanMode::kIncremental,
                                  &sampler_, ctx.wall_ns);
  ctx.scanned_full = scan.full;
  ctx.CountError("scan", scan.error_count);
  if (log_) {
    for (const ScanError& err : scan.errors) {
      log_(err.path, err.what + ": " + std::strerror(err.err));
    }
  }
  const SampleStats& ss = sampler_.stats();
  ctx.CountError("sample", ss.errors);
  ctx.CountError("cache", ss.cache_unavailable);
}

}  // namespace daxpolicy::files
