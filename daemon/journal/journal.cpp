// SPDX-License-Identifier: Apache-2.0
#include "daemon/journal/journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include "daemon/journal/identity.h"
#include "plugins/driver/safe_open.h"
#include "plugins/unique_fd.h"
#include "plugins/utf8.h"

namespace daxpolicy::journal {

namespace {

constexpr char kCorruptDir[] = "corrupt";

Result<std::string> ReadAll(int dir_fd, const std::string& name) {
  int fd = openat(dir_fd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return ErrnoError(errno, "open " + name);
  std::string data;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      data.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      int err = errno;
      close(fd);
      return ErrnoError(err, "read " + name);
    }
  }
  close(fd);
  return data;
}

Result<void> WriteAll(int fd, std::string_view data, const std::string& name) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "write " + name);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

}  // namespace

Journal::Journal(std::string state_dir, JournalOptions options, int dir_fd)
    : state_dir_(std::move(state_dir)), options_(options), dir_fd_(dir_fd) {}

Journal::~Journal() {
  if (dir_fd_ >= 0) close(dir_fd_);  // releases the flock
}

Result<std::unique_ptr<Journal>> Journal::Open(const std::string& state_dir,
                                               JournalOptions options) {
  if (mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoError(errno, "cannot create state directory " + state_dir);
  }
  int dir_fd = open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir_fd < 0) {
    if (errno == ELOOP || errno == ENOTDIR) {
      return Error{"state directory " + state_dir + " is a symlink or not a directory", errno};
    }
    return ErrnoError(errno, "cannot open state directory " + state_dir);
  }
  struct stat st {};
  if (fstat(dir_fd, &st) != 0) {
    int err = errno;
    close(dir_fd);
    return ErrnoError(err, "cannot stat state directory " + state_dir);
  }
  // Whoever can write the journal decides which flags restore sets on which files.
  if (st.st_uid != geteuid()) {
    close(dir_fd);
    return Error{"state directory " + state_dir + " is owned by uid " + std::to_string(st.st_uid) +
                     ", not by uid " + std::to_string(geteuid()) + " (root); refusing to trust it",
                 EPERM};
  }
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    close(dir_fd);
    return Error{"state directory " + state_dir + " is writable by group or others (mode " + mode +
                     "); refusing to trust it (chmod go-w)",
                 EPERM};
  }
  if (faccessat(dir_fd, ".", W_OK, AT_EACCESS) != 0) {
    int err = errno;
    close(dir_fd);
    return Error{"state directory " + state_dir + " is not writable: " + std::strerror(err), err};
  }
  if (flock(dir_fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    close(dir_fd);
    if (err == EWOULDBLOCK) {
      return Error{"state directory " + state_dir +
                       " is locked by another process (a running daxpolicyd or restore)",
                   err};
    }
    return ErrnoError(err, "cannot lock state directory " + state_dir);
  }
  std::unique_ptr<Journal> journal(new Journal(state_dir, options, dir_fd));
  Result<void> loaded = journal->Load();
  if (!loaded.ok()) return loaded.error();
  return journal;
}

Result<void> Journal::Load() {
  std::vector<std::string> names;
  {
    int fd = fcntl(dir_fd_, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return ErrnoError(errno, "dup");
    DIR* dir = fdopendir(fd);
    if (dir == nullptr) {
      close(fd);
      return ErrnoError(errno, "cannot list " + state_dir_);
    }
    rewinddir(dir);
    while (struct dirent* d = readdir(dir)) names.emplace_back(d->d_name);
    closedir(dir);
  }
  std::map<uint64_t, Segment> valid;
  uint64_t max_seen = 0;
  for (const std::string& name : names) {
    uint64_t sequence = 0;
    bool temp = false;
    if (!ParseSegmentFileName(name, &sequence, &temp)) continue;
    max_seen = std::max(max_seen, sequence);
    if (temp) {
      Result<void> moved = MoveAside(name, "torn temporary segment, never committed");
      if (!moved.ok()) return moved;
      continue;
    }
    Result<std::string> data = ReadAll(dir_fd_, name);
    if (!data.ok()) return data.error();
    Result<Segment> segment = DecodeSegment(*data);
    std::string problem;
    if (!segment.ok()) {
      problem = segment.error().message;
    } else if (segment->sequence != sequence) {
      problem = "sequence in the header does not match the file name";
    }
    if (!problem.empty()) {
      Result<void> moved = MoveAside(name, problem);
      if (!moved.ok()) return moved;
      continue;
    }
    valid.emplace(sequence, std::move(segment).value());
  }
  // Damage found by an earlier open stays visible until an admin has dealt with it.
  if (int cfd = openat(dir_fd_, kCorruptDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      cfd >= 0) {
    if (DIR* cdir = fdopendir(cfd)) {
      while (struct dirent* d = readdir(cdir)) {
        const std::string name = d->d_name;
        if (name == "." || name == ".." || moved_aside_.count(name)) continue;
        earlier_damage_.push_back(std::string(kCorruptDir) + "/" + name +
                                  ": moved aside by an earlier open (torn or corrupt)");
      }
      closedir(cdir);
    } else {
      close(cfd);
    }
  }
  next_sequence_ = max_seen + 1;
  uint64_t start = 0;
  for (const auto& [sequence, segment] : valid) {
    segments_[sequence] = segment.snapshot;
    if (segment.snapshot) start = sequence;
  }
  since_snapshot_ = 0;
  for (const auto& [sequence, segment] : valid) {
    if (sequence < start) continue;
    Fold(segment);
    if (sequence > start || !segment.snapshot) ++since_snapshot_;
  }
  return {};
}

void Journal::Erase(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  auto [lo, hi] = by_file_.equal_range(it->second.key);
  for (auto f = lo; f != hi; ++f) {
    if (f->second == key) {
      by_file_.erase(f);
      break;
    }
  }
  entries_.erase(it);
  provisional_.erase(key);
}

void Journal::Fold(const Segment& segment) {
  for (const Record& r : segment.records) {
    switch (r.type) {
      case RecordType::kOriginal:
      case RecordType::kCorrect: {
        std::string key = EntryKey(r.entry);
        auto it = entries_.find(key);
        if (it != entries_.end()) {
          if (r.type == RecordType::kCorrect) it->second = r.entry;  // else the first wins
          break;
        }
        by_file_.emplace(r.entry.key, key);
        entries_.emplace(std::move(key), r.entry);
        break;
      }
      case RecordType::kForget:
        Erase(EntryKey(r.entry));
        break;
      case RecordType::kScopes:
        scopes_.insert(r.scopes.begin(), r.scopes.end());
        break;
    }
  }
}

std::vector<std::string> Journal::Damage() const {
  std::vector<std::string> out = problems_;
  out.insert(out.end(), earlier_damage_.begin(), earlier_damage_.end());
  return out;
}

void Journal::SetScopes(const std::vector<std::string>& scope_roots) {
  unrecorded_scopes_.clear();
  for (const std::string& root : scope_roots) {
    if (!scopes_.count(root)) unrecorded_scopes_.push_back(root);
  }
}

int64_t Journal::Now() const {
  // The coarse clock is the one filesystems stamp birth times with: a file created after this
  // moment never gets an earlier birth time (restore compares them).
  return options_.clock->WallCoarseNs();
}

// Already recorded: the same identity, or an entry of a version 1 journal (dev + ino only)
// for the same dev + ino, which cannot be told apart and so must win as the first original.
bool Journal::Recorded(const JournalEntry& entry) const {
  if (entries_.count(EntryKey(entry))) return true;
  auto [lo, hi] = by_file_.equal_range(entry.key);
  for (auto it = lo; it != hi; ++it) {
    const JournalEntry& e = entries_.at(it->second);
    if (e.id.handle.empty() && e.id.fs_uuid.empty() && SameFile(e, entry)) return true;
  }
  return false;
}

// One durable segment with `segment`'s records, preceded by the scope roots not yet recorded.
Result<void> Journal::WriteRecords(Segment segment) {
  segment.sequence = next_sequence_;
  if (!unrecorded_scopes_.empty()) {
    Record scopes;
    scopes.type = RecordType::kScopes;
    scopes.scopes = unrecorded_scopes_;
    segment.records.insert(segment.records.begin(), std::move(scopes));
  }
  Result<void> written = WriteSegment(segment);
  if (!written.ok()) return written;
  unrecorded_scopes_.clear();
  Fold(segment);
  ++since_snapshot_;
  if (since_snapshot_ >= options_.compact_after_segments) {
    // The records are durable: a failed compaction only leaves more segments to fold, and is
    // tried again with the next write.
    Result<void> compacted = Compact();
    if (!compacted.ok() && options_.warn) {
      options_.warn("journal: compaction of " + state_dir_ + " failed, tried again with the " +
                    "next write: " + compacted.error().message);
    }
  }
  return {};
}

Result<void> Journal::MoveAside(const std::string& name, const std::string& problem) {
  if (mkdirat(dir_fd_, kCorruptDir, 0700) != 0 && errno != EEXIST) {
    return ErrnoError(errno, "cannot create " + state_dir_ + "/" + kCorruptDir);
  }
  int corrupt_fd = openat(dir_fd_, kCorruptDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (corrupt_fd < 0) return ErrnoError(errno, "cannot open " + state_dir_ + "/" + kCorruptDir);
  std::string target = name;
  int rc = -1;
  for (int n = 1; n < 10000; ++n) {
    rc = renameat2(dir_fd_, name.c_str(), corrupt_fd, target.c_str(), RENAME_NOREPLACE);
    if (rc == 0 || errno != EEXIST) break;
    target = name + "." + std::to_string(n);
  }
  int err = errno;
  if (rc == 0) {
    fsync(corrupt_fd);
    fsync(dir_fd_);
  }
  close(corrupt_fd);
  if (rc != 0) return ErrnoError(err, "cannot move " + name + " aside");
  moved_aside_.insert(target);
  problems_.push_back(name + ": " + problem + "; moved to " + kCorruptDir + "/" + target);
  return {};
}

Result<void> Journal::WriteSegment(const Segment& segment) {
  const std::string name = SegmentFileName(segment.sequence);
  const std::string temp = name + ".tmp";
  const std::string bytes = EncodeSegment(segment);
  int fd = openat(dir_fd_, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError(errno, "cannot create " + state_dir_ + "/" + temp);
  CrashPoint("created");
  Result<void> written = WriteAll(fd, bytes, temp);
  CrashPoint("written");
  if (written.ok() && fsync(fd) != 0) written = ErrnoError(errno, "fsync " + temp);
  if (close(fd) != 0 && written.ok()) written = ErrnoError(errno, "close " + temp);
  CrashPoint("synced");
  if (written.ok() && renameat2(dir_fd_, temp.c_str(), dir_fd_, name.c_str(), RENAME_NOREPLACE)) {
    written = ErrnoError(errno, "rename " + temp);
  }
  CrashPoint("renamed");
  if (!written.ok()) {
    unlinkat(dir_fd_, temp.c_str(), 0);  // our own uncommitted write
    return written;
  }
  // The rename is durable only once the directory is.
  if (fsync(dir_fd_) != 0) return ErrnoError(errno, "fsync " + state_dir_);
  segments_[segment.sequence] = segment.snapshot;
  next_sequence_ = segment.sequence + 1;
  return {};
}

namespace {

// A scope root opened once per batch: a real directory fd (FsUuidOf needs one), its device
// and the UUID of its filesystem.
struct BatchRoot {
  UniqueFd fd;
  uint64_t dev = 0;
  std::string uuid;
};

}  // namespace

Result<size_t> Journal::RecordOriginals(const std::vector<JournalEntry>& entries) {
  Segment segment;
  std::set<std::string> seen;
  const int64_t now = Now();
  driver::SafeOpener opener(driver::SafeOpenOptions{options_.procfs_root, true});
  std::map<std::string, BatchRoot> roots;  // by scope root; fd invalid: cannot be opened
  for (const JournalEntry& in : entries) {
    if (in.original != policy::DaxState::kDax && in.original != policy::DaxState::kPageCache) {
      return Error{"original flag of " + PrintablePath(in.AbsolutePath()) + " is unknown", EINVAL};
    }
    if (in.path.find('\0') != std::string::npos || in.scope_root.find('\0') != std::string::npos) {
      return Error{"path contains a NUL byte", EINVAL};
    }
    JournalEntry e = in;
    e.changed_ns = now;
    if (e.id.handle.empty() && e.id.fs_uuid.empty()) {
      auto root = roots.find(e.scope_root);
      if (root == roots.end()) {
        BatchRoot r;
        r.fd.Reset(open(e.scope_root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        struct stat st {};
        if (r.fd.valid() && fstat(r.fd.get(), &st) == 0) {
          r.dev = st.st_dev;
          r.uuid = FsUuidOf(r.fd.get());
        }
        root = roots.emplace(e.scope_root, std::move(r)).first;
      }
      const BatchRoot& r = root->second;
      if (r.fd.valid()) {
        driver::BlockedOr<driver::OpenedFile> file = opener.OpenPath(r.fd.get(), e.path);
        if (file.ok()) {
          JournalEntry found = e;
          const std::string uuid = file->st.st_dev == r.dev ? r.uuid : std::string();
          if (FillIdentity(file->fd.get(), uuid, &found).ok()) {
            // Replaced since the scan: the driver refuses it, so there is nothing to record.
            if (found.key.ino != e.key.ino || found.key.dev != e.key.dev) continue;
            e = std::move(found);
          }
        }
      }
    }
    if (Recorded(e) || !seen.insert(EntryKey(e)).second) continue;
    segment.records.push_back(Record{RecordType::kOriginal, std::move(e), {}});
  }
  if (segment.records.empty()) return size_t{0};
  const size_t recorded = segment.records.size();
  Result<void> written = WriteRecords(std::move(segment));
  if (!written.ok()) return written.error();
  provisional_.insert(seen.begin(), seen.end());
  return recorded;
}

Result<void> Journal::SettleBatch() {
  std::vector<std::string> unconfirmed(provisional_.begin(), provisional_.end());
  provisional_.clear();
  return Forget(unconfirmed);
}

Result<void> Journal::Forget(const std::vector<std::string>& entry_keys) {
  Segment segment;
  std::set<std::string> seen;
  for (const std::string& key : entry_keys) {
    auto it = entries_.find(key);
    if (it == entries_.end() || !seen.insert(key).second) continue;
    Record r;
    r.type = RecordType::kForget;
    r.entry = it->second;
    segment.records.push_back(std::move(r));
  }
  if (segment.records.empty()) return {};
  return WriteRecords(std::move(segment));
}

Result<void> Journal::Compact() {
  uint64_t previous_snapshot = 0;
  for (const auto& [sequence, snapshot] : segments_) {
    if (snapshot) previous_snapshot = sequence;
  }
  Segment segment;
  segment.sequence = next_sequence_;
  segment.snapshot = true;
  std::vector<std::string> scopes(scopes_.begin(), scopes_.end());
  scopes.insert(scopes.end(), unrecorded_scopes_.begin(), unrecorded_scopes_.end());
  if (!scopes.empty()) {
    Record r;
    r.type = RecordType::kScopes;
    r.scopes = std::move(scopes);
    segment.records.push_back(std::move(r));
  }
  for (const auto& [key, entry] : entries_) {
    segment.records.push_back(Record{RecordType::kOriginal, entry, {}});
  }
  Result<void> written = WriteSegment(segment);
  if (!written.ok()) return written;
  scopes_.insert(unrecorded_scopes_.begin(), unrecorded_scopes_.end());
  unrecorded_scopes_.clear();
  since_snapshot_ = 0;
  // Keep the generation since the previous snapshot: if the new snapshot is ever found
  // corrupt, folding from the previous one still yields everything.
  bool removed = false;
  for (auto it = segments_.begin(); it != segments_.end() && it->first < previous_snapshot;) {
    CrashPoint("removing");
    if (unlinkat(dir_fd_, SegmentFileName(it->first).c_str(), 0) != 0 && errno != ENOENT) {
      return ErrnoError(errno, "cannot remove superseded " + SegmentFileName(it->first));
    }
    it = segments_.erase(it);
    removed = true;
  }
  if (removed && fsync(dir_fd_) != 0) return ErrnoError(errno, "fsync " + state_dir_);
  return {};
}

const JournalEntry* Journal::Find(FileKey key) const {
  auto it = by_file_.find(key);
  return it == by_file_.end() ? nullptr : &entries_.at(it->second);
}

std::vector<JournalEntry> Journal::Entries() const {
  std::vector<JournalEntry> out;
  out.reserve(entries_.size());
  for (const auto& [key, entry] : entries_) out.push_back(entry);
  return out;
}

std::function<Result<void>(uint64_t, uint64_t, std::string_view, policy::DaxState, int)>
Journal::BeforeChangeHook(std::string scope_root) {
  return [this, scope_root = std::move(scope_root)](
             uint64_t dev, uint64_t ino, std::string_view path, policy::DaxState original,
             int fd) -> Result<void> {
    JournalEntry current{FileKey{dev, ino}, scope_root, std::string(path), original};
    current.changed_ns = Now();
    if (fd >= 0) (void)FillIdentity(fd, FsUuidOf(fd), &current);
    // The entry of this file: the one of its identity, else one recorded without an identity
    // (a version 1 journal, or a batch that could not open the file) for its dev + ino.
    std::string key = EntryKey(current);
    if (!entries_.count(key)) {
      key.clear();
      auto [lo, hi] = by_file_.equal_range(current.key);
      for (auto it = lo; it != hi && key.empty(); ++it) {
        const JournalEntry& e = entries_.at(it->second);
        if (e.id.handle.empty() && e.id.fs_uuid.empty() && SameFile(e, current)) key = it->second;
      }
    }
    if (key.empty()) {
      Segment segment;
      segment.records.push_back(Record{RecordType::kOriginal, current, {}});
      return WriteRecords(std::move(segment));
    }
    if (!provisional_.count(key)) return {};  // recorded by an earlier batch: it wins
    provisional_.erase(key);
    const JournalEntry& recorded = entries_.at(key);
    if (recorded.original == original) return {};
    // The flag changed between the scan and this change (an admin's chattr): the journal
    // must hold what the daemon is about to overwrite. The correction keeps the entry's key.
    JournalEntry corrected = key == EntryKey(current) ? current : recorded;
    corrected.original = original;
    corrected.changed_ns = recorded.changed_ns;
    Segment segment;
    segment.records.push_back(Record{RecordType::kCorrect, std::move(corrected), {}});
    return WriteRecords(std::move(segment));
  };
}

std::string PrintablePath(std::string_view path) {
  std::string out;
  auto hex = [&out](unsigned char c) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02x", c);
    out += buf;
  };
  for (size_t i = 0; i < path.size();) {
    const auto c = static_cast<unsigned char>(path[i]);
    if (c == '\\') {
      out += "\\\\";
      ++i;
    } else if (c == '\n') {
      out += "\\n";
      ++i;
    } else if (c == '\t') {
      out += "\\t";
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      hex(c);
      ++i;
    } else if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (size_t length = Utf8SequenceAt(path, i); length != 0) {
      // A well-formed UTF-8 sequence is kept as is.
      out.append(path.substr(i, length));
      i += length;
    } else {
      hex(c);
      ++i;
    }
  }
  return out;
}

}  // namespace daxpolicy::journal
