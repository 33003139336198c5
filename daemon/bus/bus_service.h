// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The D-Bus object of daxpolicyd: interface org.daxpolicy.DaxPolicy1.Manager at
/// /org/daxpolicy/DaxPolicy1, served from a ManagerBackend.
///
/// Wiring in the daemon (all bus calls on the event loop thread, sdbus-c++ 1.2):
///   auto conn = OpenBusConnection(options.session);        // system bus unless --session
///   auto service = BusService::Create(**conn, backend, clock); // object + NameOwnerChanged watch
///   RequestBusName(**conn);                                 // before the loop runs
///   auto glue = AttachToSdEvent(event, **conn);             // daemon/bus/sd_event_glue.h
///   ... sd_event_loop(event) ...; on every cycle: service->EmitStateChanged(...) etc.
/// Destroy the glue and the service before the connection.

#include <memory>
#include <string>
#include <vector>

#include "daemon/bus/manager_backend.h"
#include "daemon/engine.h"
#include "plugins/clock.h"
#include "policy/result.h"

namespace sdbus {
class IConnection;
}

namespace daxpolicy::bus {

/// Opens a connection to the system bus (honouring DBUS_SYSTEM_BUS_ADDRESS) or, with
/// `session`, to the session bus (DBUS_SESSION_BUS_ADDRESS).
Result<std::unique_ptr<sdbus::IConnection>> OpenBusConnection(bool session);

/// Requests the well-known name org.daxpolicy.DaxPolicy1 on `connection`. Call it after
/// BusService::Create and before the event loop starts (sdbus-c++ 1.2 may otherwise leave
/// already-arrived messages unprocessed until the next wakeup). Fails when the bus policy
/// refuses the name (not root) or another process owns it.
Result<void> RequestBusName(sdbus::IConnection& connection);

/// Serves the Manager interface. Every handler runs on the thread that drives the
/// connection (processPendingRequest) and turns every failure into an sdbus::Error reply:
/// ApiError -> org.daxpolicy.DaxPolicy1.Error.{NotManaged,PermissionDenied,InvalidArgument,
/// PolicyInvalid}, anything unexpected -> org.freedesktop.DBus.Error.Failed.
///
/// Authorization uses the caller's credentials as the bus daemon reports them: Reload,
/// SetMode, StartRecording and StopRecording need uid 0; Hold needs uid 0 or the file's owner
/// (checked by the backend on the file itself); Release needs uid 0, the hold's uid or the bus
/// connection that took it.
///
/// Every string sent is valid UTF-8: file names and reasons go through EscapeForBus
/// (daemon/bus/validate.h), messages quote names already escaped and are escaped only when
/// they are still not valid UTF-8, and path arguments are read back with UnescapeFromBus.
///
/// One funnel for PropertiesChanged: Publish() compares every property that announces its
/// changes with what it last published and emits one PropertiesChanged with those that
/// differ, and one HoldEnded per hold that ended. Bus calls that change something (SetMode,
/// Reload, Release) publish themselves; the daemon calls Publish() after its own events
/// (cycles, close events, reloads). Reloaded is emitted once per reload, through
/// EmitReloaded, by the backend's owner when the reload ends (see ManagerBackend::Reload);
/// the Reload method only answers its caller then.
///
/// Method calls of users other than root are limited (daemon/bus/call_limits.h): over the
/// limit, a call fails with org.daxpolicy.DaxPolicy1.Error.LimitExceeded at once. The
/// budgets refill with the monotonic time of the clock the service is given (the engine's).
///
/// Holds of a client are released (ManagerBackend::ReleaseHoldsOf) when its unique name
/// leaves the bus, seen as NameOwnerChanged from org.freedesktop.DBus.
class BusService {
 public:
  /// Registers the object on `connection` and subscribes to NameOwnerChanged. Does not
  /// request the bus name (see RequestBusName). `clock` times the call limits. `connection`,
  /// `backend` and `clock` must outlive the service.
  static Result<std::unique_ptr<BusService>> Create(sdbus::IConnection& connection,
                                                    ManagerBackend& backend,
                                                    const plugins::Clock& clock);
  ~BusService();
  BusService(const BusService&) = delete;
  BusService& operator=(const BusService&) = delete;

  /// Signal StateChanged(path, state, physical, effective, rule).
  Result<void> EmitStateChanged(const daemon::StateChange& change);
  /// Signal SwitchPending(path, desired, holders a(us)).
  Result<void> EmitSwitchPending(const daemon::PendingSwitch& pending);
  /// Signal Reloaded(ok, message).
  Result<void> EmitReloaded(bool ok, const std::string& message);
  /// PropertiesChanged for the properties that changed since they were last published, and
  /// HoldEnded for the holds that ended (see the top of this class).
  Result<void> Publish();

 private:
  class Object;
  explicit BusService(std::unique_ptr<Object> object);
  std::unique_ptr<Object> object_;
};

}  // namespace daxpolicy::bus
