// SPDX-License-Identifier: Apache-2.0
#include "plugins/driver/observe_driver.h"

#include <linux/fs.h>

#include <cerrno>

namespace daxpolicy::driver {

ObserveDriver::ObserveDriver(DriverOptions options) : options_(options), reader_(options.open) {}

Result<FileFlags> ObserveDriver::Read(const FileRef& ref) {
  BlockedOr<FileFlags> flags = reader_.Read(ref);
  if (!flags.ok()) return flags.blocked().ToError();
  return std::move(flags).value();
}

Result<ApplyOutcome> ObserveDriver::Apply(const FileRef& ref, DaxState desired,
                                          const ApplyHooks& hooks) {
  if (desired == DaxState::kUnknown) {
    return Error{"desired DAX state must be dax or page-cache", EINVAL};
  }
  BlockedOr<FileFlags> flags = reader_.Read(ref);
  if (!flags.ok()) return BlockedOutcome(flags.blocked());
  ApplyOutcome outcome;
  outcome.kind = flags->kind;
  outcome.physical_before = flags->physical;
  outcome.physical_after = flags->physical;
  outcome.effective = flags->effective;
  if (flags->kind == FileKind::kRegular && flags->links > 1 && !options_.allow_hard_links) {
    return BlockedOutcome(Blocked{Blocker::kHardLinks, EMLINK, HardLinksReason(flags->links)},
                          flags->physical, flags->kind);
  }
  if (flags->physical == desired) {
    outcome.result = ApplyResult::kUnchanged;
    return outcome;
  }
  if (flags->xflags & (FS_XFLAG_IMMUTABLE | FS_XFLAG_APPEND)) {
    return BlockedOutcome(Blocked{Blocker::kImmutable, EPERM, std::string(kReasonImmutable)},
                          flags->physical, flags->kind);
  }
  if (desired == DaxState::kPageCache && hooks.maps_sync) {
    Result<bool> mapped = hooks.maps_sync(flags->dev, flags->ino);
    if (!mapped.ok() || *mapped) {
      std::string reason(kReasonMapSync);
      if (!mapped.ok()) {
        reason = "cannot tell whether the file is mapped MAP_SYNC: " + mapped.error().message;
      }
      return BlockedOutcome(Blocked{Blocker::kMapSync, EBUSY, reason}, flags->physical,
                            flags->kind);
    }
  }
  observations_.push_back(
      Observation{ref.path, flags->dev, flags->ino, flags->kind, flags->physical, desired});
  outcome.result = ApplyResult::kObserved;
  return outcome;
}

}  // namespace daxpolicy::driver
