// SPDX-License-Identifier: Apache-2.0
#include "daemon/bus/bus_service.h"

#include <sdbus-c++/sdbus-c++.h>

#include <exception>
#include <memory>
#include <string>
#include <utility>

#include "daemon/bus/bus_names.h"
#include "daemon/bus/call_limits.h"
#include "daemon/bus/dump.h"
#include "daemon/bus/reach.h"
#include "daemon/bus/validate.h"
#include "daemon/log.h"
#include "daxpolicy/version.h"
#include "daxpolicy1_adaptor.h"
#include "plugins/media/health.h"
#include "policy/evaluate.h"

namespace daxpolicy::bus {
namespace {

using Holder = sdbus::Struct<uint32_t, std::string>;
using Dict = std::map<std::string, sdbus::Variant>;

const char* ErrorName(ApiError error) {
  switch (error) {
    case ApiError::kNotManaged:
      return kErrorNotManaged;
    case ApiError::kPermissionDenied:
      return kErrorPermissionDenied;
    case ApiError::kInvalidArgument:
      return kErrorInvalidArgument;
    case ApiError::kPolicyInvalid:
      return kErrorPolicyInvalid;
    case ApiError::kLimitExceeded:
      return kErrorLimitExceeded;
    case ApiError::kFailed:
      return kErrorFailed;
  }
  return kErrorFailed;
}

// A message as the bus can carry it. The daemon's messages quote names already escaped
// (journal::PrintablePath, QuoteArgument) and go as they are; only one that is still not
// valid UTF-8 without NUL is escaped (EscapeForBus), so nothing is escaped twice.
std::string MessageForBus(const std::string& message) {
  if (IsValidUtf8(message) && message.find('\0') == std::string::npos) return message;
  return EscapeForBus(message);
}

// An error reply whose text is valid UTF-8 whatever the message quotes.
sdbus::Error BusError(const char* name, const std::string& message) {
  return sdbus::Error(name, MessageForBus(message));
}

template <class T>
const T& ValueOrThrow(const ApiResult<T>& result) {
  if (result.ok()) return *result.value;
  if (result.failure) throw BusError(ErrorName(result.failure->error), result.failure->message);
  throw sdbus::Error(kErrorFailed, "the daemon returned neither a value nor an error");
}

[[noreturn]] void ThrowInvalid(const std::string& message) {
  throw sdbus::Error(kErrorInvalidArgument, message);
}

// The file a path argument names: unescaped (see EscapeForBus), then checked as the name
// it is: an argument holding \xff names a file whose name has the byte 0xff, and one
// holding \x2f..\x2f is refused for the ".." it stands for.
std::string CheckPath(const std::string& path) {
  std::string file = UnescapeFromBus(path);
  if (auto problem = RawPathProblem(file)) ThrowInvalid(*problem);
  return file;
}

std::optional<policy::FileState> StateFilter(const std::string& state) {
  if (state.empty()) return std::nullopt;
  auto filter = FileStateByName(state);
  if (!filter) {
    ThrowInvalid("unknown state " + QuoteArgument(state) +
                 ": expected \"\" or one of unmanaged, in-sync, pending, deferred, observed, "
                 "blocked");
  }
  return filter;
}

std::vector<Holder> Holders(const std::vector<daemon::HolderInfo>& holders) {
  std::vector<Holder> out;
  out.reserve(holders.size());
  for (const auto& h : holders) out.emplace_back(h.pid, EscapeForBus(h.command));
  return out;
}

// sdbus-c++ 1.2 aborts the process when a handler throws anything but sdbus::Error.
template <class F>
auto Converted(const char* member, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const sdbus::Error&) {
    throw;
  } catch (const std::exception& e) {
    daemon::LogError(std::string("D-Bus ") + member + ": internal error: " + e.what());
    throw sdbus::Error(kErrorFailed, std::string("internal error in ") + member + ": " + e.what());
  } catch (...) {
    daemon::LogError(std::string("D-Bus ") + member + ": unknown internal error");
    throw sdbus::Error(kErrorFailed, std::string("internal error in ") + member);
  }
}

}  // namespace

class BusService::Object final
    : public sdbus::AdaptorInterfaces<org::daxpolicy::DaxPolicy1::Manager_adaptor> {
 public:
  Object(sdbus::IConnection& connection, ManagerBackend& backend, const plugins::Clock& clock)
      : AdaptorInterfaces(connection, kObjectPath),
        backend_(backend),
        clock_(clock),
        published_(Read()) {
    registerAdaptor();
    bus_driver_ = sdbus::createProxy(connection, "org.freedesktop.DBus", "/org/freedesktop/DBus");
    bus_driver_->uponSignal("NameOwnerChanged")
        .onInterface("org.freedesktop.DBus")
        .call([this](const std::string& name, const std::string& old_owner,
                     const std::string& new_owner) {
          OnNameOwnerChanged(name, old_owner, new_owner);
        });
    bus_driver_->finishRegistration();
  }
  ~Object() {
    bus_driver_.reset();
    unregisterAdaptor();
  }

  // The one place PropertiesChanged is emitted from: every property that announces its
  // changes is compared with what was last published, and only those that differ are sent,
  // once, whoever caused the change (a bus call, a cycle, SIGHUP).
  void SyncProperties() {
    Published now = Read();
    std::vector<std::string> changed;
    if (now.mode != published_.mode) changed.push_back("Mode");
    if (now.generation != published_.generation) changed.push_back("PolicyGeneration");
    if (now.last_reload != published_.last_reload) changed.push_back("LastReloadResult");
    if (now.degraded != published_.degraded) changed.push_back("Degraded");
    if (now.managed != published_.managed) changed.push_back("ManagedFiles");
    if (now.pending != published_.pending) changed.push_back("PendingFiles");
    if (now.recording.recording != published_.recording.recording) {
      changed.push_back("Recording");
    }
    if (now.recording.path != published_.recording.path) changed.push_back("RecordingFile");
    if (now.recording.result != published_.recording.result) {
      changed.push_back("RecordingResult");
    }
    if (changed.empty()) return;
    // Recorded first: a failed emission is not retried with every later change.
    published_ = std::move(now);
    getObject().emitPropertiesChangedSignal(kInterface, changed);
  }

  // PropertiesChanged through SyncProperties, then HoldEnded for every hold that ended.
  void Publish() {
    SyncProperties();
    for (const EndedHold& h : backend_.TakeEndedHolds()) {
      emitHoldEnded(h.cookie, EscapeForBus(h.path), h.why);
    }
  }

  void SendReloaded(bool ok, const std::string& message) {
    emitReloaded(ok, EscapeForBus(message));
  }

 private:
  // Every method's body runs through here: a call over its caller's limit (see
  // call_limits.h) is refused first, and every failure becomes an sdbus::Error. Property
  // getters use Converted only: they are cheap, and PropertiesChanged calls them too.
  template <class F>
  auto Guarded(const char* member, F&& body) -> decltype(body()) {
    return Converted(member, [&] {
      const sdbus::Message* message = getObject().getCurrentlyProcessedMessage();
      if (message != nullptr) {
        auto refused = limiter_.Admit(message->getSender(), clock_.MonotonicNs(),
                                      [message]() -> std::optional<uid_t> {
                                        try {
                                          return message->getCredsUid();
                                        } catch (const sdbus::Error&) {
                                          return std::nullopt;
                                        }
                                      });
        if (refused) throw sdbus::Error(kErrorLimitExceeded, std::string(member) + ": " + *refused);
      }
      return body();
    });
  }

  struct Published {
    policy::Mode mode = policy::Mode::kEnforce;
    uint64_t generation = 0;
    std::string last_reload, degraded;
    uint64_t managed = 0, pending = 0;
    daemon::RecorderStatus recording;
  };
  Published Read() const {
    return Published{backend_.mode(),     backend_.generation(),   backend_.LastReloadResult(),
                     backend_.Degraded(), backend_.ManagedFiles(), backend_.PendingFiles(),
                     backend_.Recording()};
  }

  // Who sent the message being handled, as the bus vouches for it. Each credential costs a
  // query of the bus, so only those used are asked, once per call: the pid only when
  // `logged` (it is only for the log), the groups only for a caller other than root (root
  // reaches every file). The uid, which a connection keeps for its lifetime, is asked once
  // per connection (the call limit remembers it).
  Caller CurrentCaller(bool logged) {
    const sdbus::Message* message = getObject().getCurrentlyProcessedMessage();
    if (message == nullptr) throw sdbus::Error(kErrorFailed, "no message is being processed");
    Caller caller;
    try {
      caller.sender = message->getSender();
      // Guarded asked the bus for the uid at the sender's first call: no second question.
      const std::optional<uid_t> known = limiter_.KnownUid(caller.sender);
      caller.uid = known ? *known : message->getCredsUid();
      if (logged) {
        try {
          caller.pid = message->getCredsPid();
        } catch (const sdbus::Error&) {
          caller.pid = 0;  // only for the log
        }
      }
      if (!caller.root()) {
        try {
          caller.gid = message->getCredsGid();
          caller.groups = message->getCredsSupplementaryGids();
        } catch (const sdbus::Error&) {
          caller.groups.clear();  // no group then gives access
        }
      }
    } catch (const sdbus::Error& e) {
      throw sdbus::Error(kErrorPermissionDenied,
                         "cannot determine the caller's identity: " + e.getMessage());
    }
    return caller;
  }

  // A file named by a method's argument (CheckPath), for a caller other than root answered
  // like a missing file unless the caller could reach it itself.
  static void RequireVisible(const std::string& file, const Caller& caller) {
    if (!ReachCheck(caller).Reachable(file)) {
      throw sdbus::Error(kErrorNotManaged, NoSuchFileMessage(EscapeForBus(file)));
    }
  }

  Caller RequireRoot(const char* member) {
    Caller caller = CurrentCaller(true);
    if (caller.uid != 0) {
      daemon::LogNotice(std::string("refused ") + member + " from " + daemon::Describe(caller));
      throw sdbus::Error(kErrorPermissionDenied, std::string(member) + " needs root (caller uid " +
                                                     std::to_string(caller.uid) + ")");
    }
    return caller;
  }

  void OnNameOwnerChanged(const std::string& name, const std::string& old_owner,
                          const std::string& new_owner) {
    // Signal handlers must not throw either (1.2 catches only sdbus::Error there too).
    try {
      if (name.empty() || name.front() != ':' || !new_owner.empty() || old_owner != name) return;
      limiter_.Forget(name);
      size_t released = backend_.ReleaseHoldsOf(name);
      if (released > 0) {
        daemon::LogEvent(
            daemon::Event::kHoldReleased, daemon::LogLevel::kNotice,
            "released " + std::to_string(released) + " hold(s) of " + name + ", which left the bus",
            {daemon::field::Caller(name)});
        Publish();
      }
    } catch (const std::exception& e) {
      daemon::LogError("releasing the holds of " + name + " failed: " + e.what());
    } catch (...) {
      daemon::LogError("releasing the holds of " + name + " failed");
    }
  }

  Dict GetFileState(const std::string& path) override {
    return Guarded("GetFileState", [&] {
      const std::string file = CheckPath(path);
      RequireVisible(file, CurrentCaller(false));
      auto result = backend_.GetFile(file);
      const daemon::FileView& f = ValueOrThrow(result);
      Dict d;
      d["Path"] = sdbus::Variant(EscapeForBus(f.path));
      d["Managed"] = sdbus::Variant(f.managed);
      d["Desired"] = sdbus::Variant(DesiredName(f.desired));
      d["Physical"] = sdbus::Variant(std::string(policy::DaxStateName(f.physical)));
      d["Effective"] = sdbus::Variant(std::string(policy::DaxStateName(f.effective)));
      d["State"] = sdbus::Variant(std::string(policy::FileStateName(f.state)));
      d["Rule"] = sdbus::Variant(EscapeForBus(f.rule));
      d["Reason"] = sdbus::Variant(EscapeForBus(f.reason));
      d["Holders"] = sdbus::Variant(Holders(f.holders));
      return d;
    });
  }

  std::string Explain(const std::string& path) override {
    return Guarded("Explain", [&] {
      const std::string file = CheckPath(path);
      RequireVisible(file, CurrentCaller(false));
      auto result = backend_.Explain(file);
      return MessageForBus(ValueOrThrow(result));
    });
  }

  std::vector<sdbus::Struct<std::string, std::string, std::string, std::string, std::string>>
  ListFiles(const std::string& state) override {
    return Guarded("ListFiles", [&] {
      std::optional<policy::FileState> filter = StateFilter(state);
      Caller caller = CurrentCaller(false);
      ReachCheck reach(caller);
      std::vector<sdbus::Struct<std::string, std::string, std::string, std::string, std::string>>
          out;
      backend_.ListFiles(filter, [&](const FileView& f) {
        if (!reach.Reachable(f.path)) return;
        if (out.size() == kMaxListFiles) {
          throw sdbus::Error(kErrorLimitExceeded,
                             "more than " + std::to_string(kMaxListFiles) +
                                 " files to list, more than ListFiles answers; use DumpFiles "
                                 "(daxpolicyctl files does)");
        }
        out.emplace_back(EscapeForBus(f.path), DesiredName(f.desired),
                         std::string(policy::DaxStateName(f.physical)),
                         std::string(policy::DaxStateName(f.effective)),
                         std::string(policy::FileStateName(f.state)));
      });
      return out;
    });
  }

  sdbus::UnixFd DumpFiles(const std::string& state) override {
    return Guarded("DumpFiles", [&] {
      std::optional<policy::FileState> filter = StateFilter(state);
      Caller caller = CurrentCaller(false);
      ReachCheck reach(caller);
      auto fd = DumpToMemfd([&](const std::function<void(std::string_view)>& write) {
        std::string line;
        backend_.ListFiles(filter, [&](const FileView& f) {
          if (!reach.Reachable(f.path)) return;
          line.clear();
          AppendDumpField(&line, f.path);
          // Kept for the loop: a view of DesiredName's temporary would dangle.
          const std::string desired = DesiredName(f.desired);
          for (std::string_view field :
               {policy::FileStateName(f.state), std::string_view(desired),
                policy::DaxStateName(f.physical), policy::DaxStateName(f.effective)}) {
            line += '\t';
            line += field;
          }
          line += '\n';
          write(line);
        });
      });
      if (!fd.ok()) throw sdbus::Error(kErrorFailed, "DumpFiles: " + fd.error().message);
      return sdbus::UnixFd(fd->Release(), sdbus::adopt_fd);
    });
  }

  std::vector<Dict> GetMedia() override {
    return Guarded("GetMedia", [&] {
      std::vector<Dict> out;
      for (const auto& dev : backend_.media().devices) {
        Dict d;
        d["Name"] = sdbus::Variant(EscapeForBus(dev.name));
        d["Kind"] = sdbus::Variant(EscapeForBus(dev.kind));
        d["Size"] = sdbus::Variant(static_cast<uint64_t>(dev.size));
        d["NumaNode"] = sdbus::Variant(static_cast<int32_t>(dev.numa_node));
        d["Health"] = sdbus::Variant(std::string(media::HealthName(dev.health.health)));
        if (dev.have_latency) {
          d["ReadLatencyNs"] = sdbus::Variant(dev.read_latency_ns);
          d["WriteLatencyNs"] = sdbus::Variant(dev.write_latency_ns);
          d["LatencyRatio"] = sdbus::Variant(dev.latency_ratio);
        }
        out.push_back(std::move(d));
      }
      return out;
    });
  }

  uint32_t Hold(const std::string& path, const std::string& mode,
                const std::string& reason) override {
    return Guarded("Hold", [&] {
      const std::string file = CheckPath(path);
      const Caller caller = CurrentCaller(true);
      RequireVisible(file, caller);
      auto dax = HoldModeByName(mode);
      if (!dax) {
        ThrowInvalid("unknown hold mode " + QuoteArgument(mode) + ": expected dax or page-cache");
      }
      if (reason.size() > kMaxReasonBytes) {
        ThrowInvalid("the reason is " + std::to_string(reason.size()) +
                     " bytes long, more than the " + std::to_string(kMaxReasonBytes) + " allowed");
      }
      if (!IsValidUtf8(reason)) ThrowInvalid("the reason is not valid UTF-8");
      auto added = backend_.AddHold(file, *dax, reason, caller);
      if (!added.ok()) {
        daemon::LogNotice("refused Hold on " + EscapeForBus(file) + " from " +
                          daemon::Describe(caller) + ": " +
                          (added.failure ? added.failure->message : ""));
      }
      uint32_t cookie = ValueOrThrow(added);
      daemon::LogEvent(daemon::Event::kHoldTaken, daemon::LogLevel::kInfo,
                       "hold " + std::to_string(cookie) + " on " + EscapeForBus(file) + " (" +
                           mode + ") by " + daemon::Describe(caller) +
                           (reason.empty() ? "" : ": " + reason),
                       {daemon::field::Path(EscapeForBus(file)), daemon::field::To(mode),
                        daemon::field::Hold(cookie), daemon::field::Caller(caller.sender),
                        daemon::field::CallerUid(caller.uid), daemon::field::CallerPid(caller.pid),
                        daemon::field::Reason(reason)});
      return cookie;
    });
  }

  void Release(const uint32_t& cookie) override {
    Guarded("Release", [&] {
      if (cookie == 0) ThrowInvalid("0 is not a hold cookie");
      Caller caller = CurrentCaller(true);
      // An unknown cookie and another user's cookie get the same answer: a caller learns
      // nothing about holds that are not its own.
      if (!backend_.ReleaseHold(cookie, caller)) {
        ThrowInvalid("no hold of yours has cookie " + std::to_string(cookie));
      }
      daemon::LogEvent(
          daemon::Event::kHoldReleased, daemon::LogLevel::kInfo,
          "hold " + std::to_string(cookie) + " released by " + daemon::Describe(caller),
          {daemon::field::Hold(cookie), daemon::field::Caller(caller.sender),
           daemon::field::CallerUid(caller.uid), daemon::field::CallerPid(caller.pid)});
      Publish();
    });
  }

  std::vector<
      sdbus::Struct<uint32_t, std::string, std::string, std::string, std::string, uint32_t, bool>>
  ListHolds() override {
    return Guarded("ListHolds", [&] {
      Caller caller = CurrentCaller(false);
      std::vector<sdbus::Struct<uint32_t, std::string, std::string, std::string, std::string,
                                uint32_t, bool>>
          out;
      backend_.ForEachHold(caller, [&out](const HoldInfo& h) {
        out.emplace_back(h.cookie, EscapeForBus(h.path), std::string(policy::DaxStateName(h.mode)),
                         EscapeForBus(h.reason), h.owner, static_cast<uint32_t>(h.uid),
                         h.in_effect);
      });
      return out;
    });
  }

  // Answered when the reload ends (the policy files are read off the loop thread, which
  // goes on answering meanwhile). The backend logs the outcome and has Reloaded emitted,
  // once per reload, however many callers it answers.
  void Reload(sdbus::Result<>&& result) override {
    Guarded("Reload", [&] {
      Caller caller = RequireRoot("Reload");
      auto reply = std::make_shared<sdbus::Result<>>(std::move(result));
      backend_.Reload(caller, [reply](const ApiResult<bool>& outcome) {
        try {
          if (outcome.ok()) {
            reply->returnResults();
          } else if (outcome.failure) {
            reply->returnError(
                BusError(ErrorName(outcome.failure->error), outcome.failure->message));
          } else {
            reply->returnError(sdbus::Error(kErrorFailed, "the reload ended without a result"));
          }
        } catch (const sdbus::Error& e) {
          daemon::LogDebug("cannot answer Reload: " + e.getMessage());
        }
      });
    });
  }

  void SetMode(const std::string& mode) override {
    Guarded("SetMode", [&] {
      Caller caller = RequireRoot("SetMode");
      auto wanted = policy::ModeByName(mode);
      if (!wanted) {
        ThrowInvalid("unknown mode " + QuoteArgument(mode) + ": expected enforce or observe");
      }
      if (backend_.mode() == *wanted) return;
      backend_.SetMode(*wanted);
      daemon::LogNotice("mode set to " + mode + " by " + daemon::Describe(caller));
      Publish();
    });
  }

  std::string StartRecording(const std::string& path, const uint64_t& max_size) override {
    return Guarded("StartRecording", [&] {
      Caller caller = RequireRoot("StartRecording");
      const std::string file = path.empty() ? path : CheckPath(path);
      auto started = backend_.StartRecording(file, max_size, caller);
      if (!started.ok() && started.failure) {
        daemon::LogNotice("refused StartRecording from " + daemon::Describe(caller) + ": " +
                          started.failure->message);
      }
      std::string out = EscapeForBus(ValueOrThrow(started));
      Publish();
      return out;
    });
  }

  void StopRecording() override {
    Guarded("StopRecording", [&] {
      Caller caller = RequireRoot("StopRecording");
      ValueOrThrow(backend_.StopRecording(caller));
      Publish();
    });
  }

  std::string Mode() override {
    return Converted("Mode", [&] { return std::string(policy::ModeName(backend_.mode())); });
  }
  uint64_t PolicyGeneration() override {
    return Converted("PolicyGeneration", [&] { return backend_.generation(); });
  }
  std::string LastReloadResult() override {
    return Converted("LastReloadResult",
                     [&] { return MessageForBus(backend_.LastReloadResult()); });
  }
  std::string Degraded() override {
    return Converted("Degraded", [&] { return MessageForBus(backend_.Degraded()); });
  }
  uint64_t ManagedFiles() override {
    return Converted("ManagedFiles", [&] { return backend_.ManagedFiles(); });
  }
  uint64_t PendingFiles() override {
    return Converted("PendingFiles", [&] { return backend_.PendingFiles(); });
  }
  bool Recording() override {
    return Converted("Recording", [&] { return backend_.Recording().recording; });
  }
  std::string RecordingFile() override {
    return Converted("RecordingFile", [&] { return EscapeForBus(backend_.Recording().path); });
  }
  std::string RecordingResult() override {
    return Converted("RecordingResult", [&] { return MessageForBus(backend_.Recording().result); });
  }
  std::string Version() override { return kVersion; }

  ManagerBackend& backend_;
  const plugins::Clock& clock_;  // the call limiter's
  Published published_;
  CallLimiter limiter_;
  std::unique_ptr<sdbus::IProxy> bus_driver_;
};

Result<std::unique_ptr<sdbus::IConnection>> OpenBusConnection(bool session) {
  try {
    return session ? sdbus::createSessionBusConnection() : sdbus::createSystemBusConnection();
  } catch (const sdbus::Error& e) {
    return Error{std::string("cannot connect to the ") + (session ? "session" : "system") +
                 " bus: " + e.getMessage()};
  }
}

Result<void> RequestBusName(sdbus::IConnection& connection) {
  try {
    connection.requestName(kBusName);
    return {};
  } catch (const sdbus::Error& e) {
    return Error{std::string("cannot own the bus name ") + kBusName + ": " + e.getName() + ": " +
                 e.getMessage()};
  }
}

BusService::BusService(std::unique_ptr<Object> object) : object_(std::move(object)) {}
BusService::~BusService() = default;

Result<std::unique_ptr<BusService>> BusService::Create(sdbus::IConnection& connection,
                                                       ManagerBackend& backend,
                                                       const plugins::Clock& clock) {
  try {
    auto object = std::make_unique<Object>(connection, backend, clock);
    return std::unique_ptr<BusService>(new BusService(std::move(object)));
  } catch (const sdbus::Error& e) {
    return Error{std::string("cannot register ") + kObjectPath + " on the bus: " + e.getName() +
                 ": " + e.getMessage()};
  }
}

Result<void> BusService::EmitStateChanged(const daemon::StateChange& change) {
  try {
    object_->emitStateChanged(
        EscapeForBus(change.path), std::string(policy::FileStateName(change.state)),
        std::string(policy::DaxStateName(change.physical)),
        std::string(policy::DaxStateName(change.effective)), EscapeForBus(change.rule));
    return {};
  } catch (const sdbus::Error& e) {
    return Error{"cannot emit StateChanged: " + e.getMessage()};
  }
}

Result<void> BusService::EmitSwitchPending(const daemon::PendingSwitch& pending) {
  try {
    object_->emitSwitchPending(EscapeForBus(pending.path), DesiredName(pending.desired),
                               Holders(pending.holders));
    return {};
  } catch (const sdbus::Error& e) {
    return Error{"cannot emit SwitchPending: " + e.getMessage()};
  }
}

Result<void> BusService::EmitReloaded(bool ok, const std::string& message) {
  try {
    object_->SendReloaded(ok, message);
    return {};
  } catch (const sdbus::Error& e) {
    return Error{"cannot emit Reloaded: " + e.getMessage()};
  }
}

Result<void> BusService::Publish() {
  try {
    object_->Publish();
    return {};
  } catch (const sdbus::Error& e) {
    return Error{"cannot publish changes: " + e.getMessage()};
  }
}

}  // namespace daxpolicy::bus
