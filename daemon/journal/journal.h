// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The state journal: the original DAX flag of every file the daemon changed, kept durably in a
/// state directory (default /var/lib/daxpolicy) so that `daxpolicyctl restore` can always undo
/// the daemon's changes, even offline.
///
/// Layout of the state directory:
///   segment-<seq>.djnl    immutable segments (format in segment.h), folded in sequence order
///   segment-<seq>.djnl.tmp  a segment being written; one left behind was never committed
///   corrupt/              torn temp files and corrupt segments, moved aside (never deleted)
///
/// Semantics: an "original" record for a file (dev, ino) that is already recorded is ignored
/// (the first original wins); a "forget" record drops it. A snapshot segment holds the whole
/// state; folding starts at the newest valid snapshot. Compaction writes a snapshot and
/// removes only segments older than the *previous* snapshot, so one corrupt snapshot still
/// leaves the generation before it intact.
///
/// Concurrency: Open() takes flock(LOCK_EX) on the directory; a second daemon or a restore
/// gets an error instead of interleaving writes. Not thread-safe.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/journal/segment.h"
#include "policy/result.h"
#include "policy/snapshot.h"

namespace daxpolicy::journal {

inline constexpr std::string_view kDefaultStateDir = "/var/lib/daxpolicy";

struct JournalOptions {
  /// Compact once this many segments were written since the last snapshot.
  size_t compact_after_segments = 64;
  /// Called at each step of a segment write ("created", "written", "synced", "renamed") and of
  /// a compaction ("removing"), so that crash tests can kill the process exactly there.
  std::function<void(std::string_view step)> crash_point_for_test;
};

class Journal {
 public:
  /// Opens (creating the directory, mode 0700, if missing) and locks `state_dir`, loads every
  /// valid segment and moves torn temp files and corrupt segments into corrupt/, each reported
  /// in problems(). Fails if the directory is locked by another process.
  static Result<std::unique_ptr<Journal>> Open(const std::string& state_dir,
                                               JournalOptions options = {});
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  /// One line per file moved aside at Open(): "<name>: <what is wrong>; moved to corrupt/<name>".
  const std::vector<std::string>& problems() const { return problems_; }

  /// Records the originals of a whole batch in one durable segment write (before the batch is
  /// applied). Entries whose key is already recorded are skipped, as are duplicates within the
  /// batch (first wins). Returns how many were newly recorded; 0 writes nothing.
  Result<size_t> RecordOriginals(const std::vector<JournalEntry>& entries);

  /// Drops entries (after a restore) in one durable write. Unknown keys are ignored.
  Result<void> Forget(const std::vector<FileKey>& keys);

  /// Writes the whole state as one snapshot segment and removes superseded segments.
  Result<void> Compact();

  /// The recorded original of a file, or nullptr.
  const JournalEntry* Find(FileKey key) const;
  /// Every entry, ordered by (dev, ino).
  std::vector<JournalEntry> Entries() const;
  size_t size() const { return entries_.size(); }
  /// Segment files currently in the directory.
  size_t segment_count() const { return segments_.size(); }
  const std::string& state_dir() const { return state_dir_; }

  /// A DaxDriver before_change hook for files under `scope_root` (absolute): records the
  /// original unless the file is already recorded. The journal must outlive the hook.
  std::function<Result<void>(uint64_t dev, uint64_t ino, std::string_view path,
                             policy::DaxState original)>
  BeforeChangeHook(std::string scope_root);

 private:
  Journal(std::string state_dir, JournalOptions options, int dir_fd);
  Result<void> Load();
  Result<void> WriteSegment(const Segment& segment);
  Result<void> MoveAside(const std::string& name, const std::string& problem);
  void CrashPoint(std::string_view step) const {
    if (options_.crash_point_for_test) options_.crash_point_for_test(step);
  }
  void Fold(const Segment& segment);

  std::string state_dir_;
  JournalOptions options_;
  int dir_fd_ = -1;  // holds the flock
  uint64_t next_sequence_ = 1;
  std::map<uint64_t, bool> segments_;  // sequence -> is snapshot
  size_t since_snapshot_ = 0;
  std::map<FileKey, JournalEntry> entries_;
  std::vector<std::string> problems_;
};

/// Makes a path printable on one line: backslash, control bytes (newline, ...) and bytes that
/// are not valid UTF-8 become \\, \n, \xNN.
std::string PrintablePath(std::string_view path);

}  // namespace daxpolicy::journal
