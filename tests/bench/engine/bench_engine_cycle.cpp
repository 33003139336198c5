// SPDX-License-Identifier: Apache-2.0
// CPU per cycle of the daemon's steady state over N managed files (see
// docs/benchmarks.md), against a full cycle in the same run.
//
// The engine runs with the daemon's own parts (daemon/wiring.cpp: the files,
// system, access and media sources, /proc holders, fanotify) in observe mode on
// a loop-mounted xfs (dax=inode) holding N files, or on --dir. Each mode gets
// its own engine; its first two cycles (every file new; the access source's
// first window) are not counted, then `--cycles` cycles are, with the
// process's CPU time (user + system, getrusage) around each. Modes, in order:
//   full    the baseline: every cycle walks every directory and samples every
//           file (the file source is told to make a full walk each time);
//   idle    the engine's own steady state, nothing touched between cycles;
//   active  the same with --active-percent of the files read between cycles
//           by another process (whose CPU is not counted).
// "% of a core" is CPU per cycle / --interval. Needs root for the loop mount
// (exit 77 = skipped, outside CI).

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/engine.h"
#include "daemon/log.h"
#include "daemon/wiring.h"
#include "plugins/unique_fd.h"
#include "tests/bench/bench_support.h"

namespace {

using namespace daxpolicy;
using daxpolicy::bench::Shell;
using daxpolicy::testing::InCi;

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

struct Config {
  uint64_t files = 200'000;
  uint32_t files_per_dir = 1000;
  int cycles = 5;
  double interval_s = 10;
  double active_percent = 1;
  std::string dir;
  bool keep = false;
  bool no_full = false;
};

std::string DirName(uint64_t d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "d%05llu", static_cast<unsigned long long>(d));
  return buf;
}
std::string FileName(uint64_t f) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "f%07llu", static_cast<unsigned long long>(f));
  return buf;
}

// N files of 512 bytes, files_per_dir to a directory.
bool Populate(const std::string& root, const Config& c) {
  const std::string data(512, 'x');
  const uint64_t dirs = (c.files + c.files_per_dir - 1) / c.files_per_dir;
  uint64_t made = 0;
  for (uint64_t d = 0; d < dirs; ++d) {
    const std::string dir = root + "/" + DirName(d);
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return false;
    UniqueFd dfd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dfd.valid()) return false;
    for (uint32_t f = 0; f < c.files_per_dir && made < c.files; ++f, ++made) {
      UniqueFd fd(openat(dfd.get(), FileName(f).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
      if (!fd.valid() || write(fd.get(), data.data(), data.size()) != 512) return false;
    }
  }
  return true;
}

// Reads `percent` of the files (a different slice each call) in a child process.
void ReadSome(const std::string& root, const Config& c, int round) {
  const uint64_t n = static_cast<uint64_t>(static_cast<double>(c.files) * c.active_percent / 100);
  const pid_t pid = fork();
  if (pid == 0) {
    char buf[4096];
    const uint64_t stride = std::max<uint64_t>(1, c.files / std::max<uint64_t>(1, n));
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t f = (i * stride + static_cast<uint64_t>(round)) % c.files;
      const std::string path =
          root + "/" + DirName(f / c.files_per_dir) + "/" + FileName(f % c.files_per_dir);
      const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      while (read(fd, buf, sizeof buf) > 0) {
      }
      close(fd);
    }
    _exit(0);
  }
  int status = 0;
  if (pid > 0) waitpid(pid, &status, 0);
}

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Wraps the file source: counts its CPU time and, for the baseline, makes
// every cycle a full walk (today's full cycle).
class TimedFiles final : public plugins::TelemetrySource {
 public:
  TimedFiles(std::unique_ptr<plugins::TelemetrySource> inner, bool full, double* cpu)
      : inner_(std::move(inner)), full_(full), cpu_(cpu) {}
  std::string_view Name() const override { return inner_->Name(); }
  void Sample(plugins::SampleContext& ctx) override {
    if (full_) ctx.full_scan = true;
    const double t0 = ThreadCpuSeconds();
    inner_->Sample(ctx);
    *cpu_ += ThreadCpuSeconds() - t0;
  }
  std::string Degraded() const override { return inner_->Degraded(); }

 private:
  std::unique_ptr<plugins::TelemetrySource> inner_;
  bool full_;
  double* cpu_;
};

struct Figures {
  bool ok = false;
  uint64_t files = 0;
  double cpu_per_cycle = 0;  // seconds
  double max_cpu = 0;
  double wall_per_cycle = 0;
  double files_cpu_per_cycle = 0;  // of which the file source
};

enum class Mode { kFull, kIdle, kActive };
const char* ModeName(Mode m) {
  switch (m) {
    case Mode::kFull:
      return "full (baseline)";
    case Mode::kIdle:
      return "idle";
    case Mode::kActive:
      return "active";
  }
  return "?";
}

Figures Run(Mode mode, const std::string& root, const std::string& state_dir, const Config& c) {
  std::optional<policy::Policy> loaded = bench::SizeSplitPolicy(
      root, "1MiB",
      "daemon: { interval: " + std::to_string(int(c.interval_s)) + "s, mode: observe }\n");
  if (!loaded) return {};
  daemon::Options options;
  options.state_dir = state_dir;
  options.observe = true;
  daemon::EngineParts parts = daemon::MakeEngineParts(options, *loaded);
  double files_cpu = 0;
  parts.sources.front() = std::make_unique<TimedFiles>(std::move(parts.sources.front()),
                                                       mode == Mode::kFull, &files_cpu);
  auto engine = daemon::Engine::Create(options, *loaded, std::move(parts));
  if (!engine.ok()) {
    std::fprintf(stderr, "engine: %s\n", engine.error().message.c_str());
    return {};
  }
  daemon::Engine& e = **engine;
  Figures f;
  // Not counted: the first cycle (every file is new) and the second (the
  // access source has its first complete window only after it).
  f.files = e.RunCycle().files;
  (void)e.RunCycle();
  files_cpu = 0;
  double cpu = 0;
  double wall = 0;
  for (int i = 0; i < c.cycles; ++i) {
    if (mode == Mode::kActive) ReadSome(root, c, i);
    const double c0 = CpuSeconds();
    const auto w0 = std::chrono::steady_clock::now();
    (void)e.RunCycle();
    const double dc = CpuSeconds() - c0;
    cpu += dc;
    f.max_cpu = std::max(f.max_cpu, dc);
    wall += std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
  }
  f.cpu_per_cycle = cpu / c.cycles;
  f.wall_per_cycle = wall / c.cycles;
  f.files_cpu_per_cycle = files_cpu / c.cycles;
  f.ok = f.files >= c.files && e.ManagedFiles() >= c.files;
  if (!f.ok) {
    std::fprintf(stderr, "%s: the engine manages %llu files, expected %llu (Degraded: %s)\n",
                 ModeName(mode), static_cast<unsigned long long>(e.ManagedFiles()),
                 static_cast<unsigned long long>(c.files), e.Degraded().c_str());
  }
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  CLI::App app{"CPU per cycle of the daemon's steady state against a full cycle"};
  app.add_option("--files", c.files, "managed files (default 200000)");
  app.add_option("--files-per-dir", c.files_per_dir, "files per directory (default 1000)");
  app.add_option("--cycles", c.cycles, "cycles measured per mode (default 5)");
  app.add_option("--interval", c.interval_s, "seconds between cycles, for % of a core (10)");
  app.add_option("--active-percent", c.active_percent, "files read per cycle in active mode (1)");
  app.add_option("--dir", c.dir, "an existing empty directory instead of a loop-mounted xfs");
  app.add_flag("--keep", c.keep, "keep the loop image mounted (prints where)");
  app.add_flag("--no-full", c.no_full, "skip the full-walk baseline (e.g. to profile the rest)");
  CLI11_PARSE(app, argc, argv);
  if (c.files == 0 || c.files_per_dir == 0 || c.cycles <= 0 || c.interval_s <= 0) {
    std::fprintf(stderr, "--files, --files-per-dir, --cycles and --interval must be > 0\n");
    return 2;
  }
  daxpolicy::daemon::SetLogLevel(daxpolicy::daemon::LogLevel::kWarning);

  if (geteuid() != 0) {
    std::fprintf(stderr, "needs root (loop mount, fanotify, /proc of other processes)\n");
    return InCi() ? 1 : 77;
  }
  const std::string work = bench::MakeWorkDir("bench-cycle");
  if (work.empty()) {
    std::perror("mkdtemp");
    return 1;
  }
  std::string root = c.dir;
  std::string mount_point;
  if (root.empty()) {
    mount_point = work + "/mnt";
    mkdir(mount_point.c_str(), 0755);
    if (!bench::MountXfsFor(c.files, work + "/xfs.img", mount_point)) {
      std::fprintf(stderr, "cannot set up the loop-mounted xfs\n");
      Shell("rm -rf '" + work + "'");
      return InCi() ? 1 : 77;
    }
    root = mount_point + "/scope";
    mkdir(root.c_str(), 0755);
  }
  const std::string state_dir = work + "/state";
  mkdir(state_dir.c_str(), 0700);
  int rc = 0;
  if (!Populate(root, c)) {
    std::perror("creating the files");
    rc = 1;
  }
  std::vector<std::pair<Mode, Figures>> results;
  for (Mode m : {Mode::kFull, Mode::kIdle, Mode::kActive}) {
    if (rc != 0) break;
    if (m == Mode::kActive && c.active_percent <= 0) continue;
    if (m == Mode::kFull && c.no_full) continue;
    Figures f = Run(m, root, state_dir, c);
    if (!f.ok) rc = 1;
    results.emplace_back(m, f);
  }
  if (rc == 0) {
    const double base = c.no_full ? 0 : results.front().second.cpu_per_cycle;
    std::printf("%llu files, %d cycles per mode, %.0f s interval\n\n",
                static_cast<unsigned long long>(c.files), c.cycles, c.interval_s);
    std::printf(
        "| mode | CPU ms/cycle (max) | of which file source | wall ms/cycle | %% of one core | "
        "vs full |\n");
    std::printf("|---|---:|---:|---:|---:|---:|\n");
    for (const auto& [m, f] : results) {
      char ratio[32] = "n/a";
      if (base > 0) std::snprintf(ratio, sizeof ratio, "%.3fx", f.cpu_per_cycle / base);
      std::printf("| %s | %.1f (%.1f) | %.1f | %.1f | %.3f %% | %s |\n", ModeName(m),
                  f.cpu_per_cycle * 1e3, f.max_cpu * 1e3, f.files_cpu_per_cycle * 1e3,
                  f.wall_per_cycle * 1e3, 100 * f.cpu_per_cycle / c.interval_s, ratio);
    }
  }
  if (!mount_point.empty()) {
    if (c.keep) {
      std::printf("kept: %s\n", mount_point.c_str());
    } else {
      Shell("umount '" + mount_point + "'");
      Shell("rm -rf '" + work + "'");
    }
  } else if (!c.keep) {
    Shell("rm -rf '" + state_dir + "'");
    rmdir(work.c_str());
  }
  return rc;
}
