// SPDX-License-Identifier: Apache-2.0
// Scan + sample throughput of the files plugin against two baselines on the same
// files: a minimal openat/statx/cachestat/close loop (the floor) and util-linux
// fincore. Creates the files on a loop-mounted xfs (dax=inode) unless --dir is
// given. Needs root for the loop mount. Exit 77 = skipped (no root, not CI).

#include <fcntl.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "plugins/files/cache_stat.h"
#include "plugins/files/sampler.h"
#include "plugins/files/scanner.h"
#include "plugins/unique_fd.h"
#include "tests/bench/bench_support.h"
#include "tests/support/test_support.h"

namespace {

using daxpolicy::UniqueFd;
using Clock = std::chrono::steady_clock;

using daxpolicy::bench::Shell;
using daxpolicy::testing::InCi;

// Resident set size in bytes (/proc/self/statm, second field in pages).
uint64_t RssBytes() {
  std::ifstream in("/proc/self/statm");
  uint64_t size = 0;
  uint64_t resident = 0;
  in >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

std::string DirName(int d) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "d%05d", d);
  return buf;
}
std::string FileName(int f) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "f%06d", f);
  return buf;
}

struct Options {
  int files = 1'000'000;
  int dirs = 1000;
  int file_bytes = 512;
  int repeat = 3;
  int fincore_batch = 5000;
  std::string dir;  // existing directory instead of a fresh loop-mounted xfs
  bool keep = false;
  bool check = false;
  bool without_openat2 = false;
};

// Answers openat2 with ENOSYS from now on, as the seccomp filter of systemd's
// RestrictSUIDSGID= does under the shipped unit: the daemon then opens by its fallback.
bool HideOpenat2() { return ::daxpolicy::testing::RefuseSyscall(SYS_openat2, ENOSYS); }

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The floor: per file only openat + statx + cachestat + close (cachestat needs an fd).
double RunFloor(const std::string& root, const Options& o, uint64_t* cached_pages) {
  const int per_dir = o.files / o.dirs;
  const auto start = Clock::now();
  uint64_t pages = 0;
  for (int d = 0; d < o.dirs; ++d) {
    UniqueFd dir(open((root + "/" + DirName(d)).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    for (int f = 0; f < per_dir; ++f) {
      UniqueFd fd(openat(dir.get(), FileName(f).c_str(), O_RDONLY | O_CLOEXEC));
      struct statx stx {};
      statx(fd.get(), "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx);
      auto counts = daxpolicy::files::CachestatFd(fd.get());
      if (counts.ok()) pages += counts->cache;
    }
  }
  *cached_pages = pages;
  return Seconds(start);
}

// Sets *failed when fincore does not run through.
double RunFincore(const std::string& root, const Options& o, const std::string& list,
                  bool* failed) {
  const auto start = Clock::now();
  const std::string cmd = "cd '" + root + "' && xargs -0 -n " + std::to_string(o.fincore_batch) +
                          " fincore --noheadings --raw --bytes < '" + list + "' > /dev/null";
  if (Shell(cmd) != 0) {
    std::fprintf(stderr, "fincore run failed: %s\n", cmd.c_str());
    *failed = true;
  }
  (void)o;
  return Seconds(start);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Benchmark: files plugin scan + sample vs statx+cachestat floor vs fincore"};
  app.add_option("--files", o.files, "number of files (default 1000000)");
  app.add_option("--dirs", o.dirs, "number of directories they are spread over (default 1000)");
  app.add_option("--file-bytes", o.file_bytes, "size of each file (default 512)");
  app.add_option("--repeat", o.repeat, "runs per method, the best is reported (default 3)");
  app.add_option("--fincore-batch", o.fincore_batch, "files per fincore invocation (xargs -n)");
  app.add_option("--dir", o.dir, "use this existing empty directory instead of a loop-mounted xfs");
  app.add_flag("--keep", o.keep, "keep the loop image mounted (prints where)");
  app.add_flag("--without-openat2", o.without_openat2,
               "answer openat2 with ENOSYS (seccomp), as under the unit's RestrictSUIDSGID=");
  app.add_flag("--check", o.check,
               "exit 1 unless: <= 1.5x the floor, >= 5x fincore, <= 200 bytes per file");
  CLI11_PARSE(app, argc, argv);
  if (o.dirs <= 0 || o.files < o.dirs) {
    std::fprintf(stderr, "--files must be >= --dirs > 0\n");
    return 2;
  }

  std::string work;
  std::string root = o.dir;
  std::string mount_point;
  if (root.empty()) {
    if (geteuid() != 0) {
      std::fprintf(stderr, "needs root for the loop-mounted xfs (or pass --dir)\n");
      return InCi() ? 1 : 77;
    }
    work = daxpolicy::bench::MakeWorkDir("bench-scan");
    if (work.empty()) return 1;
    mount_point = work + "/mnt";
    mkdir(mount_point.c_str(), 0755);
    if (!daxpolicy::bench::MountXfsFor(static_cast<uint64_t>(o.files), work + "/xfs.img",
                                       mount_point)) {
      std::fprintf(stderr, "cannot create the loop-mounted xfs in %s\n", work.c_str());
      Shell("umount '" + mount_point + "' 2>/dev/null; rm -rf '" + work + "'");
      return 1;
    }
    root = mount_point + "/tree";
    mkdir(root.c_str(), 0755);
  }

  // Create the tree: dirs x (files / dirs) small files.
  const int per_dir = o.files / o.dirs;
  const int total = per_dir * o.dirs;
  const std::string payload(static_cast<size_t>(o.file_bytes), 'x');
  const std::string list = (work.empty() ? std::string("/tmp") : work) + "/files.list";
  {
    std::ofstream names(list, std::ios::binary | std::ios::trunc);
    const auto start = Clock::now();
    for (int d = 0; d < o.dirs; ++d) {
      const std::string dir_path = root + "/" + DirName(d);
      mkdir(dir_path.c_str(), 0755);
      UniqueFd dir(open(dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      for (int f = 0; f < per_dir; ++f) {
        const std::string name = FileName(f);
        UniqueFd fd(
            openat(dir.get(), name.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644));
        if (!fd.valid() || write(fd.get(), payload.data(), payload.size()) !=
                               static_cast<ssize_t>(payload.size())) {
          std::fprintf(stderr, "cannot create %s/%s: %s\n", dir_path.c_str(), name.c_str(),
                       std::strerror(errno));
          return 1;
        }
        names << DirName(d) << '/' << name << '\0';
      }
    }
    sync();
    std::printf("created %d files in %d directories of %s in %.1f s\n", total, o.dirs, root.c_str(),
                Seconds(start));
  }

  if (o.without_openat2 && !HideOpenat2()) {
    std::fprintf(stderr, "cannot install the seccomp filter: %s\n", std::strerror(errno));
    return 1;
  }
  // Warm the dentry and inode caches once, so every method sees the same state.
  uint64_t floor_pages = 0;
  (void)RunFloor(root, o, &floor_pages);

  daxpolicy::files::ScanScope scope;
  scope.path = root;
  daxpolicy::files::ScanLimits limits;
  limits.full_rescan_every = 0;
  double best_full = 1e9;
  double best_incremental = 1e9;
  double best_floor = 1e9;
  double best_fincore = 1e9;
  uint64_t snapshot_bytes = 0;
  uint64_t rss_delta = 0;
  uint64_t records = 0;
  uint64_t sampled = 0;
  bool failed = false;  // a scan, sample or fincore error: the figures mean nothing
  for (int r = 0; r < o.repeat; ++r) {
    const uint64_t rss_before = RssBytes();
    {
      daxpolicy::files::Scanner scanner({scope}, nullptr, limits);
      daxpolicy::files::FileSampler sampler;
      daxpolicy::policy::Snapshot snap;
      auto start = Clock::now();
      const daxpolicy::files::ScanStats full =
          scanner.Scan(&snap, daxpolicy::files::ScanMode::kFull, &sampler);
      best_full = std::min(best_full, Seconds(start));
      sampled = sampler.stats().sampled;
      records = snap.files.size();
      if (full.error_count != 0 || sampler.stats().errors != 0) {
        failed = true;
        std::fprintf(stderr, "errors during the scan: %lu scan, %lu sample\n",
                     static_cast<unsigned long>(full.error_count),
                     static_cast<unsigned long>(sampler.stats().errors));
      }
      // Steady state: directories unchanged, every file sampled again.
      sampler.ResetStats();
      start = Clock::now();
      (void)scanner.Scan(&snap, daxpolicy::files::ScanMode::kIncremental, &sampler);
      best_incremental = std::min(best_incremental, Seconds(start));

      rss_delta = RssBytes() - rss_before;
      snapshot_bytes = snap.files.capacity() * sizeof(daxpolicy::policy::FileRecord) +
                       snap.names.capacity() + scanner.StateBytes();
      for (const std::string& p : snap.dir_paths) snapshot_bytes += sizeof(p) + p.capacity();
    }
    best_floor = std::min(best_floor, RunFloor(root, o, &floor_pages));
    best_fincore = std::min(best_fincore, RunFincore(root, o, list, &failed));
  }

  const double n = static_cast<double>(total);
  const double full_rate = n / best_full;
  const double incr_rate = n / best_incremental;
  const double floor_rate = n / best_floor;
  const double fincore_rate = n / best_fincore;
  const double bytes_per_file = static_cast<double>(snapshot_bytes) / n;
  const double rss_per_file = static_cast<double>(rss_delta) / n;
  std::printf("files: %d in %d dirs (%d B each), records %lu, sampled %lu, best of %d\n", total,
              o.dirs, o.file_bytes, static_cast<unsigned long>(records),
              static_cast<unsigned long>(sampled), o.repeat);
  std::printf("%-34s %12s %10s\n", "method", "files/s", "seconds");
  std::printf("%-34s %12.0f %10.3f\n", "daemon full scan + sample", full_rate, best_full);
  std::printf("%-34s %12.0f %10.3f\n", "daemon incremental scan + sample", incr_rate,
              best_incremental);
  std::printf("%-34s %12.0f %10.3f\n", "floor openat+statx+cachestat+close", floor_rate,
              best_floor);
  std::printf("%-34s %12.0f %10.3f\n", "fincore (xargs batches)", fincore_rate, best_fincore);
  std::printf("floor / daemon full: %.2fx, floor / daemon incremental: %.2fx\n",
              floor_rate / full_rate, floor_rate / incr_rate);
  std::printf("daemon full / fincore: %.2fx, daemon incremental / fincore: %.2fx\n",
              full_rate / fincore_rate, incr_rate / fincore_rate);
  std::printf("memory: %.1f bytes/file exact (snapshot + scanner state), %.1f bytes/file RSS\n",
              bytes_per_file, rss_per_file);

  if (!mount_point.empty() && !o.keep) {
    Shell("umount '" + mount_point + "'");
    Shell("rm -rf '" + work + "'");
  } else if (!mount_point.empty()) {
    std::printf("kept: %s\n", mount_point.c_str());
  }
  // Every file became a record and was sampled (directories come on top).
  if (records < static_cast<uint64_t>(total) || sampled < static_cast<uint64_t>(total)) {
    std::fprintf(stderr, "FAIL: %d files, but %lu records and %lu sampled\n", total,
                 static_cast<unsigned long>(records), static_cast<unsigned long>(sampled));
    failed = true;
  }
  if (failed) return 1;
  if (o.check) {
    const bool ok =
        floor_rate / full_rate <= 1.5 && full_rate / fincore_rate >= 5.0 && bytes_per_file <= 200.0;
    std::printf("targets: %s\n", ok ? "met" : "MISSED");
    return ok ? 0 : 1;
  }
  return 0;
}
