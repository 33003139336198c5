// SPDX-License-Identifier: Apache-2.0
#include "plugins/media/firmware.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <sstream>
#include <system_error>

namespace daxpolicy::media {
namespace fs = std::filesystem;
namespace {

std::optional<std::string> ReadSmall(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return s.str();
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

std::optional<uint64_t> ReadU64(const fs::path& path) {
  auto text = ReadSmall(path);
  if (!text) return std::nullopt;
  std::string_view t = Trim(*text);
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || end != t.data() + t.size() || t.empty()) return std::nullopt;
  return v;
}

// "node12" -> 12; "memory_tier4" -> 4 with prefix "memory_tier".
std::optional<int> NumberAfter(std::string_view name, std::string_view prefix) {
  if (name.substr(0, prefix.size()) != prefix || name.size() == prefix.size()) return std::nullopt;
  std::string_view digits = name.substr(prefix.size());
  int v = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return v;
}

std::optional<AccessClassPerformance> ReadAccessClass(const fs::path& node_dir, int cls) {
  fs::path dir = node_dir / ("access" + std::to_string(cls)) / "initiators";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return std::nullopt;
  AccessClassPerformance p;
  p.read_latency_ns = ReadU64(dir / "read_latency");
  p.write_latency_ns = ReadU64(dir / "write_latency");
  p.read_bandwidth_mbps = ReadU64(dir / "read_bandwidth");
  p.write_bandwidth_mbps = ReadU64(dir / "write_bandwidth");
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (auto n = NumberAfter(entry.path().filename().string(), "node")) p.initiators.push_back(*n);
  }
  std::sort(p.initiators.begin(), p.initiators.end());
  if (!p.read_latency_ns && !p.write_latency_ns && !p.read_bandwidth_mbps &&
      !p.write_bandwidth_mbps) {
    return std::nullopt;
  }
  return p;
}

}  // namespace

Result<std::vector<int>> ParseNodeList(std::string_view text) {
  std::vector<int> out;
  text = Trim(text);
  if (text.empty()) return out;
  auto bad = [&] { return Error{"bad node list '" + std::string(text) + "'", EINVAL}; };
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    std::string_view item =
        text.substr(pos, comma == std::string_view::npos ? text.npos : comma - pos);
    size_t dash = item.find('-');
    auto parse = [](std::string_view s, int* v) {
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
      return ec == std::errc() && end == s.data() + s.size() && !s.empty() && *v >= 0;
    };
    int lo = 0, hi = 0;
    if (dash == std::string_view::npos) {
      if (!parse(item, &lo)) return bad();
      hi = lo;
    } else if (!parse(item.substr(0, dash), &lo) || !parse(item.substr(dash + 1), &hi) || hi < lo) {
      return bad();
    }
    // Node numbers are bounded by MAX_NUMNODES (1024 on x86_64 distros).
    if (hi - lo > 4096) return bad();
    for (int n = lo; n <= hi; ++n) out.push_back(n);
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

const NodePerformance* FirmwarePerformance::Node(int node) const {
  for (const auto& n : nodes) {
    if (n.node == node) return &n;
  }
  return nullptr;
}

FirmwarePerformance ReadFirmwarePerformance(const fs::path& sysfs_root) {
  FirmwarePerformance out;
  std::error_code ec;
  fs::path node_root = sysfs_root / "devices/system/node";
  for (const auto& entry : fs::directory_iterator(node_root, ec)) {
    auto n = NumberAfter(entry.path().filename().string(), "node");
    if (!n) continue;
    NodePerformance np;
    np.node = *n;
    np.access0 = ReadAccessClass(entry.path(), 0);
    np.access1 = ReadAccessClass(entry.path(), 1);
    if (np.access0 || np.access1) out.hmat_available = true;
    out.nodes.push_back(std::move(np));
  }
  std::sort(out.nodes.begin(), out.nodes.end(),
            [](const NodePerformance& a, const NodePerformance& b) { return a.node < b.node; });
  if (out.nodes.empty()) {
    out.hmat_unavailable_reason = "no NUMA node directories in " + node_root.string();
  } else if (!out.hmat_available) {
    out.hmat_unavailable_reason = "no node has access0/access1 initiator attributes in " +
                                  node_root.string() +
                                  " (firmware without ACPI HMAT, or kernel older than 5.2)";
  }

  fs::path tier_root = sysfs_root / "devices/virtual/memory_tiering";
  for (const auto& entry : fs::directory_iterator(tier_root, ec)) {
    auto id = NumberAfter(entry.path().filename().string(), "memory_tier");
    if (!id) continue;
    auto text = ReadSmall(entry.path() / "nodes");
    if (!text) continue;
    auto list = ParseNodeList(*text);
    if (!list) continue;
    out.tiers.push_back(MemoryTier{*id, *list});
  }
  std::sort(out.tiers.begin(), out.tiers.end(),
            [](const MemoryTier& a, const MemoryTier& b) { return a.id < b.id; });
  out.tiers_available = !out.tiers.empty();
  if (!out.tiers_available) {
    out.tiers_unavailable_reason =
        "no memory_tierN/nodes in " + tier_root.string() + " (kernel older than 6.1?)";
  }
  for (const auto& tier : out.tiers) {
    for (int node : tier.nodes) {
      for (auto& np : out.nodes) {
        if (np.node == node && !np.memory_tier) np.memory_tier = tier.id;
      }
    }
  }
  return out;
}

Result<BlockDeviceName> ResolveBlockDevice(const fs::path& sysfs_root, unsigned major,
                                           unsigned minor) {
  fs::path link = sysfs_root / "dev/block" / (std::to_string(major) + ":" + std::to_string(minor));
  std::error_code ec;
  fs::path dev = fs::canonical(link, ec);
  if (ec) return ErrnoError(ec.value(), "resolve " + link.string());
  BlockDeviceName out;
  out.name = dev.filename().string();
  out.disk = out.name;
  if (fs::exists(dev / "partition", ec)) out.disk = dev.parent_path().filename().string();
  return out;
}

std::optional<bool> DiskSupportsDax(const fs::path& sysfs_root, const std::string& disk) {
  auto v = ReadU64(sysfs_root / "block" / disk / "queue/dax");
  if (!v) return std::nullopt;
  return *v != 0;
}

}  // namespace daxpolicy::media
