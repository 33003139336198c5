// SPDX-License-Identifier: Apache-2.0
// The files shipped around the daemon: the systemd unit, the D-Bus bus policy
// and activation file, the Grafana dashboard, the alert rules and the man
// pages, each checked with the tool that consumes it.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon/metrics.h"
#include "tests/support/test_support.h"

extern char** environ;

namespace daxpolicy::daemon {
namespace {

namespace fs = std::filesystem;
using daxpolicy::testing::CommandResult;
using daxpolicy::testing::ReadFile;
using daxpolicy::testing::TempDir;
using daxpolicy::testing::WriteFile;
using ::testing::HasSubstr;
using ::testing::Not;

const fs::path kSource = DAXPOLICY_SOURCE_DIR;
const char* const kBusName = "org.daxpolicy.DaxPolicy1";

CommandResult Sh(const std::string& script) {
  return daxpolicy::testing::Run({"sh", "-c", script});
}

bool HaveProgram(const std::string& name) { return Sh("command -v " + name).exit_code == 0; }

std::string Quote(const fs::path& p) { return "'" + p.string() + "'"; }

// Every `daxpolicy_...` name in a PromQL expression.
std::vector<std::string> MetricNames(const std::string& expr) {
  std::vector<std::string> names;
  static const std::regex kName("daxpolicy_[a-zA-Z0-9_]*");
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), kName);
       it != std::sregex_iterator(); ++it) {
    names.push_back(it->str());
  }
  return names;
}

// The names a PromQL expression may use: every family, plus the series a
// histogram family expands to.
std::set<std::string> RegisteredNames() {
  std::set<std::string> names;
  for (const std::string& family : Metrics::FamilyNames()) {
    names.insert(family);
    if (family == "daxpolicy_cycle_duration_seconds") {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) names.insert(family + suffix);
    }
  }
  return names;
}

void ExpectOnlyContractNames(const std::vector<std::string>& exprs, const std::string& where) {
  const std::set<std::string> known = RegisteredNames();
  for (const std::string& expr : exprs) {
    const std::vector<std::string> names = MetricNames(expr);
    // The one exception: the scrape's own health, for "the daemon is down".
    if (names.empty() && expr.find("up{job=\"daxpolicy\"}") != std::string::npos) continue;
    EXPECT_FALSE(names.empty()) << where << ": no daxpolicy metric in: " << expr;
    for (const std::string& name : names) {
      EXPECT_TRUE(known.count(name)) << where << ": unknown metric " << name << " in: " << expr;
    }
  }
}

// --- systemd unit ---------------------------------------------------------------

TEST(TheSystemdUnit, PassesSystemdAnalyzeVerify) {
  DAXPOLICY_REQUIRE(HaveProgram("systemd-analyze"), "systemd-analyze");
  TempDir dir;
  // verify checks that ExecStart exists: point it at a program that does, and
  // let `man` find our pages for Documentation=.
  std::string unit = ReadFile(kSource / "systemd/daxpolicyd.service");
  const std::string exec = "ExecStart=/usr/sbin/daxpolicyd\n";
  ASSERT_NE(unit.find(exec), std::string::npos);
  unit.replace(unit.find(exec), exec.size(), "ExecStart=/bin/true\n");
  WriteFile(dir.path() / "daxpolicyd.service", unit);
  for (const char* section : {"1", "5", "8"}) {
    fs::create_directories(dir.path() / "man" / (std::string("man") + section));
  }
  fs::copy_file(kSource / "docs/man/daxpolicyd.8", dir.path() / "man/man8/daxpolicyd.8");
  fs::copy_file(kSource / "docs/man/daxpolicyctl.1", dir.path() / "man/man1/daxpolicyctl.1");
  fs::copy_file(kSource / "docs/man/daxpolicy.yaml.5", dir.path() / "man/man5/daxpolicy.yaml.5");
  CommandResult r = Sh("cd " + Quote(dir.path()) + " && MANPATH=" + Quote(dir.path() / "man") +
                       " systemd-analyze verify ./daxpolicyd.service");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out + r.err, "");
}

TEST(TheSystemdUnit, FollowsTheHardeningTheProjectRequires) {
  const std::string unit = ReadFile(kSource / "systemd/daxpolicyd.service");
  for (const char* line :
       {"Type=notify\n",
        "ExecReload=/bin/kill -HUP $MAINPID\n",
        "BusName=org.daxpolicy.DaxPolicy1\n",
        "WatchdogSec=30s\n",
        "Restart=on-failure\n",
        "ProtectSystem=strict\n",
        "ReadWritePaths=/var/lib/daxpolicy\n",
        "StateDirectory=daxpolicy\n",
        "CapabilityBoundingSet=CAP_SYS_ADMIN CAP_FOWNER CAP_DAC_READ_SEARCH CAP_SYS_PTRACE "
        "CAP_BPF CAP_PERFMON\n",
        "RestartPreventExitStatus=1 2\n",
        "IPAddressDeny=any\n",
        "ProtectHome=yes\n",
        "ProtectProc=invisible\n",
        "PrivateMounts=yes\n",
        "Alias=dbus-org.daxpolicy.DaxPolicy1.service\n",
        "NoNewPrivileges=yes\n",
        "PrivateNetwork=no\n",
        "MemoryDenyWriteExecute=yes\n",
        "LockPersonality=yes\n",
        "RestrictRealtime=yes\n",
        "ProtectKernelTunables=yes\n",
        "ProtectControlGroups=yes\n",
        "ExecStart=/usr/sbin/daxpolicyd\n"}) {
    EXPECT_THAT(unit, HasSubstr(line));
  }
  // open_by_handle_at: close-watch removal and hold pruning reopen files by handle. No
  // perf_event_open: the access programs attach by bpf() alone (the access integration
  // test attaches them under a filter that refuses it).
  EXPECT_THAT(unit, HasSubstr("SystemCallFilter=@system-service fanotify_init fanotify_mark "
                              "open_by_handle_at mincore bpf\n"));
  EXPECT_FALSE(std::regex_search(unit, std::regex("\nSystemCallFilter=[^\n]*perf_event_open")));
}

// Issue 12's bound on the unit's exposure: systemd-analyze security scores it from 0
// (safest) to 10, and --threshold (in tenths) makes it exit non-zero above the bound.
TEST(TheSystemdUnit, HasAnExposureOfAtMostTwoAndAHalf) {
  DAXPOLICY_REQUIRE(HaveProgram("systemd-analyze"), "systemd-analyze");
  TempDir dir;
  std::string unit = ReadFile(kSource / "systemd/daxpolicyd.service");
  unit =
      std::regex_replace(unit, std::regex("ExecStart=/usr/sbin/daxpolicyd"), "ExecStart=/bin/true");
  WriteFile(dir.path() / "daxpolicyd.service", unit);
  CommandResult r = Sh("cd " + Quote(dir.path()) +
                       " && systemd-analyze security --offline=yes --threshold=25 --no-pager "
                       "./daxpolicyd.service");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("Overall exposure level for daxpolicyd.service: "));
}

TEST(TheInstalledSystemdUnit, StartsTheDaemonWhereTheBuildInstallsIt) {
  TempDir dir;
  const fs::path build = dir.path() / "build";
  CommandResult r = Sh("cmake -S " + Quote(kSource) + " -B " + Quote(build) +
                       " -DCMAKE_INSTALL_PREFIX=/opt/daxpolicy -DDAXPOLICY_TESTS=OFF"
                       " -DDAXPOLICY_BENCH=OFF -DDAXPOLICY_FUZZ=OFF");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string installed = ReadFile(build / "systemd/daxpolicyd.service");
  EXPECT_THAT(installed, HasSubstr("\nExecStart=/opt/daxpolicy/sbin/daxpolicyd\n"));
  // Everything else is the unit as shipped...
  std::string source = ReadFile(kSource / "systemd/daxpolicyd.service");
  source.replace(source.find("/usr/sbin/daxpolicyd"), 20, "/opt/daxpolicy/sbin/daxpolicyd");
  EXPECT_EQ(installed, source);
  // ...and it is the file `cmake --install` copies.
  EXPECT_THAT(ReadFile(build / "systemd/cmake_install.cmake"),
              HasSubstr((build / "systemd/daxpolicyd.service").string()));
}

TEST(TheSystemdUnitWithTheScopesDropIn, PassesSystemdAnalyzeVerify) {
  DAXPOLICY_REQUIRE(HaveProgram("systemd-analyze"), "systemd-analyze");
  TempDir dir;
  std::string unit = ReadFile(kSource / "systemd/daxpolicyd.service");
  unit =
      std::regex_replace(unit, std::regex("ExecStart=/usr/sbin/daxpolicyd"), "ExecStart=/bin/true");
  WriteFile(dir.path() / "daxpolicyd.service", unit);
  fs::create_directories(dir.path() / "daxpolicyd.service.d");
  fs::copy_file(kSource / "systemd/scopes.conf.example",
                dir.path() / "daxpolicyd.service.d/scopes.conf");
  CommandResult r = Sh("cd " + Quote(dir.path()) + " && SYSTEMD_UNIT_PATH=" + Quote(dir.path()) +
                       ": systemd-analyze verify --man=no ./daxpolicyd.service");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out + r.err, "");
}

// --- D-Bus ------------------------------------------------------------------------

// A private dbus-daemon of type system whose policy is the distribution's
// default-deny plus our file; killed and reaped on destruction.
class PrivateSystemBus {
 public:
  explicit PrivateSystemBus(const fs::path& dir) {
    fs::create_directories(dir / "services");
    fs::copy_file(kSource / "systemd/org.daxpolicy.DaxPolicy1.service",
                  dir / "services/org.daxpolicy.DaxPolicy1.service");
    socket_ = dir / "bus";
    WriteFile(dir / "bus.conf",
              "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
              " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
              "<busconfig>\n"
              "  <type>system</type>\n"
              "  <listen>unix:path=" +
                  socket_.string() +
                  "</listen>\n"
                  "  <auth>EXTERNAL</auth>\n"
                  "  <servicedir>" +
                  (dir / "services").string() +
                  "</servicedir>\n"
                  "  <policy context=\"default\">\n"
                  "    <allow user=\"*\"/>\n"
                  "    <deny own=\"*\"/>\n"
                  "    <deny send_type=\"method_call\"/>\n"
                  "    <allow send_type=\"signal\"/>\n"
                  "    <allow send_requested_reply=\"true\" send_type=\"method_return\"/>\n"
                  "    <allow send_requested_reply=\"true\" send_type=\"error\"/>\n"
                  "    <allow receive_type=\"method_call\"/>\n"
                  "    <allow receive_type=\"method_return\"/>\n"
                  "    <allow receive_type=\"error\"/>\n"
                  "    <allow receive_type=\"signal\"/>\n"
                  "    <allow send_destination=\"org.freedesktop.DBus\"\n"
                  "           send_interface=\"org.freedesktop.DBus\"/>\n"
                  "  </policy>\n"
                  "  <include>" +
                  (kSource / "systemd/org.daxpolicy.DaxPolicy1.conf").string() +
                  "</include>\n"
                  "</busconfig>\n");
    log_ = dir / "dbus.log";
    std::vector<std::string> argv{"dbus-daemon", "--nofork", "--nopidfile",
                                  "--config-file=" + (dir / "bus.conf").string()};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, log_.c_str(), O_WRONLY | O_CREAT, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    if (posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~PrivateSystemBus() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  PrivateSystemBus(const PrivateSystemBus&) = delete;
  PrivateSystemBus& operator=(const PrivateSystemBus&) = delete;

  // Waits (bounded) for the socket; false when the daemon exited, e.g. because
  // it rejected the configuration.
  bool WaitReady() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      if (pid_ <= 0 || waitpid(pid_, nullptr, WNOHANG) != 0) {
        pid_ = -1;
        return false;
      }
      if (fs::exists(socket_)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  std::string address() const { return "unix:path=" + socket_.string(); }
  std::string log() const { return ReadFile(log_); }

 private:
  fs::path socket_;
  fs::path log_;
  pid_t pid_ = -1;
};

// dbus-send on the private bus, as `user` (root or another account via setpriv).
CommandResult DbusSend(const PrivateSystemBus& bus, const std::string& user,
                       const std::string& args) {
  std::string prefix =
      user == "root" ? "" : "setpriv --reuid=" + user + " --regid=" + user + " --clear-groups ";
  return Sh(prefix + "dbus-send --bus=" + bus.address() + " --print-reply " + args);
}

// Asks the bus for our name; the connection closes right after, which
// releases it again.
CommandResult RequestName(const PrivateSystemBus& bus, const std::string& user) {
  return DbusSend(bus, user,
                  "--dest=org.freedesktop.DBus /org/freedesktop/DBus "
                  "org.freedesktop.DBus.RequestName string:" +
                      std::string(kBusName) + " uint32:0");
}

TEST(TheBusPolicy, LoadsIntoASystemBusAndLetsOnlyRootOwnTheName) {
  DAXPOLICY_REQUIRE(HaveProgram("dbus-daemon"), "dbus-daemon");
  DAXPOLICY_REQUIRE(HaveProgram("dbus-send"), "dbus-send");
  DAXPOLICY_REQUIRE(daxpolicy::testing::IsRoot(), "root (to switch to another uid)");
  DAXPOLICY_REQUIRE(HaveProgram("setpriv"), "setpriv");
  TempDir dir;
  fs::permissions(dir.path(), fs::perms::all);  // the other uid must reach the socket
  PrivateSystemBus bus(dir.path());
  ASSERT_TRUE(bus.WaitReady()) << bus.log();

  CommandResult root = RequestName(bus, "root");
  EXPECT_EQ(root.exit_code, 0) << root.err;
  EXPECT_THAT(root.out, HasSubstr("uint32 1"));  // DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER

  CommandResult other = RequestName(bus, "65534");
  EXPECT_NE(other.exit_code, 0);
  EXPECT_THAT(other.err, HasSubstr("AccessDenied"));
}

TEST(TheBusPolicy, LetsEveryUserCallTheManagerAndReadPropertiesButNothingElse) {
  DAXPOLICY_REQUIRE(HaveProgram("dbus-daemon"), "dbus-daemon");
  DAXPOLICY_REQUIRE(HaveProgram("dbus-send"), "dbus-send");
  DAXPOLICY_REQUIRE(daxpolicy::testing::IsRoot(), "root (to switch to another uid)");
  DAXPOLICY_REQUIRE(HaveProgram("setpriv"), "setpriv");
  TempDir dir;
  fs::permissions(dir.path(), fs::perms::all);
  PrivateSystemBus bus(dir.path());
  ASSERT_TRUE(bus.WaitReady()) << bus.log();

  // Nobody owns the name: an allowed call reaches activation, which runs the
  // activation file's Exec=/bin/false and fails with Spawn.ChildExited, while a
  // denied call is refused with AccessDenied before activation is tried.
  auto call = [&](const std::string& iface_member, const std::string& args = "") {
    return DbusSend(bus, "65534",
                    "--dest=" + std::string(kBusName) + " /org/daxpolicy/DaxPolicy1 " +
                        iface_member + (args.empty() ? "" : " " + args));
  };
  for (const std::string& allowed :
       {std::string("org.daxpolicy.DaxPolicy1.Manager.GetMedia"),
        std::string("org.daxpolicy.DaxPolicy1.Manager.Reload"),
        std::string("org.freedesktop.DBus.Properties.Get string:org.daxpolicy.DaxPolicy1.Manager "
                    "string:Mode"),
        std::string("org.freedesktop.DBus.Properties.GetAll "
                    "string:org.daxpolicy.DaxPolicy1.Manager"),
        std::string("org.freedesktop.DBus.Introspectable.Introspect"),
        std::string("org.freedesktop.DBus.Peer.Ping")}) {
    CommandResult r = call(allowed);
    EXPECT_NE(r.exit_code, 0) << allowed;
    EXPECT_THAT(r.err, HasSubstr("Spawn.ChildExited")) << allowed;
  }
  for (const std::string& denied :
       {std::string("org.freedesktop.DBus.Properties.Set string:org.daxpolicy.DaxPolicy1.Manager "
                    "string:Mode variant:string:observe"),
        std::string("org.daxpolicy.DaxPolicy1.Other.Method")}) {
    CommandResult r = call(denied);
    EXPECT_NE(r.exit_code, 0) << denied;
    EXPECT_THAT(r.err, HasSubstr("AccessDenied")) << denied;
  }
}

TEST(TheActivationFile, MakesTheNameActivatable) {
  DAXPOLICY_REQUIRE(HaveProgram("dbus-daemon"), "dbus-daemon");
  DAXPOLICY_REQUIRE(HaveProgram("dbus-send"), "dbus-send");
  TempDir dir;
  PrivateSystemBus bus(dir.path());
  ASSERT_TRUE(bus.WaitReady()) << bus.log();
  CommandResult r = DbusSend(bus, "root",
                             "--dest=org.freedesktop.DBus /org/freedesktop/DBus "
                             "org.freedesktop.DBus.ListActivatableNames");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"org.daxpolicy.DaxPolicy1\""));
  const std::string file = ReadFile(kSource / "systemd/org.daxpolicy.DaxPolicy1.service");
  EXPECT_THAT(file, HasSubstr("SystemdService=dbus-org.daxpolicy.DaxPolicy1.service\n"));
  EXPECT_THAT(file, HasSubstr("User=root\n"));
}

// --- Grafana and Prometheus ------------------------------------------------------------

// Every "expr" of the dashboard, read with python3's json module.
std::vector<std::string> DashboardExprs() {
  // Every "expr" anywhere in the JSON, one per line (newlines escaped).
  CommandResult r =
      Sh("python3 -c '\n"
         "import json, sys\n"
         "def walk(v):\n"
         "    if isinstance(v, dict):\n"
         "        for k, x in v.items():\n"
         "            if k == \"expr\": print(x.replace(\"\\n\", \" \"))\n"
         "            else: walk(x)\n"
         "    elif isinstance(v, list):\n"
         "        for x in v: walk(x)\n"
         "walk(json.load(open(sys.argv[1])))\n"
         "' " +
         Quote(kSource / "config/grafana/daxpolicy-dashboard.json"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> exprs;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) exprs.push_back(line);
  return exprs;
}

TEST(TheGrafanaDashboard, QueriesOnlyMetricsTheDaemonRegisters) {
  DAXPOLICY_REQUIRE(HaveProgram("python3"), "python3");
  const std::vector<std::string> exprs = DashboardExprs();
  ASSERT_GE(exprs.size(), 12u);
  ExpectOnlyContractNames(exprs, "dashboard");

  // Every family of the contract has a panel.
  std::set<std::string> used;
  for (const std::string& e : exprs) {
    for (const std::string& n : MetricNames(e)) used.insert(n);
  }
  for (const std::string& family : Metrics::FamilyNames()) {
    const bool histogram = family == "daxpolicy_cycle_duration_seconds";
    EXPECT_TRUE(used.count(histogram ? family + "_bucket" : family)) << family;
  }
}

// promtool parses PromQL only inside rule files: each expression becomes a
// recording rule, with Grafana's variables replaced by values.
TEST(TheGrafanaDashboard, HasExpressionsThatParseAsPromql) {
  DAXPOLICY_REQUIRE(HaveProgram("python3"), "python3");
  DAXPOLICY_REQUIRE(HaveProgram("promtool"), "promtool (Debian package prometheus)");
  std::string rules = "groups:\n  - name: dashboard\n    rules:\n";
  int n = 0;
  for (std::string expr : DashboardExprs()) {
    expr = std::regex_replace(expr, std::regex("\\$__rate_interval"), "5m");
    expr = std::regex_replace(expr, std::regex("\\$instance"), ".*");
    expr = std::regex_replace(expr, std::regex("'"), "''");
    rules +=
        "      - record: dashboard:expr" + std::to_string(n++) + "\n        expr: '" + expr + "'\n";
  }
  TempDir dir;
  WriteFile(dir.path() / "rules.yaml", rules);
  CommandResult r = Sh("promtool check rules " + Quote(dir.path() / "rules.yaml"));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err << rules;
}

TEST(TheGrafanaDashboard, HasTheDatasourceInputAndTheInstanceVariable) {
  const std::string json = ReadFile(kSource / "config/grafana/daxpolicy-dashboard.json");
  EXPECT_THAT(json, HasSubstr("\"name\": \"DS_PROMETHEUS\""));
  EXPECT_THAT(json, HasSubstr("\"name\": \"instance\""));
  EXPECT_THAT(json, HasSubstr("\"schemaVersion\": 39"));
}

std::vector<std::string> AlertExprs(const std::string& yaml) {
  std::vector<std::string> exprs;
  static const std::regex kExpr("^\\s*expr:\\s*(.*)$");
  std::istringstream in(yaml);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_match(line, m, kExpr)) exprs.push_back(m[1]);
  }
  return exprs;
}

TEST(TheAlertRules, PassPromtoolCheckRules) {
  DAXPOLICY_REQUIRE(HaveProgram("promtool"), "promtool (Debian package prometheus)");
  CommandResult r =
      Sh("promtool check rules " + Quote(kSource / "config/prometheus/daxpolicy-alerts.yaml"));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("SUCCESS"));
}

TEST(TheAlertRules, QueryOnlyMetricsTheDaemonRegisters) {
  const std::string yaml = ReadFile(kSource / "config/prometheus/daxpolicy-alerts.yaml");
  std::vector<std::string> exprs = AlertExprs(yaml);
  ASSERT_GE(exprs.size(), 5u);
  for (const std::string& e : exprs) {
    // One line each, so this check sees the whole expression.
    EXPECT_NE(e.front(), '|') << e;
    EXPECT_NE(e.front(), '>') << e;
  }
  ExpectOnlyContractNames(exprs, "alerts");
}

// --- man pages ------------------------------------------------------------------------------

class TheManPage : public ::testing::TestWithParam<const char*> {};

TEST_P(TheManPage, RendersWithoutAGroffWarning) {
  DAXPOLICY_REQUIRE(HaveProgram("groff"), "groff");
  const fs::path page = kSource / "docs/man" / GetParam();
  ASSERT_TRUE(fs::exists(page)) << page;
  CommandResult r = Sh("groff -man -ww -z -t " + Quote(page));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
}

TEST_P(TheManPage, PassesManWarnings) {
  DAXPOLICY_REQUIRE(HaveProgram("man"), "man");
  const fs::path page = kSource / "docs/man" / GetParam();
  CommandResult r = Sh("MANWIDTH=80 man --warnings -l " + Quote(page) + " 2>&1 >/dev/null");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "");
}

INSTANTIATE_TEST_SUITE_P(Pages, TheManPage,
                         ::testing::Values("daxpolicyd.8", "daxpolicyctl.1", "daxpolicy.yaml.5",
                                           "daxpolicy-media-probe.1"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

// The daemon's page documents every option of the contract; the CLI's page
// every subcommand.
TEST(TheDaemonManPage, DocumentsEveryOptionOfTheContract) {
  const std::string page = ReadFile(kSource / "docs/man/daxpolicyd.8");
  for (const char* option : {"config", "config\\-dir", "check\\-config", "observe", "once",
                             "session", "state\\-dir", "metrics\\-listen", "log\\-level"}) {
    EXPECT_THAT(page, HasSubstr(std::string("\\-\\-") + option)) << option;
  }
  for (const char* word : {"SIGHUP", "SIGTERM", "WATCHDOG", "DBUS_SYSTEM_BUS_ADDRESS"}) {
    EXPECT_THAT(page, HasSubstr(word));
  }
}

TEST(TheCtlManPage, DocumentsEverySubcommand) {
  const std::string page = ReadFile(kSource / "docs/man/daxpolicyctl.1");
  for (const char* command : {"check", "status", "files", "explain", "media", "hold", "reload",
                              "mode", "record", "restore", "simulate"}) {
    EXPECT_THAT(page, HasSubstr(std::string(".B ") + command)) << command;
  }
}

// The licence (debian/copyright says so): every source, build and script file
// carries the Apache-2.0 SPDX line near its top, except what sdbus-c++-xml2cpp
// generates (named in debian/copyright) and test fixtures; LICENSE holds the text.
TEST(TheSources, CarryTheApacheLicenceTheirPackageDeclares) {
  EXPECT_THAT(ReadFile(kSource / "LICENSE"), ::testing::HasSubstr("Apache License"));
  EXPECT_THAT(ReadFile(kSource / "LICENSE"), ::testing::HasSubstr("Version 2.0, January 2004"));
  EXPECT_THAT(ReadFile(kSource / "debian/copyright"),
              ::testing::HasSubstr("Files: *\nCopyright: "));
  EXPECT_THAT(ReadFile(kSource / "debian/copyright"), ::testing::HasSubstr("License: Apache-2.0"));
  static const std::set<std::string> kExtensions = {".cpp", ".h", ".c", ".sh", ".py", ".cmake"};
  size_t checked = 0;
  for (const char* top : {"daemon", "plugins", "policy", "tests", "tools", "cmake", ".ci"}) {
    for (auto it = fs::recursive_directory_iterator(kSource / top);
         it != fs::recursive_directory_iterator(); ++it) {
      const fs::path rel = fs::relative(it->path(), kSource);
      if (rel == "daemon/bus/generated" || rel == "tests/fixtures") {
        it.disable_recursion_pending();
        continue;
      }
      const std::string name = rel.filename().string();
      if (!it->is_regular_file() || (!kExtensions.count(rel.extension().string()) &&
                                     name != "CMakeLists.txt" && rel.parent_path() != ".ci")) {
        continue;
      }
      const std::string head = ReadFile(it->path()).substr(0, 200);
      EXPECT_THAT(head, ::testing::HasSubstr("SPDX-License-Identifier: Apache-2.0")) << rel;
      ++checked;
    }
  }
  EXPECT_THAT(ReadFile(kSource / "CMakeLists.txt").substr(0, 200),
              ::testing::HasSubstr("SPDX-License-Identifier: Apache-2.0"));
  EXPECT_GT(checked, 300u);
}

}  // namespace
}  // namespace daxpolicy::daemon
