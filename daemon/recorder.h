// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The trace recorder: what the daemon measured, per interval and per file, in
/// the access-trace format of docs/trace-format.md, so that
/// `daxpolicyctl simulate TRACE` replays it unchanged.
///
/// Off by default. The loop thread starts and stops it (D-Bus StartRecording,
/// StopRecording); the cycle worker hands it each snapshot right after Sample
/// (Engine::Record) and it writes the interval there, so the loop never waits
/// for the disk. It walks nothing itself: every figure comes from the snapshot.
///
/// Bounded: an interval is written whole or not at all. When the next one
/// would take the file past its maximum size, the recorder writes a comment and
/// `end`, closes the file and stops. A write that fails (disk full, EIO), a
/// sync that fails or a file removed while recording stops it too, after
/// cutting the file back to its last whole interval; the daemon goes on.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "policy/policy.h"
#include "policy/result.h"
#include "policy/snapshot.h"

namespace daxpolicy::daemon {

inline constexpr uint64_t kDefaultTraceMaxBytes = uint64_t{256} << 20;  // 256 MiB
inline constexpr uint64_t kMinTraceMaxBytes = uint64_t{64} << 10;       // 64 KiB
// What `daxpolicyctl simulate` reads at most.
inline constexpr uint64_t kMaxTraceMaxBytes = uint64_t{2} << 30;  // 2 GiB

/// Where a trace goes: a file created for it (CreateTraceFile) or a fake.
class TraceSink {
 public:
  virtual ~TraceSink() = default;  // closes the file
  /// Writes all of `data` at the end, or fails (errno in the error's code).
  virtual Result<void> Write(std::string_view data) = 0;
  /// Cuts the file back to `size` bytes (dropping a partly written interval).
  virtual Result<void> Truncate(uint64_t size) = 0;
  /// Makes what was written durable (reports EIO of the writeback).
  virtual Result<void> Sync() = 0;
  /// True when the file has no name any more (removed while recording).
  virtual bool Removed() = 0;
};

/// Creates a new trace file at `path` for the daemon to write: the path must be
/// absolute; its directory must not be writable by others unless sticky (/tmp);
/// the file is created with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600: an existing
/// file or symbolic link is never opened, let alone overwritten.
Result<std::unique_ptr<TraceSink>> CreateTraceFile(const std::string& path);

/// The default trace file: <state_dir>/traces/daxpolicy-YYYYMMDDTHHMMSSZ.trace
/// at wall-clock `wall_ns` (UTC). Creates state_dir and traces/ (mode 0700)
/// when missing.
Result<std::string> DefaultTracePath(const std::string& state_dir, int64_t wall_ns);

/// The header a recording starts with: interval and page size, the media
/// figures each scope's mount is charged with (as Evaluate gets them:
/// cost.mounts over the probe) and the mounts. Pure.
std::string RecordedTraceHeader(const policy::Snapshot& snap, const policy::Policy& policy,
                                int64_t wall_ns);

/// One interval ending at monotonic `mono_ns`: every regular file that was
/// read or written or holds page cache (idle, uncached files are left out, as
/// the format says). Pure.
std::string RecordedTraceInterval(const policy::Snapshot& snap, int64_t mono_ns);

struct RecorderStatus {
  bool recording = false;
  std::string path;  // the trace being written, or the last one
  uint64_t bytes = 0;
  uint64_t max_bytes = 0;
  uint64_t intervals = 0;
  // "" before the first recording; else what it is doing or why it stopped.
  std::string result;
  // Recordings ended since the daemon started, by why: a caller stopped it,
  // its size limit, a failed write or sync or a removed file.
  uint64_t stopped = 0;
  uint64_t size_limits = 0;
  uint64_t errors = 0;
};

class TraceRecorder {
 public:
  TraceRecorder() = default;
  TraceRecorder(const TraceRecorder&) = delete;
  TraceRecorder& operator=(const TraceRecorder&) = delete;

  /// Loop thread. Starts recording into `sink` (at `path`, for messages), at
  /// most `max_bytes` (kMinTraceMaxBytes..kMaxTraceMaxBytes). Fails when a
  /// recording runs or max_bytes is out of range.
  Result<void> Start(std::unique_ptr<TraceSink> sink, const std::string& path, uint64_t max_bytes,
                     const std::string& started_by);
  /// Loop thread. Stops recording; false when none runs. The file is closed at
  /// once, or, while the worker writes an interval, right after that write.
  bool Stop(const std::string& stopped_by);
  RecorderStatus Status() const;

  /// Cycle worker: the interval that ended at `mono_ns`, from the snapshot
  /// Sample made. Writes the header first when the recording is new.
  void Record(const policy::Snapshot& snap, const policy::Policy& policy, int64_t mono_ns);

 private:
  // Ends the recording (io_mu_ held): status, log.
  void Finish(const std::string& result, bool error);
  std::string StoppedText() const;  // mu_ held

  mutable std::mutex mu_;  // status_ and stop_pending_; never held across I/O
  RecorderStatus status_;
  bool stop_pending_ = false;  // Stop while the worker held the file
  std::string stopped_by_;
  std::mutex io_mu_;  // sink_ and what was written: the worker while it writes
  std::unique_ptr<TraceSink> sink_;
  bool header_written_ = false;
  uint64_t written_ = 0;
  uint64_t max_bytes_ = 0;
};

}  // namespace daxpolicy::daemon
