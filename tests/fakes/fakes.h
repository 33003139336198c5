// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Fake engine parts for tests and benchmarks: time moves only when a test
/// moves it, files come from a table, /proc, fanotify and the journal are
/// in memory and fail on demand. FakeParts wires them into EngineParts and
/// keeps pointers so a test can steer them after the engine owns them.

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/engine_parts.h"
#include "plugins/driver/fake_driver.h"

namespace daxpolicy::fakes {

using policy::DaxState;
using policy::FileKind;

class FakeClock final : public plugins::Clock {
 public:
  int64_t MonotonicNs() const override { return mono_.load(); }
  int64_t WallNs() const override { return wall_.load(); }
  void Advance(int64_t ns) {
    mono_ += ns;
    wall_ += ns;
  }

 private:
  std::atomic<int64_t> mono_{1'000'000'000'000};                       // 1000 s after boot
  std::atomic<int64_t> wall_{int64_t{1'767'225'600} * 1'000'000'000};  // 2026-01-01
};

/// Observe mode on the fake driver's files: reads them, changes nothing.
class FakeObserveDriver final : public driver::DaxDriver {
 public:
  explicit FakeObserveDriver(driver::FakeDriver* files) : files_(files) {}
  std::string_view Name() const override { return "fake-observe"; }
  Result<driver::FileFlags> Read(const driver::FileRef& ref) override { return files_->Read(ref); }
  Result<driver::ApplyOutcome> Apply(const driver::FileRef& ref, DaxState desired,
                                     const driver::ApplyHooks& hooks) override;
  int applies = 0;

 private:
  driver::FakeDriver* files_;
};

/// Telemetry of one fake file; physical, effective, kind and identity come
/// from the FakeDriver (the "disk").
struct FakeFile {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint32_t cache_pages = 0;
  bool sample_fails = false;  ///< counted as a "sample" error, fields unavailable
  /// Marked as covered by access tracing (kHaveAccess), read at this rate
  /// (whether the figures are known is the system sample's access_withheld).
  bool access = false;
  float read_bytes_rate = 0;
};

/// The "files" source: the file table from paths relative to the first scope
/// (sorted by path), each parent directory once; files the fake driver does
/// not know are gone.
class FakeFileSource final : public plugins::TelemetrySource {
 public:
  explicit FakeFileSource(driver::FakeDriver* disk) : disk_(disk) {}
  std::string_view Name() const override { return "files"; }
  void Sample(plugins::SampleContext& ctx) override;
  std::map<std::string, FakeFile> files;  ///< relative path -> telemetry
  int samples = 0;
  bool last_full_scan = false;

 private:
  driver::FakeDriver* disk_;
};

/// `files` synthetic regular files in `dirs` directories, for memory
/// benchmarks: builds each cycle's table from the previous one the way the
/// scanner does (two tables side by side), no disk, no per-file test state.
/// Sizes are 4 KiB to 256 KiB; files of 128 KiB and more have the DAX flag;
/// inode numbers are scattered over the table as a directory walk finds them.
class SyntheticFileSource final : public plugins::TelemetrySource {
 public:
  SyntheticFileSource(uint64_t files, uint32_t dirs) : files_(files), dirs_(dirs) {}
  std::string_view Name() const override { return "files"; }
  void Sample(plugins::SampleContext& ctx) override;

 private:
  uint64_t files_;
  uint32_t dirs_;
};

/// The "system" source from fixed values.
class FakeSystemSource final : public plugins::TelemetrySource {
 public:
  std::string_view Name() const override { return "system"; }
  void Sample(plugins::SampleContext& ctx) override;
  policy::SystemSample values;
  /// The media source's part: when not empty, the snapshot's media and every
  /// mount's (the first sample).
  std::vector<policy::MediaSample> media;
  std::string degraded;
  bool fail = false;  ///< counts a "system" error, values unavailable
  std::string Degraded() const override { return degraded; }
};

class FakeHolderFinder final : public host::HolderFinder {
 public:
  Result<host::HolderScan> Find(const std::vector<host::FileId>& files) override;
  std::map<host::FileId, std::vector<host::Holder>> holders;
  bool fail = false;
  int calls = 0;
  std::vector<host::FileId> last_asked;
};

/// Close events on demand: Close(relative path) queues the event of a tracked file.
class FakeCloseWatcher final : public files::CloseEventSource {
 public:
  Result<void> WatchFilesystem(const std::string& path) override;
  Result<void> Track(int dirfd, std::string_view name, uint64_t token) override;
  bool Untrack(uint64_t token) override;
  int fd() const override { return -1; }
  Result<files::DrainResult> Drain() override;
  void Close(const std::string& relative);
  bool overflow = false;
  std::map<std::string, uint64_t> tracked;  ///< relative path -> token
  std::set<std::string> watched;

 private:
  std::vector<uint64_t> queued_;
};

/// Scope roots from a table: each path must exist (its fd and st_dev are
/// real); DAX capability as the test says.
class FakeMountInspector final : public daemon::MountInspector {
 public:
  std::vector<daemon::ScopeFacts> Inspect(const std::vector<std::string>& paths,
                                          std::vector<std::string>* problems) override;
  std::map<std::string, std::string> flag_blocked;       ///< by scope path
  std::map<std::string, std::string> effective_blocked;  ///< by scope path
};

class FakeJournal final : public daemon::ChangeJournal {
 public:
  struct State {
    bool fail_open = false;
    bool fail_record = false;
    int opens = 0;
    int settled = 0;
    std::vector<std::string> scopes;
    std::vector<journal::JournalEntry> recorded;  ///< by RecordOriginals, in batches
    std::vector<journal::JournalEntry> hooked;    ///< by the before-change hook, one a change
  };
  explicit FakeJournal(std::shared_ptr<State> state) : state_(std::move(state)) {}
  Result<size_t> RecordOriginals(const std::vector<journal::JournalEntry>& entries) override;
  decltype(driver::ApplyHooks::before_change) BeforeChangeHook(std::string scope_root) override;
  void SetScopes(const std::vector<std::string>& scope_roots) override {
    state_->scopes = scope_roots;
  }
  Result<void> SettleBatch() override {
    ++state_->settled;
    return {};
  }

 private:
  std::shared_ptr<State> state_;
};

/// Fake parts and handles to steer them.
struct FakeParts {
  /// `files`: nullptr for a FakeFileSource over the fake driver.
  explicit FakeParts(std::unique_ptr<plugins::TelemetrySource> files = nullptr);
  daemon::EngineParts Take();  ///< once

  std::shared_ptr<FakeClock> clock = std::make_shared<FakeClock>();
  driver::FakeDriver* disk = nullptr;
  FakeObserveDriver* observe = nullptr;
  FakeFileSource* files = nullptr;  ///< nullptr when another files source was given
  FakeSystemSource* system = nullptr;
  FakeHolderFinder* holders = nullptr;
  FakeCloseWatcher* watcher = nullptr;
  FakeMountInspector* mounts = nullptr;
  std::shared_ptr<FakeJournal::State> journal = std::make_shared<FakeJournal::State>();

 private:
  daemon::EngineParts parts_;
};

}  // namespace daxpolicy::fakes
