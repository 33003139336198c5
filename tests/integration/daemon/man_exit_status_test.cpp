// SPDX-License-Identifier: Apache-2.0
// The EXIT STATUS sections of daxpolicyctl(1) and daxpolicyd(8) against the
// programs: every documented code has a case here that produces it, and no case
// produces an undocumented one. The file states each man page names against
// the states the daemon reports and the CLI filters by. Also --version and the
// global options in every subcommand's help.

#include <algorithm>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "daxpolicy/version.h"
#include "policy/evaluate.h"
#include "tests/integration/daemon/bus_fixture.h"

namespace daxpolicy::testing {
namespace {

// The codes listed as ".TP\n.B <code>" in the man page's EXIT STATUS section.
std::set<int> DocumentedCodes(const std::string& page) {
  std::ifstream in(std::string(DAXPOLICY_SOURCE_DIR) + "/docs/man/" + page);
  std::stringstream text;
  text << in.rdbuf();
  const std::string all = text.str();
  const size_t start = all.find(".SH \"EXIT STATUS\"");
  if (start == std::string::npos) return {};
  const size_t end = all.find("\n.SH ", start + 1);
  const std::string section = all.substr(start, end - start);
  std::set<int> codes;
  std::regex item(R"(\n\.TP\n\.B ([0-9]+)\n)");
  for (auto it = std::sregex_iterator(section.begin(), section.end(), item);
       it != std::sregex_iterator(); ++it) {
    codes.insert(std::stoi((*it)[1]));
  }
  return codes;
}

std::string ReadPage(const std::string& page) {
  std::ifstream in(std::string(DAXPOLICY_SOURCE_DIR) + "/docs/man/" + page);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The text of `page` from `from` up to (not including) `to`; empty when either is missing.
std::string Between(const std::string& page, const std::string& from, const std::string& to) {
  const std::string all = ReadPage(page);
  const size_t start = all.find(from);
  if (start == std::string::npos) return {};
  const size_t end = all.find(to, start + from.size());
  if (end == std::string::npos) return {};
  return all.substr(start, end - start) + "\n";  // the last line keeps its newline
}

// The words set in bold or italic (".B word", ".BR word ,", ".I word", ...) that
// `pattern` captures in `text`, with groff's "\-" read as "-", in order.
std::vector<std::string> Names(const std::string& text, const std::string& pattern) {
  std::vector<std::string> names;
  std::regex item(pattern);
  for (auto it = std::sregex_iterator(text.begin(), text.end(), item); it != std::sregex_iterator();
       ++it) {
    names.push_back(std::regex_replace((*it)[1].str(), std::regex(R"(\\-)"), "-"));
  }
  return names;
}

// Every state the daemon has a name for, in the enum's order.
std::vector<std::string> DaemonStates() {
  std::vector<std::string> states;
  for (unsigned s = 0;; ++s) {
    std::string_view name = policy::FileStateName(static_cast<policy::FileState>(s));
    if (name == "?") break;
    states.emplace_back(name);
  }
  return states;
}

using ManPage = BusServerTest;

TEST_F(ManPage, DaxpolicyctlExitsWithTheDocumentedCodes) {
  std::set<int> documented = DocumentedCodes("daxpolicyctl.1");
  ASSERT_FALSE(documented.empty()) << "no EXIT STATUS codes found in daxpolicyctl.1";
  // Each case: the arguments, whether as nobody, the expected code. The
  // "not running" cases come last: they stop the server.
  struct Case {
    std::vector<std::string> args;
    bool as_nobody;
    int code;
  };
  const std::vector<Case> cases = {
      {{"status"}, false, 0},
      {{"status", "--json"}, false, 0},
      {{"--json", "files"}, false, 0},
      {{"explain", "/etc/passwd"}, false, 1},
      {{"--no-such-option", "status"}, false, 2},
      {{"no-such-command"}, false, 2},
      {{}, false, 2},
      {{"files", "--state", "synced"}, false, 2},
      {{"mode", "dax"}, false, 2},
      {{"explain"}, false, 2},
      {{"hold", "--mode", "dax", Path("db/a.sst")}, false, 2},
      {{"reload"}, true, 4},
  };
  std::set<int> seen;
  for (const Case& c : cases) {
    CommandResult r = Ctl(c.args, c.as_nobody);
    std::string shown;
    for (const auto& a : c.args) shown += a + " ";
    EXPECT_EQ(r.exit_code, c.code) << shown << r.err;
    seen.insert(r.exit_code);
  }
  // 5: no bus at all.
  CommandResult nobus =
      ::daxpolicy::testing::Run({"env", "DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + Path("no-bus"),
                                 BinaryPath("daxpolicyctl"), "status"});
  EXPECT_EQ(nobus.exit_code, 5) << nobus.err;
  seen.insert(nobus.exit_code);
  // 3: nobody owns the name.
  EXPECT_EQ(server_->StopWith(SIGTERM), 0) << server_->err();
  server_.reset();
  CommandResult stopped = Ctl({"status"});
  EXPECT_EQ(stopped.exit_code, 3) << stopped.err;
  seen.insert(stopped.exit_code);
  EXPECT_EQ(seen, documented) << "daxpolicyctl(1) EXIT STATUS and the behaviour differ";
}

TEST_F(ManPage, DaxpolicydExitsWithTheDocumentedCodesAndRefusesASecondInstance) {
  std::set<int> documented = DocumentedCodes("daxpolicyd.8");
  ASSERT_FALSE(documented.empty()) << "no EXIT STATUS codes found in daxpolicyd.8";
  const std::string good = Path("good.yaml"), bad = Path("bad.yaml");
  WriteFile(good, "apiVersion: daxpolicy/v1\nscopes: []\nrules: []\n");
  WriteFile(bad, "apiVersion: daxpolicy/v1\nscopes: []\nrulez: []\n");
  const std::string daemon = BinaryPath("daxpolicyd");
  std::set<int> seen;
  auto expect = [&](const std::vector<std::string>& argv, int code) {
    CommandResult r = ::daxpolicy::testing::Run(argv);
    std::string shown;
    for (const auto& a : argv) shown += a + " ";
    EXPECT_EQ(r.exit_code, code) << shown << r.err;
    seen.insert(r.exit_code);
    return r;
  };
  expect({daemon, "--check-config", "--config", good}, 0);
  expect({daemon, "--check-config", "--config", bad}, 1);
  expect({daemon, "--no-such-option"}, 2);
  expect({daemon, "--log-level", "loud", "--check-config", "--config", good}, 2);
  // A second instance: bus_test_server owns the name; the daemon must exit 1
  // at once (timeout(1) says 124 when it keeps running).
  CommandResult second =
      expect({"timeout", "20", "env", "DBUS_SYSTEM_BUS_ADDRESS=" + address(), daemon, "--config",
              good, "--state-dir", Path("state"), "--metrics-listen", "off"},
             1);
  EXPECT_NE(second.err.find("is another daxpolicyd running?"), std::string::npos) << second.err;
  EXPECT_EQ(seen, documented) << "daxpolicyd(8) EXIT STATUS and the behaviour differ";
}

TEST_F(ManPage, NamesEveryFileStateTheDaemonReportsAndNoOther) {
  const std::vector<std::string> states = DaemonStates();
  // daxpolicyd(8) FILE STATES: one ".TP\n.B name" entry per state, each described.
  const std::string section = Between("daxpolicyd.8", ".SH \"FILE STATES\"", "\n.SH ");
  ASSERT_FALSE(section.empty()) << "no FILE STATES section in daxpolicyd.8";
  EXPECT_EQ(Names(section, R"(\n\.TP\n\.B ([a-z\\-]+)\n[^.])"), states) << section;
  // daxpolicy.yaml(5) STATES and daxpolicyctl(1) files --state list them in the same order.
  const std::string yaml = Between("daxpolicy.yaml.5", ".SH STATES", "\n.SH ");
  EXPECT_EQ(Names(yaml, R"(\n\.IR? ([a-z\\-]+)(?: ,| ;)?(?=\n))"), states) << yaml;
  const std::string files =
      Between("daxpolicyctl.1", "restricts the list to one of", "\nThe listing");
  EXPECT_EQ(Names(files, R"(\n\.BR? ([a-z\\-]+)(?: ,| \.)?(?=\n))"), states) << files;
  // The CLI filters by each of them, and the daemon reports no other.
  for (const std::string& state : states) {
    CommandResult r = Ctl({"files", "--state", state});
    EXPECT_EQ(r.exit_code, 0) << state << ": " << r.err;
  }
  CommandResult all = Ctl({"--json", "files"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  std::regex reported(R"re("State": ?"([^"]*)")re");
  int seen = 0;
  for (auto it = std::sregex_iterator(all.out.begin(), all.out.end(), reported);
       it != std::sregex_iterator(); ++it, ++seen) {
    EXPECT_NE(std::find(states.begin(), states.end(), (*it)[1].str()), states.end())
        << (*it)[1].str();
  }
  EXPECT_GT(seen, 3) << all.out;
}

TEST_F(ManPage, VersionAndGlobalOptionsInEverySubcommandsHelp) {
  CommandResult v = ::daxpolicy::testing::Run({BinaryPath("daxpolicyctl"), "--version"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.out, "daxpolicyctl " + std::string(kVersion) + "\n");
  CommandResult d = ::daxpolicy::testing::Run({BinaryPath("daxpolicyd"), "--version"});
  EXPECT_EQ(d.exit_code, 0);
  EXPECT_EQ(d.out, "daxpolicyd " + std::string(kVersion) + "\n");
  CommandResult help = ::daxpolicy::testing::Run({BinaryPath("daxpolicyctl"), "--help"});
  ASSERT_EQ(help.exit_code, 0);
  // The subcommands as the top-level help lists them.
  std::vector<std::string> subs;
  std::istringstream lines(help.out.substr(help.out.find("Subcommands:")));
  std::string line;
  std::getline(lines, line);
  while (std::getline(lines, line) && line.rfind("  ", 0) == 0) {
    subs.push_back(line.substr(2, line.find(' ', 2) - 2));
  }
  ASSERT_GE(subs.size(), 9u) << help.out;
  for (const std::string& sub : subs) {
    CommandResult h = ::daxpolicy::testing::Run({BinaryPath("daxpolicyctl"), sub, "--help"});
    EXPECT_EQ(h.exit_code, 0) << sub;
    EXPECT_NE(h.out.find("--session"), std::string::npos) << sub << " --help:\n" << h.out;
    EXPECT_NE(h.out.find("--json"), std::string::npos) << sub << " --help:\n" << h.out;
    EXPECT_NE(h.out.find("2 usage error"), std::string::npos) << sub << " --help:\n" << h.out;
  }
}

}  // namespace
}  // namespace daxpolicy::testing
