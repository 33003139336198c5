// SPDX-License-Identifier: Apache-2.0
// The real binaries validate policy files: every shipped file passes, a broken
// one fails with every error and its position.

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/support/test_support.h"

namespace daxpolicy::testing {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> ShippedPolicies() {
  std::vector<std::string> out;
  // The default policy and the examples; config/ also holds Prometheus and Grafana files.
  const fs::path config = fs::path(DAXPOLICY_SOURCE_DIR) / "config";
  out.push_back((config / "policy.yaml").string());
  for (const auto& e : fs::recursive_directory_iterator(config / "examples")) {
    if (e.path().extension() == ".yaml") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(DaxpolicyctlCheck, AcceptsEveryPolicyShippedInConfig) {
  std::vector<std::string> argv{BinaryPath("daxpolicyctl"), "check"};
  auto files = ShippedPolicies();
  ASSERT_GE(files.size(), 5u);
  argv.insert(argv.end(), files.begin(), files.end());
  CommandResult r = ::daxpolicy::testing::Run(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const auto& f : files) EXPECT_NE(r.out.find(f + ": OK"), std::string::npos) << f;
}

TEST(DaxpolicyctlCheck, RejectsAMalformedFileWithEveryErrorAndItsPosition) {
  TempDir dir;
  fs::path bad = dir.path() / "bad.yaml";
  WriteFile(bad,
            "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: x\n"
            "    when: \"file.size > 5m\"\n    dax: sideways\n  - name: x\n    dax: on\n");
  CommandResult r = ::daxpolicy::testing::Run({BinaryPath("daxpolicyctl"), "check", bad.string()});
  EXPECT_EQ(r.exit_code, 1);
  const std::string f = bad.string();
  EXPECT_EQ(r.err,
            f + ":5:24: 'file.size' is a size, but '5m' is not (in the 'when' of rule 'x')\n" + f +
                ":6:10: key 'dax' must be on, off or keep (got 'sideways') in rule 'x'\n" + f +
                ":7:11: duplicate rule name 'x' (first defined at " + f + ":4:11)\n" +
                "3 errors\n");
}

TEST(DaxpolicyctlCheck, ReportsAMissingFile) {
  CommandResult r =
      ::daxpolicy::testing::Run({BinaryPath("daxpolicyctl"), "check", "/nonexistent/policy.yaml"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "/nonexistent/policy.yaml: cannot read: No such file or directory\n1 error\n");
}

TEST(DaxpolicydCheckConfig, ValidatesTheMainFileWithItsDropIns) {
  TempDir dir;
  fs::create_directory(dir.path() / "policy.d");
  WriteFile(dir.path() / "policy.yaml",
            "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\nrules:\n  - name: a\n    dax: on\n");
  WriteFile(dir.path() / "policy.d" / "10.yaml",
            "apiVersion: daxpolicy/v1\nrules:\n  - name: b\n    dax: off\n");
  WriteFile(dir.path() / "policy.d" / "ignored.txt", "not yaml: [");
  CommandResult r = ::daxpolicy::testing::Run({BinaryPath("daxpolicyd"), "--check-config",
                                               "--config", (dir.path() / "policy.yaml").string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "policy OK: 2 file(s), 1 scope(s), 2 rule(s)\n");

  WriteFile(dir.path() / "policy.d" / "20.yaml",
            "apiVersion: daxpolicy/v1\nrules:\n  - name: a\n    dax: off\n");
  r = ::daxpolicy::testing::Run({BinaryPath("daxpolicyd"), "--check-config", "--config",
                                 (dir.path() / "policy.yaml").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("policy.d/20.yaml:3:11: duplicate rule name 'a' (first defined at "),
            std::string::npos)
      << r.err;
}

TEST(Daxpolicyd, RefusesToStartWithAnInvalidPolicy) {
  TempDir dir;
  WriteFile(dir.path() / "policy.yaml", "apiVersion: daxpolicy/v1\n");
  CommandResult r = ::daxpolicy::testing::Run(
      {BinaryPath("daxpolicyd"), "--once", "--config", (dir.path() / "policy.yaml").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing required key 'scopes'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace daxpolicy::testing
