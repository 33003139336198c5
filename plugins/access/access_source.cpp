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

void ClearAccess(policy::FileRecord* f) {
  f->available &= static_cast<uint16_t>(~(policy::kHaveAccess | policy::kHaveHitRatio));
  f->read_bytes_rate = f->write_bytes_rate = f->cache_hit_ratio = 0;
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
  // Records are written only where they change: the file table shares the
  // chunks of records that stay the same with the previous cycle's.
  for (size_t i = 0; i < snap->files.size(); ++i) {
    policy::FileRecord f = std::as_const(snap->files)[i];
    ClearAccess(&f);
    snap->files.Set(i, f);
  }
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

// Whether `r` already is what FillSnapshot makes of a file that was neither
// read nor written: marked when covered, no figures. Checked before copying
// it: with a million idle files, the copies cost more than the rest.
bool NoFigures(const policy::FileRecord& r, bool covered) {
  const uint16_t marks = r.available & (policy::kHaveAccess | policy::kHaveHitRatio);
  return marks == (covered ? policy::kHaveAccess : 0) &&
         std::bit_cast<uint32_t>(r.read_bytes_rate) == 0 &&
         std::bit_cast<uint32_t>(r.write_bytes_rate) == 0 &&
         std::bit_cast<uint32_t>(r.cache_hit_ratio) == 0;
}

bool Covered(const policy::Snapshot& snap, const policy::FileRecord& f) {
  return f.kind == policy::FileKind::kRegular && f.mount < snap.mounts.size() &&
         snap.mounts[f.mount].access_unavailable.empty();
}

}  // namespace

void WithholdSnapshot(const std::string& why, const std::vector<std::string>& mount_reasons,
                      policy::Snapshot* snap) {
  ClearSystem(why, snap);
  snap->system.access_withheld = true;
  SetCoverage(mount_reasons, snap);
  // The covered files keep (or get) their mark with no figures: the cycle that
  // brings figures then rewrites only the records of files read or written.
  for (size_t i = 0; i < snap->files.size(); ++i) {
    policy::FileRecord f = std::as_const(snap->files)[i];
    ClearAccess(&f);
    if (Covered(*snap, f)) f.available |= policy::kHaveAccess;
    snap->files.Set(i, f);
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
  std::vector<char> covered_mount(snap->mounts.size());
  for (size_t k = 0; k < snap->mounts.size(); ++k) {
    covered_mount[k] = snap->mounts[k].access_unavailable.empty();
  }
  const policy::FileTable& table = std::as_const(snap->files);
  for (size_t i = 0; i < table.size(); ++i) {
    const policy::FileRecord& r = table[i];
    const bool covered = r.kind == policy::FileKind::kRegular && r.mount < covered_mount.size() &&
                         covered_mount[r.mount];
    const access_counts* c = nullptr;
    if (covered && !counts.files.empty()) {
      auto it = counts.files.find(FileKey{kdev[r.mount], r.ino});
      if (it != counts.files.end()) c = &it->second;
    }
    if (c == nullptr && NoFigures(r, covered)) continue;  // the steady state of an idle file
    policy::FileRecord f = r;
    ClearAccess(&f);
    if (covered) f.available |= policy::kHaveAccess;
    if (c != nullptr) {
      f.read_bytes_rate = static_cast<float>(static_cast<double>(c->read_bytes) / seconds);
      f.write_bytes_rate = static_cast<float>(static_cast<double>(c->write_bytes) / seconds);
      const bool dax =
          (f.available & policy::kHaveEffective) && f.effective == policy::DaxState::kDax;
      if (misses_traced && !dax && c->pc_pages > 0) {
        f.available |= policy::kHaveHitRatio;
        f.cache_hit_ratio =
            static_cast<float>(1.0 - std::min(1.0, static_cast<double>(c->miss_pages) /
                                                       static_cast<double>(c->pc_pages)));
      }
    }
    // Written back only where it changes (see ClearSnapshot).
    snap->files.Set(i, f);
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
                        " events dropped in the last interval");
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
