// SPDX-License-Identifier: Apache-2.0
#pragma once

// Application holds (D-Bus Hold/Release/ListHolds) in one table keyed by cookie.
//
// Identity: a hold is taken on the file an fd refers to (resolved once beneath its scope
// root, without following any symlink) and remembers that file's handle
// (name_to_handle_at), which carries the inode generation: when the file is deleted, or its
// inode number passes to another file, the handle no longer opens it and Prune drops the
// hold. The table keeps no fd of the file (an open reference would delay a DAX switch).
//
// Precedence of several holds on one file: a page-cache hold always takes effect; a dax hold
// takes effect only while no page-cache hold exists on the same file (of any holder). Among
// holds of the winning mode, the oldest one's reason is shown. Every hold stays listed until
// it ends; ListHolds says which ones are in effect.
//
// Limits: kMaxHoldsPerUid holds for each uid but root, kMaxHolds in all; beyond them Add
// fails with a clear error. Every operation a caller starts costs O(holds of that file or of
// that caller), never O(all holds), so one caller's flood does not slow the others. Prune,
// once a cycle, checks every hold: O(all holds) with one scope lookup per filesystem.

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "daemon/caller.h"
#include "policy/evaluate.h"

namespace daxpolicy::daemon {

inline constexpr size_t kMaxHoldsPerUid = 256;
inline constexpr size_t kMaxHolds = 16384;

struct HoldInfo {
  uint32_t cookie = 0;
  std::string path;
  policy::DaxState mode = policy::DaxState::kUnknown;
  std::string reason;
  std::string owner;  // unique bus name of the holder
  uid_t uid = 0;
  bool in_effect = false;     // false: a page-cache hold on the same file wins over this dax hold
  uint64_t dev = 0, ino = 0;  // the file held
};

// A hold that ended, for the HoldEnded signal.
struct EndedHold {
  uint32_t cookie = 0;
  std::string path;
  std::string why;  // "released", "holder left the bus", "file gone", "scope gone"
};

// The file a hold is taken on, as Identify() found it through an fd.
struct HoldTarget {
  uint64_t dev = 0;
  uint64_t ino = 0;
  uid_t uid = 0;
  std::string handle;  // struct file_handle bytes, "" when the filesystem has none
};

// Reads the identity of the file `fd` (O_PATH is fine) refers to.
std::optional<HoldTarget> Identify(int fd, std::string* error);

class HoldTable {
 public:
  // Fails (kPermissionDenied) when the caller is at its limit or the table is full.
  struct AddResult {
    uint32_t cookie = 0;
    std::string error;  // set on failure
  };
  AddResult Add(const HoldTarget& target, std::string path, policy::DaxState mode,
                std::string reason, const Caller& caller);
  // Releases `cookie` when it exists and `caller` may release it (root, the hold's uid or
  // its bus connection); false otherwise, without saying which.
  bool Release(uint32_t cookie, const Caller& caller);
  // Every hold of a unique bus name that left the bus; returns how many.
  size_t ReleaseOwner(const std::string& owner);
  // Drops holds whose file is gone. `mount_fd(dev)` gives an fd on the filesystem of `dev`
  // (-1: no scope there any more, the hold ends); it is asked once per filesystem.
  size_t Prune(const std::function<int(uint64_t dev)>& mount_fd);

  // What the policy evaluation uses: per file, the hold that takes effect.
  const policy::Holds& effective() const { return effective_; }
  // Holds `caller` may see (root: all; others: their own), oldest first.
  void ForEach(const Caller& caller, const std::function<void(const HoldInfo&)>& visit) const;
  // Holds that ended since the last call (for the HoldEnded signal).
  std::vector<EndedHold> TakeEnded();

 private:
  struct Entry {
    HoldInfo info;
    HoldTarget target;
  };
  void Remove(std::map<uint32_t, Entry>::iterator it, std::string why);
  void Recompute(const policy::FileKey& key);

  std::map<uint32_t, Entry> holds_;  // by cookie: oldest first
  std::unordered_map<policy::FileKey, std::vector<uint32_t>, policy::FileKeyHash> by_file_;
  std::unordered_map<std::string, std::unordered_set<uint32_t>> by_owner_;
  std::unordered_map<uid_t, std::set<uint32_t>> by_uid_;
  policy::Holds effective_;
  std::vector<EndedHold> ended_;
  uint32_t next_cookie_ = 1;
};

}  // namespace daxpolicy::daemon
