// SPDX-License-Identifier: Apache-2.0
#include "daemon/bus/reach.h"

#include <sys/stat.h>

#include <algorithm>

namespace daxpolicy::bus {

bool ReachCheck::Searchable(const std::string& dir) {
  auto [it, inserted] = cache_.try_emplace(dir, false);
  if (!inserted) return it->second;
  struct stat st {};
  // Followed like the caller's own lookup would follow a symlinked directory.
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
  mode_t bit = S_IXOTH;
  if (st.st_uid == caller_.uid) {
    bit = S_IXUSR;
  } else if (st.st_gid == caller_.gid || std::find(caller_.groups.begin(), caller_.groups.end(),
                                                   st.st_gid) != caller_.groups.end()) {
    bit = S_IXGRP;
  }
  it->second = (st.st_mode & bit) != 0;
  return it->second;
}

bool ReachCheck::Reachable(std::string_view path) {
  if (caller_.root()) return true;
  if (path.empty() || path.front() != '/') return false;
  const size_t last = path.rfind('/');
  const std::string parent(path.substr(0, last == 0 ? 1 : last));
  if (auto hit = cache_.find(parent); hit != cache_.end()) return hit->second;
  // Every directory from the root down to the parent; the parent's answer is the result.
  bool ok = Searchable("/");
  for (size_t at = path.find('/', 1); ok && at != std::string_view::npos && at <= last;
       at = path.find('/', at + 1)) {
    ok = Searchable(std::string(path.substr(0, at)));
  }
  cache_[parent] = ok;
  return ok;
}

}  // namespace daxpolicy::bus
