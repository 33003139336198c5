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
                                         const std::string& reason, const Caller& caller) {
  auto it = files.find(path);
  if (it == files.end() || !it->second.managed) {
    return ApiFail<uint32_t>(ApiError::kNotManaged, path + " is not managed by daxpolicyd");
  }
  if (!caller.root()) {
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) {
      return ApiFail<uint32_t>(ApiError::kNotManaged, path + ": " + std::strerror(errno));
    }
    const uid_t owner = st.st_uid;
    if (owner != caller.uid) {
      return ApiFail<uint32_t>(ApiError::kPermissionDenied,
                               "uid " + std::to_string(caller.uid) + " may not hold " + path +
                                   ": only its owner (uid " + std::to_string(owner) +
                                   ") or root may");
    }
  }
  HoldInfo hold;
  hold.cookie = next_cookie++;
  hold.path = path;
  hold.mode = mode;
  hold.reason = reason;
  hold.owner = caller.sender;
  hold.uid = caller.uid;
  hold.in_effect = true;
  holds.push_back(hold);
  return ApiOk(hold.cookie);
}

bool FakeBackend::ReleaseHold(uint32_t cookie, const Caller& caller) {
  auto it = std::find_if(holds.begin(), holds.end(),
                         [&](const HoldInfo& h) { return h.cookie == cookie; });
  if (it == holds.end()) return false;
  if (!caller.root() && caller.uid != it->uid && caller.sender != it->owner) return false;
  ended.push_back(EndedHold{it->cookie, it->path, "released"});
  holds.erase(it);
  return true;
}

size_t FakeBackend::ReleaseHoldsOf(const std::string& owner) {
  return std::erase_if(holds, [&](const HoldInfo& h) {
    if (h.owner != owner) return false;
    ended.push_back(EndedHold{h.cookie, h.path, "holder left the bus"});
    return true;
  });
}

void FakeBackend::ForEachHold(const Caller& caller,
                              const std::function<void(const HoldInfo&)>& visit) const {
  for (const HoldInfo& h : holds) {
    if (caller.root() || h.uid == caller.uid || h.owner == caller.sender) visit(h);
  }
}

std::vector<EndedHold> FakeBackend::TakeEndedHolds() {
  std::vector<EndedHold> out;
  out.swap(ended);
  return out;
}

void FakeBackend::Reload(const Caller& /*caller*/, ReloadDone done) {
  ++reload_calls;
  ApiResult<bool> result;
  if (reload_error) {
    last_reload_result = "refused: " + *reload_error;
    result = ApiFail<bool>(ApiError::kPolicyInvalid, *reload_error);
  } else {
    ++current_generation;
    last_reload_result = "ok: generation " + std::to_string(current_generation);
    result = ApiOk(true);
  }
  if (on_reloaded) on_reloaded(result.ok(), last_reload_result);
  if (done) done(result);
}

ApiResult<std::string> FakeBackend::StartRecording(const std::string& path, uint64_t max_bytes,
                                                   const Caller& caller) {
  if (recording.recording) {
    return ApiFail<std::string>(ApiError::kFailed,
                                "a recording to '" + recording.path + "' runs already");
  }
  if (max_bytes != 0 &&
      (max_bytes < daemon::kMinTraceMaxBytes || max_bytes > daemon::kMaxTraceMaxBytes)) {
    return ApiFail<std::string>(ApiError::kInvalidArgument,
                                "the maximum trace size must be between 64 KiB and 2 GiB");
  }
  if (recording_error) return ApiFail<std::string>(ApiError::kFailed, *recording_error);
  recording.recording = true;
  recording.path = path.empty() ? default_trace : path;
  recording.max_bytes = max_bytes == 0 ? daemon::kDefaultTraceMaxBytes : max_bytes;
  recording.result = "recording since started by " + daemon::Describe(caller);
  return ApiOk(recording.path);
}

ApiResult<bool> FakeBackend::StopRecording(const Caller& caller) {
  if (!recording.recording) {
    return ApiFail<bool>(ApiError::kFailed, "no trace is being recorded");
  }
  recording.recording = false;
  ++recording.stopped;
  recording.result = "stopped by " + daemon::Describe(caller) + " after 0 interval(s), 0 bytes";
  return ApiOk(true);
}

}  // namespace daxpolicy::bus
