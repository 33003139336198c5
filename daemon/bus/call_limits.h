// SPDX-License-Identifier: Apache-2.0
#pragma once

/// How many Manager method calls each user may make: a token bucket per uid (root is not
/// limited), so that one user's flood of calls costs the loop little and does not hold up
/// the others. A call over the limit is refused before any work is done for it: no
/// credential query of the bus, no file lookup, only an error reply.
///
/// The uid of a bus connection never changes, so it is asked of the bus once per unique
/// name and remembered until the name leaves the bus (Forget).

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

namespace daxpolicy::bus {

/// Calls a user other than root may make at once after being idle.
inline constexpr uint32_t kCallBurst = 500;
/// Calls per second a user other than root may keep making.
inline constexpr uint32_t kCallsPerSecond = 200;
/// Unique names whose uid is remembered; beyond it the oldest half is asked again.
inline constexpr size_t kMaxRememberedSenders = 8192;

class CallLimiter {
 public:
  /// The uid of a unique bus name, asked of the bus; nullopt when it cannot be told.
  using UidLookup = std::function<std::optional<uid_t>()>;

  CallLimiter(uint32_t burst = kCallBurst, uint32_t per_second = kCallsPerSecond)
      : burst_(burst), per_second_(per_second) {}

  /// Whether a call from `sender` made at `now_ns` (CLOCK_MONOTONIC) may go on. `lookup`
  /// is called only when the sender's uid is not known yet. Returns nullopt when it may,
  /// else the message of the LimitExceeded error.
  std::optional<std::string> Admit(const std::string& sender, int64_t now_ns,
                                   const UidLookup& lookup);
  /// A unique name left the bus.
  void Forget(const std::string& sender);
  /// The uid of `sender` as the bus told it at its first call, if it is remembered.
  std::optional<uid_t> KnownUid(const std::string& sender) const;

  size_t remembered_senders() const { return uids_.size(); }

 private:
  struct Bucket {
    double tokens = 0;
    int64_t at_ns = 0;
  };
  struct Sender {
    uid_t uid = 0;
    uint64_t seen = 0;  // order of first sight, for eviction
  };
  uint32_t burst_;
  uint32_t per_second_;
  uint64_t next_seen_ = 0;
  std::unordered_map<std::string, Sender> uids_;
  std::unordered_map<uid_t, Bucket> buckets_;
};

}  // namespace daxpolicy::bus
