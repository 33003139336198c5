// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The media telemetry plugin: which memory device backs each mount, how
/// healthy it is, what the firmware rates it at and how fast it measured.
/// Runs only when asked (the caller owns the interval) and never fails as a
/// whole: missing hardware shows up as a Degraded reason and unavailable values.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "plugins/media/firmware.h"
#include "plugins/media/health.h"
#include "plugins/media/latency_probe.h"
#include "plugins/media/topology.h"
#include "policy/snapshot.h"

namespace daxpolicy::media {

/// A mounted filesystem the caller wants mapped (and maybe probed).
struct MountInput {
  std::string mount_point;  ///< absolute
  unsigned major = 0;       ///< of st_dev of files on the mount
  unsigned minor = 0;
  std::string fs_type;        ///< "xfs", "ext4", ...; "" when unknown
  std::string mount_options;  ///< comma-separated, as in mountinfo; "" when unknown
};

/// One memory device, as D-Bus GetMedia() and the metrics present it. Contract
/// keys of GetMedia(): Name=name, Kind=kind, Size=size, NumaNode=numa_node,
/// Health=HealthName(health.health), ReadLatencyNs, WriteLatencyNs,
/// LatencyRatio (only meaningful when have_latency).
struct MediaDevice {
  /// Block device ("pmem0"), else char device ("dax0.0"), else the namespace.
  std::string name;
  /// "fsdax" | "devdax" | "system-ram" | "sector" | "raw" | "block" (a DAX-capable
  /// block device outside the NVDIMM topology) | "unknown".
  std::string kind;
  std::string namespace_name;  ///< "namespace0.0" or ""
  std::string region;          ///< "region0" / "daxregion1" or ""
  uint64_t size = 0;           ///< bytes
  int numa_node = -1;          ///< -1 unknown
  int target_node = -1;        ///< -1 unknown
  HealthAssessment health;
  uint64_t badblocks = 0;  ///< bad-block ranges in this device
  bool have_latency = false;
  double read_latency_ns = 0;
  double write_latency_ns = 0;
  double dram_latency_ns = 0;
  double latency_ratio = 0;    ///< read / DRAM read
  double read_bandwidth = 0;   ///< bytes/s, media copy out (same probe as the latency)
  double dram_bandwidth = 0;   ///< bytes/s, DRAM copy out, same run
  double write_bandwidth = 0;  ///< bytes/s, media fill + persist
  std::string latency_mount;   ///< mount whose probe gave the latency
  std::string latency_unavailable_reason;
  /// HMAT/tier facts for target_node (or numa_node when no target node).
  std::optional<NodePerformance> firmware;
  std::string firmware_unavailable_reason;
};

/// What became of one MountInput.
struct MountMedia {
  MountInput mount;
  std::string block_device;  ///< "pmem0p1" from <sys>/dev/block/MAJ:MIN, "" if unresolved
  std::string disk;          ///< "pmem0"
  std::string namespace_name;
  std::string region;
  int device = -1;              ///< index into MediaReport::devices, -1 none
  std::string unmapped_reason;  ///< why device is -1
  std::optional<bool> dax_capable;
  std::string not_dax_capable_reason;  ///< why dax_capable is not true
  /// Latest probe of this mount; probe_fresh says whether it ran in this refresh.
  std::optional<ProbeResult> probe;
  bool probe_fresh = false;
};

/// Everything one refresh found.
struct MediaReport {
  std::vector<std::string> degraded_reasons;
  bool topology_ok = false;
  Topology topology;
  FirmwarePerformance firmware;
  std::vector<MediaDevice> devices;
  std::vector<MountMedia> mounts;
  double refresh_ms = 0;  ///< wall time of the whole refresh, probes included
  double probe_ms = 0;    ///< of which spent in latency probes

  /// Degraded reasons joined with "; ", "" when fine (the D-Bus Degraded form).
  std::string Degraded() const;
};

/// Configuration of the plugin.
struct MediaPluginOptions {
  std::filesystem::path sysfs_root = "/sys";
  ProbeOptions probe;
  HealthThresholds health;
  LogSink log;  ///< may be empty
};

/// Enumerates, maps, assesses and probes. Single-threaded; keeps the last
/// probe result of each mount so latency stays known between probe runs.
class MediaPlugin {
 public:
  MediaPlugin(std::unique_ptr<NvdimmTopologySource> source, MediaPluginOptions options);

  /// One refresh. `run_probes`: measure latency on every DAX-capable mount now
  /// (a probe costs tens of milliseconds and writes a probe file); when false
  /// the previous measurement of each mount is reported.
  MediaReport Refresh(const std::vector<MountInput>& mounts, bool run_probes);

  const MediaPluginOptions& options() const { return options_; }

 private:
  void Log(LogLevel level, const std::string& message) const;

  std::unique_ptr<NvdimmTopologySource> source_;
  MediaPluginOptions options_;
  std::map<std::string, ProbeResult> last_probes_;  // by mount point
  std::string last_degraded_;
};

/// The compact per-device samples for policy::Snapshot::media, in
/// report.devices order.
std::vector<policy::MediaSample> ToMediaSamples(const MediaReport& report);

/// Sets snapshot->media from the report and points each snapshot mount at its
/// device (MountRecord::media) by matching MountRecord::dev with the report's
/// mounts; mounts not in the report or without a device get -1.
void FillSnapshot(const MediaReport& report, policy::Snapshot* snapshot);

/// Builds a topology source on libndctl/libdaxctl with the plugin's log sink.
std::unique_ptr<NvdimmTopologySource> MakeLibNvdimmSource(LogSink log, bool query_smart = true);

}  // namespace daxpolicy::media
