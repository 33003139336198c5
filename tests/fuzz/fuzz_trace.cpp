// SPDX-License-Identifier: Apache-2.0
// Fuzzes the trace reader: every input is either rejected with a line number
// or read; what is read writes back to text that reads back as the same trace
// (written again, the same text), and replays through the simulator without
// crashing.

#include <cstddef>
#include <cstdint>
#include <string>

#include "policy/loader.h"
#include "policy/simulate.h"
#include "policy/trace.h"

using namespace daxpolicy::policy;

namespace {

const Policy& AutoPolicy() {
  static const Policy policy = [] {
    LoadResult r = LoadPolicy({"p.yaml",
                               "apiVersion: daxpolicy/v1\nscopes: [/srv]\n"
                               "defaults: { dax: auto, min_dwell: 30s }\n"
                               "rules:\n  - name: a\n    match: { path: \"/srv/a/**\" }\n"
                               "    for: 20s\n    dax: auto\n"});
    if (!r.policy) __builtin_trap();
    return *r.policy;
  }();
  return policy;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16384) return 0;
  std::string text(reinterpret_cast<const char*>(data), size);
  std::string error;
  auto trace = ParseTrace(text, &error);
  if (!trace) {
    if (error.empty()) __builtin_trap();  // a rejection always says why
    return 0;
  }
  std::string again_error;
  const std::string written = FormatTrace(*trace);
  auto again = ParseTrace(written, &again_error);
  if (!again || FormatTrace(*again) != written) __builtin_trap();
  SimOptions options;
  options.media = "cxl";
  options.hits = true;
  options.modes = true;
  SimResult result;
  if (!Simulate(*trace, AutoPolicy(), options, &result, &error)) __builtin_trap();
  return 0;
}
