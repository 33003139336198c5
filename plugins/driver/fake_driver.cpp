// SPDX-License-Identifier: Apache-2.0
#include "plugins/driver/fake_driver.h"

#include <cerrno>

namespace daxpolicy::driver {

void FakeDriver::SetFile(const std::string& path, FileFlags flags) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  files_[path] = flags;
}

void FakeDriver::Block(const std::string& path, Blocked blocked) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  blocks_[path] = std::move(blocked);
}

void FakeDriver::Unblock(const std::string& path) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  blocks_.erase(path);
}

void FakeDriver::SetHeld(const std::string& path, bool held) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  held_[path] = held;
}

const FileFlags* FakeDriver::Find(const std::string& path) const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  auto it = files_.find(path);
  return it == files_.end() ? nullptr : &it->second;
}

Result<FileFlags> FakeDriver::Read(const FileRef& ref) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  auto it = files_.find(ref.path);
  if (it == files_.end()) return Error{std::string(kReasonVanished), ENOENT};
  if (ref.expected.ino != 0 &&
      (it->second.dev != ref.expected.dev || it->second.ino != ref.expected.ino)) {
    return Error{std::string(kReasonReplaced), ESTALE};
  }
  return it->second;
}

Result<ApplyOutcome> FakeDriver::Apply(const FileRef& ref, DaxState desired,
                                       const ApplyHooks& hooks) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  calls_.push_back(Call{ref.path, desired});
  if (desired == DaxState::kUnknown) {
    return Error{"desired DAX state must be dax or page-cache", EINVAL};
  }
  Result<FileFlags> read = Read(ref);
  if (!read.ok()) {
    Blocker blocker = read.error().code == ENOENT ? Blocker::kVanished : Blocker::kReplaced;
    return BlockedOutcome(Blocked{blocker, read.error().code, read.error().message});
  }
  FileFlags& file = files_[ref.path];
  ApplyOutcome outcome;
  outcome.kind = file.kind;
  outcome.physical_before = file.physical;
  outcome.physical_after = file.physical;
  outcome.effective = file.effective;
  if (file.physical == desired) {
    outcome.result = ApplyResult::kUnchanged;
    return outcome;
  }
  if (desired == DaxState::kPageCache && hooks.maps_sync) {
    Result<bool> mapped = hooks.maps_sync(file.dev, file.ino);
    if (!mapped.ok() || *mapped) {
      return BlockedOutcome(Blocked{Blocker::kMapSync, EBUSY, std::string(kReasonMapSync)},
                            file.physical, file.kind);
    }
  }
  if (auto it = blocks_.find(ref.path); it != blocks_.end()) {
    return BlockedOutcome(it->second, file.physical, file.kind);
  }
  if (hooks.before_change) {
    Result<void> recorded = hooks.before_change(file.dev, file.ino, ref.path, file.physical, -1);
    if (!recorded.ok()) return recorded.error();
  }
  file.physical = desired;
  if (file.kind == FileKind::kRegular && !held_[ref.path]) file.effective = desired;
  if (file.kind == FileKind::kDirectory) file.effective = DaxState::kPageCache;
  outcome.result = ApplyResult::kChanged;
  outcome.physical_after = file.physical;
  outcome.effective = file.effective;
  return outcome;
}

}  // namespace daxpolicy::driver
