// SPDX-License-Identifier: Apache-2.0
#include "daemon/wiring.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <string>
#include <utility>

#include "daemon/journal/journal.h"
#include "daemon/log.h"
#include "plugins/access/access_source.h"
#include "plugins/files/close_watcher.h"
#include "plugins/files/file_source.h"
#include "plugins/files/tree_watcher.h"
#include "plugins/host/dax_capability.h"
#include "plugins/host/holders.h"
#include "plugins/host/system_source.h"
#include "plugins/media/media_plugin.h"
#include "plugins/media/media_source.h"
#include "plugins/registry.h"

namespace daxpolicy::daemon {

namespace {

class StateJournal final : public ChangeJournal {
 public:
  explicit StateJournal(std::unique_ptr<journal::Journal> j) : j_(std::move(j)) {}
  Result<size_t> RecordOriginals(const std::vector<journal::JournalEntry>& entries) override {
    return j_->RecordOriginals(entries);
  }
  decltype(driver::ApplyHooks::before_change) BeforeChangeHook(std::string scope_root) override {
    return j_->BeforeChangeHook(std::move(scope_root));
  }
  void SetScopes(const std::vector<std::string>& scope_roots) override {
    j_->SetScopes(scope_roots);
  }
  Result<void> SettleBatch() override { return j_->SettleBatch(); }
  std::vector<std::string> Problems() const override { return j_->problems(); }
  std::vector<std::string> Damage() const override { return j_->Damage(); }
  std::string StateDir() const override { return j_->state_dir(); }

 private:
  std::unique_ptr<journal::Journal> j_;
};

}  // namespace

EngineParts MakeEngineParts(const Options& options, const policy::Policy& policy,
                            std::function<void()> activity) {
  EngineParts parts;
  // The system clock lives as long as the process: parts that keep a plain
  // pointer to it (the media probe, the state journal) never outlive it.
  const plugins::SystemClock& clock = plugins::SystemClock::Get();
  parts.clock = std::shared_ptr<const plugins::Clock>(&clock, [](const plugins::Clock*) {});
  parts.page_size = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  host::Roots roots;
  roots.proc = options.procfs;
  roots.sys = options.sysfs;

  // DAX drivers: the kernel's per-inode switch, and observe mode.
  const driver::KernelVersion kernel = driver::KernelVersion::Running();
  plugins::DriverSettings ds{kernel, options.procfs};
  parts.enforce_driver = plugins::MakeDriver("inode-flag", ds);
  parts.observe_driver = plugins::MakeDriver("observe", ds);

  // Telemetry sources, in this order (the first builds the file table).
  // Tree events (fanotify filesystem marks): a cycle samples again only what changed.
  std::unique_ptr<files::TreeEventSource> tree_events;
  std::string tree_problem;
  if (auto tw = files::TreeWatcher::Create(getpid(), options.procfs); tw.ok()) {
    tree_events = std::move(*tw);
  } else {
    tree_problem =
        "tree events unavailable (" + tw.error().message + "); every file is sampled every cycle";
  }
  auto file_source = std::make_unique<files::FileSource>(
      [](std::string_view path, std::string_view what) {
        LogDebug("scan: " + journal::PrintablePath(path) + ": " + std::string(what));
      },
      files::ScanLimits{}, std::move(tree_events), std::move(tree_problem));
  if (activity) file_source->SetActivityCue(std::move(activity));
  parts.sources.push_back(std::move(file_source));
  parts.sources.push_back(std::make_unique<host::SystemSource>(roots));
  parts.sources.push_back(std::make_unique<access::AccessSource>(access::AccessSource::Options{}));
  media::MediaPluginOptions mopts;
  mopts.sysfs_root = options.sysfs;
  mopts.probe.probe_dir = policy.daemon.probe_dir;
  mopts.probe.chase.clock = &clock;
  mopts.log = [](media::LogLevel level, std::string_view msg) {
    if (level == media::LogLevel::kError) {
      LogWarning(std::string("media: ") + std::string(msg));
    } else {
      LogDebug(std::string("media: ") + std::string(msg));
    }
  };
  parts.sources.push_back(std::make_unique<media::MediaSource>(
      std::make_unique<media::MediaPlugin>(media::MakeLibNvdimmSource(mopts.log), mopts)));

  parts.holders = std::make_unique<host::ProcHolderFinder>(roots, getpid());
  auto watcher = files::CloseWatcher::Create(getpid());
  if (watcher.ok()) {
    parts.close_watcher = std::move(*watcher);
  } else {
    parts.close_watcher_problem = "close events unavailable (" + watcher.error().message +
                                  "); pending files are re-checked every cycle";
  }
  std::optional<host::KernelDaxSupport> support;
  utsname u{};
  if (uname(&u) == 0) {
    auto s = host::AssessKernelRelease(u.release);
    if (s.ok()) support = *s;
  }
  parts.recorder = std::make_unique<TraceRecorder>();
  parts.mounts = std::make_unique<HostMountInspector>(roots, support, parts.page_size);
  parts.journal = [state_dir = options.state_dir, procfs = options.procfs,
                   &clock]() -> Result<std::unique_ptr<ChangeJournal>> {
    journal::JournalOptions jo;
    jo.procfs_root = procfs;
    jo.clock = &clock;
    jo.warn = [](const std::string& message) { LogWarning(message); };
    auto j = journal::Journal::Open(state_dir, std::move(jo));
    if (!j.ok()) return j.error();
    return std::unique_ptr<ChangeJournal>(std::make_unique<StateJournal>(std::move(*j)));
  };
  return parts;
}

}  // namespace daxpolicy::daemon
