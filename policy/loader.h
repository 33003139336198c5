// SPDX-License-Identifier: Apache-2.0
#pragma once

/// YAML text -> Policy. Pure: the caller reads the files and hands over their text.

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

// The main policy file, then the drop-ins (policy.d/*.yaml) in the order given
// (the caller sorts them lexically). Drop-ins may hold apiVersion, scopes,
// protect and rules; their rules are appended. Every error is collected.
LoadResult LoadPolicy(const PolicySource& main, const std::vector<PolicySource>& dropins = {});

// Validates one drop-in on its own (scope containment is checked only with a main file).
std::vector<Diagnostic> CheckDropin(const PolicySource& dropin);

}  // namespace daxpolicy::policy
