// SPDX-License-Identifier: Apache-2.0
#include "daemon/config_files.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace daxpolicy::daemon {

namespace fs = std::filesystem;

namespace {

// Policy files are small; refuse anything absurd rather than reading it whole.
constexpr std::uintmax_t kMaxPolicyBytes = 4 << 20;

bool ReadText(const std::string& path, std::string* out, std::string* error) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    *error = "is a directory, not a policy file";
    return false;
  }
  auto size = fs::file_size(path, ec);
  if (!ec && size > kMaxPolicyBytes) {
    *error = "larger than 4 MiB; not a policy file";
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = std::strerror(errno);
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

}  // namespace

std::string DefaultDropinDir(const std::string& config) {
  return (fs::path(config).parent_path() / "policy.d").string();
}

policy::LoadResult LoadPolicyFiles(const std::string& config, const std::string& dropin_dir) {
  policy::LoadResult result;
  policy::PolicySource main{config, ""};
  std::string error;
  if (!ReadText(config, &main.text, &error)) {
    result.errors.push_back({config, 0, 0, "cannot read policy: " + error});
    return result;
  }
  std::vector<std::string> names;
  std::error_code ec;
  if (!dropin_dir.empty() && fs::is_directory(dropin_dir, ec)) {
    for (const auto& entry : fs::directory_iterator(dropin_dir, ec)) {
      const fs::path& p = entry.path();
      if (p.extension() == ".yaml" && entry.is_regular_file(ec)) names.push_back(p.string());
    }
    if (ec) {
      result.errors.push_back({dropin_dir, 0, 0, "cannot list drop-ins: " + ec.message()});
      return result;
    }
  }
  std::sort(names.begin(), names.end());
  std::vector<policy::PolicySource> dropins;
  for (const std::string& n : names) {
    policy::PolicySource s{n, ""};
    if (!ReadText(n, &s.text, &error)) {
      result.errors.push_back({n, 0, 0, "cannot read drop-in: " + error});
      continue;
    }
    dropins.push_back(std::move(s));
  }
  if (!result.errors.empty()) return result;
  return policy::LoadPolicy(main, dropins);
}

std::vector<policy::Diagnostic> CheckPolicyFile(const std::string& path) {
  policy::PolicySource src{path, ""};
  std::string error;
  if (!ReadText(path, &src.text, &error)) return {{path, 0, 0, "cannot read: " + error}};
  if (fs::path(path).parent_path().filename() == "policy.d") return policy::CheckDropin(src);
  return policy::LoadPolicy(src).errors;
}

}  // namespace daxpolicy::daemon
