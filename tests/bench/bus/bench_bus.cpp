// SPDX-License-Identifier: Apache-2.0
// D-Bus load on the real daxpolicyd: paced calls from concurrent clients while the daemon
// runs its cycles, against a baseline service on a bus (systemd when a system bus exists,
// else the private bus's own org.freedesktop.DBus) queried by the same client code, and
// against busctl as an independent client. Builds its own world: a loop-mounted xfs
// (dax=inode) with the files, a policy, a private session-type dbus-daemon, the daemon.
// Needs root for the loop mount. Exit 77 = skipped (no root, not CI). See docs/bench-bus.md.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sdbus-c++/sdbus-c++.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/bench/bench_support.h"

#ifndef DAXPOLICY_BENCH_DAXPOLICYD
#define DAXPOLICY_BENCH_DAXPOLICYD "daxpolicyd"
#endif

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kBusName = "org.daxpolicy.DaxPolicy1";
constexpr const char* kObjectPath = "/org/daxpolicy/DaxPolicy1";
constexpr const char* kInterface = "org.daxpolicy.DaxPolicy1.Manager";

std::atomic<bool> g_stop{false};

void OnStopSignal(int) { g_stop = true; }

using daxpolicy::bench::Shell;
using daxpolicy::testing::InCi;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Options {
  int files = 100'000;
  int files_per_dir = 1000;
  int calls = 10'000;
  int clients = 4;
  double rate = 1000;
  int busctl_calls = 200;
  std::string list_state = "blocked";
  std::string daxpolicyd = DAXPOLICY_BENCH_DAXPOLICYD;
  double target_p99_ms = 2.0;
  bool check_p99 = false;
  bool require_systemd = false;  // fail instead of falling back to the private bus
  // Keep the loop-mounted xfs in this image across runs ("" = a new one in the work
  // directory, removed at the end): made and filled when IMAGE.done does not say it
  // holds this tree, else mounted and used as it is.
  std::string image;
  // Stop after the memory figure (no listing, no load): the daemon's RSS and peak with
  // the tracked files only.
  bool memory_only = false;
  // Cycles that must end after the first before the memory figure is read.
  int settle_cycles = 3;
  // With --memory-only: then the daemon's CPU time over this many seconds with
  // nothing touched (0: not measured).
  double idle_seconds = 0;
  // daemon.mode of the policy: enforce switches files (within the budget, so
  // a million files keep it busy for hours); observe reaches its steady state
  // after the first cycles.
  std::string mode = "enforce";
  // The RSS bound: a fixed part (code, libraries, allocator arenas, the metrics server's
  // threads) plus the daemon's per-file state (path, flags, samples, rule state).
#ifdef __SANITIZE_ADDRESS__
  // The daemon is built with the same flags: ASan's shadow memory and its 256 MiB
  // quarantine of freed blocks come on top.
  double rss_fixed_mib = 320;
  double rss_per_file_bytes = 4096;
#else
  double rss_fixed_mib = 32;
  double rss_per_file_bytes = 1024;
#endif
};

// A child process killed (SIGTERM, then SIGKILL after 5 s) and reaped when this goes away.
class Child {
 public:
  Child() = default;
  explicit Child(pid_t pid) : pid_(pid) {}
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { Stop(); }
  void Adopt(pid_t pid) {
    Stop();
    pid_ = pid;
  }
  pid_t pid() const { return pid_; }
  bool Running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 500; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

// fork+exec with stdout/stderr to `log` (or /dev/null) and, when fd3 >= 0, that fd as fd 3.
// Everything the child touches is prepared before fork: the parent has threads.
pid_t Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env,
            const std::string& log, int fd3) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; *e != nullptr; ++e) env_store.emplace_back(*e);
  for (const auto& e : extra_env) env_store.push_back(e);
  std::vector<char*> env;
  for (auto& e : env_store) env.push_back(e.data());
  env.push_back(nullptr);
  const int out = open(log.empty() ? "/dev/null" : log.c_str(),
                       O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out, 1);
    dup2(out, 2);
    if (fd3 >= 0) {
      if (fd3 == 3) {
        fcntl(3, F_SETFD, 0);
      } else {
        dup2(fd3, 3);
      }
    }
    const int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    execve(args[0], args.data(), env.data());
    execvpe(args[0], args.data(), env.data());
    _exit(127);
  }
  close(out);
  return pid;
}

// Runs a program to completion (stdout/stderr discarded); returns its wall time in
// microseconds, or a negative value when it did not exit 0.
double TimedRun(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  const auto start = Clock::now();
  pid_t pid = -1;
  const int err = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  const double us = Seconds(start) * 1e6;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? us : -1;
}

// A size field of /proc/PID/status ("VmRSS:", "VmHWM:", in kB) in bytes; 0 if gone.
uint64_t StatusBytes(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) {
      return std::strtoull(line.c_str() + field.size(), nullptr, 10) * 1024;
    }
  }
  return 0;
}

// Resident set size of a process in bytes; 0 if gone.
uint64_t VmRssBytes(pid_t pid) { return StatusBytes(pid, "VmRSS:"); }

// GET /metrics from 127.0.0.1:port over HTTP/1.0; "" on failure.
std::string FetchMetrics(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string body;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[65536];
      ssize_t n;
      while ((n = read(fd, buf, sizeof(buf))) > 0) body.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return body;
}

struct CycleTotals {
  double sum = 0;  // seconds
  uint64_t count = 0;
  bool ok = false;
};

CycleTotals ParseCycles(const std::string& text) {
  CycleTotals t;
  std::istringstream in(text);
  std::string line;
  bool have_sum = false;
  bool have_count = false;
  while (std::getline(in, line)) {
    if (line.rfind("daxpolicy_cycle_duration_seconds_sum", 0) == 0) {
      t.sum = std::strtod(line.c_str() + line.rfind(' ') + 1, nullptr);
      have_sum = true;
    } else if (line.rfind("daxpolicy_cycle_duration_seconds_count", 0) == 0) {
      t.count = std::strtoull(line.c_str() + line.rfind(' ') + 1, nullptr, 10);
      have_count = true;
    }
  }
  t.ok = have_sum && have_count;
  return t;
}

struct Percentiles {
  size_t n = 0;
  double p50 = 0, p90 = 0, p99 = 0, max = 0;  // microseconds
};

Percentiles Summarize(std::vector<double> v) {
  Percentiles p;
  p.n = v.size();
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
  };
  p.p50 = at(0.50);
  p.p90 = at(0.90);
  p.p99 = at(0.99);
  p.max = v.back();
  return p;
}

void PrintRow(const std::string& name, const Percentiles& p) {
  std::printf("  %-26s %7zu %9.3f %9.3f %9.3f %10.3f\n", name.c_str(), p.n, p.p50 / 1000,
              p.p90 / 1000, p.p99 / 1000, p.max / 1000);
}

void PrintHeader() {
  std::printf("  %-26s %7s %9s %9s %9s %10s\n", "method", "calls", "p50 ms", "p90 ms", "p99 ms",
              "max ms");
}

// One kind of call a client makes; `call` throws on failure.
struct Op {
  std::string name;
  int weight;
  std::function<void(sdbus::IProxy&, std::mt19937_64&)> call;
};

struct LoadResult {
  std::map<std::string, std::vector<double>> latency_us;  // per op name, send to reply
  // Per op name, from the time the call was due to the reply: what independent callers
  // arriving at the target rate would see, including waiting while every client is blocked.
  std::map<std::string, std::vector<double>> scheduled_us;
  uint64_t failures = 0;
  std::vector<std::string> failure_samples;
  double seconds = 0;
  double max_lag_ms = 0;  // how far behind the schedule a call was sent, at worst
};

// `calls` calls from `clients` threads, each with its own connection to `address` (or the
// system bus when address is empty), paced to `rate` calls/s in total (0 = as fast as
// possible). Call i is due at start + i/rate; whichever client is free takes the next.
LoadResult RunLoad(const std::string& address, const std::string& destination,
                   const std::string& object, const std::vector<Op>& ops, int calls, int clients,
                   double rate) {
  int total_weight = 0;
  for (const Op& op : ops) total_weight += op.weight;
  std::vector<std::unique_ptr<sdbus::IConnection>> connections;
  std::vector<std::unique_ptr<sdbus::IProxy>> proxies;
  for (int c = 0; c < clients; ++c) {
    connections.push_back(address.empty() ? sdbus::createSystemBusConnection()
                                          : sdbus::createSessionBusConnectionWithAddress(address));
    proxies.push_back(sdbus::createProxy(*connections.back(), destination, object));
  }
  std::atomic<int> next{0};
  std::mutex mu;
  LoadResult result;
  const auto start = Clock::now();
  auto client = [&](int c) {
    std::mt19937_64 rng(0x5eed + static_cast<uint64_t>(c));
    std::map<std::string, std::vector<double>> local;
    std::map<std::string, std::vector<double>> local_scheduled;
    uint64_t failures = 0;
    std::vector<std::string> samples;
    double max_lag_ms = 0;
    for (;;) {
      const int i = next.fetch_add(1);
      if (i >= calls || g_stop) break;
      auto due = start;
      if (rate > 0) {
        due = start +
              std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(i / rate));
        std::this_thread::sleep_until(due);
        max_lag_ms = std::max(
            max_lag_ms, std::chrono::duration<double, std::milli>(Clock::now() - due).count());
      }
      int pick = static_cast<int>(rng() % static_cast<uint64_t>(total_weight));
      const Op* op = &ops.front();
      for (const Op& o : ops) {
        if (pick < o.weight) {
          op = &o;
          break;
        }
        pick -= o.weight;
      }
      const auto t0 = Clock::now();
      try {
        op->call(*proxies[static_cast<size_t>(c)], rng);
        const auto t1 = Clock::now();
        local[op->name].push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        if (rate > 0) {
          local_scheduled[op->name].push_back(
              std::chrono::duration<double, std::micro>(t1 - due).count());
        }
      } catch (const std::exception& e) {
        ++failures;
        if (samples.size() < 3) samples.push_back(op->name + ": " + e.what());
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [name, v] : local) {
      auto& all = result.latency_us[name];
      all.insert(all.end(), v.begin(), v.end());
    }
    for (auto& [name, v] : local_scheduled) {
      auto& all = result.scheduled_us[name];
      all.insert(all.end(), v.begin(), v.end());
    }
    result.failures += failures;
    for (auto& s : samples) result.failure_samples.push_back(std::move(s));
    result.max_lag_ms = std::max(result.max_lag_ms, max_lag_ms);
  };
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) threads.emplace_back(client, c);
  for (auto& t : threads) t.join();
  result.seconds = Seconds(start);
  return result;
}

std::vector<double> AllLatencies(const std::map<std::string, std::vector<double>>& by_op) {
  std::vector<double> all;
  for (const auto& [name, v] : by_op) all.insert(all.end(), v.begin(), v.end());
  return all;
}

void PrintLoad(const std::string& title, const LoadResult& r, int calls, double rate) {
  const std::vector<double> all = AllLatencies(r.latency_us);
  std::printf("\n%s\n  latency from send to reply:\n", title.c_str());
  PrintHeader();
  for (const auto& [name, v] : r.latency_us) PrintRow(name, Summarize(v));
  PrintRow("all", Summarize(all));
  if (!r.scheduled_us.empty()) {
    std::printf(
        "  latency from the time the call was due (open-loop view, includes waiting for "
        "a free client):\n");
    PrintHeader();
    for (const auto& [name, v] : r.scheduled_us) PrintRow(name, Summarize(v));
    PrintRow("all", Summarize(AllLatencies(r.scheduled_us)));
  }
  std::printf(
      "  achieved rate %.0f calls/s (target %s), %zu of %d calls answered, %llu failed, "
      "worst send lag behind schedule %.1f ms\n",
      static_cast<double>(all.size()) / r.seconds,
      rate > 0 ? std::to_string(static_cast<int>(rate)).c_str() : "unpaced", all.size(), calls,
      static_cast<unsigned long long>(r.failures), r.max_lag_ms);
  for (const auto& s : r.failure_samples) std::printf("  failure: %s\n", s.c_str());
}

std::string DirName(int d) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "d%04d", d);
  return buf;
}

// Even-numbered files start with 'a' (the rule sends them to DAX), odd ones with 'b'.
std::string FileName(int f) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%c%06d", f % 2 == 0 ? 'a' : 'b', f);
  return buf;
}

// Everything created for the run, torn down in reverse on every path out of main.
struct World {
  std::string work;
  std::string mount_point;
  bool mounted = false;
  Child bus;
  Child daemon;
  ~World() {
    daemon.Stop();
    bus.Stop();
    if (mounted) Shell("umount -l '" + mount_point + "' 2>/dev/null");
    if (!work.empty()) Shell("rm -rf '" + work + "'");
  }
};

bool WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  return static_cast<bool>(out);
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

template <typename T>
T GetProperty(sdbus::IProxy& proxy, const char* name, const char* interface) {
  return proxy.getProperty(name).onInterface(interface).get<T>();
}

// True when systemd answers a property read on the system bus.
bool SystemdAnswers() {
  if (access("/run/dbus/system_bus_socket", F_OK) != 0) return false;
  try {
    auto c = sdbus::createSystemBusConnection();
    auto p = sdbus::createProxy(*c, "org.freedesktop.systemd1", "/org/freedesktop/systemd1");
    (void)GetProperty<std::string>(*p, "Version", "org.freedesktop.systemd1.Manager");
    return true;
  } catch (const sdbus::Error&) {
    return false;
  }
}

int Run(const Options& o) {
  World w;
  w.work = daxpolicy::bench::MakeWorkDir("bench-bus");
  if (w.work.empty()) return 1;
  w.mount_point = w.work + "/mnt";
  mkdir(w.mount_point.c_str(), 0755);
  const std::string image = o.image.empty() ? w.work + "/xfs.img" : o.image;
  const std::string done_mark = image + ".done";
  const std::string tree_id = std::to_string(o.files) + " " + std::to_string(o.files_per_dir);
  const bool reuse = !o.image.empty() && ReadText(done_mark) == tree_id + "\n";
  if (reuse) {
    if (Shell("mount -o loop,dax=inode '" + image + "' '" + w.mount_point + "'") != 0) {
      std::fprintf(stderr, "cannot mount %s\n", image.c_str());
      return 1;
    }
  } else {
    unlink(done_mark.c_str());
    if (!daxpolicy::bench::MountXfsFor(static_cast<uint64_t>(o.files), image, w.mount_point)) {
      std::fprintf(stderr, "cannot create the loop-mounted xfs %s\n", image.c_str());
      return 1;
    }
  }
  w.mounted = true;
  const std::string root = w.mount_point + "/tree";
  mkdir(root.c_str(), 0755);

  auto phase = Clock::now();
  std::vector<std::string> paths;
  paths.reserve(static_cast<size_t>(o.files));
  const std::string content(512, 'x');
  const int dirs = (o.files + o.files_per_dir - 1) / o.files_per_dir;
  for (int d = 0; d < dirs && !g_stop; ++d) {
    const std::string dir = root + "/" + DirName(d);
    if (!reuse) mkdir(dir.c_str(), 0755);
    for (int f = d * o.files_per_dir; f < std::min(o.files, (d + 1) * o.files_per_dir); ++f) {
      std::string path = dir + "/" + FileName(f);
      if (reuse) {
        // Read once: the page cache holds every file, as after creating them.
        char buf[512];
        const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, buf, sizeof(buf)) != 512) {
          std::fprintf(stderr, "cannot read %s: %s\n", path.c_str(), std::strerror(errno));
          if (fd >= 0) close(fd);
          return 1;
        }
        close(fd);
      } else {
        const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, content.data(), content.size()) != 512) {
          std::fprintf(stderr, "cannot create %s: %s\n", path.c_str(), std::strerror(errno));
          if (fd >= 0) close(fd);
          return 1;
        }
        close(fd);
      }
      paths.push_back(std::move(path));
    }
  }
  if (g_stop) return 1;
  if (!reuse && !o.image.empty() && !WriteText(done_mark, tree_id + "\n")) return 1;
  std::printf("%s %d files in %d directories on a loop-mounted xfs (dax=inode) in %.1f s\n",
              reuse ? "read" : "created", o.files, dirs, Seconds(phase));

  // Half the files to DAX by name; the rest by how much of them the page cache holds.
  const std::string policy_path = w.work + "/policy.yaml";
  const std::string policy =
      "apiVersion: daxpolicy/v1\n"
      "daemon:\n"
      "  interval: 1s\n"
      "  mode: " +
      o.mode +
      "\n"
      "  holds: honor\n"
      "scopes: [ " +
      root +
      " ]\n"
      "defaults:\n"
      "  dax: keep\n"
      "  min_dwell: 10m\n"
      "  max_switches_per_minute: 3000\n"
      "rules:\n"
      "  - name: a-files-to-dax\n"
      "    match: { path: \"" +
      root +
      "/*/a*\" }\n"
      "    dax: on\n"
      "  - name: cached-to-page-cache\n"
      "    match: { path: \"" +
      root +
      "/**\" }\n"
      "    when: \"file.cache_resident_ratio >= 0.5\"\n"
      "    dax: off\n"
      "  - name: cold-to-dax\n"
      "    match: { path: \"" +
      root +
      "/**\" }\n"
      "    when: \"file.cache_resident_ratio < 0.5\"\n"
      "    for: 5s\n"
      "    dax: on\n";
  if (!WriteText(policy_path, policy)) return 1;

  // The private bus: session configuration, no fork; it prints its address on fd 3.
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return 1;
  w.bus.Adopt(Spawn(
      {"dbus-daemon", "--session", "--nofork", "--print-address=3", "--address=unix:dir=" + w.work},
      {}, w.work + "/dbus.log", pipefd[1]));
  close(pipefd[1]);
  std::string address;
  {
    char buf[512];
    ssize_t n;
    while ((n = read(pipefd[0], buf, sizeof(buf))) > 0) {
      address.append(buf, static_cast<size_t>(n));
      if (address.find('\n') != std::string::npos) break;
    }
    close(pipefd[0]);
    address = address.substr(0, address.find('\n'));
  }
  if (address.empty()) {
    std::fprintf(stderr, "dbus-daemon printed no address (%s)\n",
                 ReadText(w.work + "/dbus.log").c_str());
    return 1;
  }

  const std::string log_path = w.work + "/daxpolicyd.log";
  const std::string state_dir = w.work + "/state";
  mkdir(state_dir.c_str(), 0700);
  phase = Clock::now();
  w.daemon.Adopt(Spawn({o.daxpolicyd, "--session", "--config", policy_path, "--state-dir",
                        state_dir, "--metrics-listen", "127.0.0.1:0"},
                       {"DBUS_SESSION_BUS_ADDRESS=" + address}, log_path, -1));

  // Ready: the name is owned, the metrics server listens and the first cycle has ended
  // (with files: it published ManagedFiles > 0).
  auto probe_conn = sdbus::createSessionBusConnectionWithAddress(address);
  auto probe = sdbus::createProxy(*probe_conn, kBusName, kObjectPath);
  uint64_t managed = 0;
  int port = -1;
  CycleTotals first;
  bool ready = false;
  while (!g_stop && Seconds(phase) < 600) {
    if (!w.daemon.Running()) {
      std::fprintf(stderr, "daxpolicyd exited during start:\n%s\n", ReadText(log_path).c_str());
      return 1;
    }
    bool owned = false;
    try {
      managed = GetProperty<uint64_t>(*probe, "ManagedFiles", kInterface);
      owned = true;
    } catch (const sdbus::Error&) {
      managed = 0;  // name not owned yet
    }
    if (owned && port < 0) {
      const std::string log = ReadText(log_path);
      const size_t at = log.find("(port ");
      if (at != std::string::npos) port = std::atoi(log.c_str() + at + 6);
    }
    if (owned && port > 0 && (managed > 0 || o.files == 0)) {
      first = ParseCycles(FetchMetrics(port));
      if (first.ok && first.count >= 1) {
        ready = true;
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!ready) {
    std::fprintf(stderr, "daxpolicyd not ready (no cycle ended, or ManagedFiles still 0):\n%s\n",
                 ReadText(log_path).c_str());
    return 1;
  }
  std::printf("daxpolicyd %d ready in %.1f s: ManagedFiles %llu, metrics port %d, bus %s\n",
              w.daemon.pid(), Seconds(phase), static_cast<unsigned long long>(managed), port,
              address.c_str());

  // The daemon's own memory for the tracked files, before any request makes it
  // build a reply: after 4 s and at least --settle-cycles more cycles (working
  // state, published view and the view it replaced all exist by then).
  phase = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(4));
  CycleTotals settled = ParseCycles(FetchMetrics(port));
  while (!g_stop && Seconds(phase) < 600 && w.daemon.Running() &&
         !(settled.ok && settled.count >= first.count + static_cast<uint64_t>(o.settle_cycles))) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    settled = ParseCycles(FetchMetrics(port));
  }
  if (!w.daemon.Running() || !settled.ok ||
      settled.count < first.count + static_cast<uint64_t>(o.settle_cycles)) {
    std::fprintf(stderr, "daxpolicyd did not end %d more cycles:\n%s\n", o.settle_cycles,
                 ReadText(log_path).c_str());
    return 1;
  }
  {
    const uint64_t rss = VmRssBytes(w.daemon.pid());
    const uint64_t hwm = StatusBytes(w.daemon.pid(), "VmHWM:");
    std::printf(
        "RSS after %.1f s and %llu more cycles, before any listing: %.1f MiB (peak so far %.1f "
        "MiB)\n",
        Seconds(phase), static_cast<unsigned long long>(settled.count - first.count),
        static_cast<double>(rss) / (1 << 20), static_cast<double>(hwm) / (1 << 20));
    if (o.memory_only) {
      // Whether the access source ran: without it no cycle sets access figures,
      // and the peak is not the daemon's usual one.
      const std::string degraded = GetProperty<std::string>(*probe, "Degraded", kInterface);
      const bool access = degraded.find("access tracing is unavailable") == std::string::npos;
      // One line for tests/bench/bus/daemon_memory.sh.
      std::printf("memory: files %d managed %llu rss %llu hwm %llu cycles %llu access %s\n",
                  o.files, static_cast<unsigned long long>(managed),
                  static_cast<unsigned long long>(rss), static_cast<unsigned long long>(hwm),
                  static_cast<unsigned long long>(settled.count), access ? "traced" : "untraced");
      if (!access) std::printf("access tracing unavailable: %s\n", degraded.c_str());
      if (o.idle_seconds > 0) {
        // The whole daemon (bus, metrics, cycles) with nothing touched and no
        // client asking: CPU per cycle, and what that is at a 10 s interval.
        const CycleTotals c0 = ParseCycles(FetchMetrics(port));
        const double cpu0 = daxpolicy::bench::ProcessCpuSeconds(w.daemon.pid());
        const auto t0 = Clock::now();
        std::this_thread::sleep_for(std::chrono::duration<double>(o.idle_seconds));
        const double cpu = daxpolicy::bench::ProcessCpuSeconds(w.daemon.pid()) - cpu0;
        const double wall = Seconds(t0);
        const CycleTotals c1 = ParseCycles(FetchMetrics(port));
        const uint64_t cycles = c1.ok && c0.ok ? c1.count - c0.count : 0;
        const double per_cycle = cycles > 0 ? cpu / static_cast<double>(cycles) : 0;
        std::printf(
            "idle: cpu %.3f s over %.1f s, %llu cycles, %.1f ms per cycle = %.3f %% of one core "
            "at a 10 s interval\n",
            cpu, wall, static_cast<unsigned long long>(cycles), per_cycle * 1000,
            per_cycle / 10 * 100);
        if (cycles == 0) return 1;
      }
      return 0;
    }
  }

  // What the load will find: the states of all files, from one unfiltered ListFiles.
  {
    std::vector<sdbus::Struct<std::string, std::string, std::string, std::string, std::string>>
        files;
    const auto t0 = Clock::now();
    probe->callMethod("ListFiles").onInterface(kInterface).withArguments("").storeResultsTo(files);
    std::map<std::string, size_t> states;
    for (const auto& f : files) ++states[std::get<4>(f)];
    std::printf("ListFiles(\"\") before the load: %zu entries in %.1f ms;", files.size(),
                Seconds(t0) * 1000);
    for (const auto& [state, n] : states) std::printf(" %s %zu", state.c_str(), n);
    std::printf("\n");
  }
  const CycleTotals before = ParseCycles(FetchMetrics(port));
  const auto window_start = Clock::now();

  // Sampler: the daemon's RSS every 100 ms, and each cycle's duration, read as the
  // change of the histogram's sum when its count advances by exactly one.
  std::atomic<bool> sampling{true};
  uint64_t max_rss = 0;
  std::vector<double> cycles;  // seconds
  uint64_t cycles_seen_multi = 0;
  std::thread sampler([&] {
    CycleTotals last = before;
    int tick = 0;
    while (sampling) {
      max_rss = std::max(max_rss, VmRssBytes(w.daemon.pid()));
      if (port > 0 && tick++ % 2 == 0) {
        const CycleTotals now = ParseCycles(FetchMetrics(port));
        if (now.ok && last.ok && now.count == last.count + 1) {
          cycles.push_back(now.sum - last.sum);
        } else if (now.ok && last.ok && now.count > last.count + 1) {
          ++cycles_seen_multi;
        }
        if (now.ok) last = now;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });

  // The daemon under load.
  std::vector<Op> ops;
  ops.push_back({"GetFileState", 45, [&](sdbus::IProxy& p, std::mt19937_64& rng) {
                   std::map<std::string, sdbus::Variant> state;
                   p.callMethod("GetFileState")
                       .onInterface(kInterface)
                       .withArguments(paths[rng() % paths.size()])
                       .storeResultsTo(state);
                   if (state.empty()) throw std::runtime_error("empty state");
                 }});
  ops.push_back({"Explain", 20, [&](sdbus::IProxy& p, std::mt19937_64& rng) {
                   std::string text;
                   p.callMethod("Explain")
                       .onInterface(kInterface)
                       .withArguments(paths[rng() % paths.size()])
                       .storeResultsTo(text);
                   if (text.empty()) throw std::runtime_error("empty explanation");
                 }});
  ops.push_back({"Get ManagedFiles", 12, [](sdbus::IProxy& p, std::mt19937_64&) {
                   if (GetProperty<uint64_t>(p, "ManagedFiles", kInterface) == 0)
                     throw std::runtime_error("ManagedFiles is 0");
                 }});
  ops.push_back({"Get Mode", 11, [](sdbus::IProxy& p, std::mt19937_64&) {
                   (void)GetProperty<std::string>(p, "Mode", kInterface);
                 }});
  ops.push_back({"Get Degraded", 11, [](sdbus::IProxy& p, std::mt19937_64&) {
                   (void)GetProperty<std::string>(p, "Degraded", kInterface);
                 }});
  std::atomic<size_t> list_entries_max{0};
  ops.push_back(
      {"ListFiles(" + o.list_state + ")", 1, [&](sdbus::IProxy& p, std::mt19937_64&) {
         std::vector<sdbus::Struct<std::string, std::string, std::string, std::string, std::string>>
             files;
         p.callMethod("ListFiles")
             .onInterface(kInterface)
             .withArguments(o.list_state)
             .storeResultsTo(files);
         size_t seen = list_entries_max.load();
         while (files.size() > seen &&
                !list_entries_max.compare_exchange_weak(seen, files.size())) {
         }
       }});
  const LoadResult ours = RunLoad(address, kBusName, kObjectPath, ops, o.calls, o.clients, o.rate);

  // The baseline, same client code, same pacing: systemd on the system bus when there is
  // one, else the private bus's own org.freedesktop.DBus.
  const bool systemd_baseline = SystemdAnswers();
  std::vector<Op> base_ops;
  LoadResult baseline;
  std::string baseline_name;
  if (systemd_baseline) {
    baseline_name = "systemd on the system bus";
    base_ops.push_back({"systemd Get Version", 1, [](sdbus::IProxy& p, std::mt19937_64&) {
                          (void)GetProperty<std::string>(p, "Version",
                                                         "org.freedesktop.systemd1.Manager");
                        }});
    baseline = RunLoad("", "org.freedesktop.systemd1", "/org/freedesktop/systemd1", base_ops,
                       o.calls, o.clients, o.rate);
  } else {
    baseline_name = "org.freedesktop.DBus on the private bus (no system bus here)";
    base_ops.push_back(
        {"DBus GetId", 1, [](sdbus::IProxy& p, std::mt19937_64&) {
           std::string id;
           p.callMethod("GetId").onInterface("org.freedesktop.DBus").storeResultsTo(id);
         }});
    base_ops.push_back({"DBus Get Features", 1, [](sdbus::IProxy& p, std::mt19937_64&) {
                          (void)GetProperty<std::vector<std::string>>(p, "Features",
                                                                      "org.freedesktop.DBus");
                        }});
    baseline = RunLoad(address, "org.freedesktop.DBus", "/org/freedesktop/DBus", base_ops, o.calls,
                       o.clients, o.rate);
  }

  // busctl as a second, independent client: one process per call, sequential.
  std::map<std::string, std::vector<double>> busctl_us;
  uint64_t busctl_failures = 0;
  const std::string addr_arg = "--address=" + address;
  std::mt19937_64 rng(7);
  for (int i = 0; i < o.busctl_calls && !g_stop; ++i) {
    std::vector<std::pair<std::string, std::vector<std::string>>> runs = {
        {"busctl GetFileState",
         {"busctl", addr_arg, "call", kBusName, kObjectPath, kInterface, "GetFileState", "s",
          paths[rng() % paths.size()]}},
        {"busctl Get ManagedFiles",
         {"busctl", addr_arg, "get-property", kBusName, kObjectPath, kInterface, "ManagedFiles"}},
        systemd_baseline
            ? std::pair<std::string, std::vector<std::string>>{"busctl systemd Version",
                                                               {"busctl", "--system",
                                                                "get-property",
                                                                "org.freedesktop.systemd1",
                                                                "/org/freedesktop/systemd1",
                                                                "org.freedesktop.systemd1."
                                                                "Manager",
                                                                "Version"}}
            : std::pair<std::string, std::vector<std::string>>{
                  "busctl DBus GetId",
                  {"busctl", addr_arg, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                   "org.freedesktop.DBus", "GetId"}}};
    for (const auto& [name, argv] : runs) {
      const double us = TimedRun(argv);
      if (us < 0) {
        ++busctl_failures;
      } else {
        busctl_us[name].push_back(us);
      }
    }
  }

  sampling = false;
  sampler.join();
  const CycleTotals after = ParseCycles(FetchMetrics(port));
  const bool daemon_alive = w.daemon.Running();

  // Report.
  const std::vector<double> our_all = AllLatencies(ours.latency_us);
  const Percentiles overall = Summarize(our_all);
  PrintLoad("daxpolicyd, " + std::to_string(o.clients) + " clients (sdbus-c++ proxies):", ours,
            o.calls, o.rate);
  std::printf("  largest ListFiles(%s) reply: %zu entries\n", o.list_state.c_str(),
              list_entries_max.load());
  PrintLoad("baseline: " + baseline_name + ", same client code and pacing:", baseline, o.calls,
            o.rate);
  std::printf("\nbusctl, one process per call, sequential (%d rounds):\n", o.busctl_calls);
  PrintHeader();
  for (const auto& [name, v] : busctl_us) PrintRow(name, Summarize(v));
  std::printf("  busctl failures: %llu\n", static_cast<unsigned long long>(busctl_failures));

  std::printf("\ndaemon cycles (daxpolicy_cycle_duration_seconds):\n");
  if (before.ok && after.ok && after.count > before.count) {
    const uint64_t n = after.count - before.count;
    std::printf("  %llu cycles during the run, mean %.1f ms", static_cast<unsigned long long>(n),
                (after.sum - before.sum) / static_cast<double>(n) * 1000);
    if (!cycles.empty()) {
      const Percentiles c = Summarize(std::vector<double>(cycles.begin(), cycles.end()));
      std::printf(", individually seen %zu: p50 %.1f ms, max %.1f ms", c.n, c.p50 * 1000,
                  c.max * 1000);
    }
    std::printf("\n  loop busy with cycles %.1f%% of the time\n",
                (after.sum - before.sum) / Seconds(window_start) * 100);
  } else {
    std::printf("  not available (metrics port %d)\n", port);
  }
  const std::vector<double> our_scheduled = AllLatencies(ours.scheduled_us);
  for (const auto* v : {&our_all, &our_scheduled}) {
    if (v->empty()) continue;
    size_t over = 0;
    for (double us : *v) over += us > o.target_p99_ms * 1000 ? 1 : 0;
    std::printf("  calls over %.1f ms, %s: %zu of %zu (%.2f%%)\n", o.target_p99_ms,
                v == &our_all ? "send to reply" : "from due time", over, v->size(),
                100.0 * static_cast<double>(over) / static_cast<double>(v->size()));
  }

  const double bound = o.rss_fixed_mib * 1024 * 1024 + o.rss_per_file_bytes * o.files;
  std::printf(
      "\ndaemon RSS max %.1f MiB during the run; bound %.1f MiB (%.0f MiB + %.0f B x %d "
      "files)\n",
      static_cast<double>(max_rss) / (1 << 20), bound / (1 << 20), o.rss_fixed_mib,
      o.rss_per_file_bytes, o.files);
  const Percentiles base_all = Summarize(AllLatencies(baseline.latency_us));
  const Percentiles base_scheduled = Summarize(AllLatencies(baseline.scheduled_us));
  const Percentiles scheduled = Summarize(our_scheduled);
  std::printf(
      "\nsummary: daxpolicyd p50 %.3f ms p99 %.3f ms (from due time p99 %.3f ms) | "
      "baseline p50 %.3f ms p99 %.3f ms (from due time p99 %.3f ms) | failures %llu | "
      "RSS %.1f/%.1f MiB\n",
      overall.p50 / 1000, overall.p99 / 1000, scheduled.p99 / 1000, base_all.p50 / 1000,
      base_all.p99 / 1000, base_scheduled.p99 / 1000,
      static_cast<unsigned long long>(ours.failures + busctl_failures),
      static_cast<double>(max_rss) / (1 << 20), bound / (1 << 20));

  int rc = 0;
  if (g_stop) {
    std::printf("FAIL: interrupted\n");
    rc = 1;
  }
  if (!daemon_alive) {
    std::printf("FAIL: daxpolicyd exited during the run\n");
    rc = 1;
  }
  if (ours.failures > 0 || busctl_failures > 0 || our_all.size() != static_cast<size_t>(o.calls)) {
    std::printf("FAIL: %llu failed calls, %zu of %d daemon calls answered\n",
                static_cast<unsigned long long>(ours.failures + busctl_failures), our_all.size(),
                o.calls);
    rc = 1;
  }
  if (static_cast<double>(max_rss) > bound) {
    std::printf("FAIL: RSS above the bound\n");
    rc = 1;
  }
  // Paced, the open-loop figure is the one a caller sees; unpaced, there is no due time.
  const double p99_checked = our_scheduled.empty() ? overall.p99 : scheduled.p99;
  if (o.check_p99 && p99_checked > o.target_p99_ms * 1000) {
    std::printf("FAIL: p99 %.3f ms above the %.1f ms target\n", p99_checked / 1000,
                o.target_p99_ms);
    rc = 1;
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Benchmark: D-Bus calls to daxpolicyd under load, against a bus baseline"};
  app.add_option("--files", o.files, "files on the loop-mounted xfs (default 100000)");
  app.add_option("--files-per-dir", o.files_per_dir, "files per directory (default 1000)");
  app.add_option("--calls", o.calls, "D-Bus calls to the daemon (default 10000)");
  app.add_option("--clients", o.clients, "client threads, one connection each (default 4)");
  app.add_option("--rate", o.rate, "target calls/s over all clients, 0 = unpaced (default 1000)");
  app.add_option("--busctl-calls", o.busctl_calls,
                 "rounds of busctl calls (one process each; default 200)");
  app.add_option("--list-state", o.list_state, "state filter of ListFiles (default blocked)");
  app.add_option("--daxpolicyd", o.daxpolicyd, "daxpolicyd binary")->capture_default_str();
  app.add_option("--target-p99-ms", o.target_p99_ms, "p99 target in ms (default 2)");
  app.add_flag("--require-systemd", o.require_systemd,
               "exit 1 unless the baseline is systemd on the system bus (the VM run)");
  app.add_flag("--check-p99", o.check_p99,
               "also exit 1 when the overall p99 (from due time when paced) misses the target");
  app.add_option("--image", o.image,
                 "keep the xfs image here across runs (made and filled unless IMAGE.done says "
                 "it holds this tree)");
  app.add_flag("--memory-only", o.memory_only,
               "stop after the daemon's memory figure (no listing, no load); --files 0 allowed");
  app.add_option("--settle-cycles", o.settle_cycles,
                 "cycles to end after the first before the memory figure (default 3)");
  app.add_option("--mode", o.mode, "daemon.mode of the policy (default enforce)")
      ->check(CLI::IsMember({"enforce", "observe"}));
  app.add_option("--idle-seconds", o.idle_seconds,
                 "with --memory-only: then the daemon's CPU over this many idle seconds (0)");
  app.add_option("--rss-fixed-mib", o.rss_fixed_mib, "fixed part of the RSS bound (MiB)")
      ->capture_default_str();
  app.add_option("--rss-per-file", o.rss_per_file_bytes, "per-file part of the RSS bound (bytes)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (o.require_systemd && !SystemdAnswers()) {
    std::fprintf(stderr, "--require-systemd: systemd does not answer on the system bus\n");
    return 1;
  }
  if (o.files < (o.memory_only ? 0 : 2) || o.files_per_dir < 1 || o.calls < 1 || o.clients < 1 ||
      o.rate < 0 || o.settle_cycles < 0) {
    std::fprintf(stderr,
                 "need --files >= 2 (0 with --memory-only), --files-per-dir >= 1, --calls >= 1, "
                 "--clients >= 1, "
                 "--rate >= 0, --settle-cycles >= 0\n");
    return 2;
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "needs root for the loop-mounted xfs\n");
    return InCi() ? 1 : 77;
  }
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  // The default 50 us timer slack would show up in every paced call's due-time latency.
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  try {
    return Run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_bus: %s\n", e.what());
    return 1;
  }
}
