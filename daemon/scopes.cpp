// SPDX-License-Identifier: Apache-2.0
#include "daemon/scopes.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <unordered_set>
#include <utility>

#include "plugins/host/mount_table.h"
#include "policy/glob.h"

namespace daxpolicy::daemon {

std::vector<ScopeFacts> HostMountInspector::Inspect(const std::vector<std::string>& paths,
                                                    std::vector<std::string>* problems) {
  std::vector<ScopeFacts> out;
  auto table = host::MountTable::Load(roots_);
  if (!table.ok()) problems->push_back("cannot read the mount table: " + table.error().message);
  for (const std::string& path : paths) {
    ScopeFacts f;
    f.mount.mount_point = path;
    f.root_fd = open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (f.root_fd < 0) {
      const int err = errno;
      f.problems.push_back("scope " + path + " cannot be opened: " + std::strerror(err));
      f.flag_blocked = "scope root cannot be opened";
      out.push_back(std::move(f));
      continue;
    }
    struct stat st {};
    struct statfs sfs {};
    fstat(f.root_fd, &st);
    f.dev = st.st_dev;
    f.mount.dev = st.st_dev;
    struct statx sx {};
    if (statx(f.root_fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) == 0 &&
        (sx.stx_mask & STATX_MNT_ID)) {
      f.mount_id = sx.stx_mnt_id;
    }
    const host::MountEntry* mount = table.ok() ? table->Place(path) : nullptr;
    std::string over = table.ok() ? table->MountOverProblem(path, f.mount_id) : "";
    f.covered = mount != nullptr && !over.empty();
    if (mount == nullptr || f.covered) {
      f.flag_blocked = mount == nullptr ? "no mount found for the scope in the mount table" : over;
      f.problems.push_back("scope " + path + ": " + f.flag_blocked);
      out.push_back(std::move(f));
      continue;
    }
    f.on_known_mount = true;
    host::DaxCheckInput in;
    in.block_size = fstatfs(f.root_fd, &sfs) == 0 ? static_cast<uint64_t>(sfs.f_bsize) : 0;
    in.page_size = page_size_;
    in.kernel = kernel_;
    host::MountDaxCapability cap = host::AssessMountDax(*mount, roots_, in);
    if (!cap.per_file_flag.ok) f.flag_blocked = cap.per_file_flag.reason;
    if (!cap.effective.ok) f.mount.effective_blocked_reason = cap.effective.reason;
    f.mount.mount_point = mount->mount_point;
    f.media = media::MountInput{mount->mount_point, mount->major, mount->minor, mount->fs_type, {}};
    for (const auto* list : {&mount->mount_options, &mount->super_options}) {
      for (const auto& o : *list) {
        if (!f.media.mount_options.empty()) f.media.mount_options += ",";
        f.media.mount_options += o;
      }
    }
    out.push_back(std::move(f));
  }
  return out;
}

ScopeSet::~ScopeSet() {
  for (const plugins::ScopeInfo& s : scopes.list) {
    if (s.root_fd >= 0) close(s.root_fd);
  }
}

std::shared_ptr<ScopeSet> PrepareScopes(std::shared_ptr<const policy::Policy> policy,
                                        MountInspector& inspector) {
  auto set = std::make_shared<ScopeSet>();
  std::vector<ScopeFacts> facts = inspector.Inspect(policy->scopes, &set->problems);
  facts.resize(policy->scopes.size());
  set->scopes.list.reserve(policy->scopes.size());
  set->mounts.reserve(policy->scopes.size());
  std::vector<std::string> probe_dirs;
  std::unordered_set<uint64_t> watched_devs;
  std::unordered_set<std::string> probe_mounts;
  for (size_t i = 0; i < policy->scopes.size(); ++i) {
    const std::string& path = policy->scopes[i];
    ScopeFacts& f = facts[i];
    for (std::string& p : f.problems) set->problems.push_back(std::move(p));
    if (f.on_known_mount && !f.flag_blocked.empty()) {
      set->problems.push_back("scope " + path + ": per-file DAX cannot work: " + f.flag_blocked);
    }
    plugins::ScopeInfo s;
    s.path = path;
    s.root_fd = f.root_fd;
    s.usable = f.root_fd >= 0 && !f.covered;
    s.mount = static_cast<uint16_t>(set->scopes.list.size());
    s.dev = f.dev;
    s.mount_id = f.mount_id;
    s.flag_blocked = std::move(f.flag_blocked);
    s.media = std::move(f.media);
    // Close events are watched per filesystem: one root of each is enough.
    if (f.on_known_mount && watched_devs.insert(f.dev).second) set->watch_roots.push_back(path);
    // The file table never holds the media probe files.
    if (!s.media.mount_point.empty() && probe_mounts.insert(s.media.mount_point).second) {
      std::string root = s.media.mount_point == "/" ? "" : s.media.mount_point;
      probe_dirs.push_back(root + "/" + policy->daemon.probe_dir);
    }
    set->mounts.push_back(std::move(f.mount));
    set->scopes.list.push_back(std::move(s));
  }
  set->scopes.excluded = [policy, probe_dirs](std::string_view path, bool) {
    for (const std::string& d : probe_dirs) {
      if (policy::PathIsWithin(path, d)) return true;
    }
    return policy->ProtectedBy(path) != nullptr;
  };
  return set;
}

void WatchScopes(const ScopeSet& set, files::CloseEventSource* watcher,
                 std::string* watcher_problem) {
  if (watcher == nullptr) return;
  for (const std::string& path : set.watch_roots) {
    auto w = watcher->WatchFilesystem(path);
    if (!w.ok() && watcher_problem->empty()) {
      *watcher_problem = "close events unavailable on " + path + " (" + w.error().message +
                         "); pending files are re-checked every cycle";
    }
  }
}

}  // namespace daxpolicy::daemon
