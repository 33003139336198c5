// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Which processes hold given files open or mapped: one pass over
/// <proc>/[0-9]*. Open files come from fd/* (stat follows each link to the
/// open file, so deleted files are found too), mappings from maps (device and
/// inode columns, no stat). MAP_SYNC mappings are found in smaps, whose
/// "VmFlags:" line carries "sf" (synchronous page faults) for them; smaps is
/// read only for processes that map a file of interest, because the kernel
/// walks the page tables to produce it.
///
/// Only thread-group leaders are listed in /proc; threads sharing their
/// leader's fd table and address space need no separate visit.

#include <sys/types.h>

#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "plugins/host/roots.h"
#include "policy/result.h"

namespace daxpolicy::host {

/// A file's identity: st_dev and st_ino (statx dev as makedev(major, minor)).
struct FileId {
  uint64_t dev = 0;
  uint64_t ino = 0;
  auto operator<=>(const FileId&) const = default;
};

/// One process holding one file.
struct Holder {
  pid_t pid = 0;
  std::string comm;       ///< <proc>/PID/comm; "" when the process vanished before it was read
  bool open_fd = false;   ///< at least one fd refers to the file
  bool mapped = false;    ///< at least one mapping of the file
  bool map_sync = false;  ///< at least one of those mappings is MAP_SYNC
  bool operator==(const Holder&) const = default;
};

struct HolderScan {
  /// Holders per requested identity, by pid; identities nobody holds are absent.
  std::map<FileId, std::vector<Holder>> holders;
  uint32_t processes_scanned = 0;  ///< numeric entries seen, the excluded pid not counted
  /// Processes whose fd, maps or smaps could not be read completely because
  /// they exited mid-scan (ENOENT, ESRCH) or access was denied (EACCES,
  /// EPERM). Their holds, if any, may be missing from `holders`.
  uint32_t processes_skipped = 0;
};

/// Scans every process once for the given identities, skipping `exclude_pid`
/// (the daemon itself; pass 0 to exclude nobody). Fails only when <proc>
/// itself cannot be listed.
Result<HolderScan> FindHolders(const Roots& roots, const std::vector<FileId>& files,
                               pid_t exclude_pid);

/// The engine's way to ask who holds files: one call is one pass over the
/// processes (the engine makes at most one per cycle).
class HolderFinder {
 public:
  virtual ~HolderFinder() = default;
  virtual Result<HolderScan> Find(const std::vector<FileId>& files) = 0;
};

/// FindHolders over <roots.proc>, skipping `exclude_pid` (the daemon).
class ProcHolderFinder final : public HolderFinder {
 public:
  ProcHolderFinder(Roots roots, pid_t exclude_pid)
      : roots_(std::move(roots)), exclude_(exclude_pid) {}
  Result<HolderScan> Find(const std::vector<FileId>& files) override {
    return FindHolders(roots_, files, exclude_);
  }

 private:
  Roots roots_;
  pid_t exclude_;
};

}  // namespace daxpolicy::host
