// SPDX-License-Identifier: Apache-2.0
// The real binaries validate policy files: every shipped file passes, a broken
// one fails with every error and its position.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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
                ":6:10: key 'dax' must be on, off, keep or auto (got 'sideways') in rule 'x'\n" +
                f + ":7:11: duplicate rule name 'x' (first defined at " + f + ":4:11)\n" +
                "3 errors\n");
}

TEST(DaxpolicyctlCheck, ReportsAMissingFile) {
  CommandResult r =
      ::daxpolicy::testing::Run({BinaryPath("daxpolicyctl"), "check", "/nonexistent/policy.yaml"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "/nonexistent/policy.yaml: cannot read: No such file or directory\n1 error\n");
}

// A fifo once hung both checks; /dev/zero made them read until bad_alloc. A
// writer waits on the fifo: a check that opened it would read an empty file
// instead of refusing it.
TEST(BothChecks, RefuseAFifoOrADeviceWithoutOpeningIt) {
  TempDir dir;
  const std::string fifo = (dir.path() / "policy.yaml").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  pid_t writer = fork();
  if (writer == 0) _exit(open(fifo.c_str(), O_WRONLY) >= 0 ? 0 : 1);
  CommandResult ctl = ::daxpolicy::testing::Run({BinaryPath("daxpolicyctl"), "check", fifo});
  CommandResult d =
      ::daxpolicy::testing::Run({BinaryPath("daxpolicyd"), "--check-config", "--config", fifo});
  CommandResult zero = ::daxpolicy::testing::Run(
      {BinaryPath("daxpolicyd"), "--check-config", "--config", "/dev/zero"});
  int release = open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  waitpid(writer, nullptr, 0);
  if (release >= 0) close(release);
  EXPECT_EQ(ctl.exit_code, 1);
  EXPECT_EQ(ctl.err, fifo + ": cannot read: is a fifo, not a regular file\n1 error\n");
  EXPECT_EQ(d.exit_code, 1);
  EXPECT_EQ(d.err, fifo +
                       ": cannot read policy: is a fifo, not a regular file\n1 error in the "
                       "policy\n");
  EXPECT_EQ(zero.exit_code, 1);
  EXPECT_EQ(zero.err,
            "/dev/zero: cannot read policy: is a character device, not a regular file\n1 error "
            "in the policy\n");
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

// A fifo or a device given as the trace is refused before anything is read
// (/dev/zero would never end); a regular file that is not a trace is refused
// when parsed.
TEST(DaxpolicyctlSimulate, RefusesATraceThatIsNotARegularFile) {
  TempDir dir;
  const std::string policy = (dir.path() / "policy.yaml").string();
  WriteFile(policy, "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndefaults: { dax: auto }\n");
  const std::string ctl = BinaryPath("daxpolicyctl");
  const std::string fifo = (dir.path() / "trace").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  pid_t writer = fork();
  if (writer == 0) _exit(open(fifo.c_str(), O_WRONLY) >= 0 ? 0 : 1);
  CommandResult r = ::daxpolicy::testing::Run({ctl, "simulate", "--policy", policy, fifo});
  CommandResult zero =
      ::daxpolicy::testing::Run({ctl, "simulate", "--policy", policy, "/dev/zero"});
  int release = open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  waitpid(writer, nullptr, 0);
  if (release >= 0) close(release);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "simulate: " + fifo + ": is a fifo, not a regular file\n");
  EXPECT_EQ(zero.exit_code, 1);
  EXPECT_EQ(zero.err, "simulate: /dev/zero: is a character device, not a regular file\n");
  r = ::daxpolicy::testing::Run({ctl, "simulate", "--policy", policy, policy});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not a daxpolicy trace"), std::string::npos) << r.err;
}

// simulate prints JSON for the global --json on either side of the subcommand.
TEST(DaxpolicyctlSimulate, HonoursTheGlobalJson) {
  TempDir dir;
  const std::string policy = (dir.path() / "policy.yaml").string();
  WriteFile(policy, "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndefaults: { dax: auto }\n");
  const std::string ctl = BinaryPath("daxpolicyctl");
  const std::string gen = "kv:duration=1m,tables=2";
  CommandResult r =
      ::daxpolicy::testing::Run({ctl, "--json", "simulate", "--policy", policy, "--generate", gen});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("{\"duration_s\":60,", 0), 0u) << r.out;
  r = ::daxpolicy::testing::Run({ctl, "simulate", "--policy", policy, "--generate", gen, "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("{\"duration_s\":60,", 0), 0u) << r.out;
  r = ::daxpolicy::testing::Run({ctl, "simulate", "--policy", policy, "--generate", gen});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("simulated 1m0s ", 0), 0u) << r.out;
}

// Usage errors exit 2, as for every daxpolicyctl command; nothing is simulated.
TEST(DaxpolicyctlSimulate, ExitsTwoOnAUsageError) {
  TempDir dir;
  const std::string policy = (dir.path() / "policy.yaml").string();
  WriteFile(policy, "apiVersion: daxpolicy/v1\nscopes: [/srv/pmem]\ndefaults: { dax: auto }\n");
  const std::string ctl = BinaryPath("daxpolicyctl");
  const std::string gen = "kv:duration=1m,tables=2";
  struct Usage {
    std::vector<std::string> args;
    std::string err;
  } usage[] = {
      {{"--generate", gen, policy}, "simulate: give a TRACE file or --generate, not both\n"},
      {{}, "simulate: give a TRACE file or --generate SPEC\n"},
      {{"--generate", gen, "--media", "nvdimm"},
       "simulate: --media: unknown media 'nvdimm' (expected one of: optane-dcpmm, cxl, dram)\n"},
      {{"--generate", gen, "--budget", "lots"}, "simulate: --budget: "},
      {{"--generate", "kv+kv"}, "simulate: --generate kv+kv: workload 'kv' appears twice"},
  };
  for (const Usage& u : usage) {
    std::vector<std::string> argv{ctl, "simulate", "--policy", policy};
    argv.insert(argv.end(), u.args.begin(), u.args.end());
    CommandResult r = ::daxpolicy::testing::Run(argv);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.err.rfind(u.err, 0), 0u) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
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
