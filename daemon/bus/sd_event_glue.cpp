// SPDX-License-Identifier: Apache-2.0
#include "daemon/bus/sd_event_glue.h"

#include <sdbus-c++/sdbus-c++.h>
#include <systemd/sd-event.h>

#include <cerrno>
#include <cstring>
#include <limits>

namespace daxpolicy::bus {

SdEventBusAttachment::SdEventBusAttachment(sd_event* event, sdbus::IConnection& connection,
                                           ErrorHandler on_error)
    : event_(sd_event_ref(event)), connection_(connection), on_error_(std::move(on_error)) {}

SdEventBusAttachment::~SdEventBusAttachment() {
  sd_event_source_disable_unref(io_);
  sd_event_source_disable_unref(timer_);
  sd_event_unref(event_);
}

Result<std::unique_ptr<SdEventBusAttachment>> AttachToSdEvent(
    sd_event* event, sdbus::IConnection& connection, SdEventBusAttachment::ErrorHandler on_error) {
  std::unique_ptr<SdEventBusAttachment> a(
      new SdEventBusAttachment(event, connection, std::move(on_error)));
  sdbus::IConnection::PollData pd;
  try {
    pd = connection.getEventLoopPollData();
  } catch (const sdbus::Error& e) {
    return Error{"cannot get the bus connection's poll data: " + e.getMessage()};
  }
  int r = sd_event_add_io(event, &a->io_, pd.fd, static_cast<uint32_t>(pd.events),
                          &SdEventBusAttachment::OnIo, a.get());
  if (r < 0) return ErrnoError(-r, "cannot add the bus fd to the event loop");
  r = sd_event_source_set_prepare(a->io_, &SdEventBusAttachment::OnPrepare);
  if (r < 0) return ErrnoError(-r, "cannot set the bus prepare callback");
  r = sd_event_add_time(event, &a->timer_, CLOCK_MONOTONIC, std::numeric_limits<uint64_t>::max(), 0,
                        &SdEventBusAttachment::OnTime, a.get());
  if (r < 0) return ErrnoError(-r, "cannot add the bus timer to the event loop");
  sd_event_source_set_enabled(a->timer_, SD_EVENT_OFF);
  sd_event_source_set_description(a->io_, "bus-io");
  sd_event_source_set_description(a->timer_, "bus-timeout");
  return a;
}

bool SdEventBusAttachment::Drain() {
  if (failed_) return false;
  try {
    while (connection_.processPendingRequest()) {
    }
    return true;
  } catch (const sdbus::Error& e) {
    Fail("D-Bus connection failed: " + e.getMessage());
  } catch (const std::exception& e) {
    Fail(std::string("D-Bus processing failed: ") + e.what());
  }
  return false;
}

void SdEventBusAttachment::Fail(const std::string& message) {
  failed_ = true;
  sd_event_source_set_enabled(io_, SD_EVENT_OFF);
  sd_event_source_set_enabled(timer_, SD_EVENT_OFF);
  if (on_error_) {
    on_error_(message);
  } else {
    sd_event_exit(event_, -ECONNRESET);
  }
}

int SdEventBusAttachment::OnPrepare(sd_event_source* /*source*/, void* userdata) {
  auto* self = static_cast<SdEventBusAttachment*>(userdata);
  if (!self->Drain()) return 0;
  sdbus::IConnection::PollData pd;
  try {
    pd = self->connection_.getEventLoopPollData();
  } catch (const sdbus::Error& e) {
    self->Fail("D-Bus connection failed: " + e.getMessage());
    return 0;
  }
  // poll() and epoll event bits agree on Linux (POLLIN == EPOLLIN, POLLOUT == EPOLLOUT).
  sd_event_source_set_io_events(self->io_, static_cast<uint32_t>(pd.events));
  if (pd.timeout_usec == std::numeric_limits<uint64_t>::max()) {
    sd_event_source_set_enabled(self->timer_, SD_EVENT_OFF);
  } else {
    sd_event_source_set_time(self->timer_, pd.timeout_usec);
    sd_event_source_set_enabled(self->timer_, SD_EVENT_ONESHOT);
  }
  return 0;
}

int SdEventBusAttachment::OnIo(sd_event_source* /*source*/, int /*fd*/, uint32_t /*revents*/,
                               void* userdata) {
  static_cast<SdEventBusAttachment*>(userdata)->Drain();
  return 0;
}

int SdEventBusAttachment::OnTime(sd_event_source* /*source*/, uint64_t /*usec*/, void* userdata) {
  static_cast<SdEventBusAttachment*>(userdata)->Drain();
  return 0;
}

}  // namespace daxpolicy::bus
