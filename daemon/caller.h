// SPDX-License-Identifier: Apache-2.0
#pragma once

// Who called over D-Bus, as the bus daemon vouches for it (the sender's credentials).

#include <sys/types.h>

#include <string>
#include <vector>

namespace daxpolicy::daemon {

struct Caller {
  std::string sender;  // unique bus name, ":1.42"
  uid_t uid = static_cast<uid_t>(-1);
  pid_t pid = 0;
  gid_t gid = static_cast<gid_t>(-1);
  std::vector<gid_t> groups;  // supplementary groups
  bool root() const { return uid == 0; }
};

// "sender (uid U, pid P)" for the log.
inline std::string Describe(const Caller& caller) {
  return caller.sender + " (uid " + std::to_string(caller.uid) + ", pid " +
         std::to_string(caller.pid) + ")";
}

}  // namespace daxpolicy::daemon
