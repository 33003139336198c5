// SPDX-License-Identifier: Apache-2.0
// Fuzzes the policy loader with arbitrary YAML text, then evaluates and explains
// whatever loads against a small snapshot, so the compiled globs and
// expressions are exercised too.

#include <cstddef>
#include <cstdint>
#include <string>

#include "policy/evaluate.h"
#include "policy/loader.h"

using namespace daxpolicy::policy;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  std::string text(reinterpret_cast<const char*>(data), size);
  // Half the input as the main file, the rest as a drop-in, when split by a form feed.
  std::string main = text, dropin;
  if (size_t ff = text.find('\f'); ff != std::string::npos) {
    main = text.substr(0, ff);
    dropin = text.substr(ff + 1);
  }
  std::vector<PolicySource> dropins;
  if (!dropin.empty()) dropins.push_back({"policy.d/fuzz.yaml", dropin});
  LoadResult r = LoadPolicy({"policy.yaml", main}, dropins);
  for (const Diagnostic& d : r.errors) {
    if (d.ToString().empty()) __builtin_trap();
  }
  if (!r.policy) return 0;

  Snapshot snap;
  snap.wall_clock_ns = 1'700'000'000'000'000'000;
  snap.mounts.push_back(MountRecord{1, "/", 0, ""});
  snap.media.push_back(MediaSample{"pmem0", true, 300, 600, 2.5, MediaHealth::kOk, true, 0});
  snap.dir_paths = {"/srv/pmem", "/srv/pmem/db", "/var"};
  const char* names[] = {"a.sst", "logs", "x\ny", "b"};
  for (uint32_t i = 0; i < 8; ++i) {
    FileRecord f;
    f.dir = i % 3;
    f.name_offset = static_cast<uint32_t>(snap.names.size());
    std::string name = names[i % 4];
    snap.names += name;
    f.name_length = static_cast<uint16_t>(name.size());
    f.ino = i + 1;
    f.size = uint64_t{1} << (i * 5);
    f.kind = i % 4 == 1 ? FileKind::kDirectory : FileKind::kRegular;
    f.available = static_cast<uint16_t>(0x3f >> (i % 3));
    f.cache_pages = i * 100;
    f.physical = i % 2 ? DaxState::kDax : DaxState::kPageCache;
    f.effective = DaxState::kPageCache;
    snap.files.push_back(f);
  }
  RuleState state;
  Holds holds{{FileKey{1, 3}, Hold{DaxState::kDax, "fuzz", 1}}};
  for (int64_t t : {0LL, 61'000'000'000LL, 3'600'000'000'000LL}) {
    Decisions d = Evaluate(*r.policy, snap, state, holds, {Mode::kEnforce, t});
    if (d.files.size() != snap.files.size()) __builtin_trap();
  }
  for (uint32_t i = 0; i < snap.files.size(); ++i) {
    Explanation e = Explain(*r.policy, snap, state, holds, {Mode::kObserve, 0}, i);
    if (FormatExplanation(e, snap).empty()) __builtin_trap();
  }
  return 0;
}
