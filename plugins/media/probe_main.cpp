// SPDX-License-Identifier: Apache-2.0
// daxpolicy-media-probe: prints everything the media plugin sees (topology,
// mount mapping, health, HMAT, latency probes) as text or JSON. A diagnostic
// for admins and for the VM tests on an emulated NVDIMM.

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "plugins/media/media_plugin.h"
#include "plugins/media/report_format.h"

namespace {

using daxpolicy::media::LogLevel;
using daxpolicy::media::MountInput;

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool ok = true;
      for (size_t k = 1; k <= 3; ++k) {
        char c = s[i + k];
        if (c < '0' || c > '7') ok = false;
        v = v * 8 + (c - '0');
      }
      if (ok) {
        out += static_cast<char>(v);
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

// Fills fs_type and options of `m` from the last mountinfo entry for its mount
// point (the one on top).
void FillFromMountinfo(const std::string& proc_root, MountInput* m) {
  std::ifstream in(proc_root + "/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::vector<std::string> f;
    std::string w;
    while (fields >> w) f.push_back(w);
    if (f.size() < 10 || Unescape(f[4]) != m->mount_point) continue;
    size_t dash = 6;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (dash + 3 >= f.size()) continue;
    m->fs_type = f[dash + 1];
    m->mount_options = f[5] + "," + f[dash + 3];
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Report what daxpolicy's media plugin sees: NVDIMM topology, mount mapping, "
      "health, firmware (HMAT) performance and measured latency."};
  std::vector<std::string> mount_points;
  bool json = false;
  bool no_probe = false;
  bool no_smart = false;
  bool verbose = false;
  std::string sysfs_root = "/sys";
  std::string proc_root = "/proc";
  daxpolicy::media::MediaPluginOptions options;
  size_t buffer_mib = options.probe.chase.buffer_bytes >> 20;
  app.add_option("mounts", mount_points, "mount points to map and probe");
  app.add_flag("--json", json, "print JSON instead of text");
  app.add_flag("--no-probe", no_probe, "map mounts but do not measure latency");
  app.add_flag("--no-smart", no_smart, "do not send SMART commands to DIMMs");
  app.add_flag("-v,--verbose", verbose, "print plugin and library log lines to stderr");
  app.add_option("--sysfs-root", sysfs_root, "sysfs root")->capture_default_str();
  app.add_option("--proc-root", proc_root, "procfs root (for mountinfo)")->capture_default_str();
  app.add_option("--probe-dir", options.probe.probe_dir, "probe directory, relative to the mount")
      ->capture_default_str();
  app.add_option("--buffer-mib", buffer_mib, "probe buffer size in MiB")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  app.add_option("--read-steps", options.probe.chase.read_steps, "dependent loads per chase")
      ->capture_default_str();
  app.add_option("--write-steps", options.probe.chase.write_steps, "store+persist operations")
      ->capture_default_str();
  app.add_flag("--keep-file", options.probe.keep_file, "leave the probe file behind");
  CLI11_PARSE(app, argc, argv);

  options.sysfs_root = sysfs_root;
  options.probe.chase.buffer_bytes = buffer_mib << 20;
  options.log = [verbose](LogLevel level, std::string_view message) {
    if (verbose || level >= LogLevel::kWarning) {
      std::cerr << daxpolicy::media::LogLevelName(level) << ": " << message << "\n";
    }
  };

  std::vector<MountInput> mounts;
  int rc = 0;
  for (const auto& mp : mount_points) {
    struct stat st {};
    if (stat(mp.c_str(), &st) != 0) {
      std::cerr << "error: stat " << mp << ": " << std::strerror(errno) << "\n";
      rc = 1;
      continue;
    }
    MountInput m;
    m.mount_point = mp;
    m.major = major(st.st_dev);
    m.minor = minor(st.st_dev);
    FillFromMountinfo(proc_root, &m);
    mounts.push_back(std::move(m));
  }

  daxpolicy::media::MediaPlugin plugin(
      daxpolicy::media::MakeLibNvdimmSource(options.log, !no_smart), options);
  auto report = plugin.Refresh(mounts, !no_probe);
  std::cout << (json ? daxpolicy::media::ReportToJson(report)
                     : daxpolicy::media::ReportToText(report));
  return rc;
}
