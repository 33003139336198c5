// SPDX-License-Identifier: Apache-2.0
// Marginal peak memory per tracked file of the engine, and its cycle time
// (see docs/benchmarks.md).
//
// Each size runs in its own child process: the engine with fake parts (a
// synthetic file source that builds each cycle's table from the previous one
// the way the scanner does, no disk, no /proc), several cycles, then the
// process's peak resident set (VmHWM) and a GetFile/Explain/listing walk of
// the view. The marginal figure is (peak(N) - peak(small)) / (N - small).
// Baseline in the same run: the file table alone (one Snapshot of the same
// files, the floor any design pays once). The cycle time is the fastest of
// the cycles after the first (the first finds every file new), whole and its
// Publish step alone.

#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/engine.h"
#include "tests/bench/bench_support.h"
#include "tests/fakes/fakes.h"

namespace {

using namespace daxpolicy;

uint64_t StatusBytes(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::stoull(line.substr(std::strlen(key))) * 1024;
  }
  return 0;
}

struct Sample {
  uint64_t hwm = 0;
  uint64_t rss = 0;
  uint64_t files = 0;
  int64_t cycle_ns = 0;    // fastest cycle after the first
  int64_t publish_ns = 0;  // its Publish step
  int ok = 0;
};

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The engine over `files` synthetic files: peak after `cycles` cycles.
Sample RunEngine(const std::string& root, uint64_t files, uint32_t dirs, int cycles) {
  std::optional<policy::Policy> loaded = bench::SizeSplitPolicy(
      root, "128KiB",
      "daemon: { interval: 10s, mode: enforce }\n"
      "defaults: { dax: keep, min_dwell: 5m, max_switches_per_minute: 100 }\n");
  if (!loaded) return {};
  fakes::FakeParts parts(std::make_unique<fakes::SyntheticFileSource>(files, dirs));
  std::shared_ptr<fakes::FakeClock> clock = parts.clock;
  auto engine = daemon::Engine::Create(daemon::Options{}, *loaded, parts.Take());
  if (!engine.ok()) {
    std::fprintf(stderr, "engine: %s\n", engine.error().message.c_str());
    return {};
  }
  daemon::Engine& e = **engine;
  Sample s;
  for (int c = 0; c < cycles; ++c) {
    // RunCycle's steps, timed.
    const int64_t start = NowNs();
    daemon::CycleJobPtr job = e.BeginCycle();
    e.Sample(*job);
    e.Decide(*job);
    e.Journal(*job);
    e.Apply(*job);
    const int64_t publish_start = NowNs();
    e.Publish(*job);
    const int64_t publish_end = NowNs();
    daemon::CycleReport r = e.EndCycle(std::move(job));
    const int64_t end = NowNs();
    if (c > 0 && (s.cycle_ns == 0 || end - start < s.cycle_ns)) {
      s.cycle_ns = end - start;
      s.publish_ns = publish_end - publish_start;
    }
    s.files = r.files;
    clock->Advance(10'000'000'000);
  }
  s.hwm = StatusBytes("VmHWM:");
  s.rss = StatusBytes("VmRSS:");
  uint64_t listed = 0;
  e.ForEachFile(std::nullopt, [&](const daemon::FileView&) { ++listed; });
  s.ok = listed == files && e.ManagedFiles() == files &&
         e.Gauges().files_by_state[policy::FileState::kInSync] == files;
  return s;
}

// The baseline: one file table of the same files.
Sample RunTable(const std::string& root, uint64_t files, uint32_t dirs) {
  fakes::SyntheticFileSource source(files, dirs);
  plugins::ScopeList scopes;
  plugins::ScopeInfo scope;
  scope.path = root;
  scope.usable = true;
  scopes.list.push_back(scope);
  policy::Snapshot snap;
  plugins::SampleContext ctx(snap, scopes);
  source.Sample(ctx);
  Sample s;
  s.files = snap.files.size();
  s.hwm = StatusBytes("VmHWM:");
  s.rss = StatusBytes("VmRSS:");
  s.ok = s.files == files;
  return s;
}

// Runs `run` in a child process and returns what it measured.
template <class F>
Sample InChild(F run) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    Sample s = run();
    ssize_t n = write(fds[1], &s, sizeof s);
    _exit(n == sizeof s ? 0 : 1);
  }
  close(fds[1]);
  Sample s;
  ssize_t n = read(fds[0], &s, sizeof s);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (n != sizeof s || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return {};
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Marginal peak RSS per tracked file of the engine, and its cycle time"};
  std::vector<uint64_t> sizes{100'000, 1'000'000};
  uint64_t small = 1'000;
  uint32_t files_per_dir = 1'000;
  int cycles = 4;
  double max_bytes = 0;
  app.add_option("--files", sizes, "file counts to measure")->expected(1, -1);
  app.add_option("--small", small, "the reference size");
  app.add_option("--files-per-dir", files_per_dir, "files per directory");
  app.add_option("--cycles", cycles, "cycles before measuring (at least 2)");
  app.add_option("--max-bytes-per-file", max_bytes,
                 "exit 1 when the engine's marginal bytes/file exceed this (0: report only)");
  CLI11_PARSE(app, argc, argv);
  cycles = std::max(cycles, 2);

  char tmpl[] = "/tmp/bench-engine-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string root = tmpl;
  auto dirs_for = [&](uint64_t n) {
    return static_cast<uint32_t>(std::max<uint64_t>(1, n / files_per_dir));
  };
  int rc = 0;
  const Sample e0 = InChild([&] { return RunEngine(root, small, dirs_for(small), cycles); });
  const Sample t0 = InChild([&] { return RunTable(root, small, dirs_for(small)); });
  if (!e0.ok || !t0.ok) {
    std::fprintf(stderr, "the reference run failed\n");
    rmdir(root.c_str());
    return 1;
  }
  std::printf(
      "| files | engine peak RSS | engine bytes/file | table alone bytes/file | cycle | Publish "
      "|\n");
  std::printf("|---:|---:|---:|---:|---:|---:|\n");
  for (uint64_t n : sizes) {
    const Sample e = InChild([&] { return RunEngine(root, n, dirs_for(n), cycles); });
    const Sample t = InChild([&] { return RunTable(root, n, dirs_for(n)); });
    if (!e.ok || !t.ok) {
      std::fprintf(stderr, "the run with %llu files failed\n", static_cast<unsigned long long>(n));
      rc = 1;
      continue;
    }
    const double per_file =
        (static_cast<double>(e.hwm) - static_cast<double>(e0.hwm)) / static_cast<double>(n - small);
    const double table =
        (static_cast<double>(t.hwm) - static_cast<double>(t0.hwm)) / static_cast<double>(n - small);
    std::printf("| %llu | %.1f MiB | **%.1f** | %.1f | %.1f ms | %.1f ms |\n",
                static_cast<unsigned long long>(n), static_cast<double>(e.hwm) / (1 << 20),
                per_file, table, static_cast<double>(e.cycle_ns) / 1e6,
                static_cast<double>(e.publish_ns) / 1e6);
    if (max_bytes > 0 && per_file > max_bytes) rc = 1;
  }
  rmdir(root.c_str());
  return rc;
}
