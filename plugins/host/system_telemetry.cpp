// SPDX-License-Identifier: Apache-2.0
#include "plugins/host/system_telemetry.h"

#include <algorithm>
#include <cerrno>
#include <unordered_map>

#include "plugins/host/text_io.h"

namespace daxpolicy::host {

using internal::ParseDecimal;
using internal::ParseUnsigned;
using internal::Quote;
using internal::Split;
using internal::SplitWhitespace;
using internal::Trim;

namespace {

std::string LineError(size_t line_number, const std::string& what) {
  return "line " + std::to_string(line_number) + ": " + what;
}

}  // namespace

Result<MemoryPressure> ParseMemoryPressure(std::string_view text) {
  MemoryPressure pressure;
  bool have_some = false;
  size_t line_number = 0;
  for (std::string_view line : Split(text, '\n')) {
    ++line_number;
    if (Trim(line).empty()) continue;
    std::vector<std::string_view> tokens = SplitWhitespace(line);
    std::string_view kind = tokens[0];
    if (kind != "some" && kind != "full") {
      return Error{LineError(line_number, "expected \"some\" or \"full\", got " + Quote(line))};
    }
    std::optional<double> avg10, avg60;
    std::optional<uint64_t> total;
    for (size_t i = 1; i < tokens.size(); ++i) {
      size_t eq = tokens[i].find('=');
      if (eq == std::string_view::npos) {
        return Error{LineError(line_number, "expected key=value, got " + Quote(tokens[i]))};
      }
      std::string_view key = tokens[i].substr(0, eq);
      std::string_view value = tokens[i].substr(eq + 1);
      if (key == "avg10" || key == "avg60" || key == "avg300") {
        auto number = ParseDecimal(value);
        if (!number || *number < 0) {
          return Error{LineError(line_number, "bad " + std::string(key) + " " + Quote(value))};
        }
        if (key == "avg10") avg10 = number;
        if (key == "avg60") avg60 = number;
      } else if (key == "total") {
        total = ParseUnsigned(value);
        if (!total) return Error{LineError(line_number, "bad total " + Quote(value))};
      }
    }
    if (!avg10) return Error{LineError(line_number, "no avg10 in " + Quote(line))};
    if (kind == "some") {
      if (!avg60 || !total) {
        return Error{LineError(line_number, "avg60 or total missing in " + Quote(line))};
      }
      pressure.some_avg10 = *avg10;
      pressure.some_avg60 = *avg60;
      pressure.some_total_us = *total;
      have_some = true;
    } else {
      pressure.full_avg10 = avg10;
    }
  }
  if (!have_some) return Error{"no \"some\" line"};
  return pressure;
}

Result<MemInfo> ParseMemInfo(std::string_view text) {
  std::unordered_map<std::string_view, uint64_t> values;
  size_t line_number = 0;
  for (std::string_view line : Split(text, '\n')) {
    ++line_number;
    if (Trim(line).empty()) continue;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return Error{LineError(line_number, "expected \"Key: value\", got " + Quote(line))};
    }
    std::string_view key = line.substr(0, colon);
    std::vector<std::string_view> tokens = SplitWhitespace(line.substr(colon + 1));
    if (tokens.empty() || tokens.size() > 2) {
      return Error{LineError(line_number, "expected a number and an optional unit after " +
                                              Quote(key) + ", got " + Quote(line))};
    }
    auto number = ParseUnsigned(tokens[0]);
    if (!number) return Error{LineError(line_number, "bad number " + Quote(tokens[0]))};
    uint64_t multiplier = 1;
    if (tokens.size() == 2) {
      if (tokens[1] != "kB") {
        return Error{LineError(line_number, "unknown unit " + Quote(tokens[1]))};
      }
      multiplier = 1024;  // meminfo's "kB" is KiB
    }
    if (*number > UINT64_MAX / multiplier) {
      return Error{LineError(line_number, "value too large " + Quote(tokens[0]))};
    }
    values[key] = *number * multiplier;
  }
  auto get = [&values](std::string_view key) -> std::optional<uint64_t> {
    auto it = values.find(key);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
  MemInfo info;
  info.total_bytes = get("MemTotal");
  if (!info.total_bytes) return Error{"MemTotal missing"};
  info.available_bytes = get("MemAvailable");
  info.free_bytes = get("MemFree");
  info.cached_bytes = get("Cached");
  info.buffers_bytes = get("Buffers");
  info.dirty_bytes = get("Dirty");
  info.writeback_bytes = get("Writeback");
  info.active_file_bytes = get("Active(file)");
  info.inactive_file_bytes = get("Inactive(file)");
  if (info.cached_bytes && *info.total_bytes > 0) {
    info.page_cache_ratio =
        static_cast<double>(*info.cached_bytes) / static_cast<double>(*info.total_bytes);
  }
  return info;
}

Result<VmStat> ParseVmStat(std::string_view text) {
  VmStat stat;
  std::optional<uint64_t> refault_old, activate_old;
  size_t line_number = 0;
  for (std::string_view line : Split(text, '\n')) {
    ++line_number;
    if (Trim(line).empty()) continue;
    std::vector<std::string_view> tokens = SplitWhitespace(line);
    if (tokens.size() != 2) {
      return Error{LineError(line_number, "expected \"name value\", got " + Quote(line))};
    }
    auto value = ParseUnsigned(tokens[1]);
    if (!value) return Error{LineError(line_number, "bad number " + Quote(tokens[1]))};
    std::string_view name = tokens[0];
    if (name == "workingset_refault_file") {
      stat.workingset_refault_file = value;
    } else if (name == "workingset_refault") {
      refault_old = value;
    } else if (name == "workingset_activate_file") {
      stat.workingset_activate_file = value;
    } else if (name == "workingset_activate") {
      activate_old = value;
    } else if (name == "pgpgin") {
      stat.pgpgin_kib = value;  // the kernel converts sectors to KiB for this file
    } else if (name == "pgpgout") {
      stat.pgpgout_kib = value;
    } else if (name == "pgmajfault") {
      stat.pgmajfault = value;
    }
  }
  // Before 5.9 there was one counter for anon and file; anon pages only joined
  // the workingset tracking in that same release, so the old counter is file-only.
  if (!stat.workingset_refault_file) stat.workingset_refault_file = refault_old;
  if (!stat.workingset_activate_file) stat.workingset_activate_file = activate_old;
  return stat;
}

SystemTelemetry ReadSystemTelemetry(const Roots& roots) {
  SystemTelemetry t;
  std::filesystem::path psi_path = roots.proc / "pressure" / "memory";
  if (auto text = internal::ReadWholeFile(psi_path); !text) {
    int code = text.error().code;
    if (code == ENOENT || code == EOPNOTSUPP) {
      t.pressure_unavailable = "PSI disabled (" + text.error().message + ")";
    } else {
      t.pressure_unavailable = "PSI unreadable: " + text.error().message;
    }
  } else if (auto parsed = ParseMemoryPressure(*text); !parsed) {
    t.pressure_unavailable = psi_path.string() + ": " + parsed.error().message;
  } else {
    t.pressure = *parsed;
  }

  std::filesystem::path meminfo_path = roots.proc / "meminfo";
  if (auto text = internal::ReadWholeFile(meminfo_path); !text) {
    t.meminfo_unavailable = text.error().message;
  } else if (auto parsed = ParseMemInfo(*text); !parsed) {
    t.meminfo_unavailable = meminfo_path.string() + ": " + parsed.error().message;
  } else {
    t.meminfo = *parsed;
  }

  std::filesystem::path vmstat_path = roots.proc / "vmstat";
  if (auto text = internal::ReadWholeFile(vmstat_path); !text) {
    t.vmstat_unavailable = text.error().message;
  } else if (auto parsed = ParseVmStat(*text); !parsed) {
    t.vmstat_unavailable = vmstat_path.string() + ": " + parsed.error().message;
  } else {
    t.vmstat = *parsed;
  }
  return t;
}

namespace {

std::optional<double> Rate(const std::optional<uint64_t>& earlier,
                           const std::optional<uint64_t>& later, double seconds,
                           double scale = 1.0) {
  if (!earlier || !later || *later < *earlier || !(seconds > 0)) return std::nullopt;
  return static_cast<double>(*later - *earlier) * scale / seconds;
}

}  // namespace

SystemRates ComputeRates(const SystemTelemetry& earlier, const SystemTelemetry& later,
                         std::chrono::duration<double> elapsed) {
  SystemRates rates;
  const double seconds = elapsed.count();
  if (earlier.vmstat && later.vmstat) {
    const VmStat& a = *earlier.vmstat;
    const VmStat& b = *later.vmstat;
    rates.refaults_per_second = Rate(a.workingset_refault_file, b.workingset_refault_file, seconds);
    rates.activations_per_second =
        Rate(a.workingset_activate_file, b.workingset_activate_file, seconds);
    rates.pgpgin_bytes_per_second = Rate(a.pgpgin_kib, b.pgpgin_kib, seconds, 1024.0);
    rates.pgpgout_bytes_per_second = Rate(a.pgpgout_kib, b.pgpgout_kib, seconds, 1024.0);
    rates.major_faults_per_second = Rate(a.pgmajfault, b.pgmajfault, seconds);
  }
  if (earlier.pressure && later.pressure) {
    // total is in microseconds: us per second / 1e6 * 100 = percent.
    auto stalled =
        Rate(earlier.pressure->some_total_us, later.pressure->some_total_us, seconds, 100.0 / 1e6);
    if (stalled) rates.pressure_some_percent = std::min(*stalled, 100.0);
  }
  return rates;
}

}  // namespace daxpolicy::host
