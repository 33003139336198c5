// SPDX-License-Identifier: Apache-2.0
// From a file's creation to the daemon's decision about it (see
// docs/benchmarks.md): the real daxpolicyd on a loop-mounted xfs (dax=inode)
// holding --files idle files, with a rule that puts every file of new/ on DAX.
// Files are created in new/ one at a time, --gap-min to --gap-max seconds
// apart (uniform, the same seeded sequence in each mode), and each one's
// latency is the time until the daemon logs its switch. Modes, in order:
//   interval  the baseline: cycles only every --interval (--no-early-cycles);
//   early     the daemon's own: a cycle soon after files are created.
// The daemon's CPU time (utime + stime from /proc) over the creations is
// reported next to the latencies. In each mode, one file is created as soon as
// the first cycle has ended: its latency (the start-up transient, when the
// second cycle samples every file) is reported apart, and the measured
// creations begin --settle seconds after it was decided. Needs root (loop
// mount, fanotify): exit 77 = skipped, outside CI. No D-Bus is needed: the
// daemon runs on without one.

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "plugins/unique_fd.h"
#include "tests/bench/bench_support.h"

extern char** environ;

namespace {

using namespace daxpolicy;
using daxpolicy::bench::Shell;
using daxpolicy::testing::InCi;
using Clock = std::chrono::steady_clock;

struct Config {
  uint64_t files = 10'000;
  uint32_t files_per_dir = 1000;
  int creates = 60;
  double gap_min_s = 0.2;
  double gap_max_s = 1.0;
  double interval_s = 10;
  unsigned seed = 1;
  double settle_s = 2;
  std::string daxpolicyd;  // empty: the one built with this benchmark
};

bool Populate(const std::string& root, const Config& c) {
  const std::string data(512, 'x');
  uint64_t made = 0;
  for (uint64_t d = 0; made < c.files; ++d) {
    char dir[64];
    std::snprintf(dir, sizeof dir, "%s/d%05llu", root.c_str(), static_cast<unsigned long long>(d));
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return false;
    for (uint32_t f = 0; f < c.files_per_dir && made < c.files; ++f, ++made) {
      const std::string path = std::string(dir) + "/f" + std::to_string(f);
      UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
      if (!fd.valid() || write(fd.get(), data.data(), data.size()) != 512) return false;
    }
  }
  return true;
}

bool CreateFile(const std::string& path) {
  const std::string data(4096, 'n');
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  return fd.valid() && write(fd.get(), data.data(), data.size()) == 4096;
}

// A daxpolicyd whose stderr is read line by line; each "switched PATH to"
// line is stamped when it arrives.
class Daemon {
 public:
  bool Start(const std::string& binary, const std::string& policy, const std::string& state_dir,
             bool early) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return false;
    pid_ = fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      dup2(p[1], 2);
      std::vector<std::string> env;
      for (char** e = environ; *e; ++e) {
        if (std::strncmp(*e, "JOURNAL_STREAM=", 15) != 0 && std::strncmp(*e, "DBUS_", 5) != 0 &&
            std::strncmp(*e, "NOTIFY_SOCKET=", 14) != 0) {
          env.emplace_back(*e);
        }
      }
      // No bus: the daemon says so once and goes on deciding.
      env.emplace_back("DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent/bench-bus");
      std::vector<std::string> args = {binary,        "--session", "--config",         policy,
                                       "--state-dir", state_dir,   "--metrics-listen", "off",
                                       "--log-level", "info"};
      if (!early) args.emplace_back("--no-early-cycles");
      std::vector<char*> argv, envp;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      for (std::string& e : env) envp.push_back(e.data());
      envp.push_back(nullptr);
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    close(p[1]);
    fd_.Reset(p[0]);
    reader_ = std::thread([this] { Read(); });
    return true;
  }
  ~Daemon() { Stop(); }
  void Stop() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (reader_.joinable()) reader_.join();
  }
  pid_t pid() const { return pid_; }
  // When the switch of `path` was logged, if it was.
  bool SwitchedAt(const std::string& path, Clock::time_point* at) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = switched_.find(path);
    if (it == switched_.end()) return false;
    *at = it->second;
    return true;
  }
  std::string Tail() {
    std::lock_guard<std::mutex> lock(mu_);
    return tail_;
  }

 private:
  void Read() {
    std::string pending;
    char buf[4096];
    for (;;) {
      const ssize_t n = read(fd_.get(), buf, sizeof buf);
      if (n <= 0) return;
      const Clock::time_point now = Clock::now();
      pending.append(buf, static_cast<size_t>(n));
      size_t nl;
      while ((nl = pending.find('\n')) != std::string::npos) {
        const std::string line = pending.substr(0, nl);
        pending.erase(0, nl + 1);
        std::lock_guard<std::mutex> lock(mu_);
        tail_ += line + "\n";
        if (tail_.size() > 8192) tail_.erase(0, tail_.size() - 4096);
        const size_t at = line.find("switched ");
        if (at == std::string::npos) continue;
        const size_t to = line.find(" to ", at);
        if (to == std::string::npos) continue;
        switched_.emplace(line.substr(at + 9, to - at - 9), now);
      }
    }
  }

  pid_t pid_ = -1;
  UniqueFd fd_;
  std::thread reader_;
  std::mutex mu_;
  std::map<std::string, Clock::time_point> switched_;
  std::string tail_;
};

struct Figures {
  bool ok = false;
  std::vector<double> latencies;  // seconds, sorted
  double cpu_s = 0;               // the daemon's, over the creations and their decisions
  double wall_s = 0;
  double first_s = 0;  // the file created just after the first cycle
  double Percentile(double p) const {
    if (latencies.empty()) return 0;
    const size_t i = static_cast<size_t>(p / 100 * static_cast<double>(latencies.size() - 1) + 0.5);
    return latencies[std::min(i, latencies.size() - 1)];
  }
};

bool WaitSwitched(Daemon& d, const std::string& path, double limit_s, Clock::time_point* at) {
  const Clock::time_point end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                   std::chrono::duration<double>(limit_s));
  while (Clock::now() < end) {
    if (d.SwitchedAt(path, at)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

Figures Run(bool early, const std::string& root, const std::string& work, const Config& c) {
  Figures f;
  const std::string name = early ? "early" : "interval";
  const std::string policy = work + "/" + name + ".yaml";
  {
    std::ofstream out(policy);
    out << "apiVersion: daxpolicy/v1\n"
        << "daemon: { interval: " << c.interval_s << "s }\n"
        << "scopes: [ " << root << " ]\n"
        << "rules:\n"
        << "  - name: new-on-dax\n"
        << "    match: { path: \"" << root << "/new/**\" }\n"
        << "    dax: on\n";
  }
  const std::string state = work + "/state-" + name;
  mkdir(state.c_str(), 0700);
  const std::string dir = root + "/new/" + name;
  mkdir(dir.c_str(), 0755);
  // The first cycle is over once a file there before the start is switched.
  const std::string ready = dir + "/ready";
  if (!CreateFile(ready)) return f;
  Daemon d;
  const std::string binary =
      c.daxpolicyd.empty() ? daxpolicy::testing::BinaryPath("daxpolicyd") : c.daxpolicyd;
  if (!d.Start(binary, policy, state, early)) return f;
  Clock::time_point at;
  if (!WaitSwitched(d, ready, 120, &at)) {
    std::fprintf(stderr, "%s: the first cycle did not end:\n%s\n", name.c_str(), d.Tail().c_str());
    return f;
  }
  const std::string first = dir + "/first";
  const Clock::time_point first_created = Clock::now();
  if (!CreateFile(first)) {
    std::perror(first.c_str());
    return f;
  }
  if (!WaitSwitched(d, first, 2 * c.interval_s + 10, &at)) {
    std::fprintf(stderr, "%s: %s was not decided:\n%s\n", name.c_str(), first.c_str(),
                 d.Tail().c_str());
    return f;
  }
  f.first_s = std::chrono::duration<double>(at - first_created).count();
  std::this_thread::sleep_for(std::chrono::duration<double>(c.settle_s));
  std::mt19937 rng(c.seed);
  std::uniform_real_distribution<double> gap(c.gap_min_s, c.gap_max_s);
  std::vector<std::pair<std::string, Clock::time_point>> made;
  const double cpu0 = bench::ProcessCpuSeconds(d.pid());
  const Clock::time_point t0 = Clock::now();
  for (int i = 0; i < c.creates; ++i) {
    std::this_thread::sleep_for(std::chrono::duration<double>(gap(rng)));
    const std::string path = dir + "/n" + std::to_string(i);
    const Clock::time_point created = Clock::now();
    if (!CreateFile(path)) {
      std::perror(path.c_str());
      return f;
    }
    made.emplace_back(path, created);
  }
  f.ok = true;
  for (const auto& [path, created] : made) {
    if (!WaitSwitched(d, path, 2 * c.interval_s + 10, &at)) {
      std::fprintf(stderr, "%s: %s was not decided:\n%s\n", name.c_str(), path.c_str(),
                   d.Tail().c_str());
      f.ok = false;
      break;
    }
    f.latencies.push_back(std::chrono::duration<double>(at - created).count());
  }
  f.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  f.cpu_s = bench::ProcessCpuSeconds(d.pid()) - cpu0;
  std::sort(f.latencies.begin(), f.latencies.end());
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  CLI::App app{"Latency from a file's creation to the daemon's decision, against interval-only"};
  app.add_option("--files", c.files, "idle files in the scope (default 10000)");
  app.add_option("--creates", c.creates, "files created per mode (default 60)");
  app.add_option("--gap-min", c.gap_min_s, "least seconds between two creations (0.2)");
  app.add_option("--gap-max", c.gap_max_s, "most seconds between two creations (1.0)");
  app.add_option("--interval", c.interval_s, "daemon.interval in seconds (10)");
  app.add_option("--seed", c.seed, "of the creation times (1)");
  app.add_option("--settle", c.settle_s,
                 "seconds from the first file's decision to the measured creations (2)");
  app.add_option("--daxpolicyd", c.daxpolicyd,
                 "the daemon to measure (default: the one built with this benchmark)")
      ->check(CLI::ExistingFile);
  CLI11_PARSE(app, argc, argv);
  if (c.creates <= 0 || c.interval_s <= 0 || c.gap_min_s < 0 || c.gap_max_s < c.gap_min_s ||
      c.settle_s < 0) {
    std::fprintf(stderr,
                 "--creates and --interval must be > 0, 0 <= --gap-min <= --gap-max, "
                 "--settle >= 0\n");
    return 2;
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "needs root (loop mount, fanotify)\n");
    return InCi() ? 1 : 77;
  }
  const std::string work = bench::MakeWorkDir("bench-new-file");
  if (work.empty()) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string mount_point = work + "/mnt";
  mkdir(mount_point.c_str(), 0755);
  if (!bench::MountXfsFor(c.files + 1000, work + "/xfs.img", mount_point)) {
    std::fprintf(stderr, "cannot set up the loop-mounted xfs\n");
    Shell("rm -rf '" + work + "'");
    return InCi() ? 1 : 77;
  }
  const std::string root = mount_point + "/scope";
  mkdir(root.c_str(), 0755);
  mkdir((root + "/new").c_str(), 0755);
  int rc = 0;
  if (!Populate(root, c)) {
    std::perror("creating the files");
    rc = 1;
  }
  std::vector<std::pair<const char*, Figures>> results;
  for (bool early : {false, true}) {
    if (rc != 0) break;
    Figures f = Run(early, root, work, c);
    if (!f.ok) rc = 1;
    results.emplace_back(early ? "early cycles" : "interval only (baseline)", std::move(f));
  }
  if (rc == 0) {
    std::string load;
    std::getline(std::ifstream("/proc/loadavg") >> std::ws, load);
    std::printf(
        "%llu idle files, %d files created %.1f to %.1f s apart, %.0f s interval; load average "
        "%s\n\n",
        static_cast<unsigned long long>(c.files), c.creates, c.gap_min_s, c.gap_max_s, c.interval_s,
        load.c_str());
    std::printf(
        "| mode | p50 s | p90 s | p99 s | max s | daemon CPU s (%% of one core) | "
        "p99 vs baseline | first file after start s |\n");
    std::printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    const double base = results.front().second.Percentile(99);
    for (const auto& [mode, f] : results) {
      std::printf("| %s | %.3f | %.3f | %.3f | %.3f | %.2f (%.2f %%) | %.3fx | %.3f |\n", mode,
                  f.Percentile(50), f.Percentile(90), f.Percentile(99), f.latencies.back(), f.cpu_s,
                  100 * f.cpu_s / f.wall_s, base > 0 ? f.Percentile(99) / base : 0, f.first_s);
    }
  }
  Shell("umount '" + mount_point + "'");
  Shell("rm -rf '" + work + "'");
  return rc;
}
