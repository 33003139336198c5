// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The NVDIMM / device-DAX topology as libndctl and libdaxctl describe it, and
/// the interface the media plugin reads it through (a real source built on the
/// libraries, and a fake for tests).

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/result.h"

namespace daxpolicy::media {

/// Severity of a message from the media plugin or from the libraries it wraps
/// (libndctl/libdaxctl syslog priorities are mapped onto these).
enum class LogLevel : uint8_t { kDebug, kInfo, kWarning, kError };

/// Receives every log line of the plugin, including library chatter that would
/// otherwise go to stderr. Must not throw.
using LogSink = std::function<void(LogLevel level, std::string_view message)>;

/// "debug", "info", "warning", "error".
const char* LogLevelName(LogLevel level);

/// Raw answer of one DIMM to the SMART ("health") command. Each field is set
/// only when the DIMM flagged it valid.
struct SmartData {
  /// ND_SMART_{NON_CRITICAL,CRITICAL,FATAL}_HEALTH bits; 0 means healthy.
  std::optional<unsigned> health_bits;
  std::optional<double> media_temperature_c;
  std::optional<unsigned> spares_percent;     ///< spare blocks remaining, %
  std::optional<unsigned> life_used_percent;  ///< %
  std::optional<unsigned> unsafe_shutdowns;   ///< "dirty" shutdown count
};

/// One NVDIMM ("nmemN").
struct DimmInfo {
  std::string devname;    ///< "nmem0"
  std::string bus;        ///< "ndbus0"
  std::string unique_id;  ///< vendor/serial id when the firmware tells it, else ""
  bool smart_supported = false;
  /// Set when SMART is supported and the command succeeded.
  std::optional<SmartData> smart;
  /// Why `smart` is empty: no SMART for this DIMM family, command failed, ...
  std::string smart_unavailable_reason;
};

/// An active namespace (seed and idle namespaces are skipped).
struct NamespaceInfo {
  std::string devname;            ///< "namespace0.0"
  std::string region;             ///< "region0"
  std::string mode;               ///< "fsdax" | "devdax" | "sector" | "raw" | "unknown"
  uint64_t size = 0;              ///< bytes
  int numa_node = -1;             ///< -1 when unknown
  int target_node = -1;           ///< -1 when the kernel hides it (NUMA_NO_NODE)
  std::string block_device;       ///< "pmem0" / "pmem0s" for fsdax, sector, raw; "" otherwise
  std::string char_device;        ///< "dax0.0" for devdax; "" otherwise
  uint64_t badblocks = 0;         ///< number of bad-block ranges reported
  uint64_t badblock_sectors = 0;  ///< 512-byte sectors in those ranges
};

/// One NVDIMM region ("regionN").
struct RegionInfo {
  std::string devname;  ///< "region0"
  std::string bus;      ///< "ndbus0"
  std::string type;     ///< "pmem" | "blk" | ...
  uint64_t size = 0;    ///< bytes
  int numa_node = -1;
  int target_node = -1;
  std::vector<std::string> dimms;  ///< devnames of the DIMMs interleaved in it
  uint64_t badblocks = 0;
  uint64_t badblock_sectors = 0;
};

/// A device-DAX instance ("daxX.Y"), from an NVDIMM devdax namespace or from
/// soft-reserved / CXL memory.
struct DaxDeviceInfo {
  std::string devname;  ///< "dax0.0"
  std::string region;   ///< daxctl region id as "daxregionN"
  uint64_t size = 0;
  int target_node = -1;
  std::string mode;  ///< "devdax" or "system-ram" (bound to kmem)
  bool enabled = false;
  /// Only meaningful for system-ram: whether its memory blocks are online.
  bool online = false;
};

/// One NVDIMM bus ("ndbusN").
struct BusInfo {
  std::string devname;   ///< "ndbus0"
  std::string provider;  ///< "ACPI.NFIT", "e820", ...
};

/// Everything one enumeration found.
struct Topology {
  std::vector<BusInfo> buses;
  std::vector<DimmInfo> dimms;
  std::vector<RegionInfo> regions;
  std::vector<NamespaceInfo> namespaces;
  std::vector<DaxDeviceInfo> dax_devices;
};

/// Where topology and SMART answers come from. Enumerate() must start from
/// scratch each time (the libraries cache enumeration per context).
class NvdimmTopologySource {
 public:
  virtual ~NvdimmTopologySource() = default;
  /// Enumerates buses, DIMMs (with their SMART answers), regions, active
  /// namespaces and DAX devices. An error means the libraries could not even
  /// start; an empty system is a success with no buses.
  virtual Result<Topology> Enumerate() = 0;
};

/// Returns a fixed topology; tests edit `topology` (including SMART answers)
/// or set `error` to make Enumerate() fail.
class FakeTopologySource : public NvdimmTopologySource {
 public:
  FakeTopologySource() = default;
  explicit FakeTopologySource(Topology t) : topology(std::move(t)) {}
  Result<Topology> Enumerate() override {
    ++enumerations;
    if (error) return *error;
    return topology;
  }

  Topology topology;
  std::optional<Error> error;
  int enumerations = 0;
};

}  // namespace daxpolicy::media
