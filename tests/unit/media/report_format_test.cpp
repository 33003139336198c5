// SPDX-License-Identifier: Apache-2.0
#include "plugins/media/report_format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <ndctl/libndctl.h>

#include <cctype>
#include <cstring>

#include "tests/unit/media/fake_media.h"

namespace daxpolicy::media {
namespace {

using ::testing::HasSubstr;

// A strict recursive-descent JSON checker, enough to prove the output parses.
class JsonChecker {
 public:
  explicit JsonChecker(const std::string& s) : s_(s) {}
  bool Valid() {
    Ws();
    if (!Value()) return false;
    Ws();
    return i_ == s_.size();
  }

 private:
  void Ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool Lit(const char* w) {
    size_t n = std::strlen(w);
    if (s_.compare(i_, n, w) != 0) return false;
    i_ += n;
    return true;
  }
  bool String() {
    if (i_ >= s_.size() || s_[i_] != '"') return false;
    for (++i_; i_ < s_.size(); ++i_) {
      unsigned char c = static_cast<unsigned char>(s_[i_]);
      if (c < 0x20) return false;
      if (c == '\\') {
        ++i_;
        if (i_ >= s_.size()) return false;
        if (s_[i_] == 'u') i_ += 4;
        continue;
      }
      if (c == '"') {
        ++i_;
        return true;
      }
    }
    return false;
  }
  bool Number() {
    size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.' ||
                              s_[i_] == 'e' || s_[i_] == 'E' || s_[i_] == '+' || s_[i_] == '-')) {
      ++i_;
    }
    return i_ > start;
  }
  bool Value() {
    Ws();
    if (i_ >= s_.size()) return false;
    char c = s_[i_];
    if (c == '{') return Container('}', true);
    if (c == '[') return Container(']', false);
    if (c == '"') return String();
    if (c == 't') return Lit("true");
    if (c == 'f') return Lit("false");
    if (c == 'n') return Lit("null");
    return Number();
  }
  bool Container(char close, bool object) {
    ++i_;
    Ws();
    if (i_ < s_.size() && s_[i_] == close) {
      ++i_;
      return true;
    }
    while (true) {
      Ws();
      if (object) {
        if (!String()) return false;
        Ws();
        if (i_ >= s_.size() || s_[i_++] != ':') return false;
      }
      if (!Value()) return false;
      Ws();
      if (i_ >= s_.size()) return false;
      if (s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (s_[i_] == close) {
        ++i_;
        return true;
      }
      return false;
    }
  }
  const std::string& s_;
  size_t i_ = 0;
};

MediaReport PopulatedReport() {
  Topology t = testing::OneFsdaxNamespace();
  t.dimms[0].smart->health_bits = ND_SMART_CRITICAL_HEALTH;
  t.dimms[0].smart->unsafe_shutdowns = 7;
  DimmInfo dark;
  dark.devname = "nmem1";
  dark.smart_unavailable_reason = "DIMM family has \"no\" SMART";
  t.dimms.push_back(dark);
  t.dax_devices.push_back({"dax1.0", "daxregion1", uint64_t{1} << 30, 3, "system-ram", true, true});
  MediaPluginOptions o;
  o.sysfs_root = testing::FsdaxHmatSysfs();
  MediaPlugin plugin(std::make_unique<FakeTopologySource>(t), o);
  MediaReport r =
      plugin.Refresh({{"/srv/pmem", 259, 0, "xfs", "rw"}, {"/mnt/loop", 7, 0, "", ""}}, false);
  r.devices[0].have_latency = true;
  r.devices[0].read_latency_ns = 312.5;
  r.devices[0].write_latency_ns = 640;
  r.devices[0].dram_latency_ns = 100;
  r.devices[0].latency_ratio = 3.125;
  r.devices[0].latency_mount = "/srv/pmem";
  ProbeResult p;
  p.mount_point = "/srv/pmem";
  p.outcome = ProbeResult::Outcome::kMeasured;
  p.granularity = "cache-line";
  p.statx_dax_known = true;
  p.statx_dax = true;
  p.latency = {312.5, 640, 100, 3.125, 21.5, 9.25};
  r.mounts[0].probe = p;
  r.mounts[0].probe_fresh = true;
  return r;
}

TEST(AJsonReport, IsValidJsonWithTheDocumentedKeys) {
  std::string json = ReportToJson(PopulatedReport());
  EXPECT_TRUE(JsonChecker(json).Valid()) << json;
  for (const char* key : {"\"degraded\":\"\"", "\"topology\":", "\"firmware\":", "\"devices\":",
                          "\"mounts\":", "\"refresh_ms\":", "\"probe_ms\":"}) {
    EXPECT_THAT(json, HasSubstr(key));
  }
  EXPECT_THAT(json, HasSubstr("\"name\":\"pmem0\",\"kind\":\"fsdax\""));
  EXPECT_THAT(json, HasSubstr("\"health\":\"critical\""));
  EXPECT_THAT(json, HasSubstr("\"unsafe_shutdowns\":7"));
  EXPECT_THAT(json, HasSubstr("\"read_latency_ns\":312.5"));
  EXPECT_THAT(json, HasSubstr("\"latency_ratio\":3.125"));
  EXPECT_THAT(json, HasSubstr("DIMM family has \\\"no\\\" SMART"));
  EXPECT_THAT(json, HasSubstr("\"device\":\"pmem0\""));
  EXPECT_THAT(json, HasSubstr("\"outcome\":\"measured\""));
}

TEST(AJsonReport, WritesNullForUnavailableNumbers) {
  MediaReport r = PopulatedReport();
  std::string json = ReportToJson(r);
  // dax1.0 (system-ram: its NUMA node is its target node) has no latency; the loop
  // mount has no device.
  EXPECT_THAT(json, HasSubstr("\"name\":\"dax1.0\",\"kind\":\"system-ram\",\"namespace\":\"\","
                              "\"region\":\"daxregion1\",\"size\":1073741824,\"numa_node\":3"));
  EXPECT_THAT(json, HasSubstr("\"have_latency\":false,\"read_latency_ns\":null"));
  EXPECT_THAT(json, HasSubstr("\"device\":null"));
}

TEST(AJsonReport, IsValidForTheEmptyDegradedCase) {
  MediaPluginOptions o;
  o.sysfs_root = "/nonexistent";
  MediaPlugin plugin(std::make_unique<FakeTopologySource>(), o);
  std::string json = ReportToJson(plugin.Refresh({{"/", 254, 0, "", ""}}, true));
  EXPECT_TRUE(JsonChecker(json).Valid()) << json;
  EXPECT_THAT(json, HasSubstr("\"degraded\":\"no NVDIMM bus found (libndctl: 0 buses)\""));
}

TEST(ATextReport, ShowsMappingHealthLatencyAndFirmware) {
  std::string text = ReportToText(PopulatedReport());
  EXPECT_THAT(text, HasSubstr("degraded: no\n"));
  EXPECT_THAT(text, HasSubstr("  dimm nmem0: health critical (nmem0: health critical), 30.0 C, "
                              "spares 100%, life used 5%, unsafe shutdowns 7\n"));
  EXPECT_THAT(text, HasSubstr("  /srv/pmem (259:0 pmem0) -> pmem0 -> namespace0.0 -> region0\n"));
  EXPECT_THAT(text, HasSubstr("    latency: read 312.5 ns, write 640.0 ns, DRAM 100.0 ns, ratio "
                              "3.12 (from /srv/pmem)\n"));
  EXPECT_THAT(text, HasSubstr("  /mnt/loop (7:0 loop0): block device loop0 is not an NVDIMM "
                              "namespace (1 active namespaces)\n"));
  EXPECT_THAT(text, HasSubstr("firmware access0: read 305 ns 8000 MB/s, write 390 ns 2000 MB/s"));
}

}  // namespace
}  // namespace daxpolicy::media
