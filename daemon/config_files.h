// SPDX-License-Identifier: Apache-2.0
#pragma once

// Reads policy.yaml and policy.d/*.yaml from disk for the pure loader.

#include <string>
#include <vector>

#include "policy/loader.h"

namespace daxpolicy::daemon {

inline constexpr const char* kDefaultConfig = "/etc/daxpolicy/policy.yaml";

// The drop-in directory that belongs to a main file: <dir of config>/policy.d.
std::string DefaultDropinDir(const std::string& config);

// Loads `config` and every regular *.yaml file in `dropin_dir` (lexical order; a
// missing directory is fine). Unreadable files become diagnostics.
policy::LoadResult LoadPolicyFiles(const std::string& config, const std::string& dropin_dir);

// Validates one file the way `daxpolicyctl check` does: a file inside a directory
// named policy.d is a drop-in, anything else a complete policy.
std::vector<policy::Diagnostic> CheckPolicyFile(const std::string& path);

}  // namespace daxpolicy::daemon
