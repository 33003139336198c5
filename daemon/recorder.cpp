// SPDX-License-Identifier: Apache-2.0
#include "daemon/recorder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <map>

#include "daemon/journal/journal.h"
#include "daemon/log.h"
#include "policy/evaluate.h"
#include "policy/trace.h"
#include "policy/units.h"

namespace daxpolicy::daemon {

namespace {

// Room kept at the end of every file for the closing comment and `end`, so the
// size limit can always be said in the file itself.
constexpr uint64_t kClosingReserve = 160;

class FdTraceSink final : public TraceSink {
 public:
  explicit FdTraceSink(int fd) : fd_(fd) {}
  ~FdTraceSink() override { close(fd_); }
  Result<void> Write(std::string_view data) override {
    while (!data.empty()) {
      ssize_t n = write(fd_, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError(errno, "write");
      if (n == 0) return ErrnoError(EIO, "write");
      data.remove_prefix(static_cast<size_t>(n));
    }
    return {};
  }
  Result<void> Truncate(uint64_t size) override {
    if (ftruncate(fd_, static_cast<off_t>(size)) != 0) return ErrnoError(errno, "ftruncate");
    if (lseek(fd_, static_cast<off_t>(size), SEEK_SET) < 0) return ErrnoError(errno, "lseek");
    return {};
  }
  Result<void> Sync() override {
    if (fdatasync(fd_) != 0) return ErrnoError(errno, "fdatasync");
    return {};
  }
  bool Removed() override {
    struct stat st {};
    return fstat(fd_, &st) == 0 && st.st_nlink == 0;
  }

 private:
  int fd_;
};

std::string UtcText(int64_t wall_ns, const char* format) {
  time_t secs = static_cast<time_t>(wall_ns / 1'000'000'000);
  tm t{};
  gmtime_r(&secs, &t);
  char buf[64];
  strftime(buf, sizeof buf, format, &t);
  return buf;
}

// A media name as one token of the format: no blank, '=', '%' or non-ASCII byte.
std::string MediaToken(std::string_view name) {
  std::string out;
  for (char ch : name) {
    unsigned char c = static_cast<unsigned char>(ch);
    out.push_back(c <= 0x20 || c >= 0x7f || c == '=' || c == '%' ? '_' : ch);
  }
  return out.empty() ? "media" : out;
}

double Rounded(double v, double unit) { return std::round(v / unit) * unit; }

std::string Printable(const std::string& path) { return journal::PrintablePath(path); }

}  // namespace

Result<std::unique_ptr<TraceSink>> CreateTraceFile(const std::string& path) {
  const std::string shown = "'" + Printable(path) + "'";
  if (path.empty() || path.front() != '/') {
    return Error{"trace file " + shown + " is not an absolute path", EINVAL};
  }
  if (path.find('\0') != std::string::npos || path.size() > 4096) {
    return Error{"trace file " + shown + " is not a valid path", EINVAL};
  }
  const size_t slash = path.rfind('/');
  const std::string dir = slash == 0 ? "/" : path.substr(0, slash);
  const std::string name = path.substr(slash + 1);
  if (name.empty() || name == "." || name == "..") {
    return Error{"trace file " + shown + " names a directory, not a file", EINVAL};
  }
  int dfd = open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    return ErrnoError(errno, "cannot create trace file " + shown + ": its directory");
  }
  struct stat ds {};
  if (fstat(dfd, &ds) != 0) {
    int err = errno;
    close(dfd);
    return ErrnoError(err, "cannot create trace file " + shown + ": its directory");
  }
  if ((ds.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (ds.st_mode & S_ISVTX) == 0) {
    close(dfd);
    return Error{"refusing trace file " + shown + ": its directory is writable by other users " +
                     "and not sticky, so they could replace the file",
                 EPERM};
  }
  int fd = openat(dfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  const int err = errno;
  close(dfd);
  if (fd < 0) {
    std::string why = std::strerror(err);
    if (err == EEXIST) {
      why = "it exists (a trace is never written over: remove it or choose another name)";
    } else if (err == EROFS || err == EACCES) {
      why += " (under the systemd unit daxpolicyd may write only below /var/lib/daxpolicy)";
    }
    return Error{"cannot create trace file " + shown + ": " + why, err};
  }
  // The creation mode passed umask; make sure nothing but the owner reads it.
  if (fchmod(fd, 0600) != 0) {
    int e = errno;
    close(fd);
    unlinkat(AT_FDCWD, path.c_str(), 0);
    return ErrnoError(e, "cannot make trace file " + shown + " private");
  }
  return std::unique_ptr<TraceSink>(std::make_unique<FdTraceSink>(fd));
}

Result<std::string> DefaultTracePath(const std::string& state_dir, int64_t wall_ns) {
  const std::string traces = state_dir + "/traces";
  for (const std::string& dir : {state_dir, traces}) {
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return ErrnoError(errno, "cannot create " + Printable(dir));
    }
  }
  return traces + "/daxpolicy-" + UtcText(wall_ns, "%Y%m%dT%H%M%SZ") + ".trace";
}

std::string RecordedTraceHeader(const policy::Snapshot& snap, const policy::Policy& pol,
                                int64_t wall_ns) {
  policy::Trace t;
  t.interval_ns = pol.daemon.interval_ns;
  t.page_size = snap.page_size;
  // One media line per distinct set of figures; names made unique.
  std::map<std::string, int> used;  // name -> index into t.media
  for (size_t m = 0; m < snap.mounts.size(); ++m) {
    const policy::MountRecord& mount = snap.mounts[m];
    bool seen = false;
    for (const policy::TraceMount& tm : t.mounts) seen = seen || tm.path == mount.mount_point;
    if (seen) continue;
    policy::TraceMount tm;
    tm.path = mount.mount_point;
    policy::FileRecord probe;
    probe.mount = static_cast<uint16_t>(m);
    std::string why;
    std::optional<policy::MediaParams> p =
        policy::MediaParamsFor(pol, snap, probe, mount.mount_point, &why);
    if (p) {
      std::string base;
      if (mount.media >= 0 && static_cast<size_t>(mount.media) < snap.media.size()) {
        base = MediaToken(snap.media[static_cast<size_t>(mount.media)].name);
      } else if (const policy::CostMount* cm = pol.CostMountOf(mount.mount_point);
                 cm && !cm->preset.empty()) {
        base = MediaToken(cm->preset);
      } else {
        base = "mount" + std::to_string(m);
      }
      std::string name = base;
      for (int n = 2;; ++n) {
        auto it = used.find(name);
        if (it == used.end()) break;
        const policy::MediaParams& q = t.media[static_cast<size_t>(it->second)].params;
        if (q.read_latency_ns == p->read_latency_ns && q.dram_latency_ns == p->dram_latency_ns &&
            q.read_bandwidth == p->read_bandwidth && q.dram_bandwidth == p->dram_bandwidth &&
            q.write_bandwidth == p->write_bandwidth) {
          break;
        }
        name = base + "-" + std::to_string(n);
      }
      auto [it, added] = used.try_emplace(name, static_cast<int>(t.media.size()));
      if (added) t.media.push_back(policy::TraceMedia{name, *p});
      tm.media = it->second;
    }
    t.mounts.push_back(std::move(tm));
  }
  return std::string(policy::kTraceMagic) + " " + std::to_string(policy::kTraceVersion) + "\n" +
         "# recorded by daxpolicyd from " + UtcText(wall_ns, "%Y-%m-%dT%H:%M:%SZ") + "\n" +
         policy::TraceHeader(t).substr(policy::TraceHeader(t).find('\n') + 1);
}

std::string RecordedTraceInterval(const policy::Snapshot& snap, int64_t mono_ns) {
  policy::Trace t;
  policy::TraceInterval iv;
  iv.t_ns = mono_ns;
  if (snap.system.have_mem_pressure) iv.mem_pressure = Rounded(snap.system.mem_pressure, 0.01);
  const double window_s = static_cast<double>(snap.system.access_window_ns) / 1e9;
  std::string path;
  for (const policy::FileRecord& f : snap.files) {
    if (f.kind != policy::FileKind::kRegular || !(f.available & policy::kHaveSize)) continue;
    policy::TraceFile tf;
    tf.size = f.size;
    if ((f.available & policy::kHaveEffective) && f.effective != policy::DaxState::kUnknown) {
      tf.mode = f.effective;
    } else if (f.mount < snap.mounts.size() &&
               !snap.mounts[f.mount].effective_blocked_reason.empty()) {
      tf.mode = policy::DaxState::kPageCache;  // the device cannot do DAX
    } else {
      continue;  // the mode it ran in is not known
    }
    if (policy::HasAccessFigures(snap, f) && window_s > 0) {
      tf.read_bytes = std::round(static_cast<double>(f.read_bytes_rate) * window_s);
      tf.write_bytes = std::round(static_cast<double>(f.write_bytes_rate) * window_s);
    }
    if (f.available & policy::kHaveHitRatio) {
      tf.hit_ratio = std::clamp(Rounded(f.cache_hit_ratio, 1e-4), 0.0, 1.0);
    }
    if (f.available & policy::kHaveCache) {
      tf.resident_bytes = std::min(static_cast<double>(f.cache_pages) * snap.page_size,
                                   static_cast<double>(f.size));
    }
    if (!(tf.read_bytes > 0 || tf.write_bytes > 0 || tf.resident_bytes > 0)) continue;
    snap.PathOf(f, &path);
    tf.path = static_cast<uint32_t>(t.paths.size());
    t.paths.push_back(path);
    iv.files.push_back(tf);
  }
  return policy::TraceIntervalText(t, iv);
}

Result<void> TraceRecorder::Start(std::unique_ptr<TraceSink> sink, const std::string& path,
                                  uint64_t max_bytes, const std::string& started_by) {
  if (max_bytes < kMinTraceMaxBytes || max_bytes > kMaxTraceMaxBytes) {
    return Error{"the maximum trace size must be between " + policy::FormatSize(kMinTraceMaxBytes) +
                     " and " + policy::FormatSize(kMaxTraceMaxBytes) +
                     " (what daxpolicyctl simulate reads), not " + std::to_string(max_bytes) +
                     " bytes",
                 EINVAL};
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (status_.recording) {
      return Error{"a recording to '" + Printable(status_.path) + "' runs already: stop it first",
                   EBUSY};
    }
    if (stop_pending_) {
      return Error{"the last recording is still finishing its last interval: try again", EBUSY};
    }
  }
  // Not recording and no stop pending: the worker does not hold the file.
  std::lock_guard<std::mutex> io(io_mu_);
  sink_ = std::move(sink);
  header_written_ = false;
  written_ = 0;
  max_bytes_ = max_bytes;
  std::lock_guard<std::mutex> lock(mu_);
  status_.recording = true;
  status_.path = path;
  status_.bytes = 0;
  status_.max_bytes = max_bytes;
  status_.intervals = 0;
  status_.result =
      "recording since started by " + started_by + "; the first interval comes with the next cycle";
  LogNotice("recording a trace to " + Printable(path) + " (at most " +
            policy::FormatSize(static_cast<double>(max_bytes)) + "), started by " + started_by);
  return {};
}

bool TraceRecorder::Stop(const std::string& stopped_by) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!status_.recording) return false;
    status_.recording = false;
    ++status_.stopped;
    stopped_by_ = stopped_by;
    status_.result = StoppedText();
    LogNotice("trace recording to " + Printable(status_.path) + " " + status_.result);
  }
  // The worker may be writing an interval: it closes the file right after.
  std::unique_lock<std::mutex> io(io_mu_, std::try_to_lock);
  if (io.owns_lock()) {
    sink_.reset();
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    stop_pending_ = true;
  }
  return true;
}

std::string TraceRecorder::StoppedText() const {
  return "stopped by " + stopped_by_ + " after " + std::to_string(status_.intervals) +
         " interval(s), " + std::to_string(status_.bytes) + " bytes";
}

RecorderStatus TraceRecorder::Status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

void TraceRecorder::Finish(const std::string& result, bool error) {
  sink_.reset();
  std::string path;
  {
    std::lock_guard<std::mutex> lock(mu_);
    status_.recording = false;
    stop_pending_ = false;
    status_.result = result;
    ++(error ? status_.errors : status_.size_limits);
    path = status_.path;
  }
  const std::string message = "trace recording to " + Printable(path) + " " + result;
  if (error) {
    LogError(message);
  } else {
    LogNotice(message);
  }
}

void TraceRecorder::Record(const policy::Snapshot& snap, const policy::Policy& pol,
                           int64_t mono_ns) {
  std::lock_guard<std::mutex> io(io_mu_);
  if (!sink_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_pending_ || !status_.recording) {
      stop_pending_ = false;
      sink_.reset();
      return;
    }
  }
  std::string text;
  if (!header_written_) text = RecordedTraceHeader(snap, pol, snap.wall_clock_ns);
  const uint64_t header = text.size();
  text += RecordedTraceInterval(snap, mono_ns);
  const uint64_t intervals = Status().intervals;
  if (written_ + text.size() + kClosingReserve > max_bytes_) {
    // The interval does not fit: end the trace after the last whole one.
    const uint64_t needed = text.size() - header;
    std::string closing = header_written_ ? "" : text.substr(0, header);
    closing += "# stopped: the next interval (" + std::to_string(needed) +
               " bytes) would pass the size limit of " + std::to_string(max_bytes_) +
               " bytes\nend\n";
    auto w = sink_->Write(closing);
    if (w.ok()) w = sink_->Sync();
    if (!w.ok()) {
      (void)sink_->Truncate(written_);
      Finish("stopped at its size limit, and then its last line failed: " + w.error().message,
             true);
      return;
    }
    written_ += closing.size();
    {
      std::lock_guard<std::mutex> lock(mu_);
      status_.bytes = written_;
    }
    Finish("stopped: size limit of " + policy::FormatSize(static_cast<double>(max_bytes_)) +
               " reached after " + std::to_string(intervals) + " interval(s), " +
               std::to_string(written_) + " bytes (the next interval needed " +
               std::to_string(needed) + " more)",
           false);
    return;
  }
  auto w = sink_->Write(text);
  if (w.ok()) w = sink_->Sync();
  if (!w.ok()) {
    // Back to the last whole interval: what stays is a valid trace.
    auto cut = sink_->Truncate(written_);
    Finish("stopped: cannot write the trace (" + w.error().message + "); " +
               (cut.ok() ? "the file keeps its " + std::to_string(intervals) + " whole interval(s)"
                         : "its last interval may be cut short (" + cut.error().message + ")"),
           true);
    return;
  }
  if (sink_->Removed()) {
    Finish("stopped: the trace file was removed while recording", true);
    return;
  }
  written_ += text.size();
  header_written_ = true;
  bool stopped = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++status_.intervals;
    status_.bytes = written_;
    if (stop_pending_) {
      // Stopped while this interval was written: it is the last one.
      stop_pending_ = false;
      stopped = true;
      status_.result = StoppedText();
    } else {
      status_.result = "recording: " + std::to_string(status_.intervals) + " interval(s), " +
                       std::to_string(written_) + " of at most " + std::to_string(max_bytes_) +
                       " bytes";
    }
  }
  if (stopped) sink_.reset();
}

}  // namespace daxpolicy::daemon
