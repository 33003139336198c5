// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Walks the scopes and keeps the file table of a policy::Snapshot up to date.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "plugins/clock.h"
#include "plugins/files/sampler.h"
#include "plugins/files/scope.h"
#include "policy/snapshot.h"

namespace daxpolicy::files {

/// Bounds on one scan.
struct ScanLimits {
  uint64_t max_records = 50'000'000;  ///< files + directories; later entries are skipped
  uint32_t max_depth = 256;           ///< directory levels below a scope root
  /// Every Nth scan is a full rescan even when kIncremental is asked (0 = never).
  uint32_t full_rescan_every = 60;
  size_t max_reported_errors = 100;  ///< ScanStats::errors keeps at most this many
  /// A directory whose mtime or ctime is this close (ns) to the start of the scan
  /// that read it is read again next time: a change in the same timestamp tick
  /// would not move its timestamps. Tests on multigrain-timestamp kernels (6.13+)
  /// may set 0.
  int64_t racy_window_ns = 1'000'000'000;
  /// The wall clock read by Scan(snapshot, ...) (the other Scan() is given the time).
  const plugins::Clock* clock = &plugins::SystemClock::Get();
};

enum class ScanMode {
  kIncremental,  ///< reuse entry lists of directories whose (ino, mtime, ctime) did not change
  kFull,         ///< read every directory again
  /// As kIncremental, and sample again only what ScanHints name: every other
  /// record keeps the telemetry it had (filesystem events say it did not change).
  kEvents,
};

/// What filesystem events say changed since the last scan (ScanMode::kEvents).
/// Directories are absolute paths as in Snapshot::dir_paths.
struct ScanHints {
  /// Directories whose entries must be read again (an entry appeared, went or
  /// was replaced); a directory not met before is read anyway.
  std::unordered_set<std::string> read_dirs;
  /// Per directory, the names whose telemetry must be sampled again.
  std::unordered_map<std::string, std::unordered_set<std::string>> sample;
  /// Per scope (ScanScope order): true to scan that scope as kIncremental
  /// (its events cannot be trusted); missing entries are false.
  std::vector<bool> whole_scope;
};

/// One failure during a scan: the path it concerns and the errno.
struct ScanError {
  std::string path;
  int err = 0;
  std::string what;  ///< the operation, e.g. "openat", "getdents64", "identity changed"
};

/// What a scan did. Skip counters cover the directories read in this scan
/// (entries of reused directories are not looked at again).
struct ScanStats {
  bool full = false;
  uint64_t dirs_read = 0;    ///< directories whose entries were read (getdents64)
  uint64_t dirs_reused = 0;  ///< directories whose previous entry list was kept
  uint64_t files = 0;        ///< regular-file records in the snapshot
  uint64_t directories = 0;  ///< directory records (scope roots have none)
  uint64_t skipped_symlinks = 0;
  uint64_t skipped_fifos = 0;
  uint64_t skipped_sockets = 0;
  uint64_t skipped_devices = 0;      ///< character and block device nodes
  uint64_t skipped_other_mount = 0;  ///< on another filesystem or mount (bind/sub-mounts)
  uint64_t skipped_excluded = 0;     ///< the exclude predicate, or another scope's root
  uint64_t skipped_limit = 0;        ///< beyond max_records or max_depth
  uint64_t error_count = 0;
  std::vector<ScanError> errors;  ///< the first ScanLimits::max_reported_errors
};

/// Builds and incrementally updates Snapshot::dir_paths, names and files.
///
/// The walk uses file descriptors only: a scope root is opened with
/// O_DIRECTORY|O_NOFOLLOW, entries are read with getdents64 and examined with
/// statx(dirfd, name, AT_SYMLINK_NOFOLLOW), subdirectories are opened with
/// openat(dirfd, name, O_DIRECTORY|O_NOFOLLOW) and their identity (ino, dev,
/// mount id) is checked again on the new fd. Entries on another device or mount
/// are skipped, so bind mounts and sub-mounts below a scope are never entered.
/// Only regular files and directories become records; symlinks, fifos, sockets
/// and device nodes are counted and never opened.
///
/// Layout of the result: the records of one directory's entries are contiguous,
/// dir_paths[i] is the path of the i-th directory walked (a scope root or a
/// directory record), and the names arena holds exactly the live names (it is
/// rebuilt on every scan, so it never accumulates garbage). Record indices are
/// valid until the next Scan(). Telemetry fields of records that survive a scan
/// are kept. Memory: a FileRecord (64 bytes) plus its name per entry, plus
/// 40 bytes of scanner state and one path string per directory; during a scan
/// the old and the new table exist side by side.
///
/// Incremental scans: a directory whose (ino, mtime, ctime) equals the last
/// scan's is not read again; its entry list is reused (subdirectories are still
/// statx'd and descended, since their changes do not touch the parent's mtime,
/// and a directory holding a mount point is always read, since mounting and
/// unmounting do not touch it either).
/// This misses changes that leave the directory's timestamps alone: a change in
/// the same timestamp tick as the previous read (guarded: directories modified
/// less than ScanLimits::racy_window_ns before a read are read again next time), a
/// filesystem that does not maintain directory mtime (some network and FUSE
/// filesystems, offline edits of the image), a file bind-mounted over an entry,
/// and a changed exclude predicate. The periodic full rescan
/// (ScanLimits::full_rescan_every, or ScanMode::kFull after a fanotify overflow
/// or a policy reload) bounds how long such a miss can last.
///
/// With a FileSampler, regular files are sampled in the same pass through the
/// already open directory fd (openat2 with RESOLVE_NO_XDEV keeps the mount
/// check): the scanner then skips its own statx for entries whose d_type says
/// "regular file", so a file costs the sampler's five syscalls and nothing more.
class Scanner {
 public:
  /// Receives an absolute path (bytes, may hold newlines or non-UTF-8) and
  /// whether it is a directory; true keeps it (and for a directory everything
  /// below it) out of the snapshot.
  using ExcludePredicate = std::function<bool(std::string_view abs_path, bool is_dir)>;

  /// Scopes must not be nested inside each other's mount; a scope root met
  /// inside another scope is skipped there and walked as its own scope.
  Scanner(std::vector<ScanScope> scopes, ExcludePredicate is_excluded, ScanLimits limits = {});

  /// Brings snapshot->dir_paths, names and files up to date. Pass the same
  /// Snapshot every time; if it was not produced by the previous Scan() (sizes
  /// differ) the scan is full. Other Snapshot fields are left alone. With a
  /// sampler, every regular file and directory record is sampled in the same pass.
  ScanStats Scan(policy::Snapshot* snapshot, ScanMode mode = ScanMode::kIncremental,
                 FileSampler* sampler = nullptr);
  /// The same, building `next` from `previous` (the last Scan()'s result,
  /// left unchanged, or nullptr for a walk from nothing): the caller may keep
  /// `previous` (e.g. a published view) while the new table is built, and no
  /// third copy is made. `wall_now_ns` is CLOCK_REALTIME at the start (for the
  /// racy window). Fields of `next` other than the file table are left alone.
  ScanStats Scan(const policy::Snapshot* previous, policy::Snapshot* next, ScanMode mode,
                 FileSampler* sampler, int64_t wall_now_ns, const ScanHints* hints = nullptr);

  /// Replaces the predicate; the next scan is full.
  void SetExcludePredicate(ExcludePredicate is_excluded);
  /// Makes the next scan full (e.g. after a fanotify queue overflow).
  void RequestFullRescan() { force_full_ = true; }

  const std::vector<ScanScope>& scopes() const { return scopes_; }
  /// Bytes held by the scanner's own per-directory state (not the Snapshot).
  size_t StateBytes() const;

 private:
  struct DirState {
    uint64_t ino = 0;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;
    uint32_t first_child = 0;  // into Snapshot::files
    uint32_t child_count = 0;
    uint16_t scope = 0;
    bool reusable = false;  // false: timestamps too recent to trust, or a race was seen
  };
  struct Walk;

  void WalkDir(Walk& w, int fd, uint32_t dir_index, uint32_t depth);
  bool ReadDir(Walk& w, int fd, uint32_t dir_index, const DirState* old);
  bool ReuseDir(Walk& w, int fd, uint32_t dir_index, const DirState& old);
  // ReuseDir's fast path: false when it does not apply (nothing added then).
  bool ReuseDirAsIs(Walk& w, uint32_t dir_index, const DirState& old);
  // In kEvents mode: whether `name` in the directory being read must be sampled again.
  static bool MustSample(const Walk& w, std::string_view name, const policy::FileRecord& rec);
  void AddError(Walk& w, std::string path, int err, const char* what);

  std::vector<ScanScope> scopes_;
  ExcludePredicate is_excluded_;
  ScanLimits limits_;
  std::vector<DirState> dirs_;  // parallel to Snapshot::dir_paths
  // Per scope: directory inode -> index into dirs_ (directories cannot be hard-linked).
  std::vector<std::unordered_map<uint64_t, uint32_t>> dir_by_ino_;
  size_t last_files_ = 0;
  size_t last_names_ = 0;
  size_t last_dirs_ = 0;
  uint32_t scans_since_full_ = 0;
  bool force_full_ = true;
  std::vector<char> dents_;  // getdents64 buffer, shared: a directory is read before recursing
};

}  // namespace daxpolicy::files
