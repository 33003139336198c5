// SPDX-License-Identifier: Apache-2.0
// bus_test_server: BusService over a FakeBackend on the system bus named by
// DBUS_SYSTEM_BUS_ADDRESS, driven by an sd-event loop exactly as the daemon drives it.
//
//   bus_test_server DIR     files of the fake live under DIR (see Populate)
//
// Prints "ready" on stdout once the name is owned. Logs (holds taken and released) go to
// stderr. SIGUSR1 emits StateChanged, SwitchPending and PropertiesChanged (and tries an
// unknown property, which must be refused); SIGHUP reloads as
// the daemon does on SIGHUP; SIGTERM exits 0. A reload fails while DIR/bad-policy exists,
// with its content as the policy errors.

#include <sdbus-c++/sdbus-c++.h>
#include <signal.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "daemon/bus/bus_service.h"
#include "daemon/bus/fake_backend.h"
#include "daemon/bus/sd_event_glue.h"

namespace {

using daxpolicy::bus::FakeBackend;
using daxpolicy::daemon::FileView;
using daxpolicy::policy::DaxState;
using daxpolicy::policy::FileState;

class TestBackend : public FakeBackend {
 public:
  explicit TestBackend(std::string dir) : dir_(std::move(dir)) {}

  void Reload(const daxpolicy::daemon::Caller& caller, ReloadDone done) override {
    std::ifstream bad(dir_ + "/bad-policy");
    if (bad) {
      std::stringstream text;
      text << bad.rdbuf();
      reload_error = text.str();
    } else {
      reload_error.reset();
    }
    FakeBackend::Reload(caller, std::move(done));
  }

  // With a file "many" holding a number N in the directory, N more managed files
  // (<dir>/many/f0 ...), made up as they are listed: listings at any scale.
  void ListFiles(std::optional<FileState> state,
                 const std::function<void(const FileView&)>& visit) const override {
    FakeBackend::ListFiles(state, visit);
    std::ifstream many(dir_ + "/many");
    uint64_t n = 0;
    if (!(many >> n) || (state && *state != FileState::kInSync)) return;
    FileView f;
    f.managed = true;
    f.state = FileState::kInSync;
    f.desired = f.physical = f.effective = DaxState::kPageCache;
    for (uint64_t i = 0; i < n; ++i) {
      f.path = dir_ + "/many/f" + std::to_string(i);
      visit(f);
    }
  }

 private:
  std::string dir_;
};

FileView View(const std::string& path, bool managed, DaxState desired, DaxState physical,
              DaxState effective, FileState state, const std::string& rule,
              const std::string& reason) {
  FileView v;
  v.path = path;
  v.managed = managed;
  v.desired = desired;
  v.physical = physical;
  v.effective = effective;
  v.state = state;
  v.rule = rule;
  v.reason = reason;
  return v;
}

void Populate(const std::string& dir, TestBackend* b) {
  FileView pending =
      View(dir + "/db/a.sst", true, DaxState::kDax, DaxState::kDax, DaxState::kPageCache,
           FileState::kPending, "reread-heavy", "waiting for 1 holder to close the file");
  pending.holders.push_back({4242, "postgres", false});
  b->files[pending.path] = pending;
  b->files[dir + "/db/b.sst"] =
      View(dir + "/db/b.sst", true, DaxState::kPageCache, DaxState::kPageCache,
           DaxState::kPageCache, FileState::kInSync, "reread-heavy", "rule applied");
  b->files[dir + "/logs/big.log"] =
      View(dir + "/logs/big.log", true, DaxState::kDax, DaxState::kPageCache, DaxState::kPageCache,
           FileState::kObserved, "large-streams", "observe mode");
  b->files[dir + "/keep/x"] =
      View(dir + "/keep/x", false, DaxState::kUnknown, DaxState::kPageCache, DaxState::kPageCache,
           FileState::kUnmanaged, "", "under a protect pattern");
  b->files[dir + "/user/mine"] =
      View(dir + "/user/mine", true, DaxState::kDax, DaxState::kDax, DaxState::kDax,
           FileState::kInSync, "large-streams", "rule applied");
  b->explanations[dir + "/db/a.sst"] =
      "rule 'reread-heavy' matched: media.latency_ratio = 3.5 >= 2\n"
      "rule 'large-streams' lost: path does not match\n";

  daxpolicy::media::MediaDevice pmem;
  pmem.name = "pmem0";
  pmem.kind = "fsdax";
  pmem.size = 16ull << 30;
  pmem.numa_node = 0;
  pmem.health.health = daxpolicy::policy::MediaHealth::kOk;
  pmem.have_latency = true;
  pmem.read_latency_ns = 350.5;
  pmem.write_latency_ns = 900;
  pmem.dram_latency_ns = 100;
  pmem.latency_ratio = 3.505;
  daxpolicy::media::MediaDevice devdax;
  devdax.name = "dax1.0";
  devdax.kind = "devdax";
  devdax.size = 4ull << 30;
  b->media_report.devices = {pmem, devdax};
}

struct Loop {
  sd_event* event = nullptr;
  TestBackend* backend = nullptr;
  daxpolicy::bus::BusService* service = nullptr;
  std::string dir;
};

void Check(const daxpolicy::Result<void>& r) {
  if (!r.ok()) std::cerr << "bus_test_server: " << r.error().message << std::endl;
}

int OnSignal(sd_event_source* /*source*/, const struct signalfd_siginfo* si, void* userdata) {
  auto* loop = static_cast<Loop*>(userdata);
  switch (si->ssi_signo) {
    case SIGTERM:
    case SIGINT:
      sd_event_exit(loop->event, 0);
      break;
    case SIGUSR1: {
      daxpolicy::daemon::StateChange change{loop->dir + "/db/a.sst", FileState::kInSync,
                                            DaxState::kDax, DaxState::kDax, "reread-heavy"};
      Check(loop->service->EmitStateChanged(change));
      daxpolicy::daemon::PendingSwitch pending{
          loop->dir + "/db/b.sst", DaxState::kDax, {{4242, "postgres", false}}};
      Check(loop->service->EmitSwitchPending(pending));
      // One more pending file: the counts change, and Publish() announces exactly that.
      daxpolicy::daemon::FileView extra;
      extra.path = loop->dir + "/db/c.sst";
      extra.managed = true;
      extra.state = FileState::kPending;
      loop->backend->files[extra.path] = extra;
      Check(loop->service->Publish());
      Check(loop->service->Publish());
      break;
    }
    case SIGHUP: {
      daxpolicy::daemon::Caller sighup;
      sighup.sender = "SIGHUP";
      loop->backend->Reload(sighup, nullptr);
      break;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: bus_test_server DIR\n";
    return 2;
  }
  Loop loop;
  loop.dir = argv[1];
  TestBackend backend(loop.dir);
  Populate(loop.dir, &backend);
  loop.backend = &backend;

  auto connection = daxpolicy::bus::OpenBusConnection(false);
  if (!connection.ok()) {
    std::cerr << "bus_test_server: " << connection.error().message << "\n";
    return 1;
  }
  auto service = daxpolicy::bus::BusService::Create(**connection, backend,
                                                    daxpolicy::plugins::SystemClock::Get());
  if (!service.ok()) {
    std::cerr << "bus_test_server: " << service.error().message << "\n";
    return 1;
  }
  loop.service = service->get();
  // As the daemon does: Reloaded once per reload, then what changed.
  backend.on_reloaded = [&loop](bool ok, const std::string& message) {
    Check(loop.service->EmitReloaded(ok, message));
    Check(loop.service->Publish());
  };
  auto named = daxpolicy::bus::RequestBusName(**connection);
  if (!named.ok()) {
    std::cerr << "bus_test_server: " << named.error().message << "\n";
    return 1;
  }

  sigset_t mask;
  sigemptyset(&mask);
  for (int s : {SIGTERM, SIGINT, SIGUSR1, SIGHUP}) sigaddset(&mask, s);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  sd_event_default(&loop.event);
  for (int s : {SIGTERM, SIGINT, SIGUSR1, SIGHUP}) {
    sd_event_add_signal(loop.event, nullptr, s, &OnSignal, &loop);
  }
  int bus_error = 0;
  auto attachment =
      daxpolicy::bus::AttachToSdEvent(loop.event, **connection, [&](const std::string& message) {
        std::cerr << "bus_test_server: " << message << std::endl;
        bus_error = 1;
        sd_event_exit(loop.event, 1);
      });
  if (!attachment.ok()) {
    std::cerr << "bus_test_server: " << attachment.error().message << "\n";
    return 1;
  }
  std::cout << "ready" << std::endl;
  int r = sd_event_loop(loop.event);
  attachment->reset();
  service->reset();
  connection->reset();
  sd_event_unref(loop.event);
  return r < 0 || bus_error ? 1 : 0;
}
