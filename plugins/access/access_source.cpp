// SPDX-License-Identifier: Apache-2.0
#include "plugins/access/access_source.h"

#include <sys/statfs.h>

#include <algorithm>
#include <bit>
#include <unordered_map>
#include <utility>

namespace daxpolicy::access {

namespace {

constexpr long kXfsMagic = 0x58465342;  // XFS_SUPER_MAGIC

bool StatfsIsXfs(const std::string& mount_point) {
  struct statfs st {};
  return statfs(mount_point.c_str(), &st) == 0 && st.f_type == kXfsMagic;
}

std::string Join(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& p : parts) {
    if (!out.empty()) out += "; ";
    out += p;
  }
  return out;
}

// `r` as a file that was neither read nor written: no figures, marked when
// access tracing covers it (HasAccessFigures).
policy::FileRecord WithoutFigures(policy::FileRecord r, bool covered) {
  r.available &= static_cast<uint16_t>(~(policy::kHaveAccess | policy::kHaveHitRatio));
  if (covered) r.available |= policy::kHaveAccess;
  r.read_bytes_rate = r.write_bytes_rate = r.cache_hit_ratio = 0;
  return r;
}

// Makes record i WithoutFigures. Records are written only where they change
// (the file table shares the chunks of records that stay the same with the
// previous cycle's), and one that already is so, the steady state of an idle
// file, is not even copied: with a million files the copies would cost more
// than the rest.
void SetWithoutFigures(policy::FileTable& files, size_t i, bool covered) {
  const policy::FileRecord& r = std::as_const(files)[i];
  const uint16_t marks = r.available & (policy::kHaveAccess | policy::kHaveHitRatio);
  if (marks == (covered ? policy::kHaveAccess : 0) &&
      std::bit_cast<uint32_t>(r.read_bytes_rate) == 0 &&
      std::bit_cast<uint32_t>(r.write_bytes_rate) == 0 &&
      std::bit_cast<uint32_t>(r.cache_hit_ratio) == 0) {
    return;
  }
  files.Set(i, WithoutFigures(r, covered));
}

// Without the mounts' and the system's figures: FillSnapshot sets every file's at once.
void ClearSystem(const std::string& why, policy::Snapshot* snap) {
  snap->system.have_cache_hit_ratio = false;
  snap->system.cache_hit_ratio = 0;
  snap->system.access_window_ns = 0;
  snap->system.access_unavailable = why;
  snap->system.access_withheld = false;
  for (policy::MountRecord& m : snap->mounts) m.access_unavailable.clear();
}

}  // namespace

void ClearSnapshot(const std::string& why, policy::Snapshot* snap) {
  for (size_t i = 0; i < snap->files.size(); ++i) SetWithoutFigures(snap->files, i, false);
  ClearSystem(why, snap);
}

namespace {

// The mounts' coverage, and the kernel device numbers the counts are keyed by.
std::vector<uint32_t> SetCoverage(const std::vector<std::string>& mount_reasons,
                                  policy::Snapshot* snap) {
  std::vector<uint32_t> kdev(snap->mounts.size());
  for (size_t i = 0; i < snap->mounts.size(); ++i) {
    kdev[i] = KernelDev(static_cast<dev_t>(snap->mounts[i].dev));
    if (i < mount_reasons.size()) snap->mounts[i].access_unavailable = mount_reasons[i];
  }
  return kdev;
}

// Per mount of the snapshot, whether access tracing covers it (after SetCoverage).
std::vector<char> CoveredMounts(const policy::Snapshot& snap) {
  std::vector<char> covered(snap.mounts.size());
  for (size_t k = 0; k < snap.mounts.size(); ++k) {
    covered[k] = snap.mounts[k].access_unavailable.empty();
  }
  return covered;
}

bool Covered(const std::vector<char>& covered_mounts, const policy::FileRecord& f) {
  return f.kind == policy::FileKind::kRegular && f.mount < covered_mounts.size() &&
         covered_mounts[f.mount];
}

}  // namespace

void WithholdSnapshot(const std::string& why, const std::vector<std::string>& mount_reasons,
                      policy::Snapshot* snap) {
  ClearSystem(why, snap);
  snap->system.access_withheld = true;
  SetCoverage(mount_reasons, snap);
  // The covered files keep (or get) their mark with no figures: the cycle that
  // brings figures then rewrites only the records of files read or written.
  const std::vector<char> covered = CoveredMounts(*snap);
  for (size_t i = 0; i < snap->files.size(); ++i) {
    SetWithoutFigures(snap->files, i, Covered(covered, std::as_const(snap->files)[i]));
  }
}

void FillSnapshot(const AccessCounts& counts, int64_t window_ns, bool misses_traced,
                  const std::vector<std::string>& mount_reasons, policy::Snapshot* snap) {
  const double seconds = static_cast<double>(window_ns) / 1e9;
  if (seconds <= 0) {
    WithholdSnapshot("access tracing has no complete window yet", mount_reasons, snap);
    return;
  }
  ClearSystem("", snap);
  snap->system.access_window_ns = window_ns;
  const std::vector<uint32_t> kdev = SetCoverage(mount_reasons, snap);
  // The system ratio covers every counted file on the watched filesystems,
  // scanned or not.
  uint64_t pages = 0;
  uint64_t misses = 0;
  for (const auto& [key, c] : counts.files) {
    pages += c.pc_pages;
    misses += c.miss_pages;
  }
  if (misses_traced && pages > 0) {
    snap->system.have_cache_hit_ratio = true;
    snap->system.cache_hit_ratio =
        1.0 - std::min(1.0, static_cast<double>(misses) / static_cast<double>(pages));
  }
  const std::vector<char> covered_mounts = CoveredMounts(*snap);
  for (size_t i = 0; i < snap->files.size(); ++i) {
    const policy::FileRecord& r = std::as_const(snap->files)[i];
    const bool covered = Covered(covered_mounts, r);
    auto it = covered && !counts.files.empty() ? counts.files.find(FileKey{kdev[r.mount], r.ino})
                                               : counts.files.end();
    if (it == counts.files.end()) {  // not read or written: 0 B/s
      SetWithoutFigures(snap->files, i, covered);
      continue;
    }
    const access_counts& c = it->second;
    policy::FileRecord f = WithoutFigures(r, true);
    f.read_bytes_rate = static_cast<float>(static_cast<double>(c.read_bytes) / seconds);
    f.write_bytes_rate = static_cast<float>(static_cast<double>(c.write_bytes) / seconds);
    const bool dax =
        (f.available & policy::kHaveEffective) && f.effective == policy::DaxState::kDax;
    if (misses_traced && !dax && c.pc_pages > 0) {
      f.available |= policy::kHaveHitRatio;
      f.cache_hit_ratio = static_cast<float>(
          1.0 - std::min(1.0, static_cast<double>(c.miss_pages) / static_cast<double>(c.pc_pages)));
    }
    snap->files.Set(i, f);  // written only where it changes
  }
}

AccessSource::AccessSource(Options options) : options_(std::move(options)) {
  if (!options_.probe) options_.probe = ProbeKernel;
  if (!options_.is_xfs) options_.is_xfs = StatfsIsXfs;
}
AccessSource::~AccessSource() = default;

bool AccessSource::EnsureStarted() {
  if (tried_) return tracer_ != nullptr;
  tried_ = true;
  AccessTracer::Options topts;
  topts.max_files = options_.max_files;
  topts.refuse_attach = options_.refuse_attach;
  tracer_ = AccessTracer::StartBest(options_.probe(), topts, &plan_);
  if (tracer_ == nullptr) {
    failure_ = "access tracing is unavailable: " + plan_.unavailable;
    return false;
  }
  return true;
}

void AccessSource::Sample(plugins::SampleContext& ctx) {
  uint64_t errors = 0;
  Sample(&ctx.snapshot, ctx.mono_ns, &errors);
  ctx.CountError(Name(), errors);
}

void AccessSource::Sample(policy::Snapshot* snap, int64_t now_ns, uint64_t* errors) {
  if (!EnsureStarted()) {
    ClearSnapshot(failure_, snap);
    return;
  }
  // Keep the in-kernel filter on the scanned mounts.
  std::vector<std::pair<uint64_t, std::string>> devices;
  for (const policy::MountRecord& m : snap->mounts) devices.emplace_back(m.dev, m.mount_point);
  if (devices != devices_) {
    std::vector<AccessTracer::Device> list;
    mount_reasons_.clear();
    for (const auto& [dev, mount_point] : devices) {
      const bool xfs = options_.is_xfs(mount_point);
      mount_reasons_.push_back(CoverageOf(plan_, xfs));
      list.push_back({static_cast<dev_t>(dev), xfs});
    }
    std::string error;
    if (!tracer_->SetDevices(list, &error)) {
      ++*errors;
      ClearSnapshot(error, snap);
      return;
    }
    devices_ = std::move(devices);
  }
  problems_.clear();
  for (size_t i = 0; i < mount_reasons_.size(); ++i) {
    if (!mount_reasons_[i].empty())
      problems_.push_back(devices_[i].second + ": " + mount_reasons_[i]);
  }
  for (const std::string& f : tracer_->attach_failures()) problems_.push_back(f);
  if (!plan_.misses) problems_.push_back(kMissesUnseen);

  AccessCounts counts;
  std::string error;
  if (!tracer_->Drain(&counts, &error)) {
    ++*errors;
    WithholdSnapshot(error, mount_reasons_, snap);
    return;
  }
  const int64_t start = window_start_ns_;
  window_start_ns_ = now_ns;
  if (start < 0) {
    WithholdSnapshot("access tracing started this cycle: its first figures come with the next one",
                     mount_reasons_, snap);
    return;
  }
  if (counts.overflow > 0) {
    *errors += counts.overflow;
    problems_.push_back("the counting map was full (" + std::to_string(options_.max_files) +
                        " files per interval): " + std::to_string(counts.overflow) +
                        " counts dropped in the last interval");
    WithholdSnapshot("the access counting map overflowed in the last interval: figures withheld",
                     mount_reasons_, snap);
    return;
  }
  FillSnapshot(counts, now_ns - start, plan_.misses, mount_reasons_, snap);
}

std::string AccessSource::Degraded() const {
  if (!failure_.empty()) return failure_;
  if (problems_.empty()) return "";
  return "access tracing: " + Join(problems_);
}

}  // namespace daxpolicy::access
