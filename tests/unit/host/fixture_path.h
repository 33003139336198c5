// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <filesystem>
#include <string>

namespace daxpolicy::host::testing {

// A committed fixture under tests/fixtures/host/.
inline std::filesystem::path Fixture(const std::string& name) {
  return std::filesystem::path(DAXPOLICY_SOURCE_DIR) / "tests" / "fixtures" / "host" / name;
}

}  // namespace daxpolicy::host::testing
