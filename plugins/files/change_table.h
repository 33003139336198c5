// SPDX-License-Identifier: Apache-2.0
#pragma once

/// From filesystem events to what a cycle must look at again.
///
/// fanotify with FAN_REPORT_DFID_NAME reports each change as (the parent
/// directory's file handle, an entry name, what happened). ChangeTable turns a
/// stream of such events into the work of the next cycle: which paths must be
/// sampled again (dirty), which appeared (new), which disappeared (gone), which
/// directory trees must be walked (a directory created or moved in) or dropped
/// (removed or moved away), and when nothing short of a full walk of a scope is
/// safe (the kernel's queue overflowed, a directory handle could not be
/// resolved, too many changes to track one by one). Pure logic: the directory
/// handles are turned into paths by a resolver it is given (open_by_handle_at
/// in the daemon, a table in tests), and it reads no clock.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace daxpolicy::files {

/// What happened, one bit each (several may be set in one event: the kernel
/// merges events on one object).
enum FsEventMask : uint32_t {
  kFsCreate = 1u << 0,      ///< the entry was created (FAN_CREATE)
  kFsDelete = 1u << 1,      ///< the entry was removed (FAN_DELETE)
  kFsMovedFrom = 1u << 2,   ///< the entry was renamed away from here (FAN_MOVED_FROM)
  kFsMovedTo = 1u << 3,     ///< an entry was renamed to here (FAN_MOVED_TO)
  kFsModify = 1u << 4,      ///< its data was written (FAN_MODIFY)
  kFsAttrib = 1u << 5,      ///< its attributes changed: flags, mode, times (FAN_ATTRIB)
  kFsCloseWrite = 1u << 6,  ///< a description open for writing was closed (FAN_CLOSE_WRITE)
};

/// One event as fanotify reports it in FAN_REPORT_DFID_NAME mode.
struct FsEvent {
  /// The parent directory: fsid (8 bytes) + handle type (4) + handle bytes;
  /// opaque here, resolved to a path by the ChangeTable's resolver.
  std::string dir_key;
  /// The entry in that directory; "" or "." for an event on the directory itself.
  std::string name;
  uint32_t mask = 0;    ///< FsEventMask bits
  bool is_dir = false;  ///< the entry is a directory (FAN_ONDIR)
  /// The kernel's queue overflowed (FAN_Q_OVERFLOW): events were lost.
  bool overflow = false;
};

/// What became of one path since the last Take(). A consumer looks the path up
/// again in every case (lstat): the kind says why.
enum class PathChange : uint8_t {
  kDirty,  ///< was there and may have changed (data, attributes)
  kNew,    ///< appeared (created, moved here, or replaced by another inode)
  kGone,   ///< disappeared (removed or moved away)
};
std::string_view PathChangeName(PathChange change);

/// The result of resolving a directory handle.
struct DirResolution {
  enum Status : uint8_t {
    kFound,  ///< `path` is the directory's absolute path now
    kGone,   ///< the directory no longer exists (its removal is an event of its own)
    kError,  ///< it could not be resolved (the path stays unknown)
  };
  Status status = kError;
  std::string path;
  std::string error;  ///< for kError, why
};

/// Everything one cycle must do, per scope root (indices as given to the table).
struct ChangeSet {
  struct Scope {
    /// Nothing short of a full walk is safe; `why` says what happened (the
    /// per-path fields below are then empty).
    bool full_walk = false;
    std::string why;
    /// Paths to look up again (absolute), none below an entry of walk_dirs.
    std::map<std::string, PathChange> paths;
    /// Directories whose whole tree must be walked (created or moved in), and
    /// trees that are gone (removed or moved away); a path may be in both when
    /// a tree was replaced (drop first, then walk).
    std::set<std::string> walk_dirs;
    std::set<std::string> gone_dirs;
    bool empty() const {
      return !full_walk && paths.empty() && walk_dirs.empty() && gone_dirs.empty();
    }
  };
  std::vector<Scope> scopes;

  // Counters of the events that made it.
  uint64_t events = 0;
  uint64_t outside = 0;     ///< below no scope root (a filesystem mark sees everything)
  uint64_t unresolved = 0;  ///< in a directory that was already gone (nothing to do)
  uint64_t overflows = 0;   ///< FAN_Q_OVERFLOW events

  bool empty() const;
};

class ChangeTable {
 public:
  /// Turns a directory handle (FsEvent::dir_key) into a path.
  using Resolver = std::function<DirResolution(std::string_view dir_key)>;

  struct Options {
    /// More changed paths than this in one scope between two Take()s turn into
    /// a full walk of that scope (memory stays bounded under an event flood).
    size_t max_paths_per_scope = 200'000;
    /// Directory handles whose paths are remembered (beyond it the cache is cleared).
    size_t max_cached_dirs = 100'000;
  };

  /// `scope_roots`: absolute, no trailing '/', not nested in each other.
  ChangeTable(std::vector<std::string> scope_roots, Resolver resolver, Options options);
  ChangeTable(std::vector<std::string> scope_roots, Resolver resolver)
      : ChangeTable(std::move(scope_roots), std::move(resolver), Options{}) {}

  /// Takes one event into account. True when it names an entry of a scope
  /// that was created, moved in or closed after writing: something a cycle
  /// soon after would find new (the daemon's cue for an early cycle).
  bool Add(const FsEvent& event);
  /// Makes the next Take() ask for a full walk of scope `scope` (e.g. its mark
  /// could not be set), or of every scope.
  void RequireFullWalk(size_t scope, std::string why);
  void RequireFullWalkAll(const std::string& why);
  /// What accumulated since the last Take(); starts over.
  ChangeSet Take();

  /// Directory handles whose paths are cached (tests, memory accounting).
  size_t cached_dirs() const { return dir_paths_.size(); }

 private:
  // The scope holding `path`, or nullopt.
  std::optional<size_t> ScopeOf(std::string_view path) const;
  // The path of a directory handle into *path; false when it has none.
  bool DirPath(const std::string& key, std::string* path);
  void DropTree(ChangeSet::Scope& s, const std::string& dir);
  void ForgetCachedTree(const std::string& dir);
  void MarkPath(size_t scope, const std::string& path, PathChange change);

  std::vector<std::string> roots_;
  Resolver resolver_;
  Options options_;
  ChangeSet pending_;
  std::unordered_map<std::string, std::string> dir_paths_;  // dir key -> path
};

}  // namespace daxpolicy::files
