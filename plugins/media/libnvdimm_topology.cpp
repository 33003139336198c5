// SPDX-License-Identifier: Apache-2.0
#include "plugins/media/libnvdimm_topology.h"

#include <daxctl/libdaxctl.h>
#include <ndctl/libndctl.h>
#include <syslog.h>

#include <cstdarg>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>

namespace daxpolicy::media {
namespace {

LogLevel FromSyslogPriority(int priority) {
  if (priority <= LOG_ERR) return LogLevel::kError;
  if (priority == LOG_WARNING) return LogLevel::kWarning;
  if (priority <= LOG_INFO) return LogLevel::kInfo;
  return LogLevel::kDebug;
}

// Both libraries hand us printf-style text; the sink gets one line without the
// trailing newline the libraries put there.
void Forward(const LogSink* sink, const char* library, int priority, const char* fn,
             const char* format, va_list args) {
  if (sink == nullptr || !*sink) return;
  char buf[1024];
  int n = std::vsnprintf(buf, sizeof(buf), format, args);
  if (n < 0) return;
  std::string text(buf, std::min<size_t>(static_cast<size_t>(n), sizeof(buf) - 1));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  (*sink)(FromSyslogPriority(priority), std::string(library) + ": " + fn + ": " + text);
}

void NdctlLog(ndctl_ctx* ctx, int priority, const char* /*file*/, int /*line*/, const char* fn,
              const char* format, va_list args) {
  Forward(static_cast<const LogSink*>(ndctl_get_userdata(ctx)), "libndctl", priority, fn, format,
          args);
}

void DaxctlLog(daxctl_ctx* ctx, int priority, const char* /*file*/, int /*line*/, const char* fn,
               const char* format, va_list args) {
  Forward(static_cast<const LogSink*>(daxctl_get_userdata(ctx)), "libdaxctl", priority, fn, format,
          args);
}

struct CtxDeleter {
  void operator()(ndctl_ctx* ctx) const { ndctl_unref(ctx); }
};

std::string Str(const char* s) { return s ? std::string(s) : std::string(); }

const char* ModeName(ndctl_namespace_mode mode) {
  switch (mode) {
    case NDCTL_NS_MODE_FSDAX:
      return "fsdax";
    case NDCTL_NS_MODE_DEVDAX:
      return "devdax";
    case NDCTL_NS_MODE_SECTOR:
      return "sector";
    case NDCTL_NS_MODE_RAW:
      return "raw";
    default:
      return "unknown";
  }
}

// fsdax and sector namespaces hand their block device to a pfn / btt instance;
// the namespace's own block device name is then empty.
std::string BlockDeviceOf(ndctl_namespace* ns) {
  if (ndctl_btt* btt = ndctl_namespace_get_btt(ns)) return Str(ndctl_btt_get_block_device(btt));
  if (ndctl_pfn* pfn = ndctl_namespace_get_pfn(ns)) return Str(ndctl_pfn_get_block_device(pfn));
  return Str(ndctl_namespace_get_block_device(ns));
}

std::string CharDeviceOf(ndctl_namespace* ns) {
  ndctl_dax* dax = ndctl_namespace_get_dax(ns);
  if (dax == nullptr) return {};
  daxctl_region* region = ndctl_dax_get_daxctl_region(dax);
  if (region == nullptr) return {};
  daxctl_dev* dev;
  daxctl_dev_foreach(region, dev) {
    if (const char* name = daxctl_dev_get_devname(dev); name && *name) return name;
  }
  return {};
}

void ReadSmart(ndctl_dimm* dimm, DimmInfo* info) {
  ndctl_cmd* cmd = ndctl_dimm_cmd_new_smart(dimm);
  if (cmd == nullptr) {
    info->smart_supported = false;
    info->smart_unavailable_reason = "DIMM family has no SMART health command";
    return;
  }
  info->smart_supported = true;
  int rc = ndctl_cmd_submit_xlat(cmd);
  if (rc < 0) {
    info->smart_unavailable_reason = ErrnoError(-rc, "SMART command failed").message;
    ndctl_cmd_unref(cmd);
    return;
  }
  SmartData smart;
  unsigned flags = ndctl_cmd_smart_get_flags(cmd);
  if (flags & ND_SMART_HEALTH_VALID) smart.health_bits = ndctl_cmd_smart_get_health(cmd);
  if (flags & ND_SMART_USED_VALID) smart.life_used_percent = ndctl_cmd_smart_get_life_used(cmd);
  if (flags & ND_SMART_MTEMP_VALID) {
    smart.media_temperature_c =
        ndctl_decode_smart_temperature(ndctl_cmd_smart_get_media_temperature(cmd));
  }
  if (flags & ND_SMART_SPARES_VALID) smart.spares_percent = ndctl_cmd_smart_get_spares(cmd);
  if (flags & ND_SMART_SHUTDOWN_COUNT_VALID) {
    smart.unsafe_shutdowns = ndctl_cmd_smart_get_shutdown_count(cmd);
  }
  info->smart = smart;
  ndctl_cmd_unref(cmd);
}

}  // namespace

const char* LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "?";
}

LibNvdimmTopologySource::LibNvdimmTopologySource(LogSink log, bool query_smart)
    : log_(std::move(log)), query_smart_(query_smart) {}

Result<Topology> LibNvdimmTopologySource::Enumerate() {
  ndctl_ctx* raw = nullptr;
  if (int rc = ndctl_new(&raw); rc != 0) return ErrnoError(-rc, "libndctl: ndctl_new");
  std::unique_ptr<ndctl_ctx, CtxDeleter> ctx(raw);
  ndctl_set_userdata(ctx.get(), &log_);
  ndctl_set_log_fn(ctx.get(), NdctlLog);
  daxctl_ctx* dctx = ndctl_get_daxctl_ctx(ctx.get());
  if (dctx != nullptr) {
    daxctl_set_userdata(dctx, &log_);
    daxctl_set_log_fn(dctx, DaxctlLog);
  }

  Topology t;
  ndctl_bus* bus;
  ndctl_bus_foreach(ctx.get(), bus) {
    BusInfo b{Str(ndctl_bus_get_devname(bus)), Str(ndctl_bus_get_provider(bus))};
    ndctl_dimm* dimm;
    ndctl_dimm_foreach(bus, dimm) {
      DimmInfo d;
      d.devname = Str(ndctl_dimm_get_devname(dimm));
      d.bus = b.devname;
      d.unique_id = Str(ndctl_dimm_get_unique_id(dimm));
      if (query_smart_) {
        ReadSmart(dimm, &d);
      } else {
        d.smart_supported = ndctl_dimm_cmd_new_smart(dimm) != nullptr;
        d.smart_unavailable_reason = "SMART not queried (disabled by configuration)";
      }
      t.dimms.push_back(std::move(d));
    }
    ndctl_region* region;
    ndctl_region_foreach(bus, region) {
      RegionInfo r;
      r.devname = Str(ndctl_region_get_devname(region));
      r.bus = b.devname;
      r.type = Str(ndctl_region_get_type_name(region));
      r.size = ndctl_region_get_size(region);
      r.numa_node = ndctl_region_get_numa_node(region);
      r.target_node = ndctl_region_get_target_node(region);
      ndctl_dimm* rd;
      ndctl_dimm_foreach_in_region(region, rd) r.dimms.push_back(Str(ndctl_dimm_get_devname(rd)));
      badblock* bb;
      ndctl_region_badblock_foreach(region, bb) {
        ++r.badblocks;
        r.badblock_sectors += bb->len;
      }
      ndctl_namespace* ns;
      ndctl_namespace_foreach(region, ns) {
        if (!ndctl_namespace_is_active(ns)) continue;
        NamespaceInfo n;
        n.devname = Str(ndctl_namespace_get_devname(ns));
        n.region = r.devname;
        ndctl_namespace_mode mode = ndctl_namespace_get_mode(ns);
        n.mode = ModeName(mode);
        n.size = ndctl_namespace_get_size(ns);
        n.numa_node = ndctl_namespace_get_numa_node(ns);
        n.target_node = ndctl_namespace_get_target_node(ns);
        if (mode == NDCTL_NS_MODE_DEVDAX) {
          n.char_device = CharDeviceOf(ns);
        } else {
          n.block_device = BlockDeviceOf(ns);
        }
        badblock* nbb;
        ndctl_namespace_badblock_foreach(ns, nbb) {
          ++n.badblocks;
          n.badblock_sectors += nbb->len;
        }
        t.namespaces.push_back(std::move(n));
      }
      t.regions.push_back(std::move(r));
    }
    t.buses.push_back(std::move(b));
  }

  if (dctx != nullptr) {
    daxctl_region* dregion;
    daxctl_region_foreach(dctx, dregion) {
      daxctl_dev* dev;
      daxctl_dev_foreach(dregion, dev) {
        DaxDeviceInfo d;
        d.devname = Str(daxctl_dev_get_devname(dev));
        d.region = "daxregion" + std::to_string(daxctl_region_get_id(dregion));
        d.size = daxctl_dev_get_size(dev);
        d.target_node = daxctl_dev_get_target_node(dev);
        d.enabled = daxctl_dev_is_enabled(dev) != 0;
        daxctl_memory* mem = daxctl_dev_get_memory(dev);
        d.mode = mem ? "system-ram" : "devdax";
        d.online = mem ? daxctl_memory_is_online(mem) > 0 : false;
        // A region's seed device has size 0 and no name worth reporting.
        if (d.devname.empty() || (d.size == 0 && !d.enabled)) continue;
        t.dax_devices.push_back(std::move(d));
      }
    }
  }
  return t;
}

}  // namespace daxpolicy::media
