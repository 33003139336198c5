// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Scope setup: for each scope root of a policy, its mount, whether the
/// per-file DAX flag and effective DAX can work there, the mount the media
/// source maps to a device, the fanotify mark for close events, and what the
/// file table must leave out. Run when the engine starts and for every new
/// policy; a reload prepares the set off the loop thread (PrepareScopes) and the
/// loop only marks each filesystem once (WatchScopes) and swaps it in.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "plugins/files/close_watcher.h"
#include "plugins/host/dax_capability.h"
#include "plugins/host/roots.h"
#include "plugins/telemetry.h"
#include "policy/policy.h"
#include "policy/snapshot.h"

namespace daxpolicy::daemon {

/// What the host says about one scope root.
struct ScopeFacts {
  int root_fd = -1;           ///< O_PATH directory, owned by the caller from now on; -1: unusable
  uint64_t dev = 0;           ///< st_dev of the root
  uint64_t mount_id = 0;      ///< statx STATX_MNT_ID of the root (0 = unknown)
  bool covered = false;       ///< a mount is over the root: never scanned
  policy::MountRecord mount;  ///< dev, mount point, why effective DAX cannot work
  /// Why the per-file flag cannot work ("" = it can): the reason alone;
  /// PrepareScopes reports it in Degraded for a root on a known mount.
  std::string flag_blocked;
  media::MountInput media;      ///< mount_point "" when no mount was found
  bool on_known_mount = false;  ///< found in the mount table (close events can be marked)
  /// For Degraded, what keeps the root itself from use, e.g. "scope /x cannot be opened: ...".
  std::vector<std::string> problems;
};

/// Looks at scope roots on the host (HostMountInspector) or in a test's table.
class MountInspector {
 public:
  virtual ~MountInspector() = default;
  /// Facts about each path, in order. `problems` gets what concerns all of
  /// them (e.g. an unreadable mount table).
  virtual std::vector<ScopeFacts> Inspect(const std::vector<std::string>& paths,
                                          std::vector<std::string>* problems) = 0;
};

/// The mount table of <roots.proc>, the DAX capability checks of
/// plugins/host/dax_capability.h, the running kernel's release and the system's
/// page size (DAX needs blocks of that size).
class HostMountInspector final : public MountInspector {
 public:
  HostMountInspector(host::Roots roots, std::optional<host::KernelDaxSupport> kernel,
                     uint32_t page_size)
      : roots_(std::move(roots)), kernel_(std::move(kernel)), page_size_(page_size) {}
  std::vector<ScopeFacts> Inspect(const std::vector<std::string>& paths,
                                  std::vector<std::string>* problems) override;

 private:
  host::Roots roots_;
  std::optional<host::KernelDaxSupport> kernel_;
  uint32_t page_size_;
};

/// The scope list of a policy, holding the root fds open (closed with it).
struct ScopeSet {
  plugins::ScopeList scopes;
  std::vector<policy::MountRecord> mounts;  ///< Snapshot::mounts, parallel to scopes.list
  std::vector<std::string> problems;        ///< per-scope and feature problems (Degraded)
  /// One scope root per filesystem whose closes can be watched (on a known mount), for
  /// WatchScopes.
  std::vector<std::string> watch_roots;
  ScopeSet() = default;
  ScopeSet(const ScopeSet&) = delete;
  ScopeSet& operator=(const ScopeSet&) = delete;
  ~ScopeSet();
};

/// Prepares the scopes of `policy`: inspects the roots (a root on a known mount
/// where the per-file flag cannot work is reported as "scope X: per-file DAX
/// cannot work: <ScopeFacts::flag_blocked>") and excludes protect patterns and the
/// media probe directories from the file table. Touches nothing but `inspector`,
/// so a reload runs it off the loop thread; scopes.generation is left 0.
std::shared_ptr<ScopeSet> PrepareScopes(std::shared_ptr<const policy::Policy> policy,
                                        MountInspector& inspector);

/// Marks the filesystems of a prepared set for close events: one WatchFilesystem per
/// filesystem, not per scope. The first failure goes to *watcher_problem when it is empty.
void WatchScopes(const ScopeSet& set, files::CloseEventSource* watcher,
                 std::string* watcher_problem);

}  // namespace daxpolicy::daemon
