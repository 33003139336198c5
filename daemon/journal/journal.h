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
/// Semantics: entries are keyed by the file's identity (EntryKey: filesystem UUID and file
/// handle, which holds the inode generation; journals of format version 1 have dev + ino
/// only). An "original" record for a file already recorded is ignored (the first original
/// wins); a "correct" record replaces it; a "forget" record drops it. A snapshot segment holds
/// the whole state; folding starts at the newest valid snapshot. Compaction writes a snapshot
/// and removes only segments older than the *previous* snapshot, so one corrupt snapshot
/// still leaves the generation before it intact.
///
/// Originals of a batch are recorded before it is applied (one durable write), from the
/// daemon's scan. Right before each change the driver reads the flag from the opened file and
/// calls BeforeChangeHook(): if that flag differs from the one recorded (an admin changed it
/// in between) a "correct" record replaces it, and SettleBatch() drops the entries of files
/// the batch did not change after all. So the journal holds the flag as it was right before
/// the daemon's change.
///
/// Trust: the state directory must be owned by the user running the daemon (root) and not
/// writable by group or others, else Open() refuses it. The journal records the scope roots
/// of the policy (SetScopes); restore refuses entries outside them.
///
/// Concurrency: Open() takes flock(LOCK_EX) on the directory; a second daemon or a restore
/// gets an error instead of interleaving writes. Not thread-safe.

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/journal/segment.h"
#include "plugins/clock.h"
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
  /// Procfs root for the safe reopen of files while identifying them.
  std::string procfs_root = "/proc";
  /// Told what went wrong where the journal goes on without failing the call (a compaction
  /// after a durable write); unset: not reported.
  std::function<void(const std::string& message)> warn;
  /// The clock records are stamped with (its WallCoarseNs, the clock filesystems stamp
  /// birth times with, which restore compares them to); it must outlive the journal.
  const plugins::Clock* clock = &plugins::SystemClock::Get();
};

class Journal {
 public:
  /// Opens (creating the directory, mode 0700, if missing) and locks `state_dir`, loads every
  /// valid segment and moves torn temp files and corrupt segments into corrupt/, each reported
  /// in problems(). Fails if the directory is locked by another process, is a symlink, is not
  /// owned by the effective user, is writable by group or others, or is not writable (e.g. a
  /// read-only filesystem).
  static Result<std::unique_ptr<Journal>> Open(const std::string& state_dir,
                                               JournalOptions options = {});
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  /// One line per file moved aside at Open(): "<name>: <what is wrong>; moved to corrupt/<name>".
  const std::vector<std::string>& problems() const { return problems_; }
  /// problems() plus one line per file moved into corrupt/ earlier (by a previous daemon or
  /// restore): the journal may have lost originals until an admin has looked at them and
  /// removed corrupt/. "" entries never occur.
  std::vector<std::string> Damage() const;

  /// The scope roots of the running policy: recorded with the next write if any is new.
  void SetScopes(const std::vector<std::string>& scope_roots);
  /// Every scope root any recorded policy had (empty for journals of format version 1).
  const std::set<std::string>& recorded_scopes() const { return scopes_; }

  /// Records the originals of a whole batch in one durable segment write (before the batch is
  /// applied). An entry without an identity (id.handle and id.fs_uuid empty) gets one from
  /// the file at scope_root/path (opened O_PATH beneath the root); an entry whose path now
  /// names another inode than key.ino is skipped (the driver will refuse to change it).
  /// Entries already recorded are skipped, as are duplicates within the batch (first wins).
  /// The new entries stay provisional until BeforeChangeHook() confirms them or SettleBatch()
  /// drops them. Returns how many were newly recorded; 0 writes nothing.
  Result<size_t> RecordOriginals(const std::vector<JournalEntry>& entries);

  /// Forgets the provisional entries of the last batch that no change confirmed (the driver
  /// found the flag already as wanted, or refused): the daemon did not change those files.
  Result<void> SettleBatch();

  /// Drops entries (after a restore) in one durable write. Unknown keys are ignored.
  Result<void> Forget(const std::vector<std::string>& entry_keys);

  /// Writes the whole state as one snapshot segment and removes superseded segments.
  Result<void> Compact();

  /// A recorded original of the file with this dev + ino, or nullptr (for several, any).
  const JournalEntry* Find(FileKey key) const;
  /// Every entry, ordered by EntryKey.
  std::vector<JournalEntry> Entries() const;
  size_t size() const { return entries_.size(); }
  /// Segment files currently in the directory.
  size_t segment_count() const { return segments_.size(); }
  const std::string& state_dir() const { return state_dir_; }

  /// A DaxDriver before_change hook for files under `scope_root` (absolute), given the flag
  /// read from the opened file right before the change and that fd: records the original
  /// unless the file (by identity) is already recorded, and corrects a provisional entry of
  /// the current batch whose recorded flag differs. The journal must outlive the hook.
  std::function<Result<void>(uint64_t dev, uint64_t ino, std::string_view path,
                             policy::DaxState original, int fd)>
  BeforeChangeHook(std::string scope_root);

 private:
  Journal(std::string state_dir, JournalOptions options, int dir_fd);
  Result<void> Load();
  Result<void> CheckDirectory() const;
  Result<void> WriteSegment(const Segment& segment);
  Result<void> WriteRecords(Segment segment);
  int64_t Now() const;
  bool Recorded(const JournalEntry& entry) const;
  void Erase(const std::string& key);
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
  std::map<std::string, JournalEntry> entries_;  // by EntryKey
  std::multimap<FileKey, std::string> by_file_;  // dev + ino -> EntryKey
  std::set<std::string> provisional_;            // recorded by the last batch, unconfirmed
  std::set<std::string> scopes_;                 // recorded scope roots
  std::vector<std::string> unrecorded_scopes_;   // SetScopes() roots to record next time
  std::vector<std::string> problems_;
  std::vector<std::string> earlier_damage_;  // files found in corrupt/ at Open()
  std::set<std::string> moved_aside_;        // names in corrupt/ this Open() moved there
};

/// Makes a path printable on one line: backslash, control bytes (newline, ...) and bytes that
/// are not valid UTF-8 become \\, \n, \xNN.
std::string PrintablePath(std::string_view path);

}  // namespace daxpolicy::journal
