// SPDX-License-Identifier: Apache-2.0
// daxpolicyctl simulate's output: the table has a row per group and run, the
// JSON every key, the SVG chart is well-formed XML.

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "daemon/ctl/simulate.h"
#include "policy/loader.h"
#include "policy/workloads.h"

namespace daxpolicy::ctl {
namespace {

policy::SimResult Simulated() {
  std::string error;
  auto trace = policy::GenerateWorkload("kv:duration=2m,tables=2+logs:duration=2m", &error);
  EXPECT_TRUE(trace) << error;
  policy::LoadResult loaded =
      policy::LoadPolicy({"p.yaml",
                          "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\n"
                          "rules:\n  - name: cost\n    match: { path: \"/srv/pmem/**\" }\n"
                          "    dax: auto\n"});
  EXPECT_TRUE(loaded.policy);
  policy::SimResult r;
  policy::SimOptions options;
  options.hits = true;
  EXPECT_TRUE(policy::Simulate(*trace, *loaded.policy, options, &r, &error)) << error;
  return r;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Brackets and braces outside strings balance and close in order.
bool BalancedJson(const std::string& s) {
  std::string open;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') ++i;
      if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    if (c == '{' || c == '[') open.push_back(c);
    if (c == '}' || c == ']') {
      if (open.empty() || open.back() != (c == '}' ? '{' : '[')) return false;
      open.pop_back();
    }
  }
  return open.empty() && !in_string;
}

// Every element opened is closed, in order; attributes are quoted.
bool WellFormedXml(const std::string& s, std::string* why) {
  std::vector<std::string> open;
  for (size_t i = s.find('<'); i != std::string::npos; i = s.find('<', i)) {
    const size_t end = s.find('>', i);
    if (end == std::string::npos) return *why = "unterminated tag", false;
    std::string tag = s.substr(i + 1, end - i - 1);
    i = end + 1;
    if (tag.empty()) return *why = "empty tag", false;
    if (tag[0] == '?' || tag[0] == '!') continue;
    size_t quotes = 0;
    for (char c : tag) quotes += c == '"';
    if (quotes % 2) return *why = "unbalanced quotes in <" + tag + ">", false;
    if (tag[0] == '/') {
      if (open.empty() || open.back() != tag.substr(1)) return *why = "stray </" + tag + ">", false;
      open.pop_back();
      continue;
    }
    if (tag.back() == '/') continue;
    open.push_back(tag.substr(0, tag.find_first_of(" \n")));
  }
  if (!open.empty()) return *why = "<" + open.back() + "> not closed", false;
  return true;
}

TEST(TheSimulationTable, HasARowPerGroupAndRunAndTheTotal) {
  policy::SimResult r = Simulated();
  ASSERT_EQ(r.groups.size(), 2u);
  std::vector<std::string> lines = Lines(SimulationTable(r, 0));
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines[0].rfind("simulated 2m0s (12 intervals of 10s), 6 files, ", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find("; page-cache budget unlimited"), std::string::npos) << lines[0];
  size_t header = 0;
  while (header < lines.size() && lines[header].rfind("GROUP", 0) != 0) ++header;
  ASSERT_LT(header, lines.size());
  // 4 runs for each of the 2 groups and the total.
  ASSERT_EQ(lines.size(), header + 1 + 12);
  const std::string first[] = {r.groups[0].name, r.groups[1].name, "TOTAL"};
  for (size_t g = 0; g < 3; ++g) {
    const std::vector<std::string> runs = {"policy", "dax=always", "dax=never", "oracle"};
    for (size_t c = 0; c < runs.size(); ++c) {
      const std::string& row = lines[header + 1 + 4 * g + c];
      EXPECT_EQ(row.rfind(c == 0 ? first[g] : " ", 0), 0u) << row;
      EXPECT_NE(row.find(runs[c]), std::string::npos) << row;
    }
  }
  EXPECT_NE(SimulationTable(r, 1 << 30).find("page-cache budget 1.0 GiB"), std::string::npos);
}

TEST(TheSimulationJson, HasEveryKeyAndASeriesPerInterval) {
  policy::SimResult r = Simulated();
  const std::string json = SimulationJson(r, 1 << 30);
  EXPECT_TRUE(BalancedJson(json)) << json;
  for (const char* key :
       {"\"duration_s\":120", "\"interval_s\":10", "\"dram_budget_bytes\":1073741824",
        "\"media\":[", "\"runs\":[\"policy\",\"dax=always\",\"dax=never\",\"oracle\"]",
        "\"groups\":[", "\"total\":{\"name\":\"total\"", "\"hits\":[", "\"intervals\":[",
        "\"oracle_over_policy\":", "\"dram_avg_bytes\":", "\"dram_peak_bytes\":", "\"switches\":",
        "\"time_s\":", "\"dram_bytes\":"}) {
    EXPECT_NE(json.find(key), std::string::npos) << key << "\n" << json;
  }
  size_t series = 0;
  for (size_t i = json.find("\"dram_bytes\":"); i != std::string::npos;
       i = json.find("\"dram_bytes\":", i + 1)) {
    ++series;
  }
  EXPECT_EQ(series, r.time_per_interval.size());
}

// --modes: a row per file with the recorded changes and the policy's
// switches, in seconds from the trace's start, and how many files agree.
TEST(TheSimulationModes, ListEachFilesRecordedChangesNextToThePolicysSwitches) {
  policy::SimResult r;
  r.interval_ns = 1e9;
  r.start_ns = 100e9;
  using policy::DaxState;
  r.modes.push_back({"/m/dax/reread",
                     DaxState::kDax,
                     {{104000000000, DaxState::kPageCache}},
                     {{104000000000, DaxState::kPageCache}}});
  r.modes.push_back({"/m/pc/hot", DaxState::kPageCache, {}, {{102480000000, DaxState::kDax}}});
  std::vector<std::string> lines = Lines(SimulationTable(r, 0));
  size_t header = 0;
  while (header < lines.size() && lines[header].rfind("FILE", 0) != 0) ++header;
  ASSERT_EQ(lines.size(), header + 4) << SimulationTable(r, 0);
  EXPECT_EQ(lines[header], "FILE           FIRST       RECORDED          POLICY");
  EXPECT_EQ(lines[header + 1], "/m/dax/reread  dax         page-cache at 4s  page-cache at 4s");
  EXPECT_EQ(lines[header + 2], "/m/pc/hot      page-cache  -                 dax at 2.5s");
  EXPECT_EQ(lines[header + 3], "1 of 2 files end in the mode the trace recorded");
  const std::string json = SimulationJson(r, 0);
  EXPECT_TRUE(BalancedJson(json)) << json;
  EXPECT_NE(json.find("\"modes\":[{\"path\":\"/m/dax/reread\",\"first\":\"dax\",\"recorded\":[{"
                      "\"t_s\":4,\"to\":\"page-cache\"}],\"policy\":[{\"t_s\":4,\"to\":"
                      "\"page-cache\"}]},{\"path\":\"/m/pc/hot\",\"first\":\"page-cache\","
                      "\"recorded\":[],\"policy\":[{\"t_s\":2.48,\"to\":\"dax\"}]}]"),
            std::string::npos)
      << json;
  // Without --modes: no table, an empty array.
  r.modes.clear();
  EXPECT_EQ(SimulationTable(r, 0).find("FILE"), std::string::npos);
  EXPECT_NE(SimulationJson(r, 0).find("\"modes\":[]"), std::string::npos);
}

TEST(TheSimulationSvg, IsWellFormedWithALinePerRunInEachPanel) {
  policy::SimResult r = Simulated();
  const std::string svg = SimulationSvg(r);
  std::string why;
  EXPECT_TRUE(WellFormedXml(svg, &why)) << why << "\n" << svg;
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  size_t lines = 0;
  for (size_t i = svg.find("<polyline"); i != std::string::npos; i = svg.find("<polyline", i + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 2u * policy::kSimColumns);
}

}  // namespace
}  // namespace daxpolicy::ctl
