// SPDX-License-Identifier: Apache-2.0
// The trace recorder with snapshots built by hand, time passed in and a fake
// sink that fails on demand: what it writes reads back through the real trace
// reader and replays through the real simulator; the size bound and the error
// paths leave a valid trace.

#include "daemon/recorder.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "policy/loader.h"
#include "policy/simulate.h"
#include "policy/trace.h"
#include "tests/support/test_support.h"

namespace daxpolicy::daemon {
namespace {

namespace fs = std::filesystem;
using ::daxpolicy::testing::ReadFile;
using ::daxpolicy::testing::TempDir;
using ::daxpolicy::testing::WriteFile;
using policy::DaxState;

constexpr int64_t kSecond = 1'000'000'000;

// What the recorder wrote, and failures to inject.
struct SinkState {
  std::string text;
  int writes = 0;
  int fail_write = -1;  // this write (0-based) fails with `error` after half its bytes
  int error = ENOSPC;
  bool removed = false;
  bool closed = false;
  int truncations = 0;
  std::function<void()> during_write;  // runs inside a write (another thread's Stop)
};

class FakeSink final : public TraceSink {
 public:
  explicit FakeSink(std::shared_ptr<SinkState> s) : s_(std::move(s)) {}
  ~FakeSink() override { s_->closed = true; }
  Result<void> Write(std::string_view data) override {
    if (s_->during_write) {
      auto during = std::move(s_->during_write);
      s_->during_write = nullptr;
      during();
    }
    if (s_->writes++ == s_->fail_write) {
      s_->text += data.substr(0, data.size() / 2);
      return ErrnoError(s_->error, "write");
    }
    s_->text += data;
    return {};
  }
  Result<void> Truncate(uint64_t size) override {
    ++s_->truncations;
    s_->text.resize(size);
    return {};
  }
  Result<void> Sync() override { return {}; }
  bool Removed() override { return s_->removed; }

 private:
  std::shared_ptr<SinkState> s_;
};

class RecorderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    policy::LoadResult loaded = policy::LoadPolicy(
        {"test.yaml",
         "apiVersion: daxpolicy/v1\ndaemon: { interval: 10s }\nscopes: [ /srv/pmem, /srv/cxl ]\n"
         "cost:\n  mounts:\n    - { path: /srv/cxl, media: cxl }\n"
         "rules:\n  - name: by-cost\n    match: { path: \"/srv/**\" }\n    dax: auto\n"});
    ASSERT_TRUE(loaded.errors.empty()) << loaded.errors.front().ToString();
    policy_ = *loaded.policy;

    snap_.page_size = 4096;
    snap_.wall_clock_ns = 1'796'000'000 * kSecond;  // 2026-11-30T...Z
    policy::MediaSample pmem;
    pmem.name = "pmem0";
    pmem.have_latency = true;
    pmem.read_latency_ns = 300;
    pmem.latency_ratio = 3;  // DRAM 100 ns
    pmem.have_bandwidth = true;
    pmem.read_bandwidth = 3e9;
    pmem.dram_bandwidth = 8e9;
    pmem.write_bandwidth = 2e9;
    snap_.media.push_back(pmem);
    snap_.mounts.push_back(policy::MountRecord{1, "/srv/pmem", 0, ""});
    snap_.mounts.push_back(policy::MountRecord{2, "/srv/cxl", -1, ""});
    snap_.dir_paths = {"/srv/pmem", "/srv/pmem/db", "/srv/cxl"};
    snap_.system.have_mem_pressure = true;
    snap_.system.mem_pressure = 1.25;
    snap_.system.access_window_ns = 10 * kSecond;
  }

  policy::FileRecord& AddFile(uint32_t dir, const std::string& name, uint16_t mount,
                              uint64_t size) {
    policy::FileRecord f;
    f.ino = snap_.files.size() + 100;
    f.dir = dir;
    f.name_offset = static_cast<uint32_t>(snap_.names.size());
    f.name_length = static_cast<uint16_t>(name.size());
    snap_.names += name;
    f.mount = mount;
    f.size = size;
    f.available = policy::kHaveSize | policy::kHaveEffective | policy::kHavePhysical |
                  policy::kHaveCache | policy::kHaveAccess;
    f.effective = f.physical = DaxState::kPageCache;
    snap_.files.push_back(f);
    return snap_.files.back();
  }

  // A busy table, a log read under DAX, an idle file, a directory, a file whose
  // mode is unknown and one on the cxl mount.
  void AddFiles() {
    policy::FileRecord& table = AddFile(1, "t 1%.sst", 0, 64 << 20);
    table.read_bytes_rate = 1048576;  // 10 MiB in the 10 s window
    table.cache_pages = 1000;
    table.available |= policy::kHaveHitRatio;
    table.cache_hit_ratio = 0.97f;
    policy::FileRecord& log = AddFile(0, "app.log", 0, 1 << 30);
    log.effective = log.physical = DaxState::kDax;
    log.read_bytes_rate = 2000;
    log.write_bytes_rate = 100;
    AddFile(0, "idle", 0, 4096);
    policy::FileRecord& dir = AddFile(0, "db", 0, 0);
    dir.kind = policy::FileKind::kDirectory;
    dir.cache_pages = 5;
    policy::FileRecord& unknown = AddFile(0, "unknown", 0, 8192);
    unknown.available &= static_cast<uint16_t>(~policy::kHaveEffective);
    unknown.read_bytes_rate = 10;
    policy::FileRecord& cxl = AddFile(2, "vm.img", 1, 1 << 20);
    cxl.cache_pages = 256;
    cxl.available &= static_cast<uint16_t>(~policy::kHaveAccess);
  }

  std::shared_ptr<SinkState> StartRecording(uint64_t max = kDefaultTraceMaxBytes) {
    auto state = std::make_shared<SinkState>();
    auto started = recorder_.Start(std::make_unique<FakeSink>(state), "/var/lib/daxpolicy/x.trace",
                                   max, "uid 0 (test)");
    EXPECT_TRUE(started.ok()) << started.error().message;
    return state;
  }

  policy::Trace Parse(const std::string& text) {
    std::string error;
    std::optional<policy::Trace> t = policy::ParseTrace(text, &error);
    EXPECT_TRUE(t.has_value()) << error << "\n" << text;
    return t ? *t : policy::Trace{};
  }

  policy::Policy policy_;
  policy::Snapshot snap_;
  TraceRecorder recorder_;
};

TEST_F(RecorderTest, IsOffUntilStartedAndWritesNothingThen) {
  AddFiles();
  recorder_.Record(snap_, policy_, 10 * kSecond);
  EXPECT_FALSE(recorder_.Status().recording);
  EXPECT_EQ(recorder_.Status().result, "");
  EXPECT_FALSE(recorder_.Stop("uid 0"));
}

TEST_F(RecorderTest, WritesWhatTheSnapshotHoldsAndTheTraceReaderReadsItBack) {
  AddFiles();
  auto sink = StartRecording();
  recorder_.Record(snap_, policy_, 10 * kSecond);
  snap_.files[0].read_bytes_rate = 0;  // the table idles, its cache stays
  recorder_.Record(snap_, policy_, 20 * kSecond);
  RecorderStatus st = recorder_.Status();
  EXPECT_TRUE(st.recording);
  EXPECT_EQ(st.intervals, 2u);
  EXPECT_EQ(st.bytes, sink->text.size());

  policy::Trace t = Parse(sink->text);
  EXPECT_EQ(t.interval_ns, 10 * kSecond);
  EXPECT_EQ(t.page_size, 4096u);
  ASSERT_EQ(t.mounts.size(), 2u);
  EXPECT_EQ(t.mounts[0].path, "/srv/pmem");
  EXPECT_EQ(t.mounts[1].path, "/srv/cxl");
  ASSERT_EQ(t.media.size(), 2u);
  // The probe's figures for pmem0, the policy's cxl preset for /srv/cxl.
  EXPECT_EQ(t.media[static_cast<size_t>(t.mounts[0].media)].name, "pmem0");
  const policy::MediaParams& p = t.media[static_cast<size_t>(t.mounts[0].media)].params;
  EXPECT_EQ(p.read_latency_ns, 300);
  EXPECT_EQ(p.dram_latency_ns, 100);
  EXPECT_EQ(p.read_bandwidth, 3e9);
  EXPECT_EQ(p.dram_bandwidth, 8e9);
  EXPECT_EQ(p.write_bandwidth, 2e9);
  EXPECT_EQ(t.media[static_cast<size_t>(t.mounts[1].media)].name, "cxl");
  EXPECT_EQ(t.media[static_cast<size_t>(t.mounts[1].media)].params.read_latency_ns,
            policy::MediaPreset("cxl")->read_latency_ns);

  ASSERT_EQ(t.intervals.size(), 2u);
  EXPECT_EQ(t.intervals[0].t_ns, 10 * kSecond);
  EXPECT_EQ(t.intervals[1].t_ns, 20 * kSecond);
  EXPECT_DOUBLE_EQ(t.intervals[0].mem_pressure, 1.25);
  // The table, the log and the cxl image; not the idle file, the directory or
  // the file whose mode is unknown.
  ASSERT_EQ(t.intervals[0].files.size(), 3u);
  auto path = [&](const policy::TraceFile& f) { return t.paths[f.path]; };
  const policy::TraceFile& table = t.intervals[0].files[0];
  EXPECT_EQ(path(table), "/srv/pmem/db/t 1%.sst");
  EXPECT_NE(sink->text.find("/srv/pmem/db/t%201%25.sst"), std::string::npos);
  EXPECT_EQ(table.size, 64u << 20);
  EXPECT_EQ(table.mode, DaxState::kPageCache);
  EXPECT_EQ(table.read_bytes, 10485760);
  EXPECT_EQ(table.write_bytes, 0);
  EXPECT_DOUBLE_EQ(table.hit_ratio, 0.97);
  EXPECT_EQ(table.resident_bytes, 1000 * 4096);
  EXPECT_LT(table.read_calls, 0);      // not counted by the daemon
  EXPECT_LT(table.distinct_bytes, 0);  // nor this
  const policy::TraceFile& log = t.intervals[0].files[1];
  EXPECT_EQ(path(log), "/srv/pmem/app.log");
  EXPECT_EQ(log.mode, DaxState::kDax);
  EXPECT_EQ(log.read_bytes, 20000);
  EXPECT_EQ(log.write_bytes, 1000);
  EXPECT_LT(log.hit_ratio, 0);
  const policy::TraceFile& img = t.intervals[0].files[2];
  EXPECT_EQ(path(img), "/srv/cxl/vm.img");
  EXPECT_LT(img.read_bytes, 0);            // no access figures on that mount
  EXPECT_EQ(img.resident_bytes, 1 << 20);  // 256 pages, at most the size
  // Still cached: the table stays in the second interval with 0 bytes read.
  ASSERT_EQ(t.intervals[1].files.size(), 3u);
  EXPECT_EQ(t.intervals[1].files[0].read_bytes, 0);

  // And the trace replays as recorded.
  policy::SimResult result;
  std::string error;
  ASSERT_TRUE(policy::Simulate(t, policy_, {}, &result, &error)) << error;
  EXPECT_EQ(result.total.files, 3u);
  EXPECT_EQ(result.total.read_bytes, 10485760 + 2 * 20000);
}

TEST_F(RecorderTest, StopsAtItsSizeLimitWithAValidTraceThatSaysSo) {
  for (int i = 0; i < 250; ++i) {
    policy::FileRecord& f = AddFile(1, "f" + std::to_string(i), 0, 1 << 20);
    f.read_bytes_rate = 1000;
  }
  const uint64_t max = kMinTraceMaxBytes;
  auto sink = StartRecording(max);
  int64_t t = 0;
  for (int i = 0; i < 20 && recorder_.Status().recording; ++i) {
    recorder_.Record(snap_, policy_, t += 10 * kSecond);
  }
  RecorderStatus st = recorder_.Status();
  ASSERT_FALSE(st.recording) << "an interval is ~26 KB: 64 KiB hold two";
  EXPECT_NE(st.result.find("size limit of 64 KiB reached after 2 interval(s)"), std::string::npos)
      << st.result;
  EXPECT_TRUE(sink->closed);
  EXPECT_EQ(st.size_limits, 1u);
  EXPECT_EQ(st.errors + st.stopped, 0u);
  EXPECT_LE(sink->text.size(), max);
  EXPECT_EQ(st.bytes, sink->text.size());
  EXPECT_EQ(sink->text.substr(sink->text.size() - 4), "end\n");
  EXPECT_NE(sink->text.find("# stopped: the next interval ("), std::string::npos);
  policy::Trace trace = Parse(sink->text);
  EXPECT_EQ(trace.intervals.size(), 2u);
  EXPECT_EQ(trace.intervals.back().files.size(), 250u);
  // Nothing more is written.
  const std::string before = sink->text;
  recorder_.Record(snap_, policy_, t + 10 * kSecond);
  EXPECT_EQ(sink->text, before);
}

TEST_F(RecorderTest, AFailedWriteCutsTheFileBackToItsLastWholeIntervalAndStops) {
  AddFiles();
  auto sink = StartRecording();
  sink->fail_write = 2;  // the third interval: disk full halfway through
  recorder_.Record(snap_, policy_, 10 * kSecond);
  recorder_.Record(snap_, policy_, 20 * kSecond);
  const std::string two = sink->text;
  recorder_.Record(snap_, policy_, 30 * kSecond);
  RecorderStatus st = recorder_.Status();
  EXPECT_FALSE(st.recording);
  EXPECT_NE(st.result.find("No space left on device"), std::string::npos) << st.result;
  EXPECT_NE(st.result.find("keeps its 2 whole interval(s)"), std::string::npos) << st.result;
  EXPECT_EQ(sink->truncations, 1);
  EXPECT_EQ(st.errors, 1u);
  EXPECT_EQ(st.size_limits + st.stopped, 0u);
  EXPECT_TRUE(sink->closed);
  EXPECT_EQ(sink->text, two);
  EXPECT_EQ(Parse(sink->text).intervals.size(), 2u);
  // A new recording can start.
  auto next = StartRecording();
  recorder_.Record(snap_, policy_, 40 * kSecond);
  EXPECT_EQ(Parse(next->text).intervals.size(), 1u);
}

TEST_F(RecorderTest, AFileRemovedWhileRecordingStopsIt) {
  AddFiles();
  TempDir dir;
  const std::string path = (dir.path() / "a.trace").string();
  auto sink = CreateTraceFile(path);
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  ASSERT_TRUE(recorder_.Start(std::move(*sink), path, kDefaultTraceMaxBytes, "uid 0").ok());
  recorder_.Record(snap_, policy_, 10 * kSecond);
  EXPECT_EQ(Parse(ReadFile(path)).intervals.size(), 1u);
  ASSERT_EQ(unlink(path.c_str()), 0);
  recorder_.Record(snap_, policy_, 20 * kSecond);
  RecorderStatus st = recorder_.Status();
  EXPECT_FALSE(st.recording);
  EXPECT_NE(st.result.find("the trace file was removed while recording"), std::string::npos)
      << st.result;
}

TEST_F(RecorderTest, StopClosesTheFileAtOnceAndNothingMoreIsWritten) {
  AddFiles();
  auto sink = StartRecording();
  recorder_.Record(snap_, policy_, 10 * kSecond);
  EXPECT_TRUE(recorder_.Stop("uid 0 (daxpolicyctl)"));
  EXPECT_TRUE(sink->closed);
  RecorderStatus st = recorder_.Status();
  EXPECT_FALSE(st.recording);
  EXPECT_EQ(st.stopped, 1u);
  EXPECT_EQ(st.result, "stopped by uid 0 (daxpolicyctl) after 1 interval(s), " +
                           std::to_string(sink->text.size()) + " bytes");
  const std::string before = sink->text;
  recorder_.Record(snap_, policy_, 20 * kSecond);
  EXPECT_EQ(sink->text, before);
  EXPECT_EQ(Parse(before).intervals.size(), 1u);
}

TEST_F(RecorderTest, AStopDuringAWriteEndsTheRecordingAfterThatInterval) {
  AddFiles();
  auto sink = StartRecording();
  std::promise<void> writing, stopped;
  std::shared_future<void> go = stopped.get_future().share();
  sink->during_write = [&] {
    writing.set_value();
    go.wait();
  };
  std::thread worker([&] { recorder_.Record(snap_, policy_, 10 * kSecond); });
  writing.get_future().wait();
  EXPECT_TRUE(recorder_.Stop("uid 0"));  // the worker holds the file: it closes it
  EXPECT_FALSE(sink->closed);
  EXPECT_FALSE(recorder_
                   .Start(std::make_unique<FakeSink>(std::make_shared<SinkState>()), "/x",
                          kDefaultTraceMaxBytes, "uid 0")
                   .ok());
  stopped.set_value();
  worker.join();
  EXPECT_TRUE(sink->closed);
  RecorderStatus st = recorder_.Status();
  EXPECT_FALSE(st.recording);
  EXPECT_EQ(st.intervals, 1u);
  EXPECT_NE(st.result.find("stopped by uid 0 after 1 interval(s)"), std::string::npos) << st.result;
  EXPECT_EQ(Parse(sink->text).intervals.size(), 1u);
}

TEST_F(RecorderTest, RefusesASecondRecordingAndSizesOutOfRange) {
  auto first = StartRecording();
  auto again = recorder_.Start(std::make_unique<FakeSink>(std::make_shared<SinkState>()), "/y",
                               kDefaultTraceMaxBytes, "uid 0");
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message.find("runs already"), std::string::npos);
  recorder_.Stop("uid 0");
  for (uint64_t bad : {kMinTraceMaxBytes - 1, kMaxTraceMaxBytes + 1}) {
    auto r = recorder_.Start(std::make_unique<FakeSink>(std::make_shared<SinkState>()), "/z", bad,
                             "uid 0");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("between 64 KiB and 2 GiB"), std::string::npos)
        << r.error().message;
  }
}

TEST(TraceFile, IsCreatedNewAndPrivateAndNeverThroughALinkOrOverAFile) {
  TempDir dir;
  const fs::path path = dir.path() / "new.trace";
  auto sink = CreateTraceFile(path.string());
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  struct stat st {};
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_TRUE((*sink)->Write("daxpolicy-trace 1\n").ok());
  EXPECT_EQ(ReadFile(path), "daxpolicy-trace 1\n");

  auto existing = CreateTraceFile(path.string());
  ASSERT_FALSE(existing.ok());
  EXPECT_EQ(existing.error().code, EEXIST);
  EXPECT_NE(existing.error().message.find("never written over"), std::string::npos);

  fs::create_symlink(dir.path() / "target", dir.path() / "link.trace");
  auto link = CreateTraceFile((dir.path() / "link.trace").string());
  ASSERT_FALSE(link.ok());
  EXPECT_FALSE(fs::exists(dir.path() / "target"));

  EXPECT_FALSE(CreateTraceFile("relative.trace").ok());
  EXPECT_FALSE(CreateTraceFile((dir.path() / "").string()).ok());
  EXPECT_FALSE(CreateTraceFile((dir.path() / "missing" / "x.trace").string()).ok());

  const fs::path open_dir = dir.path() / "open";
  fs::create_directory(open_dir);
  chmod(open_dir.c_str(), 0777);
  auto shared = CreateTraceFile((open_dir / "x.trace").string());
  ASSERT_FALSE(shared.ok());
  EXPECT_NE(shared.error().message.find("writable by other users"), std::string::npos);
  chmod(open_dir.c_str(), 01777);  // sticky, like /tmp
  EXPECT_TRUE(CreateTraceFile((open_dir / "x.trace").string()).ok());
}

TEST(TraceFile, DefaultsToAPrivateDirectoryUnderTheStateDirectoryNamedByTheTime) {
  TempDir dir;
  const std::string state = (dir.path() / "state").string();
  auto path = DefaultTracePath(state, int64_t{1'796'036'400} * kSecond);
  ASSERT_TRUE(path.ok()) << path.error().message;
  EXPECT_EQ(*path, state + "/traces/daxpolicy-20261130T110000Z.trace");
  struct stat st {};
  ASSERT_EQ(stat((state + "/traces").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

}  // namespace
}  // namespace daxpolicy::daemon
