// SPDX-License-Identifier: Apache-2.0
#pragma once

/// YAML text -> Policy. The caller reads the files and hands over their text; the
/// loader does no I/O: a caller that wants scopes checked on the file system
/// passes a ScopeInspector.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "policy/policy.h"

namespace daxpolicy::policy {

struct PolicySource {
  std::string name;  // file name used in messages
  std::string text;
};

struct Diagnostic {
  std::string file;
  int line = 0;    // 1-based; 0 when the position is unknown
  int column = 0;  // 1-based
  std::string message;
  std::string ToString() const;  // "FILE:LINE:COL: message"
};

struct LoadResult {
  std::optional<Policy> policy;  // set only when errors is empty
  std::vector<Diagnostic> errors;
};

// Looks at a normalized scope on the file system and says what makes it unfit,
// or nullopt. The text follows "scope '<path>' ", e.g. "is reached through a
// symlink ('/a/b'); name the real directory".
using ScopeInspector = std::function<std::optional<std::string>(const std::string& scope)>;

// Scopes under these are refused whatever the file system says: kernel
// pseudo-filesystems and device nodes, where opening a file has side effects.
inline constexpr const char* kForbiddenScopeRoots[] = {"/proc", "/sys", "/dev"};

// The main policy file, then the drop-ins (policy.d/*.yaml) in the order given
// (the caller sorts them lexically). Drop-ins may hold apiVersion, scopes,
// protect and rules; their rules are appended. Every error is collected.
// The loader itself never touches the file system: `inspector` (empty by
// default: no file system checks) is how the daemon and daxpolicyctl look at
// each scope (daemon::ScopeOnFileSystemProblem).
LoadResult LoadPolicy(const PolicySource& main, const std::vector<PolicySource>& dropins = {},
                      const ScopeInspector& inspector = {});

// Validates one drop-in on its own (scope containment is checked only with a main file).
std::vector<Diagnostic> CheckDropin(const PolicySource& dropin,
                                    const ScopeInspector& inspector = {});

}  // namespace daxpolicy::policy
