// SPDX-License-Identifier: Apache-2.0
#include "plugins/files/scanner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <utility>

#include "plugins/open_beneath.h"
#include "plugins/unique_fd.h"

namespace daxpolicy::files {
namespace {

constexpr unsigned kEntryMask =
    STATX_TYPE | STATX_INO | STATX_SIZE | STATX_MTIME | STATX_CTIME | STATX_MNT_ID;
constexpr size_t kDentsBufferBytes = 64 * 1024;

// The fixed part of struct linux_dirent64 (getdents64(2)); glibc exposes no type
// for it. The NUL-terminated name follows d_type, at offset 19.
struct LinuxDirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
};
constexpr size_t kDirentNameOffset = offsetof(LinuxDirent64, d_type) + 1;

int64_t Ns(const statx_timestamp& t) {
  return static_cast<int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

uint64_t DevOf(const struct statx& stx) { return makedev(stx.stx_dev_major, stx.stx_dev_minor); }

bool CopyName(std::string_view name, char (&buf)[256]) {
  if (name.empty() || name.size() >= sizeof(buf)) return false;
  std::memcpy(buf, name.data(), name.size());
  buf[name.size()] = '\0';
  return true;
}

void FillFromStatx(const struct statx& stx, policy::FileRecord* rec) {
  rec->ino = stx.stx_ino;
  rec->size = stx.stx_size;
  rec->mtime_ns = Ns(stx.stx_mtime);
  rec->available |= policy::kHaveSize;
  if (stx.stx_attributes_mask & STATX_ATTR_DAX) {
    rec->effective = (stx.stx_attributes & STATX_ATTR_DAX) ? policy::DaxState::kDax
                                                           : policy::DaxState::kPageCache;
    rec->available |= policy::kHaveEffective;
  }
}

// Counts a non-record entry and returns -1, else DT_REG or DT_DIR.
int Classify(const struct statx& stx, ScanStats* stats) {
  switch (stx.stx_mode & S_IFMT) {
    case S_IFREG:
      return DT_REG;
    case S_IFDIR:
      return DT_DIR;
    case S_IFLNK:
      ++stats->skipped_symlinks;
      return -1;
    case S_IFIFO:
      ++stats->skipped_fifos;
      return -1;
    case S_IFSOCK:
      ++stats->skipped_sockets;
      return -1;
    default:  // character and block devices
      ++stats->skipped_devices;
      return -1;
  }
}

}  // namespace

struct Scanner::Walk {
  policy::Snapshot* snap = nullptr;
  FileSampler* sampler = nullptr;
  bool full = false;
  // kEvents: what to look at again (nullptr: everything, as in the other modes),
  // and the names to sample in the directory being read (nullptr: none).
  const ScanHints* hints = nullptr;
  const std::unordered_set<std::string>* dir_sample = nullptr;
  int64_t racy_after_ns = 0;
  // The previous cycle had no access figures (SystemSample::access_withheld):
  // which files were read is not known.
  bool access_withheld = false;
  ScanStats stats;
  // The previous scan's table, read while the new one is built.
  const policy::FileTable* old_files = &owned_files;
  std::string_view old_names;
  policy::FileTable owned_files;  // empty: no previous table
  std::vector<DirState> old_dirs;
  std::vector<std::unordered_map<uint64_t, uint32_t>> old_by_ino;
  // The scope being walked.
  uint16_t scope = 0;
  uint16_t mount = 0;
  MountIdentity scope_mount;  // every directory walked is on it
  std::string path;  // scratch: paths for the predicate and error reports, never for syscalls
  std::unordered_map<std::string_view, uint32_t> old_by_name;  // scratch

  bool OnScopeMount(const struct statx& stx) const { return scope_mount.Holds(stx); }
};

Scanner::Scanner(std::vector<ScanScope> scopes, ExcludePredicate is_excluded, ScanLimits limits)
    : scopes_(std::move(scopes)), is_excluded_(std::move(is_excluded)), limits_(limits) {
  dents_.resize(kDentsBufferBytes);
}

void Scanner::SetExcludePredicate(ExcludePredicate is_excluded) {
  is_excluded_ = std::move(is_excluded);
  force_full_ = true;
}

size_t Scanner::StateBytes() const {
  size_t bytes = dirs_.capacity() * sizeof(DirState) + dents_.capacity();
  for (const auto& map : dir_by_ino_) {
    // Node-based map: one node (key, value, next pointer, cached hash) per entry plus buckets.
    bytes += map.size() * (sizeof(std::pair<const uint64_t, uint32_t>) + 2 * sizeof(void*)) +
             map.bucket_count() * sizeof(void*);
  }
  return bytes;
}

void Scanner::AddError(Walk& w, std::string path, int err, const char* what) {
  ++w.stats.error_count;
  if (w.stats.errors.size() < limits_.max_reported_errors) {
    w.stats.errors.push_back({std::move(path), err, what});
  }
}

ScanStats Scanner::Scan(policy::Snapshot* snapshot, ScanMode mode, FileSampler* sampler) {
  policy::Snapshot previous;
  previous.files = std::move(snapshot->files);
  previous.names = std::move(snapshot->names);
  previous.dir_paths = std::move(snapshot->dir_paths);
  return Scan(&previous, snapshot, mode, sampler, limits_.clock->WallNs());
}

bool Scanner::MustSample(const Walk& w, std::string_view name, const policy::FileRecord& rec) {
  if (w.hints == nullptr) return true;
  // A pending switch becomes effective when the inode is evicted, which no
  // event reports: a file whose flag and effective state differ is looked at
  // every cycle.
  constexpr uint16_t kBoth = policy::kHavePhysical | policy::kHaveEffective;
  if ((rec.available & kBoth) == kBoth && rec.physical != rec.effective) return true;
  // Reads and faults change the page-cache figures without a tree event: a
  // file the access source saw read or written in the last interval, or has
  // no figures for (tracing unavailable there), is looked at again.
  if (rec.kind == policy::FileKind::kRegular &&
      (w.access_withheld || !(rec.available & policy::kHaveAccess) || rec.read_bytes_rate > 0 ||
       rec.write_bytes_rate > 0)) {
    return true;
  }
  return w.dir_sample != nullptr && w.dir_sample->count(std::string(name)) != 0;
}

ScanStats Scanner::Scan(const policy::Snapshot* previous, policy::Snapshot* snapshot, ScanMode mode,
                        FileSampler* sampler, int64_t wall_now_ns, const ScanHints* hints) {
  Walk w;
  w.snap = snapshot;
  w.sampler = sampler;
  const bool consistent = previous != nullptr && previous->files.size() == last_files_ &&
                          previous->names.size() == last_names_ &&
                          previous->dir_paths.size() == last_dirs_ && dirs_.size() == last_dirs_;
  w.full = mode == ScanMode::kFull || force_full_ || !consistent ||
           (mode == ScanMode::kIncremental && limits_.full_rescan_every != 0 &&
            scans_since_full_ + 1 >= limits_.full_rescan_every);
  static const ScanHints kNoHints;
  const ScanHints* events =
      mode == ScanMode::kEvents && !w.full ? (hints ? hints : &kNoHints) : nullptr;
  w.stats.full = w.full;
  if (consistent) {
    // Kept even for a full scan: surviving records keep their telemetry.
    w.old_files = &previous->files;
    w.old_names = previous->names;
    w.old_dirs = std::move(dirs_);
    w.old_by_ino = std::move(dir_by_ino_);
  }
  w.old_by_ino.resize(scopes_.size());
  // Chunks of records that come out the same as the previous table's are shared with it.
  snapshot->files.BeginBuild(*w.old_files);
  snapshot->files.reserve(w.old_files->size());
  snapshot->names.clear();
  snapshot->names.reserve(w.old_names.size());
  snapshot->dir_paths.clear();
  dirs_.clear();
  dir_by_ino_.assign(scopes_.size(), {});

  w.racy_after_ns = wall_now_ns - limits_.racy_window_ns;
  w.access_withheld = previous != nullptr && previous->system.access_withheld;

  for (size_t s = 0; s < scopes_.size(); ++s) {
    const ScanScope& scope = scopes_[s];
    if (is_excluded_ && is_excluded_(scope.path, true)) {
      ++w.stats.skipped_excluded;
      continue;
    }
    UniqueFd fd(open(scope.path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) {
      const int err = errno;  // before the path is copied
      AddError(w, scope.path, err, "open scope root");
      continue;
    }
    struct statx stx {};
    if (statx(fd.get(), "", AT_EMPTY_PATH, kEntryMask, &stx) != 0) {
      const int err = errno;  // before the path is copied
      AddError(w, scope.path, err, "statx scope root");
      continue;
    }
    const uint64_t mnt_id = (stx.stx_mask & STATX_MNT_ID) ? stx.stx_mnt_id : 0;
    if ((scope.dev != 0 && DevOf(stx) != scope.dev) ||
        (scope.mount_id != 0 && mnt_id != 0 && mnt_id != scope.mount_id)) {
      // Something was mounted over the scope root (a bind mount of the same filesystem has
      // the same device but another mount id): its contents are never managed.
      AddError(w, scope.path, EXDEV, "scope root is not on the scope's mount");
      continue;
    }
    // The first scan pins the scope to the mount it found, unless the caller already did.
    if (scope.dev == 0) scopes_[s].dev = DevOf(stx);
    if (scope.mount_id == 0) scopes_[s].mount_id = mnt_id;
    w.scope = static_cast<uint16_t>(s);
    w.hints = events != nullptr && !(s < events->whole_scope.size() && events->whole_scope[s])
                  ? events
                  : nullptr;
    w.mount = scope.mount;
    w.scope_mount = {DevOf(stx), scope.mount_id != 0 ? scope.mount_id : mnt_id};
    const uint32_t index = static_cast<uint32_t>(snapshot->dir_paths.size());
    snapshot->dir_paths.push_back(scope.path);
    DirState st;
    st.ino = stx.stx_ino;
    st.mtime_ns = Ns(stx.stx_mtime);
    st.ctime_ns = Ns(stx.stx_ctime);
    st.scope = w.scope;
    dirs_.push_back(st);
    dir_by_ino_[s][st.ino] = index;
    WalkDir(w, fd.get(), index, 0);
  }

  snapshot->files.EndBuild();
  last_files_ = snapshot->files.size();
  last_names_ = snapshot->names.size();
  last_dirs_ = snapshot->dir_paths.size();
  scans_since_full_ = w.full ? 0 : scans_since_full_ + 1;
  force_full_ = false;
  return std::move(w.stats);
}

void Scanner::WalkDir(Walk& w, int fd, uint32_t dir_index, uint32_t depth) {
  policy::Snapshot& snap = *w.snap;
  const DirState* old = nullptr;
  if (auto it = w.old_by_ino[w.scope].find(dirs_[dir_index].ino);
      it != w.old_by_ino[w.scope].end()) {
    old = &w.old_dirs[it->second];
  }
  const size_t block_start = snap.files.size();
  const size_t names_start = snap.names.size();
  const std::unordered_set<std::string>* dir_sample = nullptr;
  bool must_read = false;
  if (w.hints != nullptr) {
    const std::string& path = snap.dir_paths[dir_index];
    must_read = w.hints->read_dirs.count(path) != 0;
    if (auto it = w.hints->sample.find(path); it != w.hints->sample.end()) dir_sample = &it->second;
  }
  w.dir_sample = dir_sample;
  bool done = false;
  if (!w.full && !must_read && old != nullptr && old->reusable &&
      old->mtime_ns == dirs_[dir_index].mtime_ns && old->ctime_ns == dirs_[dir_index].ctime_ns) {
    done = ReuseDir(w, fd, dir_index, *old);
    if (done) {
      ++w.stats.dirs_reused;
    } else {
      snap.files.resize(block_start);
      snap.names.resize(names_start);
    }
  }
  bool reusable = true;
  if (!done) reusable = ReadDir(w, fd, dir_index, old);
  {
    DirState& st = dirs_[dir_index];
    st.first_child = static_cast<uint32_t>(block_start);
    st.child_count = static_cast<uint32_t>(snap.files.size() - block_start);
    st.reusable = reusable && st.mtime_ns < w.racy_after_ns && st.ctime_ns < w.racy_after_ns;
  }

  const size_t block_end = snap.files.size();
  for (size_t i = block_start; i < block_end; ++i) {
    if (std::as_const(snap.files)[i].kind != policy::FileKind::kDirectory) {
      ++w.stats.files;
      continue;
    }
    ++w.stats.directories;
    const policy::FileRecord rec = std::as_const(snap.files)[i];
    const std::string_view name = snap.Name(rec);
    char cname[256];
    if (!CopyName(name, cname)) continue;
    auto child_path = [&] {
      const std::string& parent = snap.dir_paths[dir_index];
      return parent + (parent == "/" ? "" : "/") + std::string(name);
    };
    if (depth + 1 > limits_.max_depth) {
      ++w.stats.skipped_limit;
      continue;
    }
    UniqueFd sub(openat(fd, cname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub.valid()) {
      const int err = errno;  // child_path() allocates
      AddError(w, child_path(), err, "openat directory");
      dirs_[dir_index].reusable = false;
      continue;
    }
    struct statx stx {};
    if (statx(sub.get(), "", AT_EMPTY_PATH, kEntryMask, &stx) != 0) {
      const int err = errno;  // child_path() allocates
      AddError(w, child_path(), err, "statx directory");
      dirs_[dir_index].reusable = false;
      continue;
    }
    if (stx.stx_ino != rec.ino || !w.OnScopeMount(stx)) {
      // Renamed, replaced or mounted over between the parent's listing and the open.
      AddError(w, child_path(), 0, "directory identity changed before open");
      dirs_[dir_index].reusable = false;
      continue;
    }
    if (w.sampler != nullptr &&
        (w.hints == nullptr || w.old_by_ino[w.scope].count(stx.stx_ino) == 0 ||
         (dir_sample != nullptr && dir_sample->count(std::string(name)) != 0))) {
      policy::FileRecord sampled = rec;
      w.sampler->SampleOpen(sub.get(), stx, &sampled);
      snap.files.Set(i, sampled);
    }
    const uint32_t sub_index = static_cast<uint32_t>(snap.dir_paths.size());
    snap.dir_paths.push_back(child_path());
    DirState st;
    st.ino = stx.stx_ino;
    st.mtime_ns = Ns(stx.stx_mtime);
    st.ctime_ns = Ns(stx.stx_ctime);
    st.scope = w.scope;
    dirs_.push_back(st);
    dir_by_ino_[w.scope][st.ino] = sub_index;
    WalkDir(w, sub.get(), sub_index, depth + 1);
  }
}

bool Scanner::ReuseDir(Walk& w, int fd, uint32_t dir_index, const DirState& old) {
  policy::Snapshot& snap = *w.snap;
  if (snap.files.size() + old.child_count > limits_.max_records) return false;
  if (ReuseDirAsIs(w, dir_index, old)) return true;
  for (uint32_t j = old.first_child; j < old.first_child + old.child_count; ++j) {
    policy::FileRecord rec = (*w.old_files)[j];
    const std::string_view name = w.old_names.substr(rec.name_offset, rec.name_length);
    if (rec.kind == policy::FileKind::kDirectory) {
      // Still the same directory on the same mount? Something may have been
      // mounted on it, which does not change the parent's timestamps. (With
      // events, WalkDir's open and statx of each subdirectory checks that.)
      if (w.hints == nullptr) {
        char cname[256];
        struct statx stx {};
        if (!CopyName(name, cname) ||
            statx(fd, cname, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, kEntryMask, &stx) != 0 ||
            !S_ISDIR(stx.stx_mode) || stx.stx_ino != rec.ino || !w.OnScopeMount(stx)) {
          return false;
        }
      }
    } else if (w.sampler != nullptr && MustSample(w, name, rec)) {
      const SampleStatus status = w.sampler->SampleFile(fd, w.scope_mount, name, &rec);
      if (status == SampleStatus::kVanished || status == SampleStatus::kReplaced) {
        // Changed while the directory's timestamps stayed the same: read it again.
        return false;
      }
    }
    rec.dir = dir_index;
    rec.name_offset = static_cast<uint32_t>(snap.names.size());
    snap.names.append(name);
    snap.files.push_back(rec);
  }
  return true;
}

bool Scanner::ReuseDirAsIs(Walk& w, uint32_t dir_index, const DirState& old) {
  policy::Snapshot& snap = *w.snap;
  // The steady state with tree events: nothing came before this directory's
  // records that was not there before either, so they land where they were,
  // with the same parent index and name offsets, and none is looked at again.
  // Then they are base's records as they are (FileTable::AppendFromBase), and
  // their names one block of the old arena.
  if (w.hints == nullptr || snap.files.size() != old.first_child || old.child_count == 0) {
    return false;
  }
  const policy::FileTable& files = *w.old_files;
  uint64_t name_end = snap.names.size();
  for (uint32_t j = old.first_child; j < old.first_child + old.child_count; ++j) {
    const policy::FileRecord& rec = files[j];
    if (rec.dir != dir_index || rec.name_offset != name_end) return false;
    if (rec.kind != policy::FileKind::kDirectory && w.sampler != nullptr &&
        MustSample(w, w.old_names.substr(rec.name_offset, rec.name_length), rec)) {
      return false;
    }
    name_end += rec.name_length;
  }
  const size_t names_start = snap.names.size();
  snap.names.append(w.old_names.substr(names_start, name_end - names_start));
  snap.files.AppendFromBase(old.child_count);
  return true;
}

bool Scanner::ReadDir(Walk& w, int fd, uint32_t dir_index, const DirState* old) {
  policy::Snapshot& snap = *w.snap;
  ScanStats& stats = w.stats;
  bool reusable = true;
  w.old_by_name.clear();
  if (old != nullptr) {
    for (uint32_t j = old->first_child; j < old->first_child + old->child_count; ++j) {
      const policy::FileRecord& rec = (*w.old_files)[j];
      w.old_by_name.emplace(w.old_names.substr(rec.name_offset, rec.name_length), j);
    }
  }
  w.path = snap.dir_paths[dir_index];
  if (w.path != "/") w.path.push_back('/');
  const size_t prefix_len = w.path.size();
  ++stats.dirs_read;

  for (;;) {
    const long n = syscall(SYS_getdents64, fd, dents_.data(), dents_.size());
    if (n < 0) {
      const int err = errno;  // before the path is copied
      AddError(w, snap.dir_paths[dir_index], err, "getdents64");
      reusable = false;
      break;
    }
    if (n == 0) break;
    for (long off = 0; off < n;) {
      const auto* d = reinterpret_cast<const LinuxDirent64*>(dents_.data() + off);
      off += d->d_reclen;
      const char* cname = reinterpret_cast<const char*>(d) + kDirentNameOffset;
      if (cname[0] == '.' && (cname[1] == '\0' || (cname[1] == '.' && cname[2] == '\0'))) continue;
      const std::string_view name(cname);
      unsigned char type = d->d_type;
      switch (type) {
        case DT_LNK:
          ++stats.skipped_symlinks;
          continue;
        case DT_FIFO:
          ++stats.skipped_fifos;
          continue;
        case DT_SOCK:
          ++stats.skipped_sockets;
          continue;
        case DT_CHR:
        case DT_BLK:
          ++stats.skipped_devices;
          continue;
        default:
          break;
      }
      w.path.resize(prefix_len);
      w.path.append(name);

      policy::FileRecord rec;
      rec.ino = d->d_ino;
      // With a sampler, a regular file is checked through its own fd (openat2
      // RESOLVE_NO_XDEV plus an inode comparison), which makes a statx here redundant.
      bool statx_done = false;
      struct statx stx {};
      if (type != DT_REG || w.sampler == nullptr) {
        if (statx(fd, cname, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, kEntryMask, &stx) != 0) {
          if (const int err = errno; err != ENOENT) {
            AddError(w, w.path, err, "statx");
            reusable = false;
          }
          continue;
        }
        statx_done = true;
        const int classified = Classify(stx, &stats);
        if (classified < 0) continue;
        type = static_cast<unsigned char>(classified);
        if (!w.OnScopeMount(stx)) {
          // Read this directory again next time: an unmount does not touch its timestamps.
          ++stats.skipped_other_mount;
          reusable = false;
          continue;
        }
        rec.ino = stx.stx_ino;
      }
      const bool is_dir = type == DT_DIR;
      if (is_excluded_ && is_excluded_(w.path, is_dir)) {
        ++stats.skipped_excluded;
        continue;
      }
      if (is_dir && scopes_.size() > 1) {
        bool other_scope = false;
        for (size_t s = 0; s < scopes_.size(); ++s) {
          other_scope |= s != w.scope && scopes_[s].path == w.path;
        }
        if (other_scope) {
          ++stats.skipped_excluded;
          continue;
        }
      }
      if (snap.files.size() >= limits_.max_records) {
        ++stats.skipped_limit;
        continue;
      }
      // Keep the previous record (and the telemetry other samplers put in it)
      // when the name still names the same inode; with events, unsampled
      // unless they name it.
      bool keep = false;
      if (auto it = w.old_by_name.find(name); it != w.old_by_name.end()) {
        const policy::FileRecord& prev = (*w.old_files)[it->second];
        if (prev.ino == rec.ino && (prev.kind == policy::FileKind::kDirectory) == is_dir) {
          rec = prev;
          keep = w.hints != nullptr && !MustSample(w, name, prev);
        }
      }
      rec.kind = is_dir ? policy::FileKind::kDirectory : policy::FileKind::kRegular;
      rec.mount = w.mount;
      if (statx_done) FillFromStatx(stx, &rec);
      if (!is_dir && w.sampler != nullptr && !keep) {
        SampleStatus status = w.sampler->SampleFile(fd, w.scope_mount, name, &rec);
        if (status == SampleStatus::kReplaced && !statx_done) {
          // The name changed under us: classify it properly and try once more.
          if (statx(fd, cname, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, kEntryMask, &stx) != 0) {
            if (errno != ENOENT) reusable = false;
            continue;
          }
          const int classified = Classify(stx, &stats);
          if (classified < 0) continue;
          if (!w.OnScopeMount(stx)) {
            ++stats.skipped_other_mount;
            reusable = false;
            continue;
          }
          if (classified != DT_REG) {
            // A new directory under the old name: the next scan records it.
            reusable = false;
            continue;
          }
          rec = policy::FileRecord();
          rec.mount = w.mount;
          FillFromStatx(stx, &rec);
          status = w.sampler->SampleFile(fd, w.scope_mount, name, &rec);
        }
        if (status == SampleStatus::kVanished) continue;
        if (status == SampleStatus::kReplaced) reusable = false;
      }
      rec.dir = dir_index;
      rec.name_offset = static_cast<uint32_t>(snap.names.size());
      rec.name_length = static_cast<uint16_t>(name.size());
      snap.names.append(name);
      snap.files.push_back(rec);
    }
  }
  return reusable;
}

}  // namespace daxpolicy::files
