// SPDX-License-Identifier: Apache-2.0
#include "tests/bench/bench_support.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>

#include "policy/loader.h"

namespace daxpolicy::bench {

int Shell(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

std::string MakeWorkDir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = std::string(tmp && *tmp ? tmp : "/var/tmp") + "/" + prefix + "-XXXXXX";
  return mkdtemp(dir.data()) != nullptr ? dir : "";
}

bool MountXfsFor(uint64_t files, const std::string& image, const std::string& mount_point) {
  // mkfs.xfs refuses images under 300 MiB; per file an inode (512 B) and a
  // data block (4 KiB), plus a quarter for metadata.
  const uint64_t mib = 320 + files * (4096 + 512) * 5 / 4 / (1 << 20);
  return Shell("truncate -s " + std::to_string(mib) + "M '" + image + "'") == 0 &&
         Shell("mkfs.xfs -q -m reflink=0 '" + image + "'") == 0 &&
         Shell("mount -o loop,dax=inode '" + image + "' '" + mount_point + "'") == 0;
}

std::optional<policy::Policy> SizeSplitPolicy(const std::string& root, const std::string& min_size,
                                              const std::string& settings) {
  const std::string text = "apiVersion: daxpolicy/v1\n" + settings + "scopes: [ " + root +
                           " ]\n"
                           "rules:\n"
                           "  - name: big-on-dax\n"
                           "    match: { path: \"" +
                           root + "/**\", size: \">= " + min_size +
                           "\" }\n"
                           "    dax: on\n"
                           "  - name: rest-on-page-cache\n"
                           "    match: { path: \"" +
                           root + "/**\" }\n    dax: off\n";
  policy::LoadResult loaded = policy::LoadPolicy({"bench.yaml", text});
  if (!loaded.policy) {
    std::fprintf(stderr, "policy: %s\n", loaded.errors.front().ToString().c_str());
    return std::nullopt;
  }
  return std::move(*loaded.policy);
}

double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  const std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 > stat.size()) return 0;
  // After "(comm) ": field 3 (state) onwards; utime and stime are fields 14 and 15.
  std::istringstream rest(stat.substr(paren + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace daxpolicy::bench
