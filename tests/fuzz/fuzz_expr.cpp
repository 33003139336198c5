// SPDX-License-Identifier: Apache-2.0
// Fuzzes the when-expression compiler and evaluates what compiles, traced and
// untraced: both must agree.

#include <cstddef>
#include <cstdint>
#include <string>

#include "policy/expr.h"

using namespace daxpolicy::policy;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<ExprError> errors;
  auto expr = Expr::Compile(text, &errors);
  if (!expr) {
    if (errors.empty()) __builtin_trap();  // a rejection always says why
    for (const ExprError& e : errors) {
      if (e.offset > text.size() || e.message.empty()) __builtin_trap();
    }
    return 0;
  }
  Snapshot snap;
  snap.mounts.push_back(MountRecord{1, "/", 0, ""});
  snap.media.push_back(MediaSample{"pmem0", true, 300, 600, 2.5, MediaHealth::kWarning, true, 1});
  snap.dir_paths = {"/"};
  snap.names = "f";
  FileRecord f;
  f.name_length = 1;
  f.size = 1 << 20;
  f.available = kHaveSize | kHaveCache;
  f.cache_pages = 128;
  snap.files.push_back(f);
  VarContext ctx{&snap, &snap.files[0], 1'000'000'000};
  std::vector<ComparisonTrace> trace;
  if (expr->Eval(ctx) != expr->EvalTraced(ctx, &trace)) __builtin_trap();
  return 0;
}
