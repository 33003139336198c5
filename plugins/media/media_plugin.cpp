// SPDX-License-Identifier: Apache-2.0
#include "plugins/media/media_plugin.h"

#include <sys/sysmacros.h>

#include <utility>

#include "plugins/media/libnvdimm_topology.h"

namespace daxpolicy::media {
namespace {

double MsSince(const plugins::Clock& clock, int64_t start_ns) {
  return static_cast<double>(clock.MonotonicNs() - start_ns) / 1e6;
}

bool HasOption(const std::string& options, const std::string& wanted) {
  size_t pos = 0;
  while (pos <= options.size()) {
    size_t comma = options.find(',', pos);
    if (options.compare(pos, comma == std::string::npos ? std::string::npos : comma - pos,
                        wanted) == 0) {
      return true;
    }
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return false;
}

void AttachFirmware(const FirmwarePerformance& fw, MediaDevice* d) {
  int node = d->target_node >= 0 ? d->target_node : d->numa_node;
  if (node < 0) {
    d->firmware_unavailable_reason = "no target or NUMA node known for " + d->name;
    return;
  }
  const NodePerformance* np = fw.Node(node);
  if (np == nullptr) {
    d->firmware_unavailable_reason =
        "node " + std::to_string(node) + " is not in sysfs (memory not online as a NUMA node)";
    return;
  }
  d->firmware = *np;
  if (!np->access0 && !np->access1) {
    d->firmware_unavailable_reason =
        "no HMAT data for node " + std::to_string(node) +
        (fw.hmat_unavailable_reason.empty() ? "" : ": " + fw.hmat_unavailable_reason);
  }
}

}  // namespace

std::string MediaReport::Degraded() const {
  std::string out;
  for (const auto& r : degraded_reasons) {
    if (!out.empty()) out += "; ";
    out += r;
  }
  return out;
}

MediaPlugin::MediaPlugin(std::unique_ptr<NvdimmTopologySource> source, MediaPluginOptions options)
    : source_(std::move(source)), options_(std::move(options)) {}

void MediaPlugin::Log(LogLevel level, const std::string& message) const {
  if (options_.log) options_.log(level, message);
}

MediaReport MediaPlugin::Refresh(const std::vector<MountInput>& mounts, bool run_probes) {
  const plugins::Clock& clock = *options_.probe.chase.clock;
  const int64_t start = clock.MonotonicNs();
  MediaReport rep;
  const auto& sys = options_.sysfs_root;

  auto topo = source_->Enumerate();
  if (!topo) {
    rep.degraded_reasons.push_back("NVDIMM topology unavailable: " + topo.error().message);
  } else {
    rep.topology_ok = true;
    rep.topology = std::move(*topo);
    if (rep.topology.buses.empty()) {
      rep.degraded_reasons.push_back("no NVDIMM bus found (libndctl: 0 buses)");
    }
  }
  rep.firmware = ReadFirmwarePerformance(sys);
  const Topology& t = rep.topology;

  auto find_dimm = [&](const std::string& name) -> const DimmInfo* {
    for (const auto& d : t.dimms) {
      if (d.devname == name) return &d;
    }
    return nullptr;
  };
  auto find_region = [&](const std::string& name) -> const RegionInfo* {
    for (const auto& r : t.regions) {
      if (r.devname == name) return &r;
    }
    return nullptr;
  };

  // Devices: active namespaces first, then DAX devices no namespace owns.
  for (const auto& ns : t.namespaces) {
    MediaDevice d;
    d.name = !ns.block_device.empty()  ? ns.block_device
             : !ns.char_device.empty() ? ns.char_device
                                       : ns.devname;
    d.kind = ns.mode;
    d.namespace_name = ns.devname;
    d.region = ns.region;
    d.size = ns.size;
    d.numa_node = ns.numa_node;
    d.target_node = ns.target_node;
    d.badblocks = ns.badblocks;
    if (!ns.char_device.empty()) {
      for (const auto& dax : t.dax_devices) {
        if (dax.devname == ns.char_device) {
          d.kind = dax.mode;
          if (d.target_node < 0) d.target_node = dax.target_node;
        }
      }
    }
    std::vector<const DimmInfo*> dimms;
    if (const RegionInfo* region = find_region(ns.region)) {
      if (d.numa_node < 0) d.numa_node = region->numa_node;
      if (d.target_node < 0) d.target_node = region->target_node;
      for (const auto& name : region->dimms) {
        if (const DimmInfo* dimm = find_dimm(name)) dimms.push_back(dimm);
      }
    }
    d.health = CombineHealth(dimms, ns.badblocks, options_.health);
    rep.devices.push_back(std::move(d));
  }
  for (const auto& dax : t.dax_devices) {
    bool owned = false;
    for (const auto& ns : t.namespaces) owned = owned || ns.char_device == dax.devname;
    if (owned) continue;
    MediaDevice d;
    d.name = dax.devname;
    d.kind = dax.mode;
    d.region = dax.region;
    d.size = dax.size;
    d.target_node = dax.target_node;
    // Memory hot-added through kmem appears as this NUMA node.
    if (dax.mode == "system-ram") d.numa_node = dax.target_node;
    d.health.health = policy::MediaHealth::kUnknown;
    d.health.reasons.push_back(dax.devname +
                               ": not backed by an NVDIMM namespace (no SMART source)");
    rep.devices.push_back(std::move(d));
  }

  // Mounts.
  double probe_ms = 0;
  for (const auto& in : mounts) {
    MountMedia mm;
    mm.mount = in;
    auto bdev = ResolveBlockDevice(sys, in.major, in.minor);
    if (!bdev) {
      mm.unmapped_reason = "block device " + std::to_string(in.major) + ":" +
                           std::to_string(in.minor) + " unknown: " + bdev.error().message;
      mm.not_dax_capable_reason = mm.unmapped_reason;
    } else {
      mm.block_device = bdev->name;
      mm.disk = bdev->disk;
      for (size_t i = 0; i < rep.devices.size(); ++i) {
        const auto& d = rep.devices[i];
        if (d.name == mm.block_device || d.name == mm.disk) {
          mm.device = static_cast<int>(i);
          mm.namespace_name = d.namespace_name;
          mm.region = d.region;
          break;
        }
      }
      mm.dax_capable = DiskSupportsDax(sys, mm.disk);
      if (!mm.dax_capable) {
        mm.not_dax_capable_reason =
            "cannot read " + (sys / "block" / mm.disk / "queue/dax").string();
      } else if (!*mm.dax_capable) {
        mm.not_dax_capable_reason = "device " + mm.disk + " cannot do DAX (" +
                                    (sys / "block" / mm.disk / "queue/dax").string() + " is 0)";
      } else if (HasOption(in.mount_options, "dax=never")) {
        mm.dax_capable = false;
        mm.not_dax_capable_reason = in.mount_point + " is mounted dax=never";
      } else if (!in.fs_type.empty() && in.fs_type != "xfs" && in.fs_type != "ext4") {
        mm.dax_capable = false;
        mm.not_dax_capable_reason = "filesystem " + in.fs_type + " has no per-file DAX";
      }
      if (mm.device < 0) {
        if (mm.dax_capable.value_or(false)) {
          // DAX works but libndctl does not know the device (e.g. libndctl
          // failed): still a device worth measuring.
          MediaDevice d;
          d.name = mm.disk;
          d.kind = "block";
          d.health.reasons.push_back(mm.disk + ": not in the NVDIMM topology (no SMART source)");
          rep.devices.push_back(std::move(d));
          mm.device = static_cast<int>(rep.devices.size() - 1);
        } else {
          mm.unmapped_reason = "block device " + mm.disk + " is not an NVDIMM namespace (" +
                               std::to_string(t.namespaces.size()) + " active namespaces)";
        }
      }
    }

    if (run_probes && mm.dax_capable.value_or(false)) {
      const int64_t p0 = clock.MonotonicNs();
      ProbeResult pr = ProbeMount(in.mount_point, options_.probe);
      probe_ms += MsSince(clock, p0);
      Log(pr.outcome == ProbeResult::Outcome::kMeasured ? LogLevel::kDebug : LogLevel::kWarning,
          "media probe of " + in.mount_point + ": " + OutcomeName(pr.outcome) +
              (pr.reason.empty() ? "" : ": " + pr.reason));
      last_probes_[in.mount_point] = pr;
      mm.probe_fresh = true;
    }
    if (mm.dax_capable.value_or(false)) {
      auto it = last_probes_.find(in.mount_point);
      if (it != last_probes_.end()) mm.probe = it->second;
    } else {
      last_probes_.erase(in.mount_point);
    }
    rep.mounts.push_back(std::move(mm));
  }
  rep.probe_ms = probe_ms;

  // Latency per device from the first mount on it with a measurement.
  for (auto& d : rep.devices) {
    d.latency_unavailable_reason = "no probed mount on " + d.name;
  }
  for (const auto& mm : rep.mounts) {
    if (mm.device < 0) continue;
    MediaDevice& d = rep.devices[static_cast<size_t>(mm.device)];
    if (d.have_latency) continue;
    if (!mm.dax_capable.value_or(false)) {
      d.latency_unavailable_reason = mm.mount.mount_point + ": " + mm.not_dax_capable_reason;
    } else if (!mm.probe) {
      d.latency_unavailable_reason = mm.mount.mount_point + ": not probed yet";
    } else if (mm.probe->outcome != ProbeResult::Outcome::kMeasured) {
      d.latency_unavailable_reason = mm.mount.mount_point + ": probe " +
                                     OutcomeName(mm.probe->outcome) + ": " + mm.probe->reason;
    } else {
      d.have_latency = true;
      d.read_latency_ns = mm.probe->latency.read_latency_ns;
      d.write_latency_ns = mm.probe->latency.write_latency_ns;
      d.dram_latency_ns = mm.probe->latency.dram_latency_ns;
      d.latency_ratio = mm.probe->latency.latency_ratio;
      d.read_bandwidth = mm.probe->latency.read_bandwidth;
      d.dram_bandwidth = mm.probe->latency.dram_bandwidth;
      d.write_bandwidth = mm.probe->latency.write_bandwidth;
      d.latency_mount = mm.mount.mount_point;
      d.latency_unavailable_reason.clear();
    }
  }
  for (auto& d : rep.devices) AttachFirmware(rep.firmware, &d);

  std::string degraded = rep.Degraded();
  if (degraded != last_degraded_) {
    Log(degraded.empty() ? LogLevel::kInfo : LogLevel::kWarning,
        degraded.empty() ? "media: no longer degraded" : "media degraded: " + degraded);
    last_degraded_ = degraded;
  }
  rep.refresh_ms = MsSince(clock, start);
  return rep;
}

std::vector<policy::MediaSample> ToMediaSamples(const MediaReport& report) {
  std::vector<policy::MediaSample> out;
  out.reserve(report.devices.size());
  for (const auto& d : report.devices) {
    policy::MediaSample s;
    s.name = d.name;
    s.have_latency = d.have_latency;
    s.read_latency_ns = d.read_latency_ns;
    s.write_latency_ns = d.write_latency_ns;
    s.latency_ratio = d.latency_ratio;
    s.have_bandwidth =
        d.have_latency && d.read_bandwidth > 0 && d.dram_bandwidth > 0 && d.write_bandwidth > 0;
    s.read_bandwidth = d.read_bandwidth;
    s.dram_bandwidth = d.dram_bandwidth;
    s.write_bandwidth = d.write_bandwidth;
    s.health = d.health.health;
    s.have_numa_node = d.numa_node >= 0;
    s.numa_node = d.numa_node;
    out.push_back(std::move(s));
  }
  return out;
}

void FillSnapshot(const MediaReport& report, policy::Snapshot* snapshot) {
  snapshot->media = ToMediaSamples(report);
  for (auto& m : snapshot->mounts) {
    m.media = -1;
    for (const auto& mm : report.mounts) {
      if (makedev(mm.mount.major, mm.mount.minor) == m.dev) {
        m.media = mm.device;
        break;
      }
    }
  }
}

std::unique_ptr<NvdimmTopologySource> MakeLibNvdimmSource(LogSink log, bool query_smart) {
  return std::make_unique<LibNvdimmTopologySource>(std::move(log), query_smart);
}

}  // namespace daxpolicy::media
