// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Runs an sdbus-c++ 1.2 connection from an sd-event loop (1.2 has no attachSdEventLoop):
/// an I/O source on the bus fd and a CLOCK_MONOTONIC timer, both re-armed before every
/// iteration from IConnection::getEventLoopPollData(), and processPendingRequest() drained
/// whenever either fires (and before re-arming, since a synchronous call may have queued
/// messages the fd no longer signals).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "policy/result.h"

typedef struct sd_event sd_event;
typedef struct sd_event_source sd_event_source;

namespace sdbus {
class IConnection;
}

namespace daxpolicy::bus {

/// Detaches on destruction. Destroy it before the connection and the event.
class SdEventBusAttachment {
 public:
  /// Called once when the connection fails (e.g. the bus went away); the sources are
  /// disabled by then.
  using ErrorHandler = std::function<void(const std::string& message)>;

  ~SdEventBusAttachment();
  SdEventBusAttachment(const SdEventBusAttachment&) = delete;
  SdEventBusAttachment& operator=(const SdEventBusAttachment&) = delete;

 private:
  friend Result<std::unique_ptr<SdEventBusAttachment>> AttachToSdEvent(sd_event*,
                                                                       sdbus::IConnection&,
                                                                       ErrorHandler);
  SdEventBusAttachment(sd_event* event, sdbus::IConnection& connection, ErrorHandler on_error);
  static int OnPrepare(sd_event_source* source, void* userdata);
  static int OnIo(sd_event_source* source, int fd, uint32_t revents, void* userdata);
  static int OnTime(sd_event_source* source, uint64_t usec, void* userdata);
  bool Drain();
  void Fail(const std::string& message);

  sd_event* event_;
  sdbus::IConnection& connection_;
  ErrorHandler on_error_;
  sd_event_source* io_ = nullptr;
  sd_event_source* timer_ = nullptr;
  bool failed_ = false;
};

/// Attaches `connection` to `event`. Without `on_error`, a connection failure ends the loop
/// with sd_event_exit(event, -ECONNRESET).
Result<std::unique_ptr<SdEventBusAttachment>> AttachToSdEvent(
    sd_event* event, sdbus::IConnection& connection,
    SdEventBusAttachment::ErrorHandler on_error = {});

}  // namespace daxpolicy::bus
