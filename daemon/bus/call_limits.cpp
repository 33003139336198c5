// SPDX-License-Identifier: Apache-2.0
#include "daemon/bus/call_limits.h"

#include <algorithm>
#include <vector>

namespace daxpolicy::bus {

std::optional<std::string> CallLimiter::Admit(const std::string& sender, int64_t now_ns,
                                              const UidLookup& lookup) {
  auto known = uids_.find(sender);
  if (known == uids_.end()) {
    std::optional<uid_t> uid = lookup();
    // Without a uid the call goes on: the method's own checks refuse it (PermissionDenied).
    if (!uid) return std::nullopt;
    if (uids_.size() >= kMaxRememberedSenders) {
      // Names that left without a NameOwnerChanged seen: forget the older half.
      std::vector<uint64_t> order;
      order.reserve(uids_.size());
      for (const auto& [name, s] : uids_) order.push_back(s.seen);
      auto middle = order.begin() + static_cast<std::ptrdiff_t>(order.size() / 2);
      std::nth_element(order.begin(), middle, order.end());
      const uint64_t cut = *middle;
      for (auto it = uids_.begin(); it != uids_.end();) {
        it = it->second.seen < cut ? uids_.erase(it) : std::next(it);
      }
    }
    known = uids_.emplace(sender, Sender{*uid, next_seen_++}).first;
  }
  const uid_t uid = known->second.uid;
  if (uid == 0) return std::nullopt;
  auto [it, inserted] = buckets_.try_emplace(uid);
  Bucket& b = it->second;
  if (inserted) {
    b.tokens = burst_;
  } else if (now_ns > b.at_ns) {
    const double refill = static_cast<double>(now_ns - b.at_ns) * per_second_ / 1e9;
    b.tokens = std::min<double>(burst_, b.tokens + refill);
  }
  b.at_ns = std::max(b.at_ns, now_ns);
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return std::nullopt;
  }
  return "too many calls from uid " + std::to_string(uid) + ": at most " +
         std::to_string(per_second_) + " per second after a burst of " + std::to_string(burst_) +
         "; try again later";
}

void CallLimiter::Forget(const std::string& sender) { uids_.erase(sender); }

std::optional<uid_t> CallLimiter::KnownUid(const std::string& sender) const {
  auto it = uids_.find(sender);
  if (it == uids_.end()) return std::nullopt;
  return it->second.uid;
}

}  // namespace daxpolicy::bus
