// SPDX-License-Identifier: Apache-2.0
// What access tracing adds to a read loop: pread(2) of 4 KiB and of 1 MiB from
// a file in the page cache, on a filesystem under scope (its events are
// counted) and on an unrelated one (its events are dropped by the device
// filter), with the BPF program attached against detached, alternating in
// the same run. Needs root and loop devices (two loop-mounted xfs); exit 77 =
// skipped outside CI when something is missing.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "plugins/access/access_tracer.h"
#include "plugins/unique_fd.h"
#include "tests/support/test_support.h"

namespace {

using daxpolicy::UniqueFd;
using daxpolicy::access::AccessCounts;
using daxpolicy::access::AccessTracer;
using daxpolicy::access::Plan;
using daxpolicy::access::ProbeKernel;
using daxpolicy::testing::FsType;
using daxpolicy::testing::LoopFs;

constexpr size_t kFileSize = 64u << 20;

int Skip(const std::string& why) {
  std::fprintf(stderr, "bench_access: %s\n", why.c_str());
  return daxpolicy::testing::InCi() ? 1 : 77;
}

std::string MakeFile(const LoopFs& fs) {
  const std::string path = (fs.mount_point() / "data").string();
  UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644));
  std::vector<char> buf(1 << 20, 'x');
  for (size_t done = 0; done < kFileSize; done += buf.size()) {
    if (write(fd.get(), buf.data(), buf.size()) != static_cast<ssize_t>(buf.size())) std::abort();
  }
  fsync(fd.get());
  return path;
}

// ns per pread of `chunk` bytes, cycling through the (cached) file.
double ReadLoop(int fd, size_t chunk, size_t ops, std::vector<char>* buf) {
  buf->resize(chunk);
  off_t off = 0;
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < ops; ++i) {
    if (pread(fd, buf->data(), chunk, off) != static_cast<ssize_t>(chunk)) std::abort();
    off += static_cast<off_t>(chunk);
    if (static_cast<size_t>(off) + chunk > kFileSize) off = 0;
  }
  const auto ns =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start);
  return ns.count() / static_cast<double>(ops);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_access: overhead of access tracing on a read loop"};
  int rounds = 7;
  double scale = 1.0;
  app.add_option("--rounds", rounds, "alternating off/on rounds per case (median reported)");
  app.add_option("--scale", scale, "fraction of the full number of reads per round");
  bool prog_time = false;
  app.add_flag("--prog-time", prog_time,
               "also the programs' own time per read (kernel run-time statistics on, which "
               "add two clock reads to every program run)");
  CLI11_PARSE(app, argc, argv);

  if (geteuid() != 0) return Skip("needs root (loop mounts, BPF)");
  if (auto why = LoopFs::Unavailable()) return Skip(*why);
  std::string error;
  auto managed = LoopFs::Create(FsType::kXfs, &error, 300);
  auto unrelated = managed ? LoopFs::Create(FsType::kXfs, &error, 300) : nullptr;
  if (!unrelated) return Skip("loop xfs: " + error);
  const std::string managed_file = MakeFile(*managed);
  const std::string unrelated_file = MakeFile(*unrelated);
  struct stat st {};
  stat(managed_file.c_str(), &st);
  const dev_t managed_dev = st.st_dev;

  // The programs' own time per read, counted by the kernel while this fd is
  // open: a figure the machine's load disturbs far less than the loop's.
  const int stats_fd = prog_time ? AccessTracer::EnableRunTimeStats() : -1;
  Plan plan;
  auto tracer = AccessTracer::StartBest(ProbeKernel(), {}, &plan);
  if (!tracer) return Skip("access tracing unavailable: " + plan.unavailable);
  std::printf("strategy: %s, %zu programs\n", std::string(StrategyName(plan.strategy)).c_str(),
              plan.programs.size());
  // Off: no watched device, every program detached. On: the managed
  // filesystem watched, its programs attached (as the daemon runs).
  auto set = [&](bool on) {
    std::vector<AccessTracer::Device> devices;
    if (on) devices.push_back({managed_dev, true});
    return tracer->SetDevices(devices, &error);
  };

  struct Case {
    const char* name;
    const std::string* file;
    size_t chunk;
    size_t ops;
    std::vector<double> off, on;
    uint64_t prog_ns = 0;  // time in the programs during the "on" rounds
    uint64_t reads = 0;    // reads of the "on" rounds
  };
  std::vector<Case> cases = {
      {"4 KiB, unrelated fs", &unrelated_file, 4096, 400000, {}, {}},
      {"4 KiB, managed fs", &managed_file, 4096, 400000, {}, {}},
      {"1 MiB, unrelated fs", &unrelated_file, 1 << 20, 3000, {}, {}},
      {"1 MiB, managed fs", &managed_file, 1 << 20, 3000, {}, {}},
  };
  std::vector<char> buf;
  for (Case& c : cases) {
    UniqueFd fd(open(c.file->c_str(), O_RDONLY));
    const size_t ops = std::max<size_t>(1, static_cast<size_t>(c.ops * scale));
    ReadLoop(fd.get(), 1 << 20, kFileSize >> 20, &buf);  // cache the file
    // Off then on in even rounds, on then off in odd ones: whatever the first
    // or second half of a round pays (the attach or detach just before it) is
    // spread over both.
    for (int r = 0; r < rounds; ++r) {
      for (int half = 0; half < 2; ++half) {
        const bool on = (half == 0) == (r % 2 == 1);
        if (!set(on)) return Skip(error);
        if (!on) {
          c.off.push_back(ReadLoop(fd.get(), c.chunk, ops, &buf));
          continue;
        }
        uint64_t ns0 = 0, ns1 = 0, runs = 0;
        tracer->RunTime(&ns0, &runs);
        c.on.push_back(ReadLoop(fd.get(), c.chunk, ops, &buf));
        tracer->RunTime(&ns1, &runs);
        c.prog_ns += ns1 - ns0;
        c.reads += ops;
      }
      AccessCounts counts;
      if (!tracer->Drain(&counts, &error)) return Skip(error);
    }
  }
  // The overhead is the median of each round's on/off ratio: the two halves of
  // a round see nearly the same load from the rest of the machine, which
  // medians of the two columns taken apart do not.
  std::printf("%-22s %14s %14s %10s %14s\n", "case", "off ns/read", "on ns/read", "overhead",
              "prog ns/read");
  for (const Case& c : cases) {
    std::vector<double> ratios;
    for (size_t r = 0; r < c.on.size(); ++r) ratios.push_back(c.on[r] / c.off[r]);
    std::printf("%-22s %14.1f %14.1f %9.1f%%", c.name, Median(c.off), Median(c.on),
                (Median(ratios) - 1) * 100.0);
    if (stats_fd >= 0) {
      std::printf(" %14.1f\n", static_cast<double>(c.prog_ns) / static_cast<double>(c.reads));
    } else {
      std::printf(" %14s\n", "n/a");
    }
  }
  return 0;
}
