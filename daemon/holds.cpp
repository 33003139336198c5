// SPDX-License-Identifier: Apache-2.0
#include "daemon/holds.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace daxpolicy::daemon {

std::optional<HoldTarget> Identify(int fd, std::string* error) {
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    *error = std::string("fstat: ") + std::strerror(errno);
    return std::nullopt;
  }
  HoldTarget t;
  t.dev = st.st_dev;
  t.ino = st.st_ino;
  t.uid = st.st_uid;
  // MAX_HANDLE_SZ is 128 bytes of handle.
  std::string buf(sizeof(file_handle) + 128, '\0');
  auto* fh = reinterpret_cast<file_handle*>(buf.data());
  fh->handle_bytes = 128;
  int mount_id = 0;
  if (name_to_handle_at(fd, "", fh, &mount_id, AT_EMPTY_PATH) == 0) {
    buf.resize(sizeof(file_handle) + fh->handle_bytes);
    t.handle = std::move(buf);
  }
  return t;
}

HoldTable::AddResult HoldTable::Add(const HoldTarget& target, std::string path,
                                    policy::DaxState mode, std::string reason,
                                    const Caller& caller) {
  AddResult r;
  if (holds_.size() >= kMaxHolds) {
    r.error = "the daemon already keeps " + std::to_string(kMaxHolds) +
              " holds, its limit; release some first";
    return r;
  }
  if (!caller.root()) {
    auto mine = by_uid_.find(caller.uid);
    if (mine != by_uid_.end() && mine->second.size() >= kMaxHoldsPerUid) {
      r.error = "uid " + std::to_string(caller.uid) + " already has " +
                std::to_string(kMaxHoldsPerUid) + " holds, the limit per user; release some first";
      return r;
    }
  }
  // Cookies are never 0 and never reused while the daemon runs (until 2^32 holds).
  uint32_t cookie = next_cookie_++;
  if (next_cookie_ == 0) next_cookie_ = 1;
  Entry e;
  e.info.cookie = cookie;
  e.info.path = std::move(path);
  e.info.mode = mode;
  e.info.reason = std::move(reason);
  e.info.owner = caller.sender;
  e.info.uid = caller.uid;
  e.info.dev = target.dev;
  e.info.ino = target.ino;
  e.target = target;
  holds_.emplace(cookie, std::move(e));
  const policy::FileKey key{target.dev, target.ino};
  by_file_[key].push_back(cookie);
  by_owner_[caller.sender].insert(cookie);
  by_uid_[caller.uid].insert(cookie);
  Recompute(key);
  r.cookie = cookie;
  return r;
}

void HoldTable::Recompute(const policy::FileKey& key) {
  auto files = by_file_.find(key);
  if (files == by_file_.end() || files->second.empty()) {
    if (files != by_file_.end()) by_file_.erase(files);
    effective_.erase(key);
    return;
  }
  // Cookies grow with age, so the first of a mode in cookie order is its oldest hold.
  const Entry* winner = nullptr;
  for (uint32_t c : files->second) {
    const Entry& e = holds_.at(c);
    if (winner == nullptr ||
        (e.info.mode == policy::DaxState::kPageCache &&
         winner->info.mode != policy::DaxState::kPageCache) ||
        (e.info.mode == winner->info.mode && c < winner->info.cookie)) {
      winner = &e;
    }
  }
  for (uint32_t c : files->second) {
    Entry& e = holds_.at(c);
    e.info.in_effect = e.info.mode == winner->info.mode;
  }
  effective_[key] = policy::Hold{winner->info.mode, winner->info.reason, winner->info.cookie};
}

void HoldTable::Remove(std::map<uint32_t, Entry>::iterator it, std::string why) {
  const uint32_t cookie = it->first;
  const policy::FileKey key{it->second.target.dev, it->second.target.ino};
  const HoldInfo& info = it->second.info;
  if (auto o = by_owner_.find(info.owner); o != by_owner_.end()) {
    o->second.erase(cookie);
    if (o->second.empty()) by_owner_.erase(o);
  }
  if (auto u = by_uid_.find(info.uid); u != by_uid_.end()) {
    u->second.erase(cookie);
    if (u->second.empty()) by_uid_.erase(u);
  }
  if (auto f = by_file_.find(key); f != by_file_.end()) {
    std::erase(f->second, cookie);
  }
  ended_.push_back(EndedHold{cookie, info.path, std::move(why)});
  holds_.erase(it);
  Recompute(key);
}

bool HoldTable::Release(uint32_t cookie, const Caller& caller) {
  auto it = holds_.find(cookie);
  if (it == holds_.end()) return false;
  const HoldInfo& info = it->second.info;
  if (!caller.root() && caller.uid != info.uid && caller.sender != info.owner) return false;
  Remove(it, "released");
  return true;
}

size_t HoldTable::ReleaseOwner(const std::string& owner) {
  auto o = by_owner_.find(owner);
  if (o == by_owner_.end()) return 0;
  std::vector<uint32_t> cookies(o->second.begin(), o->second.end());
  for (uint32_t c : cookies) {
    if (auto it = holds_.find(c); it != holds_.end()) Remove(it, "holder left the bus");
  }
  return cookies.size();
}

size_t HoldTable::Prune(const std::function<int(uint64_t dev)>& mount_fd) {
  std::vector<std::pair<uint32_t, const char*>> gone;
  // Per device, asked once: the scope's fd (-1: no scope) and, as open_by_handle_at needs a
  // real fd on the filesystem, not an O_PATH one, a directory opened from it.
  struct Mount {
    int scope_fd = -1;
    int dir_fd = -1;
  };
  std::unordered_map<uint64_t, Mount> mounts;
  for (const auto& [cookie, e] : holds_) {
    auto [m, inserted] = mounts.try_emplace(e.target.dev);
    if (inserted) m->second.scope_fd = mount_fd(e.target.dev);
    Mount& mount = m->second;
    if (mount.scope_fd < 0) {
      gone.emplace_back(cookie, "scope gone");
      continue;
    }
    if (e.target.handle.empty()) continue;  // no handles here: kept until released
    if (mount.dir_fd < 0) {
      mount.dir_fd = openat(mount.scope_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (mount.dir_fd < 0) continue;
    std::string copy = e.target.handle;
    int fd = open_by_handle_at(mount.dir_fd, reinterpret_cast<file_handle*>(copy.data()),
                               O_PATH | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ESTALE || errno == ENOENT) gone.emplace_back(cookie, "file gone");
      continue;  // EPERM, ENOMEM...: not proof that the file is gone
    }
    struct stat st {};
    const bool alive =
        fstat(fd, &st) == 0 && st.st_nlink > 0 && static_cast<uint64_t>(st.st_ino) == e.target.ino;
    close(fd);
    if (!alive) gone.emplace_back(cookie, "file gone");
  }
  for (const auto& [dev, mount] : mounts) {
    if (mount.dir_fd >= 0) close(mount.dir_fd);
  }
  for (const auto& [cookie, why] : gone) Remove(holds_.find(cookie), why);
  return gone.size();
}

void HoldTable::ForEach(const Caller& caller,
                        const std::function<void(const HoldInfo&)>& visit) const {
  if (caller.root()) {
    for (const auto& [cookie, e] : holds_) visit(e.info);
    return;
  }
  // Only this caller's own holds are looked at: others' floods cost it nothing.
  std::set<uint32_t> mine;
  if (auto u = by_uid_.find(caller.uid); u != by_uid_.end()) mine = u->second;
  if (auto o = by_owner_.find(caller.sender); o != by_owner_.end()) {
    mine.insert(o->second.begin(), o->second.end());
  }
  for (uint32_t c : mine) visit(holds_.at(c).info);
}

std::vector<EndedHold> HoldTable::TakeEnded() {
  std::vector<EndedHold> out;
  out.swap(ended_);
  return out;
}

}  // namespace daxpolicy::daemon
