// SPDX-License-Identifier: Apache-2.0
#include "daemon/journal/restore.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include "daemon/journal/identity.h"
#include "plugins/unique_fd.h"
#include "policy/glob.h"
#include "policy/loader.h"

namespace daxpolicy::journal {

namespace {

std::string_view StateName(policy::DaxState state) {
  switch (state) {
    case policy::DaxState::kDax:
      return "dax";
    case policy::DaxState::kPageCache:
      return "page-cache";
    case policy::DaxState::kUnknown:
      break;
  }
  return "unknown";
}

std::string StripTrailingSlashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

RestoreItem ItemFor(const JournalEntry& entry, const driver::ApplyOutcome& outcome) {
  RestoreItem item;
  item.path = entry.AbsolutePath();
  item.original = entry.original;
  switch (outcome.result) {
    case driver::ApplyResult::kChanged:
      item.status = RestoreStatus::kRestored;
      return item;
    case driver::ApplyResult::kUnchanged:
      item.status = RestoreStatus::kAlreadyOriginal;
      return item;
    case driver::ApplyResult::kObserved:
    case driver::ApplyResult::kBlocked:
      break;
  }
  item.error_code = outcome.error_code;
  item.detail = outcome.reason;
  if (outcome.blocker == driver::Blocker::kVanished) {
    item.status = RestoreStatus::kVanished;
  } else if (outcome.blocker == driver::Blocker::kReplaced) {
    item.status = RestoreStatus::kReplaced;
  } else {
    item.status = RestoreStatus::kFailed;
  }
  return item;
}

}  // namespace

std::string_view RestoreStatusName(RestoreStatus status) {
  switch (status) {
    case RestoreStatus::kRestored:
      return "restored";
    case RestoreStatus::kAlreadyOriginal:
      return "already original";
    case RestoreStatus::kVanished:
      return "vanished";
    case RestoreStatus::kReplaced:
      return "replaced; not touched";
    case RestoreStatus::kFailed:
      return "failed";
    case RestoreStatus::kNotRecorded:
      return "not in journal";
    case RestoreStatus::kLeftAsIs:
      return "left as is";
  }
  return "failed";
}

size_t RestoreReport::Count(RestoreStatus status) const {
  size_t n = 0;
  for (const RestoreItem& item : items) n += item.status == status;
  return n;
}

bool RestoreReport::ok() const {
  return journal_error.empty() && Count(RestoreStatus::kFailed) == 0;
}

bool RestoreReport::Complete() const {
  if (!journal_error.empty() || !journal_problems.empty()) return false;
  for (const RestoreItem& item : items) {
    if (item.status != RestoreStatus::kRestored && item.status != RestoreStatus::kAlreadyOriginal) {
      return false;
    }
  }
  return true;
}

std::string RestoreReport::Format() const {
  std::string out;
  for (const RestoreItem& item : items) {
    out += std::string(RestoreStatusName(item.status)) + ": " + PrintablePath(item.path);
    if (item.status != RestoreStatus::kNotRecorded) {
      out += " (original: " + std::string(StateName(item.original)) + ")";
    }
    if (!item.detail.empty()) out += ": " + item.detail;
    out += "\n";
  }
  for (const std::string& problem : journal_problems) {
    out += "journal damaged: " + problem + "\n";
  }
  for (const std::string& note : notes) out += "note: " + note + "\n";
  if (!journal_error.empty()) out += "journal: " + journal_error + "\n";
  out += std::to_string(Count(RestoreStatus::kRestored)) + " restored, " +
         std::to_string(Count(RestoreStatus::kAlreadyOriginal)) + " already original, " +
         std::to_string(Count(RestoreStatus::kVanished)) + " vanished, " +
         std::to_string(Count(RestoreStatus::kReplaced)) + " replaced, " +
         std::to_string(Count(RestoreStatus::kFailed)) + " failed";
  if (size_t unknown = Count(RestoreStatus::kNotRecorded)) {
    out += ", " + std::to_string(unknown) + " not in journal";
  }
  if (size_t left = Count(RestoreStatus::kLeftAsIs)) {
    out += ", " + std::to_string(left) + " left as is";
  }
  if (!journal_problems.empty()) out += "; the journal is damaged: originals may be missing";
  out += "\n";
  return out;
}

namespace {

constexpr uint32_t kMaxDepth = 256;

bool UnderSystemTree(const std::string& root) {
  for (const char* sys : policy::kForbiddenScopeRoots) {
    if (policy::PathIsWithin(root, sys)) return true;
  }
  return false;
}

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

// Mount id of an fd (0 unknown).
uint64_t MountIdOf(int fd) {
  struct statx sx {};
  if (statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) != 0 || !(sx.stx_mask & STATX_MNT_ID)) {
    return 0;
  }
  return sx.stx_mnt_id;
}

// Calls visit(relative path, d_ino, is_dir) for every regular file and directory below the
// directory `dir_fd` (relative path `rel`), on the same mount, never following a symlink.
// visit returns whether to descend into a directory.
template <class Visit>
void Walk(int dir_fd, const std::string& rel, uint64_t mount_id, uint32_t depth, Visit& visit) {
  if (depth > kMaxDepth) return;
  int dup = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return;
  DIR* dir = fdopendir(dup);
  if (dir == nullptr) {
    close(dup);
    return;
  }
  std::vector<std::pair<std::string, uint64_t>> subdirs;
  while (struct dirent* d = readdir(dir)) {
    const std::string name = d->d_name;
    if (name == "." || name == "..") continue;
    if (d->d_type != DT_REG && d->d_type != DT_DIR && d->d_type != DT_UNKNOWN) continue;
    bool is_dir = d->d_type == DT_DIR;
    if (d->d_type == DT_UNKNOWN) {
      struct stat st {};
      if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) continue;
      is_dir = S_ISDIR(st.st_mode);
    }
    if (visit(Join(rel, name), static_cast<uint64_t>(d->d_ino), is_dir) && is_dir) {
      subdirs.emplace_back(name, d->d_ino);
    }
  }
  closedir(dir);
  for (const auto& [name, ino] : subdirs) {
    daxpolicy::UniqueFd sub(
        openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub.valid() || (mount_id != 0 && MountIdOf(sub.get()) != mount_id)) continue;
    Walk(sub.get(), Join(rel, name), mount_id, depth + 1, visit);
  }
}

// What the recorded path of an entry names now, looked at once per restore.
struct AtPath {
  bool trusted = false;  // the entry's scope root is one the journal recorded
  bool opened = false;   // else `blocked` says why not (only when the root is open)
  driver::Blocked blocked;
  bool same = false;  // the recorded file: `current` holds its identity
  JournalEntry current;
};

struct Root {
  daxpolicy::UniqueFd fd;  // a real (O_RDONLY) directory fd: open_by_handle_at needs one
  int err = 0;
  uint64_t dev = 0;
  std::string uuid;
  uint64_t mount_id = 0;
  // Files of this scope looked up by handle, filled by one walk when first needed.
  bool walked = false;
  std::map<std::string, std::string> path_by_key;  // EntryKey -> relative path
};

class Restorer {
 public:
  Restorer(Journal& journal, const RestoreRequest& request, RestoreReport& report)
      : journal_(journal), opener_(request.open), driver_(request.kernel, [&] {
          driver::DriverOptions options;
          options.open = request.open;
          options.allow_hard_links = true;
          return options;
        }()) {
    scopes_ = journal.recorded_scopes();
    if (scopes_.empty()) {
      report.notes.push_back(
          "the journal records no policy scopes (written by an older version): entries are "
          "refused only under /proc, /sys or /dev");
    }
  }

  void Run(const std::vector<JournalEntry>& selected, std::vector<RestoreItem>* items,
           std::vector<std::string>* done);

 private:
  Root& RootOf(const std::string& scope_root);
  // The current relative path of the recorded file, or a refusal; `at` is what its recorded
  // path names.
  driver::BlockedOr<std::string> Locate(const JournalEntry& entry, Root& root, const AtPath& at,
                                        JournalEntry* current);
  void FindByHandle(Root& root, const std::string& scope_root);
  void Inherited(const JournalEntry& dir_entry, Root& root, const std::string& rel,
                 std::vector<RestoreItem>* items);

  bool Trusted(const JournalEntry& entry) const;

  Journal& journal_;
  driver::SafeOpener opener_;
  driver::InodeFlagDriver driver_;
  std::set<std::string> scopes_;
  std::map<std::string, Root> roots_;
  std::set<std::string> wanted_keys_;  // EntryKeys of entries not found under their path
};

Root& Restorer::RootOf(const std::string& scope_root) {
  auto it = roots_.find(scope_root);
  if (it != roots_.end()) return it->second;
  Root root;
  root.fd.Reset(open(scope_root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root.fd.valid()) {
    root.err = errno;
  } else {
    struct stat st {};
    if (fstat(root.fd.get(), &st) == 0) root.dev = st.st_dev;
    root.uuid = FsUuidOf(root.fd.get());
    root.mount_id = MountIdOf(root.fd.get());
  }
  return roots_.emplace(scope_root, std::move(root)).first->second;
}

void Restorer::FindByHandle(Root& root, const std::string& scope_root) {
  root.walked = true;
  // Only entries of this scope not found at their path are looked for; d_ino filters
  // candidates before any syscall.
  std::map<uint64_t, std::vector<const JournalEntry*>> by_ino;
  std::vector<JournalEntry> entries = journal_.Entries();
  for (const JournalEntry& e : entries) {
    if (e.scope_root == scope_root && wanted_keys_.count(EntryKey(e))) {
      by_ino[e.key.ino].push_back(&e);
    }
  }
  if (by_ino.empty()) return;
  auto visit = [&](const std::string& rel, uint64_t ino, bool is_dir) {
    auto it = by_ino.find(ino);
    if (it != by_ino.end()) {
      driver::BlockedOr<driver::OpenedFile> file = opener_.OpenPath(root.fd.get(), rel);
      if (file.ok()) {
        JournalEntry current;
        if (FillIdentity(file->fd.get(), root.uuid, &current).ok()) {
          for (const JournalEntry* e : it->second) {
            if (SameFile(*e, current)) root.path_by_key[EntryKey(*e)] = rel;
          }
        }
      }
    }
    return is_dir;
  };
  Walk(root.fd.get(), "", root.mount_id, 0, visit);
}

bool Restorer::Trusted(const JournalEntry& entry) const {
  if (!scopes_.empty()) return scopes_.count(entry.scope_root) > 0;
  return !entry.scope_root.empty() && entry.scope_root.front() == '/' &&
         !UnderSystemTree(entry.scope_root);
}

driver::BlockedOr<std::string> Restorer::Locate(const JournalEntry& entry, Root& root,
                                                const AtPath& at, JournalEntry* current) {
  using driver::Blocked;
  using driver::Blocker;
  if (!entry.id.fs_uuid.empty() && !root.uuid.empty() && entry.id.fs_uuid != root.uuid) {
    return Blocked{Blocker::kReplaced, EXDEV,
                   "the scope root is on another filesystem now (its UUID differs); not touched"};
  }
  if (at.same) {
    *current = at.current;
    return entry.path;
  }
  if (entry.id.handle.empty()) {
    // An old entry (dev + ino only): nothing to look for the file by.
    if (!at.opened) return at.blocked;
    return Blocked{Blocker::kReplaced, ESTALE, std::string(driver::kReasonReplaced)};
  }
  // Renamed? The handle opens the file wherever it is on the filesystem, or fails when the
  // file (this inode generation) is gone.
  alignas(file_handle) unsigned char storage[sizeof(file_handle) + 128];
  auto* handle = reinterpret_cast<file_handle*>(storage);
  handle->handle_bytes = static_cast<unsigned>(entry.id.handle.size());
  handle->handle_type = static_cast<int>(entry.id.handle_type);
  std::memcpy(handle->f_handle, entry.id.handle.data(), entry.id.handle.size());
  daxpolicy::UniqueFd by_handle(open_by_handle_at(root.fd.get(), handle, O_PATH | O_CLOEXEC));
  if (!by_handle.valid()) {
    const int err = errno;
    if (err == ESTALE || err == ENOENT) {
      return Blocked{Blocker::kVanished, ENOENT,
                     at.opened ? "the file the daemon changed no longer exists; another file "
                                 "now has its name and is not touched"
                               : std::string(driver::kReasonVanished)};
    }
    return Blocked{Blocker::kOther, err, driver::OtherReason("open_by_handle_at", err)};
  }
  if (!root.walked) FindByHandle(root, entry.scope_root);
  auto found = root.path_by_key.find(EntryKey(entry));
  if (found == root.path_by_key.end()) {
    if ((entry.id.fs_uuid.empty() || root.uuid.empty()) && entry.key.dev != root.dev) {
      return Blocked{Blocker::kEscapesScope, EXDEV,
                     "the filesystem's identity is unknown (its UUID needs Linux 6.9 or later) "
                     "and its device number changed since the daemon changed the file, so the "
                     "file cannot be recognised; not touched"};
    }
    return Blocked{Blocker::kEscapesScope, EXDEV,
                   "the file still exists but is no longer below its scope root (moved out of "
                   "the scope, or hidden by a mount); not touched"};
  }
  driver::BlockedOr<driver::OpenedFile> moved = opener_.OpenPath(root.fd.get(), found->second);
  if (!moved.ok()) return moved.blocked();
  if (!FillIdentity(moved->fd.get(), root.uuid, current).ok() || !SameFile(entry, *current)) {
    return Blocked{Blocker::kReplaced, ESTALE, std::string(driver::kReasonReplaced)};
  }
  return found->second;
}

void Restorer::Inherited(const JournalEntry& dir_entry, Root& root, const std::string& rel,
                         std::vector<RestoreItem>* items) {
  const policy::DaxState daemons = dir_entry.original == policy::DaxState::kDax
                                       ? policy::DaxState::kPageCache
                                       : policy::DaxState::kDax;
  driver::BlockedOr<driver::OpenedFile> dir = opener_.OpenForIoctl(root.fd.get(), rel, {});
  if (!dir.ok() || !S_ISDIR(dir->st.st_mode)) return;
  auto visit = [&](const std::string& child_rel, uint64_t, bool is_dir) {
    const std::string path = Join(rel, child_rel);
    driver::FileRef ref{root.fd.get(), path, {}};
    Result<driver::FileFlags> flags = driver_.Read(ref);
    if (!flags.ok() || flags->physical != daemons) return false;
    const JournalEntry* recorded = journal_.Find(FileKey{flags->dev, flags->ino});
    if (recorded != nullptr) return false;  // restored by its own entry
    RestoreItem item;
    item.path = dir_entry.scope_root + "/" + path;
    item.original = dir_entry.original;
    driver::BlockedOr<driver::OpenedFile> pinned = opener_.OpenPath(root.fd.get(), path);
    struct statx sx {};
    if (!pinned.ok() || pinned->st.st_ino != flags->ino ||
        statx(pinned->fd.get(), "", AT_EMPTY_PATH, STATX_BTIME, &sx) != 0) {
      return false;
    }
    pinned = driver::Blocked{};  // hold nothing while the flag is changed
    const std::string from = PrintablePath(dir_entry.AbsolutePath());
    if (!(sx.stx_mask & STATX_BTIME) || dir_entry.changed_ns == 0) {
      item.status = RestoreStatus::kLeftAsIs;
      item.detail = "created in " + from + ", which the daemon changed, and has its flag; " +
                    (dir_entry.changed_ns == 0
                         ? "the journal entry (old format) does not say when the daemon "
                           "changed the directory"
                         : "the filesystem does not record birth times") +
                    ", so whether the flag was inherited cannot be told";
      items->push_back(std::move(item));
      return false;
    }
    const int64_t born =
        static_cast<int64_t>(sx.stx_btime.tv_sec) * 1'000'000'000 + sx.stx_btime.tv_nsec;
    if (born < dir_entry.changed_ns) return false;  // older than the daemon's change: its own
    Result<driver::ApplyOutcome> out = driver_.Apply(
        driver::FileRef{root.fd.get(), path, {flags->dev, flags->ino}}, dir_entry.original, {});
    if (!out.ok()) {
      item.status = RestoreStatus::kFailed;
      item.detail = out.error().message;
    } else {
      item = ItemFor(dir_entry, *out);
      item.path = dir_entry.scope_root + "/" + path;
      if (item.status == RestoreStatus::kRestored) {
        item.detail = "inherited the flag from " + from + " (created after the daemon changed it)";
      }
    }
    items->push_back(std::move(item));
    return is_dir;  // a directory created there: its own children inherited from it
  };
  Walk(dir->fd.get(), "", root.mount_id, 0, visit);
}

void Restorer::Run(const std::vector<JournalEntry>& selected, std::vector<RestoreItem>* items,
                   std::vector<std::string>* done) {
  // Each trusted entry's recorded path is looked at once; entries not found there are looked
  // for by handle, in one walk per scope, so collect them first.
  std::vector<AtPath> at_paths(selected.size());
  for (size_t i = 0; i < selected.size(); ++i) {
    const JournalEntry& entry = selected[i];
    AtPath& at = at_paths[i];
    at.trusted = Trusted(entry);
    if (!at.trusted) continue;
    Root& root = RootOf(entry.scope_root);
    if (!root.fd.valid()) continue;
    driver::BlockedOr<driver::OpenedFile> file = opener_.OpenPath(root.fd.get(), entry.path);
    if (!file.ok()) {
      at.blocked = file.blocked();
    } else {
      at.opened = true;
      at.same =
          FillIdentity(file->fd.get(), root.uuid, &at.current).ok() && SameFile(entry, at.current);
    }
    if (!at.same) wanted_keys_.insert(EntryKey(entry));
  }
  for (size_t i = 0; i < selected.size(); ++i) {
    const JournalEntry& entry = selected[i];
    driver::ApplyOutcome outcome;
    std::string rel = entry.path;
    Root* root = nullptr;
    if (!at_paths[i].trusted) {
      outcome = driver::BlockedOutcome(
          driver::Blocked{driver::Blocker::kOther, EPERM,
                          "refused: " + PrintablePath(entry.scope_root) +
                              " is not a scope root of any policy recorded in the journal"});
    } else if (root = &RootOf(entry.scope_root); !root->fd.valid()) {
      const int err = root->err;
      outcome = driver::BlockedOutcome(
          err == ENOENT ? driver::Blocked{driver::Blocker::kVanished, ENOENT,
                                          "scope root " + entry.scope_root + " is gone"}
                        : driver::Blocked{driver::Blocker::kOther, err,
                                          driver::OtherReason("open scope root", err)});
    } else {
      JournalEntry current;
      driver::BlockedOr<std::string> located = Locate(entry, *root, at_paths[i], &current);
      if (!located.ok()) {
        outcome = driver::BlockedOutcome(located.blocked());
      } else {
        rel = *located;
        driver::FileRef ref{root->fd.get(), rel, {current.key.dev, current.key.ino}};
        Result<driver::ApplyOutcome> applied = driver_.Apply(ref, entry.original, {});
        outcome =
            applied.ok()
                ? std::move(applied).value()
                : driver::BlockedOutcome(driver::Blocked{
                      driver::Blocker::kOther, applied.error().code, applied.error().message});
      }
    }
    RestoreItem item = ItemFor(entry, outcome);
    if (rel != entry.path) {
      JournalEntry moved = entry;
      moved.path = rel;
      item.path = moved.AbsolutePath();
      item.detail = "renamed from " + PrintablePath(entry.AbsolutePath());
    }
    const bool back =
        item.status == RestoreStatus::kRestored || item.status == RestoreStatus::kAlreadyOriginal;
    if (back || item.status == RestoreStatus::kVanished) done->push_back(EntryKey(entry));
    items->push_back(std::move(item));
    if (back && root != nullptr && outcome.kind == policy::FileKind::kDirectory) {
      Inherited(entry, *root, rel, items);
    }
  }
}

}  // namespace

Result<RestoreReport> Restore(const std::string& state_dir, const RestoreRequest& request) {
  Result<std::unique_ptr<Journal>> opened = Journal::Open(state_dir, request.journal);
  if (!opened.ok()) return opened.error();
  Journal& journal = **opened;
  RestoreReport report;
  report.journal_problems = journal.Damage();

  std::vector<JournalEntry> selected;
  const std::vector<JournalEntry> entries = journal.Entries();
  if (request.all) {
    selected = entries;
  } else {
    std::set<std::string> wanted;
    for (const std::string& p : request.paths) wanted.insert(StripTrailingSlashes(p));
    std::set<std::string> found;
    for (const JournalEntry& e : entries) {
      std::string path = e.AbsolutePath();
      if (wanted.count(path)) {
        selected.push_back(e);
        found.insert(path);
      }
    }
    for (const std::string& p : wanted) {
      if (!found.count(p)) {
        report.items.push_back(
            RestoreItem{p, RestoreStatus::kNotRecorded, policy::DaxState::kUnknown, 0, ""});
      }
    }
  }

  std::vector<RestoreItem> items;
  std::vector<std::string> done;
  Restorer(journal, request, report).Run(selected, &items, &done);
  Result<void> forgotten = journal.Forget(done);
  if (!forgotten.ok()) report.journal_error = forgotten.error().message;
  items.insert(items.end(), report.items.begin(), report.items.end());
  report.items = std::move(items);
  return report;
}

}  // namespace daxpolicy::journal
