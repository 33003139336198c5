// SPDX-License-Identifier: Apache-2.0
#include "daemon/journal/journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <set>

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
  int dir_fd = open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return ErrnoError(errno, "cannot open state directory " + state_dir);
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

void Journal::Fold(const Segment& segment) {
  for (const Record& r : segment.records) {
    if (r.type == RecordType::kOriginal) {
      entries_.emplace(r.entry.key, r.entry);  // keeps the first original
    } else {
      entries_.erase(r.entry.key);
    }
  }
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

Result<size_t> Journal::RecordOriginals(const std::vector<JournalEntry>& entries) {
  Segment segment;
  segment.sequence = next_sequence_;
  std::set<FileKey> seen;
  for (const JournalEntry& e : entries) {
    if (e.original != policy::DaxState::kDax && e.original != policy::DaxState::kPageCache) {
      return Error{"original flag of " + PrintablePath(e.AbsolutePath()) + " is unknown", EINVAL};
    }
    if (e.path.find('\0') != std::string::npos || e.scope_root.find('\0') != std::string::npos) {
      return Error{"path contains a NUL byte", EINVAL};
    }
    if (entries_.count(e.key) || !seen.insert(e.key).second) continue;
    segment.records.push_back(Record{RecordType::kOriginal, e});
  }
  if (segment.records.empty()) return size_t{0};
  Result<void> written = WriteSegment(segment);
  if (!written.ok()) return written.error();
  Fold(segment);
  ++since_snapshot_;
  if (since_snapshot_ >= options_.compact_after_segments) {
    Result<void> compacted = Compact();
    if (!compacted.ok()) return compacted.error();
  }
  return segment.records.size();
}

Result<void> Journal::Forget(const std::vector<FileKey>& keys) {
  Segment segment;
  segment.sequence = next_sequence_;
  std::set<FileKey> seen;
  for (const FileKey& key : keys) {
    if (!entries_.count(key) || !seen.insert(key).second) continue;
    Record r;
    r.type = RecordType::kForget;
    r.entry.key = key;
    segment.records.push_back(std::move(r));
  }
  if (segment.records.empty()) return {};
  Result<void> written = WriteSegment(segment);
  if (!written.ok()) return written;
  Fold(segment);
  ++since_snapshot_;
  if (since_snapshot_ >= options_.compact_after_segments) return Compact();
  return {};
}

Result<void> Journal::Compact() {
  uint64_t previous_snapshot = 0;
  for (const auto& [sequence, snapshot] : segments_) {
    if (snapshot) previous_snapshot = sequence;
  }
  Segment segment;
  segment.sequence = next_sequence_;
  segment.snapshot = true;
  for (const auto& [key, entry] : entries_) {
    segment.records.push_back(Record{RecordType::kOriginal, entry});
  }
  Result<void> written = WriteSegment(segment);
  if (!written.ok()) return written;
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
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

std::vector<JournalEntry> Journal::Entries() const {
  std::vector<JournalEntry> out;
  out.reserve(entries_.size());
  for (const auto& [key, entry] : entries_) out.push_back(entry);
  return out;
}

std::function<Result<void>(uint64_t, uint64_t, std::string_view, policy::DaxState)>
Journal::BeforeChangeHook(std::string scope_root) {
  return [this, scope_root = std::move(scope_root)](uint64_t dev, uint64_t ino,
                                                    std::string_view path,
                                                    policy::DaxState original) -> Result<void> {
    if (Find(FileKey{dev, ino}) != nullptr) return {};
    Result<size_t> recorded =
        RecordOriginals({JournalEntry{FileKey{dev, ino}, scope_root, std::string(path), original}});
    if (!recorded.ok()) return recorded.error();
    return {};
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
    } else {
      // A well-formed UTF-8 sequence (no overlongs, no surrogates) is kept as is.
      size_t length = c >= 0xC2 && c <= 0xDF   ? 2
                      : c >= 0xE0 && c <= 0xEF ? 3
                      : c >= 0xF0 && c <= 0xF4 ? 4
                                               : 0;
      bool ok = length != 0 && i + length <= path.size();
      for (size_t k = 1; ok && k < length; ++k) {
        ok = (static_cast<unsigned char>(path[i + k]) & 0xC0) == 0x80;
      }
      if (ok && length >= 3) {
        const auto c1 = static_cast<unsigned char>(path[i + 1]);
        if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0) || (c == 0xF0 && c1 < 0x90) ||
            (c == 0xF4 && c1 >= 0x90)) {
          ok = false;
        }
      }
      if (ok) {
        out.append(path.substr(i, length));
        i += length;
      } else {
        hex(c);
        ++i;
      }
    }
  }
  return out;
}

}  // namespace daxpolicy::journal
