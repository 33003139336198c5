// SPDX-License-Identifier: Apache-2.0
#include "plugins/media/report_format.h"

#include <cmath>
#include <cstdio>
#include <sstream>

namespace daxpolicy::media {
namespace {

// A minimal streaming JSON writer: commas and escaping, nothing else.
class Json {
 public:
  std::string Take() { return std::move(out_); }

  Json& BeginObject() { return Open('{'); }
  Json& EndObject() { return Close('}'); }
  Json& BeginArray() { return Open('['); }
  Json& EndArray() { return Close(']'); }
  Json& Key(const std::string& k) {
    Comma();
    String(k);
    out_ += ':';
    after_key_ = true;
    return *this;
  }
  Json& Str(const std::string& v) {
    Comma();
    String(v);
    return *this;
  }
  Json& Num(double v) {
    Comma();
    if (!std::isfinite(v)) {
      out_ += "null";
      return *this;
    }
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.6g", v);
    out_ += buf;
    return *this;
  }
  Json& Int(long long v) {
    Comma();
    out_ += std::to_string(v);
    return *this;
  }
  Json& UInt(unsigned long long v) {
    Comma();
    out_ += std::to_string(v);
    return *this;
  }
  Json& Bool(bool v) {
    Comma();
    out_ += v ? "true" : "false";
    return *this;
  }
  Json& Null() {
    Comma();
    out_ += "null";
    return *this;
  }
  template <class T>
  Json& OptU(const std::optional<T>& v) {
    return v ? UInt(*v) : Null();
  }
  Json& OptD(const std::optional<double>& v) { return v ? Num(*v) : Null(); }
  Json& Node(int node) { return node >= 0 ? Int(node) : Null(); }
  Json& StrList(const std::vector<std::string>& v) {
    BeginArray();
    for (const auto& s : v) Str(s);
    return EndArray();
  }
  Json& IntList(const std::vector<int>& v) {
    BeginArray();
    for (int i : v) Int(i);
    return EndArray();
  }

 private:
  Json& Open(char c) {
    Comma();
    out_ += c;
    first_ = true;
    return *this;
  }
  Json& Close(char c) {
    out_ += c;
    first_ = false;
    return *this;
  }
  void Comma() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!first_) out_ += ',';
    first_ = false;
  }
  void String(const std::string& s) {
    out_ += '"';
    for (unsigned char c : s) {
      switch (c) {
        case '"':
          out_ += "\\\"";
          break;
        case '\\':
          out_ += "\\\\";
          break;
        case '\n':
          out_ += "\\n";
          break;
        case '\t':
          out_ += "\\t";
          break;
        default:
          if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", c);
            out_ += buf;
          } else {
            out_ += static_cast<char>(c);
          }
      }
    }
    out_ += '"';
  }

  std::string out_;
  bool first_ = true;
  bool after_key_ = false;
};

void AccessJson(Json& j, const std::optional<AccessClassPerformance>& a) {
  if (!a) {
    j.Null();
    return;
  }
  j.BeginObject();
  j.Key("read_latency_ns").OptU(a->read_latency_ns);
  j.Key("write_latency_ns").OptU(a->write_latency_ns);
  j.Key("read_bandwidth_mbps").OptU(a->read_bandwidth_mbps);
  j.Key("write_bandwidth_mbps").OptU(a->write_bandwidth_mbps);
  j.Key("initiators").IntList(a->initiators);
  j.EndObject();
}

void NodeJson(Json& j, const NodePerformance& n) {
  j.BeginObject();
  j.Key("node").Int(n.node);
  j.Key("access0");
  AccessJson(j, n.access0);
  j.Key("access1");
  AccessJson(j, n.access1);
  j.Key("memory_tier");
  if (n.memory_tier) {
    j.Int(*n.memory_tier);
  } else {
    j.Null();
  }
  j.EndObject();
}

void ProbeJson(Json& j, const ProbeResult& p) {
  j.BeginObject();
  j.Key("outcome").Str(OutcomeName(p.outcome));
  j.Key("reason").Str(p.reason);
  j.Key("probe_file").Str(p.probe_file);
  j.Key("granularity").Str(p.granularity);
  j.Key("granularity_forced").Bool(p.granularity_forced);
  j.Key("statx_dax");
  if (p.statx_dax_known) {
    j.Bool(p.statx_dax);
  } else {
    j.Null();
  }
  bool ok = p.outcome == ProbeResult::Outcome::kMeasured;
  auto num = [&](double v) { return ok ? j.Num(v) : j.Null(); };
  j.Key("read_latency_ns");
  num(p.latency.read_latency_ns);
  j.Key("write_latency_ns");
  num(p.latency.write_latency_ns);
  j.Key("dram_latency_ns");
  num(p.latency.dram_latency_ns);
  j.Key("latency_ratio");
  num(p.latency.latency_ratio);
  j.Key("read_bandwidth");
  num(p.latency.read_bandwidth);
  j.Key("dram_bandwidth");
  num(p.latency.dram_bandwidth);
  j.Key("write_bandwidth");
  num(p.latency.write_bandwidth);
  j.Key("measure_ms");
  num(p.latency.measure_ms);
  j.Key("timed_ms");
  num(p.latency.timed_ms);
  j.Key("buffer_bytes").UInt(p.buffer_bytes);
  j.Key("read_steps").UInt(p.read_steps);
  j.Key("write_steps").UInt(p.write_steps);
  j.Key("duration_ms").Num(p.duration_ms);
  j.EndObject();
}

std::string Opt(const std::optional<uint64_t>& v, const char* unit) {
  return v ? std::to_string(*v) + unit : "-";
}

std::string Node(int n) { return n >= 0 ? std::to_string(n) : "-"; }

std::string Fixed(double v, int digits = 1) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string Join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

void AccessText(std::ostringstream& o, const char* name,
                const std::optional<AccessClassPerformance>& a) {
  if (!a) return;
  o << "    " << name << ": read " << Opt(a->read_latency_ns, " ns") << " "
    << Opt(a->read_bandwidth_mbps, " MB/s") << ", write " << Opt(a->write_latency_ns, " ns") << " "
    << Opt(a->write_bandwidth_mbps, " MB/s") << "\n";
}

}  // namespace

std::string ReportToJson(const MediaReport& r) {
  Json j;
  j.BeginObject();
  j.Key("degraded").Str(r.Degraded());
  j.Key("degraded_reasons").StrList(r.degraded_reasons);
  j.Key("refresh_ms").Num(r.refresh_ms);
  j.Key("probe_ms").Num(r.probe_ms);

  j.Key("topology").BeginObject();
  j.Key("ok").Bool(r.topology_ok);
  j.Key("buses").BeginArray();
  for (const auto& b : r.topology.buses) {
    j.BeginObject().Key("devname").Str(b.devname).Key("provider").Str(b.provider).EndObject();
  }
  j.EndArray();
  j.Key("dimms").BeginArray();
  for (const auto& d : r.topology.dimms) {
    HealthAssessment h = AssessDimm(d);
    j.BeginObject();
    j.Key("devname").Str(d.devname).Key("bus").Str(d.bus).Key("unique_id").Str(d.unique_id);
    j.Key("smart_supported").Bool(d.smart_supported);
    j.Key("health").Str(HealthName(h.health));
    j.Key("health_reasons").StrList(h.reasons);
    j.Key("smart");
    if (d.smart) {
      j.BeginObject();
      j.Key("health_bits").OptU(d.smart->health_bits);
      j.Key("media_temperature_c").OptD(d.smart->media_temperature_c);
      j.Key("spares_percent").OptU(d.smart->spares_percent);
      j.Key("life_used_percent").OptU(d.smart->life_used_percent);
      j.Key("unsafe_shutdowns").OptU(d.smart->unsafe_shutdowns);
      j.EndObject();
    } else {
      j.Null();
    }
    j.Key("smart_unavailable_reason").Str(d.smart_unavailable_reason);
    j.EndObject();
  }
  j.EndArray();
  j.Key("regions").BeginArray();
  for (const auto& g : r.topology.regions) {
    j.BeginObject();
    j.Key("devname").Str(g.devname).Key("bus").Str(g.bus).Key("type").Str(g.type);
    j.Key("size").UInt(g.size).Key("numa_node").Node(g.numa_node);
    j.Key("target_node").Node(g.target_node).Key("dimms").StrList(g.dimms);
    j.Key("badblocks").UInt(g.badblocks).Key("badblock_sectors").UInt(g.badblock_sectors);
    j.EndObject();
  }
  j.EndArray();
  j.Key("namespaces").BeginArray();
  for (const auto& n : r.topology.namespaces) {
    j.BeginObject();
    j.Key("devname").Str(n.devname).Key("region").Str(n.region).Key("mode").Str(n.mode);
    j.Key("size").UInt(n.size).Key("numa_node").Node(n.numa_node);
    j.Key("target_node").Node(n.target_node);
    j.Key("block_device").Str(n.block_device).Key("char_device").Str(n.char_device);
    j.Key("badblocks").UInt(n.badblocks).Key("badblock_sectors").UInt(n.badblock_sectors);
    j.EndObject();
  }
  j.EndArray();
  j.Key("dax_devices").BeginArray();
  for (const auto& d : r.topology.dax_devices) {
    j.BeginObject();
    j.Key("devname").Str(d.devname).Key("region").Str(d.region).Key("size").UInt(d.size);
    j.Key("target_node").Node(d.target_node).Key("mode").Str(d.mode);
    j.Key("enabled").Bool(d.enabled).Key("online").Bool(d.online);
    j.EndObject();
  }
  j.EndArray();
  j.EndObject();

  j.Key("firmware").BeginObject();
  j.Key("hmat_available").Bool(r.firmware.hmat_available);
  j.Key("hmat_unavailable_reason").Str(r.firmware.hmat_unavailable_reason);
  j.Key("tiers_available").Bool(r.firmware.tiers_available);
  j.Key("tiers_unavailable_reason").Str(r.firmware.tiers_unavailable_reason);
  j.Key("nodes").BeginArray();
  for (const auto& n : r.firmware.nodes) NodeJson(j, n);
  j.EndArray();
  j.Key("memory_tiers").BeginArray();
  for (const auto& t : r.firmware.tiers) {
    j.BeginObject().Key("id").Int(t.id).Key("nodes").IntList(t.nodes).EndObject();
  }
  j.EndArray();
  j.EndObject();

  j.Key("devices").BeginArray();
  for (const auto& d : r.devices) {
    j.BeginObject();
    j.Key("name").Str(d.name).Key("kind").Str(d.kind);
    j.Key("namespace").Str(d.namespace_name).Key("region").Str(d.region);
    j.Key("size").UInt(d.size).Key("numa_node").Node(d.numa_node);
    j.Key("target_node").Node(d.target_node);
    j.Key("health").Str(HealthName(d.health.health));
    j.Key("health_reasons").StrList(d.health.reasons);
    j.Key("badblocks").UInt(d.badblocks);
    j.Key("have_latency").Bool(d.have_latency);
    j.Key("read_latency_ns");
    d.have_latency ? j.Num(d.read_latency_ns) : j.Null();
    j.Key("write_latency_ns");
    d.have_latency ? j.Num(d.write_latency_ns) : j.Null();
    j.Key("dram_latency_ns");
    d.have_latency ? j.Num(d.dram_latency_ns) : j.Null();
    j.Key("latency_ratio");
    d.have_latency ? j.Num(d.latency_ratio) : j.Null();
    j.Key("read_bandwidth");
    d.have_latency ? j.Num(d.read_bandwidth) : j.Null();
    j.Key("dram_bandwidth");
    d.have_latency ? j.Num(d.dram_bandwidth) : j.Null();
    j.Key("write_bandwidth");
    d.have_latency ? j.Num(d.write_bandwidth) : j.Null();
    j.Key("latency_mount").Str(d.latency_mount);
    j.Key("latency_unavailable_reason").Str(d.latency_unavailable_reason);
    j.Key("firmware");
    if (d.firmware) {
      NodeJson(j, *d.firmware);
    } else {
      j.Null();
    }
    j.Key("firmware_unavailable_reason").Str(d.firmware_unavailable_reason);
    j.EndObject();
  }
  j.EndArray();

  j.Key("mounts").BeginArray();
  for (const auto& m : r.mounts) {
    j.BeginObject();
    j.Key("mount_point").Str(m.mount.mount_point);
    j.Key("dev").Str(std::to_string(m.mount.major) + ":" + std::to_string(m.mount.minor));
    j.Key("fs_type").Str(m.mount.fs_type);
    j.Key("block_device").Str(m.block_device).Key("disk").Str(m.disk);
    j.Key("namespace").Str(m.namespace_name).Key("region").Str(m.region);
    j.Key("device");
    m.device >= 0 ? j.Str(r.devices[static_cast<size_t>(m.device)].name) : j.Null();
    j.Key("unmapped_reason").Str(m.unmapped_reason);
    j.Key("dax_capable");
    m.dax_capable ? j.Bool(*m.dax_capable) : j.Null();
    j.Key("not_dax_capable_reason").Str(m.not_dax_capable_reason);
    j.Key("probe_fresh").Bool(m.probe_fresh);
    j.Key("probe");
    if (m.probe) {
      ProbeJson(j, *m.probe);
    } else {
      j.Null();
    }
    j.EndObject();
  }
  j.EndArray();
  j.EndObject();
  return j.Take() + "\n";
}

std::string ReportToText(const MediaReport& r) {
  std::ostringstream o;
  o << "degraded: " << (r.degraded_reasons.empty() ? "no" : r.Degraded()) << "\n";
  o << "topology: " << (r.topology_ok ? "" : "unavailable, ") << r.topology.buses.size()
    << " buses, " << r.topology.dimms.size() << " DIMMs, " << r.topology.regions.size()
    << " regions, " << r.topology.namespaces.size() << " active namespaces, "
    << r.topology.dax_devices.size() << " DAX devices\n";
  for (const auto& b : r.topology.buses) o << "  bus " << b.devname << " (" << b.provider << ")\n";
  for (const auto& d : r.topology.dimms) {
    HealthAssessment h = AssessDimm(d);
    o << "  dimm " << d.devname << ": health " << HealthName(h.health);
    if (!h.reasons.empty()) o << " (" << Join(h.reasons, ", ") << ")";
    if (d.smart) {
      const auto& s = *d.smart;
      if (s.media_temperature_c) o << ", " << Fixed(*s.media_temperature_c) << " C";
      if (s.spares_percent) o << ", spares " << *s.spares_percent << "%";
      if (s.life_used_percent) o << ", life used " << *s.life_used_percent << "%";
      if (s.unsafe_shutdowns) o << ", unsafe shutdowns " << *s.unsafe_shutdowns;
    }
    o << "\n";
  }
  for (const auto& g : r.topology.regions) {
    o << "  region " << g.devname << ": " << g.type << ", " << (g.size >> 20) << " MiB, numa "
      << Node(g.numa_node) << ", target " << Node(g.target_node) << ", dimms ["
      << Join(g.dimms, ",") << "], badblocks " << g.badblocks << "\n";
  }
  for (const auto& n : r.topology.namespaces) {
    o << "  namespace " << n.devname << " (" << n.region << "): " << n.mode << ", "
      << (n.size >> 20) << " MiB, numa " << Node(n.numa_node) << ", target " << Node(n.target_node)
      << ", dev "
      << (n.block_device.empty() ? (n.char_device.empty() ? "-" : n.char_device) : n.block_device)
      << ", badblocks " << n.badblocks << "\n";
  }
  for (const auto& d : r.topology.dax_devices) {
    o << "  dax " << d.devname << " (" << d.region << "): " << d.mode << ", " << (d.size >> 20)
      << " MiB, target " << Node(d.target_node) << (d.enabled ? ", enabled" : ", disabled");
    if (d.mode == "system-ram") o << (d.online ? ", online" : ", offline");
    o << "\n";
  }
  o << "firmware (HMAT): "
    << (r.firmware.hmat_available ? "available"
                                  : "unavailable: " + r.firmware.hmat_unavailable_reason)
    << "\n";
  for (const auto& n : r.firmware.nodes) {
    o << "  node " << n.node;
    if (n.memory_tier) o << " (memory tier " << *n.memory_tier << ")";
    o << "\n";
    AccessText(o, "access0", n.access0);
    AccessText(o, "access1", n.access1);
  }
  o << "memory tiers: "
    << (r.firmware.tiers_available ? "" : "unavailable: " + r.firmware.tiers_unavailable_reason)
    << "\n";
  for (const auto& t : r.firmware.tiers) {
    std::vector<std::string> nodes;
    for (int n : t.nodes) nodes.push_back(std::to_string(n));
    o << "  memory_tier" << t.id << ": nodes " << Join(nodes, ",") << "\n";
  }
  o << "devices: " << r.devices.size() << "\n";
  for (const auto& d : r.devices) {
    o << "  " << d.name << ": " << d.kind << ", " << (d.size >> 20) << " MiB, numa "
      << Node(d.numa_node) << ", health " << HealthName(d.health.health);
    if (!d.health.reasons.empty()) o << " (" << Join(d.health.reasons, ", ") << ")";
    o << "\n";
    if (d.have_latency) {
      o << "    latency: read " << Fixed(d.read_latency_ns) << " ns, write "
        << Fixed(d.write_latency_ns) << " ns, DRAM " << Fixed(d.dram_latency_ns) << " ns, ratio "
        << Fixed(d.latency_ratio, 2) << " (from " << d.latency_mount << ")\n";
    } else {
      o << "    latency: unavailable: " << d.latency_unavailable_reason << "\n";
    }
    if (!d.firmware_unavailable_reason.empty()) {
      o << "    firmware: unavailable: " << d.firmware_unavailable_reason << "\n";
    } else if (d.firmware) {
      AccessText(o, "firmware access0", d.firmware->access0);
      AccessText(o, "firmware access1", d.firmware->access1);
    }
  }
  o << "mounts: " << r.mounts.size() << "\n";
  for (const auto& m : r.mounts) {
    o << "  " << m.mount.mount_point << " (" << m.mount.major << ":" << m.mount.minor << " "
      << (m.block_device.empty() ? "?" : m.block_device) << ")";
    if (m.device >= 0) {
      o << " -> " << r.devices[static_cast<size_t>(m.device)].name;
      if (!m.namespace_name.empty()) o << " -> " << m.namespace_name << " -> " << m.region;
    } else {
      o << ": " << m.unmapped_reason;
    }
    o << "\n";
    o << "    dax-capable: "
      << (m.dax_capable.value_or(false) ? "yes" : "no: " + m.not_dax_capable_reason) << "\n";
    if (m.probe) {
      const auto& p = *m.probe;
      o << "    probe" << (m.probe_fresh ? "" : " (earlier)") << ": " << OutcomeName(p.outcome);
      if (!p.reason.empty()) o << ": " << p.reason;
      o << "\n";
      if (p.outcome == ProbeResult::Outcome::kMeasured) {
        o << "      read " << Fixed(p.latency.read_latency_ns) << " ns, write "
          << Fixed(p.latency.write_latency_ns) << " ns, DRAM " << Fixed(p.latency.dram_latency_ns)
          << " ns, ratio " << Fixed(p.latency.latency_ratio, 2) << ", granularity " << p.granularity
          << "\n";
      }
      o << "      " << (p.buffer_bytes >> 20) << " MiB buffer, " << p.read_steps << " loads, "
        << p.write_steps << " stores; took " << Fixed(p.duration_ms) << " ms\n";
    }
  }
  o << "refresh took " << Fixed(r.refresh_ms) << " ms (probes " << Fixed(r.probe_ms) << " ms)\n";
  return o.str();
}

}  // namespace daxpolicy::media
