// SPDX-License-Identifier: Apache-2.0
#include "plugins/files/file_source.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

namespace daxpolicy::files {

namespace {

// At most this many Drain() calls per cycle; what is left is read next cycle.
constexpr int kMaxDrainsPerCycle = 64;

std::pair<std::string, std::string> Split(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {path, ""};
  return {slash == 0 ? std::string("/") : path.substr(0, slash), path.substr(slash + 1)};
}

}  // namespace

FileSource::FileSource(ErrorLog log, ScanLimits limits, std::unique_ptr<TreeEventSource> events,
                       std::string events_problem, bool drain_thread)
    : log_(std::move(log)),
      limits_(limits),
      events_(std::move(events)),
      events_problem_(std::move(events_problem)),
      want_thread_(drain_thread && events_ && events_->fd() >= 0) {}

FileSource::~FileSource() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    if (write(wake_.get(), &one, sizeof one) != sizeof one) {
      // The eventfd cannot fail to count one; nothing else would stop the thread.
      std::abort();
    }
    thread_.join();
  }
}

void FileSource::DrainLoop() {
  for (;;) {
    pollfd fds[2] = {{wake_.get(), POLLIN, 0}, {events_->fd(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;  // Sample() still reads the events
    }
    if (fds[0].revents != 0) return;
    {
      // One bounded read per hold: a cycle waits for at most one batch.
      std::lock_guard<std::mutex> lock(mutex_);
      DrainLocked(1, true);
    }
    // Let events gather (and repeats merge in the kernel) before the next read.
    pollfd wake = {wake_.get(), POLLIN, 0};
    const int n = poll(&wake, 1, kDrainPauseMs);
    if (n > 0) return;
  }
}

void FileSource::SetUp(const plugins::ScopeList& list) {
  std::vector<ScanScope> scopes;
  std::vector<std::string> roots;
  for (const plugins::ScopeInfo& s : list.list) {
    if (!s.usable) continue;
    ScanScope ss;
    ss.path = s.path;
    ss.mount = s.mount;
    ss.dev = s.dev;
    ss.mount_id = s.mount_id;
    roots.push_back(s.path);
    scopes.push_back(std::move(ss));
  }
  no_events_.assign(scopes.size(), std::string());
  std::lock_guard<std::mutex> lock(mutex_);
  table_.reset();
  if (events_) {
    for (size_t i = 0; i < scopes.size(); ++i) {
      Result<void> marked = events_->WatchFilesystem(scopes[i].path);
      if (!marked.ok()) no_events_[i] = marked.error().message;
    }
    table_ = std::make_unique<ChangeTable>(
        roots, [this](std::string_view key) { return events_->ResolveDir(key); });
    // What is queued now is covered by the full walk a new scanner makes.
    DrainLocked(kMaxDrainsPerCycle);
    (void)table_->Take();
  }
  scanner_ = std::make_unique<Scanner>(std::move(scopes), list.excluded, limits_);
  if (want_thread_ && !thread_.joinable()) {
    wake_.Reset(eventfd(0, EFD_CLOEXEC));
    if (wake_.valid()) thread_ = std::thread([this] { DrainLoop(); });
  }
}

void FileSource::DrainLocked(int max_drains, bool cue) {
  if (!events_ || !table_) return;
  bool news = false;
  for (int i = 0; i < max_drains; ++i) {
    buffer_.clear();
    Result<TreeDrain> drained = events_->Drain(&buffer_);
    if (!drained.ok()) {
      table_->RequireFullWalkAll("reading tree events failed (" + drained.error().message + ")");
      break;
    }
    for (const FsEvent& e : buffer_) news = table_->Add(e) || news;
    if (!drained->more) break;
  }
  if (cue && news && cue_) cue_();
}

std::string FileSource::Degraded() const {
  if (!events_) return events_problem_;
  std::string out;
  for (size_t i = 0; scanner_ && i < no_events_.size(); ++i) {
    if (no_events_[i].empty()) continue;
    if (!out.empty()) out += "; ";
    out += "no tree events for " + scanner_->scopes()[i].path + " (" + no_events_[i] +
           "): it is walked every cycle";
  }
  return out;
}

void FileSource::Sample(plugins::SampleContext& ctx) {
  if (!scanner_ || generation_ != ctx.scopes.generation) {
    SetUp(ctx.scopes);
    generation_ = ctx.scopes.generation;
  }
  last_ = LastCycle();
  sampler_.ResetStats();

  ScanMode mode = ctx.full_scan ? ScanMode::kFull : ScanMode::kIncremental;
  ScanHints hints;
  uint64_t fallbacks = 0;
  std::unique_lock<std::mutex> lock(mutex_);
  if (table_) {
    DrainLocked(kMaxDrainsPerCycle);
    last_.changes = table_->Take();
    if (!ctx.full_scan) {
      mode = ScanMode::kEvents;
      const std::vector<ScanScope>& scopes = scanner_->scopes();
      hints.whole_scope.assign(scopes.size(), false);
      for (size_t i = 0; i < scopes.size(); ++i) {
        if (!no_events_[i].empty()) {
          hints.whole_scope[i] = true;
          continue;
        }
        const ChangeSet::Scope& cs = last_.changes.scopes[i];
        if (cs.full_walk) {
          hints.whole_scope[i] = true;
          ++fallbacks;
          if (log_) log_(scopes[i].path, "walked in full: " + cs.why);
          continue;
        }
        for (const auto& [path, change] : cs.paths) {
          auto [dir, name] = Split(path);
          if (change != PathChange::kDirty) hints.read_dirs.insert(dir);
          hints.sample[dir].insert(std::move(name));
        }
        for (const std::string& d : cs.walk_dirs) hints.read_dirs.insert(Split(d).first);
        for (const std::string& d : cs.gone_dirs) hints.read_dirs.insert(Split(d).first);
      }
    }
  }
  lock.unlock();
  ScanStats scan = scanner_->Scan(ctx.previous, &ctx.snapshot, mode, &sampler_, ctx.wall_ns,
                                  mode == ScanMode::kEvents ? &hints : nullptr);
  ctx.scanned_full = scan.full;
  last_.events = mode == ScanMode::kEvents && !scan.full;
  if (!last_.events) {
    last_.walked_scopes = scanner_->scopes().size();
  } else {
    for (bool whole : hints.whole_scope) last_.walked_scopes += whole ? 1 : 0;
  }
  last_.sampled = sampler_.stats().sampled;
  ctx.CountError("events", fallbacks);
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
