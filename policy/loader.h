// SPDX-License-Identifier: Apache-2.0
#pragma once

/// YAML text -> Policy. The caller reads the files and hands over their text; the
/// only look at the file system is the ScopeInspector's check of each scope.

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

// The inspector LoadPolicy uses by default: refuses a scope when any existing
// component of it, the scope itself included, is a symbolic link (lstat; a
// missing component ends the walk, the daemon reports missing scopes itself).
std::optional<std::string> ScopeOnFileSystemProblem(const std::string& scope);

// Scopes under these are refused whatever the file system says: kernel
// pseudo-filesystems and device nodes, where opening a file has side effects.
inline constexpr const char* kForbiddenScopeRoots[] = {"/proc", "/sys", "/dev"};

// The main policy file, then the drop-ins (policy.d/*.yaml) in the order given
// (the caller sorts them lexically). Drop-ins may hold apiVersion, scopes,
// protect and rules; their rules are appended. Every error is collected.
// `inspector` may be empty (no file system checks: for tools that only parse).
LoadResult LoadPolicy(const PolicySource& main, const std::vector<PolicySource>& dropins = {},
                      const ScopeInspector& inspector = ScopeOnFileSystemProblem);

// Validates one drop-in on its own (scope containment is checked only with a main file).
std::vector<Diagnostic> CheckDropin(const PolicySource& dropin,
                                    const ScopeInspector& inspector = ScopeOnFileSystemProblem);

}  // namespace daxpolicy::policy
