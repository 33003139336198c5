// SPDX-License-Identifier: Apache-2.0
#pragma once

// Who asked for a reload, while the policy files are read off the loop thread. One reload
// is read at a time; the requests that come in meanwhile (SIGHUP, D-Bus Reload) are joined
// into one more reload that starts when the current one ends, so each request is answered
// by a reload that read the files after it was made, and a burst of requests costs two
// reloads, not one per request. At most kMaxWaitingReloads requests wait; more are refused.

#include <cstddef>
#include <utility>
#include <vector>

namespace daxpolicy::daemon {

inline constexpr size_t kMaxWaitingReloads = 64;

template <class Request>
class ReloadQueue {
 public:
  enum class Asked { kStartNow, kQueued, kRefused };

  // A request: kStartNow when no reload is being read (start one for it), kQueued when it
  // waits for the next one, kRefused when kMaxWaitingReloads already wait.
  // The request is moved from only when it is not refused.
  Asked Ask(Request&& request) {
    if (!reading_) {
      reading_ = true;
      current_.push_back(std::move(request));
      return Asked::kStartNow;
    }
    if (next_.size() >= kMaxWaitingReloads) return Asked::kRefused;
    next_.push_back(std::move(request));
    return Asked::kQueued;
  }

  // The reload being read ended: the requests it answers.
  std::vector<Request> Finish() {
    std::vector<Request> out = std::move(current_);
    current_.clear();
    reading_ = false;
    return out;
  }

  // After Finish: true when requests came in meanwhile; they are now the reload to read.
  bool StartNext() {
    if (reading_ || next_.empty()) return false;
    current_ = std::move(next_);
    next_.clear();
    reading_ = true;
    return true;
  }

  // Every request, answered or not (the daemon stops).
  std::vector<Request> TakeAll() {
    std::vector<Request> out = std::move(current_);
    for (Request& r : next_) out.push_back(std::move(r));
    current_.clear();
    next_.clear();
    reading_ = false;
    return out;
  }

  bool reading() const { return reading_; }
  // The requests the reload being read answers (the first one is named in the log).
  const std::vector<Request>& current() const { return current_; }
  size_t queued() const { return next_.size(); }

 private:
  bool reading_ = false;
  std::vector<Request> current_;
  std::vector<Request> next_;
};

}  // namespace daxpolicy::daemon
