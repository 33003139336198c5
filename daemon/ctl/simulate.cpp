// SPDX-License-Identifier: Apache-2.0
#include "daemon/ctl/simulate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "daemon/config_files.h"
#include "daemon/ctl/json.h"
#include "daemon/ctl/text.h"
#include "policy/cost.h"
#include "policy/evaluate.h"
#include "policy/units.h"
#include "policy/workloads.h"

namespace daxpolicy::ctl {

namespace {

using policy::SimColumn;
using policy::SimFigures;
using policy::SimGroup;
using policy::SimResult;

// Traces are read whole, so a bigger one is refused (as is a fifo or device).
constexpr size_t kMaxTraceBytes = size_t{2} << 30;

std::string Seconds(double ns) {
  char buf[32];
  if (ns >= 1e9 || ns == 0) {
    std::snprintf(buf, sizeof buf, "%.2f s", ns / 1e9);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f ms", ns / 1e6);
  }
  return buf;
}

std::string Bytes(double b) { return HumanBytes(static_cast<uint64_t>(std::max(0.0, b))); }

double Avg(const SimFigures& f, double duration_ns) {
  return duration_ns > 0 ? f.dram_byte_ns / duration_ns : 0;
}

// Oracle time / policy time: 1 = as good as the best fixed choice in hindsight.
double OracleShare(const SimGroup& g) {
  const double policy = g.columns[policy::kSimPolicy].time_ns;
  const double oracle = g.columns[policy::kSimOracle].time_ns;
  if (policy <= 0) return oracle <= 0 ? 1 : 0;
  return oracle / policy;
}

// Seconds since the start of the trace (the start of its first interval).
double SinceStart(const SimResult& r, int64_t t_ns) {
  return (static_cast<double>(t_ns) - r.start_ns) / 1e9;
}

// "dax at 12s, page-cache at 40s", or "-".
std::string Switches(const SimResult& r, const std::vector<policy::SimSwitch>& s) {
  if (s.empty()) return "-";
  std::string out;
  for (const policy::SimSwitch& w : s) {
    char buf[32];  // tenths of a second, "4s" for 4.0
    std::snprintf(buf, sizeof buf, "%.1f", SinceStart(r, w.t_ns));
    std::string t = buf;
    if (t.size() > 2 && t.compare(t.size() - 2, 2, ".0") == 0) t.resize(t.size() - 2);
    if (!out.empty()) out += ", ";
    out += std::string(policy::DaxStateName(w.to)) + " at " + t + "s";
  }
  return out;
}

std::string SwitchesJson(const SimResult& r, const std::vector<policy::SimSwitch>& s) {
  std::vector<std::string> out;
  for (const policy::SimSwitch& w : s) {
    out.push_back(JsonObject()
                      .Add("t_s", JsonNumber(SinceStart(r, w.t_ns)))
                      .Add("to", JsonString(policy::DaxStateName(w.to)))
                      .str());
  }
  return JsonArray(out);
}

}  // namespace

std::string SimulationTable(const SimResult& r, double budget) {
  std::string out;
  const size_t intervals = r.time_per_interval.size();
  out += "simulated " + policy::FormatDuration(static_cast<int64_t>(r.duration_ns)) + " (" +
         std::to_string(intervals) + " intervals of " +
         policy::FormatDuration(static_cast<int64_t>(r.interval_ns)) + "), " +
         std::to_string(r.total.files) + " files, " + Bytes(r.total.read_bytes) +
         " read; page-cache budget " + (budget > 0 ? Bytes(budget) : "unlimited") + "\n";
  for (const std::string& n : r.notes) out += "media: " + Printable(n) + "\n";
  out += "\n";
  std::vector<std::vector<std::string>> rows;
  auto add = [&](const SimGroup& g, const std::string& name) {
    for (int c = 0; c < policy::kSimColumns; ++c) {
      const SimFigures& f = g.columns[static_cast<size_t>(c)];
      std::string share;
      if (c == policy::kSimPolicy) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.1f%%", 100 * OracleShare(g));
        share = buf;
      }
      rows.push_back({c == 0 ? name : "", std::string(SimColumnName(static_cast<SimColumn>(c))),
                      Seconds(f.time_ns), Bytes(Avg(f, r.duration_ns)), Bytes(f.dram_peak),
                      std::to_string(f.switches), share});
    }
  };
  for (const SimGroup& g : r.groups) add(g, g.name.empty() ? "(mount root)" : g.name);
  add(r.total, "TOTAL");
  out += FormatTable(
      {"GROUP", "RUN", "EST. TIME", "DRAM AVG", "DRAM PEAK", "SWITCHES", "ORACLE/POLICY"}, rows);
  if (!r.hits.empty()) {
    out += "\npage-cache model against the recorded hit ratios (bytes-weighted):\n";
    std::vector<std::vector<std::string>> hit_rows;
    double worst = 0;
    for (const policy::SimHitCheck& h : r.hits) {
      char m[16], p[16], d[16];
      std::snprintf(m, sizeof m, "%.3f", h.measured);
      std::snprintf(p, sizeof p, "%.3f", h.predicted);
      std::snprintf(d, sizeof d, "%+.1f", 100 * (h.predicted - h.measured));
      worst = std::max(worst, std::fabs(h.predicted - h.measured));
      hit_rows.push_back({h.path, Bytes(h.read_bytes), m, p, d});
    }
    out += FormatTable({"FILE", "READ", "MEASURED", "PREDICTED", "DIFF (pp)"}, hit_rows);
    char buf[64];
    std::snprintf(buf, sizeof buf, "largest difference: %.1f percentage points\n", 100 * worst);
    out += buf;
  }
  if (!r.modes.empty()) {
    out +=
        "\nmodes per file, recorded in the trace and chosen by the policy (from the trace's "
        "start):\n";
    std::vector<std::vector<std::string>> mode_rows;
    size_t same = 0;
    for (const policy::SimFileModes& m : r.modes) {
      const policy::DaxState recorded = m.recorded.empty() ? m.first : m.recorded.back().to;
      const policy::DaxState chosen = m.policy.empty() ? m.first : m.policy.back().to;
      same += recorded == chosen;
      mode_rows.push_back({Printable(m.path), std::string(policy::DaxStateName(m.first)),
                           Switches(r, m.recorded), Switches(r, m.policy)});
    }
    out += FormatTable({"FILE", "FIRST", "RECORDED", "POLICY"}, mode_rows);
    out += std::to_string(same) + " of " + std::to_string(r.modes.size()) +
           " files end in the mode the trace recorded\n";
  }
  return out;
}

std::string SimulationJson(const SimResult& r, double budget) {
  auto group = [&](const SimGroup& g) {
    JsonObject cols;
    for (int c = 0; c < policy::kSimColumns; ++c) {
      const SimFigures& f = g.columns[static_cast<size_t>(c)];
      cols.Add(SimColumnName(static_cast<SimColumn>(c)),
               JsonObject()
                   .Add("time_s", JsonNumber(f.time_ns / 1e9))
                   .Add("dram_avg_bytes", JsonNumber(Avg(f, r.duration_ns)))
                   .Add("dram_peak_bytes", JsonNumber(f.dram_peak))
                   .Add("switches", JsonNumber(f.switches))
                   .str());
    }
    return JsonObject()
        .Add("name", JsonString(g.name))
        .Add("files", JsonNumber(g.files))
        .Add("read_bytes", JsonNumber(g.read_bytes))
        .Add("oracle_over_policy", JsonNumber(OracleShare(g)))
        .Add("runs", cols.str())
        .str();
  };
  std::vector<std::string> groups, notes, hits, series;
  for (const SimGroup& g : r.groups) groups.push_back(group(g));
  for (const std::string& n : r.notes) notes.push_back(JsonString(n));
  std::vector<std::string> modes;
  for (const policy::SimFileModes& m : r.modes) {
    modes.push_back(JsonObject()
                        .Add("path", JsonString(m.path))
                        .Add("first", JsonString(policy::DaxStateName(m.first)))
                        .Add("recorded", SwitchesJson(r, m.recorded))
                        .Add("policy", SwitchesJson(r, m.policy))
                        .str());
  }
  for (const policy::SimHitCheck& h : r.hits) {
    hits.push_back(JsonObject()
                       .Add("path", JsonString(h.path))
                       .Add("read_bytes", JsonNumber(h.read_bytes))
                       .Add("measured", JsonNumber(h.measured))
                       .Add("predicted", JsonNumber(h.predicted))
                       .str());
  }
  for (size_t i = 0; i < r.time_per_interval.size(); ++i) {
    std::vector<std::string> t, d;
    for (int c = 0; c < policy::kSimColumns; ++c) {
      t.push_back(JsonNumber(r.time_per_interval[i][static_cast<size_t>(c)] / 1e9));
      d.push_back(JsonNumber(r.dram_per_interval[i][static_cast<size_t>(c)]));
    }
    series.push_back(
        JsonObject().Add("time_s", JsonArray(t)).Add("dram_bytes", JsonArray(d)).str());
  }
  std::vector<std::string> runs;
  for (int c = 0; c < policy::kSimColumns; ++c) {
    runs.push_back(JsonString(SimColumnName(static_cast<SimColumn>(c))));
  }
  return JsonObject()
             .Add("duration_s", JsonNumber(r.duration_ns / 1e9))
             .Add("interval_s", JsonNumber(r.interval_ns / 1e9))
             .Add("dram_budget_bytes", JsonNumber(budget))
             .Add("media", JsonArray(notes))
             .Add("runs", JsonArray(runs))
             .Add("groups", JsonArray(groups))
             .Add("total", group(r.total))
             .Add("hits", JsonArray(hits))
             .Add("modes", JsonArray(modes))
             .Add("intervals", JsonArray(series))
             .str() +
         "\n";
}

std::string SimulationSvg(const SimResult& r) {
  // Two panels over simulated time: estimated I/O time per interval, and page-cache bytes.
  const char* colors[] = {"#d62728", "#1f77b4", "#2ca02c", "#7f7f7f"};
  const double width = 900, panel = 220, left = 80, right = 20, top = 40, gap = 60;
  const size_t n = r.time_per_interval.size();
  std::string out;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                "font-family=\"sans-serif\" font-size=\"12\">\n",
                width, top + 2 * panel + gap + 50);
  out += buf;
  out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  out +=
      "<text x=\"80\" y=\"20\" font-size=\"14\">daxpolicyctl simulate: estimated I/O time per "
      "interval and page-cache DRAM, per run</text>\n";
  auto draw = [&](double y0, const std::vector<std::array<double, policy::kSimColumns>>& data,
                  double scale, const char* unit, const char* title) {
    double max = 0;
    for (const auto& row : data) {
      for (double v : row) max = std::max(max, v);
    }
    if (max <= 0) max = 1;
    const double plot_w = width - left - right;
    std::snprintf(buf, sizeof buf,
                  "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
                  "stroke=\"#999\"/>\n<text x=\"%.0f\" y=\"%.0f\">%s</text>\n",
                  left, y0, plot_w, panel, left, y0 - 6, title);
    out += buf;
    for (int tick = 0; tick <= 4; ++tick) {
      double v = max * tick / 4;
      double y = y0 + panel - panel * tick / 4;
      std::snprintf(buf, sizeof buf,
                    "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.3g %s</text>\n", left - 4,
                    y + 4, v / scale, unit);
      out += buf;
    }
    for (int c = 0; c < policy::kSimColumns; ++c) {
      out += "<polyline fill=\"none\" stroke-width=\"1.5\" stroke=\"" + std::string(colors[c]) +
             "\" points=\"";
      for (size_t i = 0; i < data.size(); ++i) {
        double x =
            left + (n > 1 ? plot_w * static_cast<double>(i) / static_cast<double>(n - 1) : 0);
        double y = y0 + panel - panel * data[i][static_cast<size_t>(c)] / max;
        std::snprintf(buf, sizeof buf, "%.1f,%.1f ", x, y);
        out += buf;
      }
      out += "\"/>\n";
    }
  };
  draw(top, r.time_per_interval, 1e6, "ms", "estimated I/O time per interval");
  draw(top + panel + gap, r.dram_per_interval, 1024.0 * 1024 * 1024, "GiB",
       "page-cache DRAM at the end of each interval");
  const double ly = top + 2 * panel + gap + 30;
  for (int c = 0; c < policy::kSimColumns; ++c) {
    std::snprintf(buf, sizeof buf,
                  "<rect x=\"%.0f\" y=\"%.0f\" width=\"14\" height=\"4\" fill=\"%s\"/>"
                  "<text x=\"%.0f\" y=\"%.0f\">%s</text>\n",
                  left + 150.0 * c, ly - 4, colors[c], left + 150.0 * c + 20, ly,
                  std::string(SimColumnName(static_cast<SimColumn>(c))).c_str());
    out += buf;
  }
  std::snprintf(buf, sizeof buf,
                "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">simulated time: %s</text>\n",
                width - right, ly,
                policy::FormatDuration(static_cast<int64_t>(r.duration_ns)).c_str());
  out += buf;
  out += "</svg>\n";
  return out;
}

int RunSimulate(const SimulateArgs& a) {
  std::string error;
  // Usage errors first, before anything is read or written.
  if (!a.generate.empty() && !a.trace_file.empty()) {
    std::cerr << "simulate: give a TRACE file or --generate, not both\n";
    return kSimulateUsage;
  }
  if (a.generate.empty() && a.trace_file.empty()) {
    std::cerr << "simulate: give a TRACE file or --generate SPEC\n";
    return kSimulateUsage;
  }
  if (!a.media.empty() && !policy::MediaPreset(a.media)) {
    std::cerr << "simulate: --media: unknown media '" << a.media
              << "' (expected one of: " << policy::MediaPresetList() << ")\n";
    return kSimulateUsage;
  }
  policy::SimOptions options;
  options.media = a.media;
  options.hits = a.hits;
  options.modes = a.modes;
  if (!a.budget.empty()) {
    auto b = policy::ParseSize(a.budget, &error);
    if (!b) {
      std::cerr << "simulate: --budget: " << error << "\n";
      return kSimulateUsage;
    }
    options.dram_budget = static_cast<double>(*b);
  }
  std::optional<policy::Trace> trace;
  if (!a.generate.empty()) {
    trace = policy::GenerateWorkload(a.generate, &error);
    if (!trace) {
      std::cerr << "simulate: --generate " << a.generate << ": " << error << "\n";
      return kSimulateUsage;
    }
  } else {
    std::string text;
    if (!daemon::ReadRegularFile(a.trace_file, kMaxTraceBytes, &text, &error)) {
      std::cerr << "simulate: " << a.trace_file << ": " << error << "\n";
      return 1;
    }
    trace = policy::ParseTrace(text, &error);
    if (!trace) {
      std::cerr << a.trace_file << ": " << error << "\n";
      return 1;
    }
  }
  if (!a.save_trace.empty()) {
    std::ofstream o(a.save_trace, std::ios::binary | std::ios::trunc);
    o << policy::FormatTrace(*trace);
    if (!o.flush()) {
      std::cerr << "simulate: cannot write " << a.save_trace << "\n";
      return 1;
    }
  }
  const std::string dropins =
      a.dropin_dir.empty() ? daemon::DefaultDropinDir(a.policy_file) : a.dropin_dir;
  policy::LoadResult loaded = daemon::LoadPolicyFiles(a.policy_file, dropins);
  if (!loaded.policy) {
    for (const auto& e : loaded.errors) std::cerr << e.ToString() << "\n";
    return 1;
  }
  policy::SimResult result;
  if (!policy::Simulate(*trace, *loaded.policy, options, &result, &error)) {
    std::cerr << "simulate: " << error << "\n";
    return 1;
  }
  const double budget = options.dram_budget > 0 ? options.dram_budget : trace->dram_budget;
  if (!a.chart_file.empty()) {
    std::ofstream o(a.chart_file, std::ios::binary | std::ios::trunc);
    o << SimulationSvg(result);
    if (!o.flush()) {
      std::cerr << "simulate: cannot write " << a.chart_file << "\n";
      return 1;
    }
  }
  std::cout << (a.json ? SimulationJson(result, budget) : SimulationTable(result, budget));
  return 0;
}

}  // namespace daxpolicy::ctl
