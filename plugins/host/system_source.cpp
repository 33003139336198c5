// SPDX-License-Identifier: Apache-2.0
#include "plugins/host/system_source.h"

#include "plugins/host/system_telemetry.h"

namespace daxpolicy::host {

void SystemSource::Sample(plugins::SampleContext& ctx) {
  SystemTelemetry sys = ReadSystemTelemetry(roots_);
  policy::SystemSample& out = ctx.snapshot.system;
  out.have_mem_pressure = sys.pressure.has_value();
  if (sys.pressure) out.mem_pressure = sys.pressure->some_avg10;
  out.have_page_cache_ratio = sys.meminfo && sys.meminfo->page_cache_ratio.has_value();
  if (out.have_page_cache_ratio) out.page_cache_ratio = *sys.meminfo->page_cache_ratio;
  if (!sys.meminfo) ctx.CountError("system");
}

}  // namespace daxpolicy::host
