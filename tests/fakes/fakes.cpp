// SPDX-License-Identifier: Apache-2.0
#include "tests/fakes/fakes.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace daxpolicy::fakes {

Result<driver::ApplyOutcome> FakeObserveDriver::Apply(const driver::FileRef& ref, DaxState desired,
                                                      const driver::ApplyHooks& /*hooks*/) {
  ++applies;
  Result<driver::FileFlags> read = files_->Read(ref);
  if (!read.ok()) {
    return driver::BlockedOutcome(
        driver::Blocked{driver::Blocker::kVanished, read.error().code, read.error().message});
  }
  driver::ApplyOutcome o;
  o.kind = read->kind;
  o.physical_before = read->physical;
  o.physical_after = read->physical;
  o.effective = read->effective;
  o.result =
      read->physical == desired ? driver::ApplyResult::kUnchanged : driver::ApplyResult::kObserved;
  return o;
}

void FakeFileSource::Sample(plugins::SampleContext& ctx) {
  ++samples;
  last_full_scan = ctx.full_scan;
  ctx.scanned_full = ctx.full_scan || ctx.previous == nullptr;
  policy::Snapshot& snap = ctx.snapshot;
  // As the scanner: records that stay the same share the previous table's chunks.
  static const policy::FileTable kNoFiles;
  snap.files.BeginBuild(ctx.previous ? ctx.previous->files : kNoFiles);
  snap.names.clear();
  snap.dir_paths.clear();
  if (ctx.scopes.list.empty() || !ctx.scopes.list[0].usable) {
    snap.files.EndBuild();
    return;
  }
  const plugins::ScopeInfo& scope = ctx.scopes.list[0];
  std::map<std::string, uint32_t> dirs;
  snap.dir_paths.push_back(scope.path);
  dirs[""] = 0;
  for (const auto& [relative, file] : files) {
    const driver::FileFlags* disk = disk_->Find(relative);
    if (disk == nullptr) continue;  // vanished
    const size_t slash = relative.rfind('/');
    const std::string parent = slash == std::string::npos ? "" : relative.substr(0, slash);
    const std::string name = slash == std::string::npos ? relative : relative.substr(slash + 1);
    auto [it, added] = dirs.emplace(parent, static_cast<uint32_t>(snap.dir_paths.size()));
    if (added) snap.dir_paths.push_back(scope.path + "/" + parent);
    policy::FileRecord r;
    r.ino = disk->ino;
    r.dir = it->second;
    r.name_offset = static_cast<uint32_t>(snap.names.size());
    r.name_length = static_cast<uint16_t>(name.size());
    snap.names += name;
    r.mount = scope.mount;
    r.kind = disk->kind;
    if (file.sample_fails) {
      ctx.CountError("sample");
      snap.files.push_back(r);
      continue;
    }
    r.size = file.size;
    r.mtime_ns = file.mtime_ns;
    r.cache_pages = file.cache_pages;
    r.physical = disk->physical;
    r.effective = disk->kind == FileKind::kRegular ? disk->effective : DaxState::kUnknown;
    r.available =
        policy::kHaveSize | policy::kHavePhysical |
        (disk->kind == FileKind::kRegular ? policy::kHaveCache | policy::kHaveEffective : 0);
    if (file.access && disk->kind == FileKind::kRegular) {
      r.available |= policy::kHaveAccess;
      r.read_bytes_rate = file.read_bytes_rate;
    }
    snap.files.push_back(r);
  }
  snap.files.EndBuild();
}

void SyntheticFileSource::Sample(plugins::SampleContext& ctx) {
  policy::Snapshot& snap = ctx.snapshot;
  const policy::Snapshot* prev = ctx.previous;
  const std::string root = ctx.scopes.list.empty() ? "/" : ctx.scopes.list[0].path;
  const uint16_t mount = ctx.scopes.list.empty() ? 0 : ctx.scopes.list[0].mount;
  // As the scanner: the new table is built next to the previous one, which
  // lends its records' telemetry.
  static const policy::FileTable kNone;
  snap.files.BeginBuild(prev ? prev->files : kNone);
  snap.names.clear();
  snap.dir_paths.clear();
  snap.files.reserve(prev ? prev->files.size() : files_);
  snap.names.reserve(prev ? prev->names.size() : files_ * 12);
  snap.dir_paths.reserve(dirs_ + 1);
  snap.dir_paths.push_back(root);
  for (uint32_t d = 0; d < dirs_; ++d) snap.dir_paths.push_back(root + "/d" + std::to_string(d));
  const uint64_t per_dir = (files_ + dirs_ - 1) / dirs_;
  char name[32];
  for (uint64_t i = 0; i < files_; ++i) {
    policy::FileRecord r;
    const bool known = prev != nullptr && i < prev->files.size();
    if (known) r = prev->files[i];
    // Names as bench_bus makes them on disk: 7 bytes.
    const int n = std::snprintf(name, sizeof(name), "%c%06llu", i % 2 ? 'b' : 'a',
                                static_cast<unsigned long long>(i % 1'000'000));
    // Inode numbers in no relation to the table's order, as a directory
    // walk finds them (a bijection: 2654435761 is prime).
    r.ino = 1000 + (i * 2'654'435'761ULL) % files_;
    r.dir = 1 + static_cast<uint32_t>(i / per_dir);
    r.name_offset = static_cast<uint32_t>(snap.names.size());
    r.name_length = static_cast<uint16_t>(n);
    snap.names.append(name, static_cast<size_t>(n));
    r.mount = mount;
    r.kind = FileKind::kRegular;
    r.size = 4096 * (1 + i % 64);
    // Nothing is written to between cycles: a file keeps the mtime it was first seen with.
    if (!known) r.mtime_ns = ctx.wall_ns - static_cast<int64_t>(i % 3600) * 1'000'000'000;
    r.cache_pages = static_cast<uint32_t>(i % 16);
    // In sync with the benchmark's policy: files of 128 KiB and more on DAX.
    r.physical = r.size >= (128u << 10) ? DaxState::kDax : DaxState::kPageCache;
    r.effective = r.physical;
    r.available =
        policy::kHaveSize | policy::kHaveCache | policy::kHavePhysical | policy::kHaveEffective;
    snap.files.push_back(r);
  }
  snap.files.EndBuild();
  ctx.scanned_full = true;
}

void FakeSystemSource::Sample(plugins::SampleContext& ctx) {
  if (fail) {
    ctx.snapshot.system = policy::SystemSample();
    ctx.CountError("system");
    return;
  }
  ctx.snapshot.system = values;
  if (!media.empty()) {
    ctx.snapshot.media = media;
    for (policy::MountRecord& m : ctx.snapshot.mounts) m.media = 0;
  }
}

Result<host::HolderScan> FakeHolderFinder::Find(const std::vector<host::FileId>& files) {
  ++calls;
  last_asked = files;
  if (fail) return Error{"cannot list /proc (fake)", EACCES};
  host::HolderScan scan;
  for (const host::FileId& id : files) {
    if (auto it = holders.find(id); it != holders.end() && !it->second.empty()) {
      scan.holders[id] = it->second;
    }
  }
  return scan;
}

Result<void> FakeCloseWatcher::WatchFilesystem(const std::string& path) {
  watched.insert(path);
  return {};
}

Result<void> FakeCloseWatcher::Track(int /*dirfd*/, std::string_view name, uint64_t token) {
  tracked[std::string(name)] = token;
  return {};
}

bool FakeCloseWatcher::Untrack(uint64_t token) {
  return std::erase_if(tracked, [&](const auto& entry) { return entry.second == token; }) > 0;
}

Result<files::DrainResult> FakeCloseWatcher::Drain() {
  files::DrainResult r;
  for (uint64_t token : queued_) r.closed.push_back(files::CloseEvent{token, false});
  r.events = queued_.size();
  r.overflow = overflow;
  queued_.clear();
  overflow = false;
  return r;
}

void FakeCloseWatcher::Close(const std::string& relative) {
  if (auto it = tracked.find(relative); it != tracked.end()) queued_.push_back(it->second);
}

std::vector<daemon::ScopeFacts> FakeMountInspector::Inspect(
    const std::vector<std::string>& paths, std::vector<std::string>* /*problems*/) {
  std::vector<daemon::ScopeFacts> out;
  for (const std::string& path : paths) {
    daemon::ScopeFacts f;
    f.mount.mount_point = path;
    f.root_fd = open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (f.root_fd < 0) {
      f.flag_blocked = "scope root cannot be opened";
      f.problems.push_back("scope " + path + " cannot be opened: " + std::strerror(errno));
      out.push_back(std::move(f));
      continue;
    }
    struct stat st {};
    fstat(f.root_fd, &st);
    f.dev = st.st_dev;
    f.mount.dev = st.st_dev;
    f.on_known_mount = true;
    if (auto it = flag_blocked.find(path); it != flag_blocked.end()) f.flag_blocked = it->second;
    if (auto it = effective_blocked.find(path); it != effective_blocked.end()) {
      f.mount.effective_blocked_reason = it->second;
    }
    out.push_back(std::move(f));
  }
  return out;
}

Result<size_t> FakeJournal::RecordOriginals(const std::vector<journal::JournalEntry>& entries) {
  if (state_->fail_record) return Error{"disk full (fake)", ENOSPC};
  state_->recorded.insert(state_->recorded.end(), entries.begin(), entries.end());
  return entries.size();
}

decltype(driver::ApplyHooks::before_change) FakeJournal::BeforeChangeHook(std::string scope_root) {
  return [state = state_, scope_root](uint64_t dev, uint64_t ino, std::string_view path,
                                      DaxState original, int) -> Result<void> {
    if (state->fail_record) return Error{"disk full (fake)", ENOSPC};
    journal::JournalEntry e;
    e.key = journal::FileKey{dev, ino};
    e.scope_root = scope_root;
    e.path = std::string(path);
    e.original = original;
    state->hooked.push_back(std::move(e));
    return {};
  };
}

FakeParts::FakeParts(std::unique_ptr<plugins::TelemetrySource> files_source) {
  auto d = std::make_unique<driver::FakeDriver>();
  disk = d.get();
  auto o = std::make_unique<FakeObserveDriver>(disk);
  observe = o.get();
  parts_.enforce_driver = std::move(d);
  parts_.observe_driver = std::move(o);
  if (!files_source) {
    auto f = std::make_unique<FakeFileSource>(disk);
    files = f.get();
    files_source = std::move(f);
  }
  parts_.sources.push_back(std::move(files_source));
  auto s = std::make_unique<FakeSystemSource>();
  system = s.get();
  parts_.sources.push_back(std::move(s));
  auto h = std::make_unique<FakeHolderFinder>();
  holders = h.get();
  parts_.holders = std::move(h);
  auto w = std::make_unique<FakeCloseWatcher>();
  watcher = w.get();
  parts_.close_watcher = std::move(w);
  auto m = std::make_unique<FakeMountInspector>();
  mounts = m.get();
  parts_.mounts = std::move(m);
  parts_.journal = [state = journal]() -> Result<std::unique_ptr<daemon::ChangeJournal>> {
    ++state->opens;
    if (state->fail_open) return Error{"state directory is read-only (fake)", EROFS};
    return std::unique_ptr<daemon::ChangeJournal>(std::make_unique<FakeJournal>(state));
  };
  parts_.clock = clock;
  parts_.page_size = 4096;
}

daemon::EngineParts FakeParts::Take() { return std::move(parts_); }

}  // namespace daxpolicy::fakes
