// SPDX-License-Identifier: Apache-2.0
#include "plugins/files/change_table.h"

#include <type_traits>
#include <utility>

namespace daxpolicy::files {

namespace {

constexpr uint32_t kAppeared = kFsCreate | kFsMovedTo;
constexpr uint32_t kDisappeared = kFsDelete | kFsMovedFrom;

// `path` is `dir` or below it.
bool AtOrBelow(std::string_view path, std::string_view dir) {
  if (dir == "/") return !path.empty() && path.front() == '/';
  if (path.size() < dir.size() || path.compare(0, dir.size(), dir) != 0) return false;
  return path.size() == dir.size() || path[dir.size()] == '/';
}

// Erases every key of `c` at or below `dir` (keys below sort after dir + "/").
template <class C>
void EraseTree(C& c, const std::string& dir) {
  c.erase(dir);
  const std::string prefix = dir == "/" ? dir : dir + "/";
  for (auto it = c.lower_bound(prefix); it != c.end();) {
    const std::string& key = [&]() -> const std::string& {
      if constexpr (std::is_same_v<typename C::value_type, std::string>) {
        return *it;
      } else {
        return it->first;
      }
    }();
    if (key.compare(0, prefix.size(), prefix) != 0) break;
    it = c.erase(it);
  }
}

// An entry of `dirs` at or above `path`.
bool Covered(const std::set<std::string>& dirs, const std::string& path) {
  for (const std::string& d : dirs) {
    if (AtOrBelow(path, d)) return true;
  }
  return false;
}

}  // namespace

std::string_view PathChangeName(PathChange change) {
  switch (change) {
    case PathChange::kDirty:
      return "dirty";
    case PathChange::kNew:
      return "new";
    case PathChange::kGone:
      return "gone";
  }
  return "?";
}

bool ChangeSet::empty() const {
  for (const Scope& s : scopes) {
    if (!s.empty()) return false;
  }
  return true;
}

ChangeTable::ChangeTable(std::vector<std::string> scope_roots, Resolver resolver, Options options)
    : roots_(std::move(scope_roots)), resolver_(std::move(resolver)), options_(options) {
  pending_.scopes.resize(roots_.size());
}

std::optional<size_t> ChangeTable::ScopeOf(std::string_view path) const {
  for (size_t i = 0; i < roots_.size(); ++i) {
    if (AtOrBelow(path, roots_[i])) return i;
  }
  return std::nullopt;
}

void ChangeTable::RequireFullWalk(size_t scope, std::string why) {
  if (scope >= pending_.scopes.size()) return;
  ChangeSet::Scope& s = pending_.scopes[scope];
  if (!s.full_walk) {
    s.full_walk = true;
    s.why = std::move(why);
  }
  s.paths.clear();
  s.walk_dirs.clear();
  s.gone_dirs.clear();
}

void ChangeTable::RequireFullWalkAll(const std::string& why) {
  for (size_t i = 0; i < pending_.scopes.size(); ++i) RequireFullWalk(i, why);
}

bool ChangeTable::DirPath(const std::string& key, std::string* path) {
  if (auto it = dir_paths_.find(key); it != dir_paths_.end()) {
    *path = it->second;
    return true;
  }
  DirResolution r = resolver_(key);
  switch (r.status) {
    case DirResolution::kFound:
      if (dir_paths_.size() >= options_.max_cached_dirs) dir_paths_.clear();
      *path = r.path;
      dir_paths_.emplace(key, std::move(r.path));
      return true;
    case DirResolution::kGone:
      ++pending_.unresolved;
      return false;
    case DirResolution::kError:
      break;
  }
  // Which scope it belongs to is unknown: every scope is walked.
  RequireFullWalkAll("a directory could not be found from its handle (" + r.error + ")");
  return false;
}

void ChangeTable::MarkPath(size_t scope, const std::string& path, PathChange change) {
  ChangeSet::Scope& s = pending_.scopes[scope];
  auto [it, inserted] = s.paths.emplace(path, change);
  if (!inserted) {
    // The last appearance or disappearance wins; a write does not hide either.
    if (change != PathChange::kDirty) it->second = change;
    return;
  }
  if (s.paths.size() > options_.max_paths_per_scope) {
    RequireFullWalk(scope, "more than " + std::to_string(options_.max_paths_per_scope) +
                               " changed paths between two cycles");
  }
}

bool ChangeTable::Add(const FsEvent& event) {
  ++pending_.events;
  if (event.overflow) {
    ++pending_.overflows;
    // Lost events may have renamed directories: no cached path can be trusted.
    dir_paths_.clear();
    RequireFullWalkAll("the kernel's event queue overflowed");
    return false;
  }
  std::string path;
  if (!DirPath(event.dir_key, &path)) return false;
  const bool self = event.name.empty() || event.name == ".";
  if (!self) {
    if (path != "/") path.push_back('/');
    path.append(event.name);
  }
  const std::optional<size_t> scope = ScopeOf(path);
  if (!scope) {
    ++pending_.outside;
    return false;
  }
  const bool appeared = (event.mask & kAppeared) != 0;
  const bool disappeared = (event.mask & kDisappeared) != 0;
  const bool news = appeared || (event.mask & kFsCloseWrite) != 0;
  ChangeSet::Scope& s = pending_.scopes[*scope];
  if (s.full_walk) return news;

  if (event.is_dir && !self && (appeared || disappeared)) {
    if (disappeared) {
      // The handles of the tree below may now lead elsewhere (a rename) or nowhere.
      dir_paths_.clear();
    }
    if (path == roots_[*scope]) {
      RequireFullWalk(*scope, "the scope root itself was created, removed or renamed");
      return news;
    }
    // Both in one event (the kernel merged them): drop the tree, then walk what is there.
    EraseTree(s.paths, path);
    if (disappeared) {
      EraseTree(s.walk_dirs, path);
      if (!Covered(s.gone_dirs, path)) {
        EraseTree(s.gone_dirs, path);
        s.gone_dirs.insert(path);
      }
    }
    if (appeared && !Covered(s.walk_dirs, path)) {
      EraseTree(s.walk_dirs, path);
      s.walk_dirs.insert(path);
    }
    return news;
  }

  // A file, or a directory's own attributes: look at that one path again,
  // unless its tree is walked anyway.
  if (Covered(s.walk_dirs, path)) return news;
  PathChange change = PathChange::kDirty;
  if (appeared) {
    change = PathChange::kNew;  // also when it disappeared in the same merged event: look
  } else if (disappeared) {
    change = PathChange::kGone;
  }
  MarkPath(*scope, path, change);
  return news;
}

ChangeSet ChangeTable::Take() {
  ChangeSet out = std::move(pending_);
  pending_ = ChangeSet();
  pending_.scopes.resize(roots_.size());
  return out;
}

}  // namespace daxpolicy::files
