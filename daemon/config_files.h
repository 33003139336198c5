// SPDX-License-Identifier: Apache-2.0
#pragma once

// Reads policy.yaml and policy.d/*.yaml from disk for the pure loader.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/loader.h"

namespace daxpolicy::daemon {

inline constexpr const char* kDefaultConfig = "/etc/daxpolicy/policy.yaml";

// Policy files are small: a file longer than this is refused, not read whole.
inline constexpr size_t kMaxPolicyFileBytes = size_t{4} << 20;

// Reads a regular file and nothing else: a fifo, socket, device or directory is
// never opened (the error says what it is). A file longer than `limit` bytes is
// refused ("larger than 4 MiB") instead of being read whole. `kind` (e.g. "a
// policy file") names what the caller reads: a directory and an oversized file
// are said not to be one.
bool ReadRegularFile(const std::string& path, size_t limit, std::string* out, std::string* error,
                     std::string_view kind = {});

// The scope inspector the daemon and daxpolicyctl load policies with: refuses a
// scope when any existing component of it, the scope itself included, is a
// symbolic link (lstat; a missing component ends the walk, the daemon reports
// missing scopes itself).
std::optional<std::string> ScopeOnFileSystemProblem(const std::string& scope);

// The drop-in directory that belongs to a main file: <dir of config>/policy.d.
std::string DefaultDropinDir(const std::string& config);

// Loads `config` and every *.yaml file in `dropin_dir` (lexical order; a missing
// directory is fine). Only regular files are opened and read, at most
// kMaxPolicyFileBytes each; anything else (a fifo, a device, a directory) and
// unreadable files become diagnostics.
policy::LoadResult LoadPolicyFiles(const std::string& config, const std::string& dropin_dir);

// Validates one file the way `daxpolicyctl check` does: a file inside a directory
// named policy.d is a drop-in, anything else a complete policy.
std::vector<policy::Diagnostic> CheckPolicyFile(const std::string& path);

}  // namespace daxpolicy::daemon
