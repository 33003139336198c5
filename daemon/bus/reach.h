// SPDX-License-Identifier: Apache-2.0
#pragma once

/// What an unprivileged D-Bus caller may learn about: a path it could reach itself, i.e. one
/// where it has search (x) permission on every directory from "/" to the path's parent, with
/// the uid, gid and supplementary groups the bus daemon reports for it. The permission bits
/// are checked (owner, group, other); ACLs are not consulted, so an ACL that grants more
/// than the bits shows nothing more. Root reaches everything.

#include <string>
#include <string_view>
#include <unordered_map>

#include "daemon/caller.h"

namespace daxpolicy::bus {

class ReachCheck {
 public:
  explicit ReachCheck(const daemon::Caller& caller) : caller_(caller) {}
  /// True when the caller could reach the absolute, normalized `path`.
  bool Reachable(std::string_view path);

 private:
  bool Searchable(const std::string& dir);
  const daemon::Caller& caller_;
  std::unordered_map<std::string, bool> cache_;  // directory -> the caller may pass it
};

}  // namespace daxpolicy::bus
