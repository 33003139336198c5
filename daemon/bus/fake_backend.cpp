// SPDX-License-Identifier: Apache-2.0
#include "daemon/bus/fake_backend.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "policy/evaluate.h"

namespace daxpolicy::bus {

FakeBackend::FakeBackend() = default;

ApiResult<FileView> FakeBackend::GetFile(const std::string& path) const {
  auto it = files.find(path);
  if (it == files.end()) {
    return ApiFail<FileView>(ApiError::kNotManaged, path + " is not tracked by daxpolicyd");
  }
  return ApiOk(it->second);
}

ApiResult<std::string> FakeBackend::Explain(const std::string& path) const {
  auto it = files.find(path);
  if (it == files.end()) {
    return ApiFail<std::string>(ApiError::kNotManaged, path + " is not tracked by daxpolicyd");
  }
  auto text = explanations.find(path);
  if (text != explanations.end()) return ApiOk(text->second);
  return ApiOk(path + ": " + std::string(policy::FileStateName(it->second.state)) + ", rule '" +
               it->second.rule + "'\n");
}

void FakeBackend::ListFiles(std::optional<policy::FileState> state,
                            const std::function<void(const FileView&)>& visit) const {
  for (const auto& [path, view] : files) {
    if (!state || view.state == *state) visit(view);
  }
}

uint64_t FakeBackend::ManagedFiles() const {
  return static_cast<uint64_t>(
      std::count_if(files.begin(), files.end(), [](const auto& f) { return f.second.managed; }));
}

uint64_t FakeBackend::PendingFiles() const {
  return static_cast<uint64_t>(std::count_if(files.begin(), files.end(), [](const auto& f) {
    return f.second.state == policy::FileState::kPending;
  }));
}

ApiResult<uint32_t> FakeBackend::AddHold(const std::string& path, policy::DaxState mode,
                                         const std::string& reason, const std::string& owner,
                                         uid_t uid) {
  auto it = files.find(path);
  if (it == files.end() || !it->second.managed) {
    return ApiFail<uint32_t>(ApiError::kNotManaged, path + " is not managed by daxpolicyd");
  }
  HoldInfo hold;
  hold.cookie = next_cookie++;
  hold.path = path;
  hold.mode = mode;
  hold.reason = reason;
  hold.owner = owner;
  hold.uid = uid;
  holds.push_back(hold);
  return ApiOk(hold.cookie);
}

bool FakeBackend::ReleaseHold(uint32_t cookie) {
  auto it = std::find_if(holds.begin(), holds.end(),
                         [&](const HoldInfo& h) { return h.cookie == cookie; });
  if (it == holds.end()) return false;
  holds.erase(it);
  return true;
}

size_t FakeBackend::ReleaseHoldsOf(const std::string& owner) {
  return std::erase_if(holds, [&](const HoldInfo& h) { return h.owner == owner; });
}

ApiResult<uid_t> FakeBackend::FileOwner(const std::string& path) const {
  auto it = owners.find(path);
  if (it != owners.end()) return ApiOk(it->second);
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    return ApiFail<uid_t>(ApiError::kNotManaged, path + ": " + std::strerror(errno));
  }
  return ApiOk(st.st_uid);
}

ApiResult<bool> FakeBackend::Reload() {
  ++reload_calls;
  if (reload_error) {
    last_reload_result = "refused: " + *reload_error;
    return ApiFail<bool>(ApiError::kPolicyInvalid, *reload_error);
  }
  ++current_generation;
  last_reload_result = "ok: generation " + std::to_string(current_generation);
  return ApiOk(true);
}

}  // namespace daxpolicy::bus
