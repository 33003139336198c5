// SPDX-License-Identifier: Apache-2.0
// What access tracing adds to a read loop: pread(2) of 4 KiB and of 1 MiB from
// a file in the page cache, on a filesystem under scope (its events are
// counted) and on an unrelated one (its events are dropped by the device
// filter), with the BPF program attached against detached, alternating in
// the same run. A third state, the floor, has empty programs (floor.bpf.c) on
// the same per-read attach points and the access program detached: what
// attaching anything there costs, which no program can go below. Needs root
// and loop devices (two loop-mounted xfs); exit 77 = skipped outside CI when
// something is missing.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "floor.skel.h"
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

std::string MakeFile(const LoopFs& fs, const char* name = "data") {
  const std::string path = (fs.mount_point() / name).string();
  UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644));
  std::vector<char> buf(1 << 20, 'x');
  for (size_t done = 0; done < kFileSize; done += buf.size()) {
    if (write(fd.get(), buf.data(), buf.size()) != static_cast<ssize_t>(buf.size())) std::abort();
  }
  fsync(fd.get());
  return path;
}

// ns per pread of `chunk` bytes, cycling through the (cached) files, one
// read of each in turn.
double ReadLoop(const std::vector<int>& fds, size_t chunk, size_t ops, std::vector<char>* buf) {
  buf->resize(chunk);
  off_t off = 0;
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < ops; ++i) {
    const int fd = fds[i % fds.size()];
    if (pread(fd, buf->data(), chunk, off) != static_cast<ssize_t>(chunk)) std::abort();
    if (fd != fds.back()) continue;
    off += static_cast<off_t>(chunk);
    if (static_cast<size_t>(off) + chunk > kFileSize) off = 0;
  }
  const auto ns =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start);
  return ns.count() / static_cast<double>(ops);
}

// The empty programs of floor.bpf.c on the attach points the access program
// uses for each read of an xfs file (floor.bpf.c holds only per-read ones;
// the others do not fire on a read from the page cache); attached while `on`.
class Floor {
 public:
  ~Floor() {
    Set(false);
    floor_bpf__destroy(skel_);
  }
  // `tracer` watches the managed filesystem: its attached per-read programs
  // are the floor's.
  bool Load(const AccessTracer& tracer, std::string* error) {
    skel_ = floor_bpf__open();
    if (skel_ == nullptr) return Fail("open", error);
    bpf_program* prog = nullptr;
    bpf_object__for_each_program(prog, skel_->obj) {
      const bool load = tracer.AttachedNow(bpf_program__name(prog));
      bpf_program__set_autoload(prog, load);
      if (load) programs_.push_back(prog);
    }
    if (programs_.empty()) {
      *error = "the floor has no attach point for the plan";
      return false;
    }
    if (floor_bpf__load(skel_) != 0) return Fail("load", error);
    return true;
  }
  bool Set(bool on, std::string* error = nullptr) {
    if (!on) {
      for (bpf_link* l : links_) bpf_link__destroy(l);
      links_.clear();
      return true;
    }
    for (bpf_program* p : programs_) {
      bpf_link* l = bpf_program__attach(p);
      if (l == nullptr) return Fail("attach", error);
      links_.push_back(l);
    }
    return true;
  }
  std::string names() const {
    std::string out;
    for (bpf_program* p : programs_)
      out += std::string(out.empty() ? "" : ", ") + bpf_program__name(p);
    return out;
  }

 private:
  bool Fail(const char* what, std::string* error) {
    const int err = errno;
    if (error != nullptr)
      *error = std::string("floor programs: cannot ") + what + ": " + std::strerror(err);
    return false;
  }
  floor_bpf* skel_ = nullptr;
  std::vector<bpf_program*> programs_;
  std::vector<bpf_link*> links_;
};

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
  const std::string managed_file2 = MakeFile(*managed, "data2");
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
  Floor floor;
  if (!tracer->SetDevices({{managed_dev, true}}, &error) || !floor.Load(*tracer, &error) ||
      !tracer->SetDevices({}, &error)) {
    return Skip(error);
  }
  std::printf("floor: empty programs on %s\n", floor.names().c_str());
  // Off: no watched device, every program detached. On: the managed
  // filesystem watched, its programs attached (as the daemon runs). Floor:
  // as off, with the empty programs attached.
  enum State { kOff, kFloor, kOn };
  auto set = [&](State state) {
    std::vector<AccessTracer::Device> devices;
    if (state == kOn) devices.push_back({managed_dev, true});
    return floor.Set(state == kFloor, &error) && tracer->SetDevices(devices, &error);
  };

  struct Case {
    const char* name;
    std::vector<const std::string*> files;  // read in turn
    size_t chunk;
    size_t ops;
    std::vector<double> off, floor, on;
    uint64_t prog_ns = 0;  // time in the programs during the "on" rounds
    uint64_t reads = 0;    // reads of the "on" rounds
  };
  std::vector<Case> cases = {
      {"4 KiB, unrelated fs", {&unrelated_file}, 4096, 400000, {}, {}, {}},
      {"4 KiB, managed fs", {&managed_file}, 4096, 400000, {}, {}, {}},
      {"1 MiB, unrelated fs", {&unrelated_file}, 1 << 20, 3000, {}, {}, {}},
      {"1 MiB, managed fs", {&managed_file}, 1 << 20, 3000, {}, {}, {}},
      // The per-CPU slot's worst case: every read is of another file than
      // the last, so every read moves the slot's counts into the map.
      {"4 KiB, managed, 2 files", {&managed_file, &managed_file2}, 4096, 400000, {}, {}, {}},
  };
  std::vector<char> buf;
  for (Case& c : cases) {
    std::vector<UniqueFd> open_files;
    std::vector<int> fd;
    for (const std::string* f : c.files) {
      open_files.emplace_back(open(f->c_str(), O_RDONLY));
      fd.push_back(open_files.back().get());
      ReadLoop({fd.back()}, 1 << 20, kFileSize >> 20, &buf);  // cache the file
    }
    const size_t ops = std::max<size_t>(1, static_cast<size_t>(c.ops * scale));
    // The three states in each of their six orders in turn: whatever a
    // state pays for its place in the round (the attach or detach just
    // before it) is spread over all three.
    static constexpr State kOrders[6][3] = {{kOff, kFloor, kOn}, {kOn, kFloor, kOff},
                                            {kFloor, kOn, kOff}, {kOff, kOn, kFloor},
                                            {kOn, kOff, kFloor}, {kFloor, kOff, kOn}};
    for (int r = 0; r < rounds; ++r) {
      for (State state : kOrders[r % 6]) {
        if (!set(state)) return Skip(error);
        if (state != kOn) {
          (state == kOff ? c.off : c.floor).push_back(ReadLoop(fd, c.chunk, ops, &buf));
          continue;
        }
        uint64_t ns0 = 0, ns1 = 0, runs = 0;
        tracer->RunTime(&ns0, &runs);
        c.on.push_back(ReadLoop(fd, c.chunk, ops, &buf));
        tracer->RunTime(&ns1, &runs);
        c.prog_ns += ns1 - ns0;
        c.reads += ops;
      }
      AccessCounts counts;
      if (!tracer->Drain(&counts, &error)) return Skip(error);
    }
  }
  if (!set(kOff)) return Skip(error);
  // An overhead is the median of each round's ratio to its off run: the
  // states of a round see nearly the same load from the rest of the machine,
  // which medians of the columns taken apart do not. "above floor" is the
  // median of on/floor: the access program's own share.
  std::printf("%-24s %12s %12s %12s %9s %9s %11s %13s\n", "case", "off ns/read", "floor ns",
              "on ns/read", "floor", "overhead", "above floor", "prog ns/read");
  for (const Case& c : cases) {
    std::vector<double> on, floor_ratio, above;
    for (size_t r = 0; r < c.on.size(); ++r) {
      on.push_back(c.on[r] / c.off[r]);
      floor_ratio.push_back(c.floor[r] / c.off[r]);
      above.push_back(c.on[r] / c.floor[r]);
    }
    std::printf("%-24s %12.1f %12.1f %12.1f %8.1f%% %8.1f%% %10.1f%%", c.name, Median(c.off),
                Median(c.floor), Median(c.on), (Median(floor_ratio) - 1) * 100.0,
                (Median(on) - 1) * 100.0, (Median(above) - 1) * 100.0);
    if (stats_fd >= 0) {
      std::printf(" %13.1f\n", static_cast<double>(c.prog_ns) / static_cast<double>(c.reads));
    } else {
      std::printf(" %13s\n", "n/a");
    }
  }
  return 0;
}
