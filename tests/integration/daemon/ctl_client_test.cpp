// SPDX-License-Identifier: Apache-2.0
// daxpolicyctl against bus_test_server on a private system bus (DBUS_SYSTEM_BUS_ADDRESS),
// as root and as nobody; and its answers when there is no daemon or no bus.

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "daxpolicy/version.h"
#include "tests/integration/daemon/bus_fixture.h"

namespace daxpolicy::testing {
namespace {

constexpr int kTimeoutMs = 10000;

using Daxpolicyctl = BusServerTest;

TEST_F(Daxpolicyctl, ShowsTheStatus) {
  CommandResult r = Ctl({"status"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, std::string("Mode:               enforce\n"
                               "Policy generation:  1\n"
                               "Last reload:        loaded at start\n"
                               "Degraded:           no\n"
                               "Managed files:      4\n"
                               "Pending files:      1\n"
                               "Recording:          no\n"
                               "Version:            ") +
                       kVersion + "\n");
  CommandResult json = Ctl({"status", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(json.out, std::string("{\"Mode\":\"enforce\",\"PolicyGeneration\":1,"
                                  "\"LastReloadResult\":\"loaded at start\",\"Degraded\":\"\","
                                  "\"ManagedFiles\":4,\"PendingFiles\":1,\"Recording\":false,"
                                  "\"RecordingFile\":\"\",\"RecordingResult\":\"\","
                                  "\"Version\":\"") +
                          kVersion + "\"}\n");
}

TEST_F(Daxpolicyctl, ListsFilesAsAnAlignedTableOrJson) {
  CommandResult r = Ctl({"files", "--state", "pending"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string a = Path("db/a.sst");
  const std::string pad(a.size() - 4, ' ');
  EXPECT_EQ(r.out, "PATH" + pad + "  STATE    DESIRED  PHYSICAL  EFFECTIVE\n" + a +
                       "  pending  dax      dax       page-cache\n");
  CommandResult all = Ctl({"files"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(std::count(all.out.begin(), all.out.end(), '\n'), 6);
  CommandResult json = Ctl({"files", "--json", "--state", "observed"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(json.out, "[{\"Path\":\"" + Path("logs/big.log") +
                          "\",\"Desired\":\"dax\",\"Physical\":\"page-cache\",\"Effective\":"
                          "\"page-cache\",\"State\":\"observed\"}]\n");
  CommandResult bad = Ctl({"files", "--state", "synced"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.err,
            "daxpolicyctl: unknown state 'synced': expected unmanaged, in-sync, pending, deferred, "
            "observed or blocked\n");
}

TEST_F(Daxpolicyctl, ExplainsAFileGivenRelativeToTheCurrentDirectory) {
  CommandResult r = Ctl({"explain", Path("db/a.sst")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "rule 'reread-heavy' matched: media.latency_ratio = 3.5 >= 2\n"
            "rule 'large-streams' lost: path does not match\n");
  CommandResult rel =
      ::daxpolicy::testing::Run({"sh", "-c",
                                 "cd " + Path("db") + " && DBUS_SYSTEM_BUS_ADDRESS='" + address() +
                                     "' " + BinaryPath("daxpolicyctl") + " explain ../db/./a.sst"});
  EXPECT_EQ(rel.exit_code, 0) << rel.err;
  EXPECT_EQ(rel.out, r.out);
  CommandResult json = Ctl({"explain", "--json", Path("db/a.sst")});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(json.out,
            "{\"Path\":\"" + Path("db/a.sst") + "\",\"State\":{\"Path\":\"" + Path("db/a.sst") +
                "\",\"Managed\":true,\"Desired\":\"dax\",\"Physical\":\"dax\",\"Effective\":"
                "\"page-cache\",\"State\":\"pending\",\"Rule\":\"reread-heavy\",\"Reason\":"
                "\"waiting for 1 holder to close the file\",\"Holders\":[{\"Pid\":4242,"
                "\"Command\":\"postgres\"}]},\"Explanation\":\"rule 'reread-heavy' matched: "
                "media.latency_ratio = 3.5 >= 2\\nrule 'large-streams' lost: path does not "
                "match\\n\"}\n");
  CommandResult untracked = Ctl({"explain", "/etc/passwd"});
  EXPECT_EQ(untracked.exit_code, 1);
  EXPECT_EQ(untracked.err, "daxpolicyctl: /etc/passwd is not tracked by daxpolicyd\n");
  CommandResult bad = Ctl({"explain", "/srv//x"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.err, "daxpolicyctl: the path '/srv//x' is not normalized (it contains '//')\n");
  CommandResult binary = Ctl({"explain", "/srv/\xff"});
  EXPECT_EQ(binary.exit_code, 1);
  // Sent escaped (a name need not be UTF-8): the daemon reads it back and answers about it.
  EXPECT_EQ(binary.err, "daxpolicyctl: /srv/\\xff is not tracked by daxpolicyd\n");
}

TEST_F(Daxpolicyctl, ShowsMedia) {
  CommandResult r = Ctl({"media"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "NAME    KIND    SIZE      NUMA  HEALTH   READ    WRITE   RATIO\n"
            "pmem0   fsdax   16.0 GiB  0     ok       351 ns  900 ns  3.50\n"
            "dax1.0  devdax  4.0 GiB   -     unknown  -       -       -\n");
  CommandResult json = Ctl({"media", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(json.out,
            "[{\"Name\":\"pmem0\",\"Kind\":\"fsdax\",\"Size\":17179869184,\"NumaNode\":0,"
            "\"Health\":\"ok\",\"ReadLatencyNs\":350.5,\"WriteLatencyNs\":900,\"LatencyRatio\":"
            "3.505},{\"Name\":\"dax1.0\",\"Kind\":\"devdax\",\"Size\":4294967296,\"NumaNode\":-1,"
            "\"Health\":\"unknown\"}]\n");
}

TEST_F(Daxpolicyctl, ReloadsAndSwitchesModeAsRoot) {
  CommandResult reload = Ctl({"reload"});
  EXPECT_EQ(reload.exit_code, 0) << reload.err;
  EXPECT_EQ(reload.out, "ok: generation 2\n");
  WriteFile(Path("bad-policy"), "policy.yaml:1:1: unknown key 'x'");
  CommandResult bad = Ctl({"reload"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.err, "daxpolicyctl: policy.yaml:1:1: unknown key 'x'\n");
  WriteFile(Path("bad-policy"),
            "2 errors:\npolicy.yaml:1:1: unknown key 'x'\npolicy.yaml:4:3: unknown key 'y'");
  EXPECT_EQ(Ctl({"reload"}).exit_code, 1);
  CommandResult status = Ctl({"status"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("Last reload:        refused: 2 errors:\n"
                            "                    policy.yaml:1:1: unknown key 'x'\n"
                            "                    policy.yaml:4:3: unknown key 'y'\n"
                            "Degraded:           no\n"),
            std::string::npos)
      << status.out;
  CommandResult mode = Ctl({"mode", "observe"});
  EXPECT_EQ(mode.exit_code, 0) << mode.err;
  EXPECT_EQ(mode.out, "mode: observe\n");
  CommandResult wrong = Ctl({"mode", "dax"});
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_EQ(wrong.err, "daxpolicyctl: unknown mode 'dax': expected enforce or observe\n");
}

TEST_F(Daxpolicyctl, TellsAnUnprivilegedUserThatReloadAndModeNeedRoot) {
  const std::string uid = std::to_string(NobodyUid());
  CommandResult reload = Ctl({"reload"}, true);
  EXPECT_EQ(reload.exit_code, 4);
  EXPECT_EQ(reload.err,
            "daxpolicyctl: permission denied: Reload needs root (caller uid " + uid + ")\n");
  CommandResult mode = Ctl({"mode", "observe"}, true);
  EXPECT_EQ(mode.exit_code, 4);
  EXPECT_EQ(mode.err,
            "daxpolicyctl: permission denied: SetMode needs root (caller uid " + uid + ")\n");
  // Reads work.
  EXPECT_EQ(Ctl({"status"}, true).exit_code, 0);
  EXPECT_EQ(Ctl({"files", "--json"}, true).exit_code, 0);
  EXPECT_EQ(Ctl({"media"}, true).exit_code, 0);
  EXPECT_EQ(Ctl({"explain", Path("db/a.sst")}, true).exit_code, 0);
}

TEST_F(Daxpolicyctl, StartsAndStopsARecordingAndShowsItInTheStatus) {
  CommandResult start = Ctl({"record", "start", "--max-size", "1GiB"});
  ASSERT_EQ(start.exit_code, 0) << start.err;
  EXPECT_EQ(start.out, "recording to /var/lib/daxpolicy/traces/daxpolicy-test.trace\n");
  CommandResult status = Ctl({"status"});
  EXPECT_NE(status.out.find("Recording:          yes, to "
                            "/var/lib/daxpolicy/traces/daxpolicy-test.trace (recording since "
                            "started by :"),
            std::string::npos)
      << status.out;
  CommandResult again = Ctl({"record", "start", "--output", Path("x.trace")});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("runs already"), std::string::npos) << again.err;
  CommandResult stop = Ctl({"record", "stop"});
  ASSERT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_EQ(stop.out.rfind("/var/lib/daxpolicy/traces/daxpolicy-test.trace: stopped by :", 0), 0u)
      << stop.out;
  EXPECT_NE(Ctl({"status"})
                .out.find("Recording:          no; last trace "
                          "/var/lib/daxpolicy/traces/daxpolicy-test.trace: stopped by"),
            std::string::npos);
  CommandResult none = Ctl({"record", "stop"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_EQ(none.err, "daxpolicyctl: no trace is being recorded\n");
  // --output relative to the current directory, global options after the subcommand.
  CommandResult output = ::daxpolicy::testing::Run(
      {"sh", "-c",
       "cd " + Path("db") + " && DBUS_SYSTEM_BUS_ADDRESS=" + address() + " " +
           BinaryPath("daxpolicyctl") + " record start --output new.trace --json"});
  ASSERT_EQ(output.exit_code, 0) << output.err;
  EXPECT_EQ(output.out, "recording to " + Path("db/new.trace") + "\n");
}

TEST_F(Daxpolicyctl, RefusesABadMaxSizeAndAnUnprivilegedRecorder) {
  CommandResult bad = Ctl({"record", "start", "--max-size", "lots"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("daxpolicyctl: --max-size 'lots': "), std::string::npos) << bad.err;
  CommandResult small = Ctl({"record", "start", "--max-size", "1KiB"});
  EXPECT_EQ(small.exit_code, 1);
  EXPECT_NE(small.err.find("between 64 KiB and 2 GiB"), std::string::npos) << small.err;
  EXPECT_EQ(Ctl({"record"}).exit_code, 2);
  const std::string uid = std::to_string(NobodyUid());
  CommandResult start = Ctl({"record", "start"}, true);
  EXPECT_EQ(start.exit_code, 4);
  EXPECT_EQ(start.err, "daxpolicyctl: permission denied: StartRecording needs root (caller uid " +
                           uid + ")\n");
  CommandResult stop = Ctl({"record", "stop"}, true);
  EXPECT_EQ(stop.exit_code, 4);
  EXPECT_EQ(stop.err,
            "daxpolicyctl: permission denied: StopRecording needs root (caller uid " + uid + ")\n");
  EXPECT_NE(Ctl({"status"}, true).out.find("Recording:          no\n"), std::string::npos);
}

TEST_F(Daxpolicyctl, HoldsAFileForTheLifetimeOfACommand) {
  CommandResult r = Ctl({"hold", "--mode", "page-cache", "--reason", "nightly scan",
                         Path("db/b.sst"), "--", "sh", "-c", "echo running; exit 7"});
  EXPECT_EQ(r.exit_code, 7) << r.err;
  EXPECT_EQ(r.out, "running\n");
  EXPECT_TRUE(
      server_->WaitForError("hold 1 on " + Path("db/b.sst") + " (page-cache) by :", kTimeoutMs));
  EXPECT_TRUE(server_->WaitForError(": nightly scan\n", kTimeoutMs));
  EXPECT_TRUE(server_->WaitForError("hold 1 released by :", kTimeoutMs)) << server_->err();
}

TEST_F(Daxpolicyctl, ListsTheHoldsWhileACommandHoldsAFile) {
  // The held command itself lists the holds: its own, with path, mode and reason.
  CommandResult r = Ctl({"hold", "--mode", "page-cache", "--reason", "nightly scan",
                         Path("db/b.sst"), "--", BinaryPath("daxpolicyctl"), "holds"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("COOKIE", 0), 0u) << r.out;
  EXPECT_NE(r.out.find(Path("db/b.sst")), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("page-cache"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("nightly scan"), std::string::npos) << r.out;
  r = Ctl({"hold", "--mode", "dax", Path("db/a.sst"), "--", BinaryPath("daxpolicyctl"), "holds",
           "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("[", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\"Path\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(Path("db/a.sst")), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"InEffect\""), std::string::npos) << r.out;
  // Once the commands have ended, no hold is left to list.
  r = Ctl({"holds"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find(Path("db/")), std::string::npos) << r.out;
}

TEST_F(Daxpolicyctl, HoldsOnlyFilesTheUserOwns) {
  CommandResult own =
      Ctl({"hold", "--mode", "dax", Path("user/mine"), "--", "true"}, /*as_nobody=*/true);
  EXPECT_EQ(own.exit_code, 0) << own.err;
  CommandResult other = Ctl({"hold", "--mode", "dax", Path("db/a.sst"), "--", "true"}, true);
  EXPECT_EQ(other.exit_code, 4);
  EXPECT_EQ(other.err, "daxpolicyctl: permission denied: uid " + std::to_string(NobodyUid()) +
                           " may not hold " + Path("db/a.sst") +
                           ": only its owner (uid 0) or root may\n");
  CommandResult mode = Ctl({"hold", "--mode", "on", Path("db/a.sst"), "--", "true"});
  EXPECT_EQ(mode.exit_code, 2);
  EXPECT_EQ(mode.err, "daxpolicyctl: unknown mode 'on': expected dax or page-cache\n");
  CommandResult missing =
      Ctl({"hold", "--mode", "dax", Path("db/a.sst"), "--", "/nonexistent/program"});
  EXPECT_EQ(missing.exit_code, 127);
  EXPECT_NE(missing.err.find("cannot run /nonexistent/program"), std::string::npos);
}

TEST_F(Daxpolicyctl, LosesItsHoldWhenKilled) {
  // Become the reaper of the orphaned `sleep` once daxpolicyctl dies.
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  std::string error;
  auto ctl = Child::Spawn(
      {BinaryPath("daxpolicyctl"), "hold", "--mode", "dax", Path("db/a.sst"), "--", "sleep", "100"},
      {"DBUS_SYSTEM_BUS_ADDRESS=" + address()}, /*new_group=*/true, &error);
  ASSERT_NE(ctl, nullptr) << error;
  ASSERT_TRUE(server_->WaitForError("hold 1 on " + Path("db/a.sst") + " (dax) by :", kTimeoutMs))
      << server_->err();
  EXPECT_EQ(ctl->StopWith(SIGKILL), 128 + SIGKILL);
  EXPECT_TRUE(server_->WaitForError("released 1 hold(s) of :", kTimeoutMs)) << server_->err();
  EXPECT_EQ(server_->err().find("hold 1 released by"), std::string::npos);
  // The orphaned sleep: kill and reap it.
  kill(-ctl->pid(), SIGKILL);
  while (waitpid(-ctl->pid(), nullptr, 0) > 0) {
  }
  prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST_F(Daxpolicyctl, SaysWhenTheDaemonIsNotRunning) {
  EXPECT_EQ(server_->StopWith(SIGTERM), 0) << server_->err();
  server_.reset();
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"status"}, {"files"}, {"media", "--json"}, {"reload"}, {"explain", "/srv/x"}}) {
    CommandResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, 3) << args[0];
    EXPECT_EQ(r.err,
              "daxpolicyctl: daxpolicyd is not running (no owner of org.daxpolicy.DaxPolicy1 on "
              "the system bus)\n")
        << args[0];
  }
}

TEST(DaxpolicyctlWithoutABus, SaysTheBusCannotBeReached) {
  TempDir dir;
  CommandResult r = ::daxpolicy::testing::Run(
      {"env", "DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + (dir.path() / "none").string(),
       BinaryPath("daxpolicyctl"), "status"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_EQ(r.err.rfind("daxpolicyctl: cannot connect to the system bus: ", 0), 0u) << r.err;
}

TEST(DaxpolicyctlRestore, ReportsAnEmptyJournalAndUnknownPaths) {
  DAXPOLICY_REQUIRE(IsRoot(), "root (the journal lives in a root-owned state directory)");
  TempDir dir;
  CommandResult all = ::daxpolicy::testing::Run(
      {BinaryPath("daxpolicyctl"), "restore", "--state-dir", dir.path().string(), "--all"});
  EXPECT_EQ(all.exit_code, 0) << all.err;
  CommandResult unknown =
      ::daxpolicy::testing::Run({BinaryPath("daxpolicyctl"), "restore", "--state-dir",
                                 dir.path().string(), "/srv/pmem/never-seen"});
  EXPECT_EQ(unknown.exit_code, 1) << unknown.out;
  EXPECT_NE(unknown.out.find("/srv/pmem/never-seen"), std::string::npos) << unknown.out;
  EXPECT_NE(unknown.out.find("not in journal"), std::string::npos) << unknown.out;
  CommandResult neither = ::daxpolicy::testing::Run(
      {BinaryPath("daxpolicyctl"), "restore", "--state-dir", dir.path().string()});
  EXPECT_EQ(neither.exit_code, 2);
  EXPECT_EQ(neither.err, "daxpolicyctl: restore needs either --all or at least one PATH\n");
}

// A segment that cannot be read may have held originals: restore says so and exits 1.
TEST(DaxpolicyctlRestore, ExitsOneWhenASegmentOfTheJournalIsDamaged) {
  DAXPOLICY_REQUIRE(IsRoot(), "root (the journal lives in a root-owned state directory)");
  TempDir dir;
  WriteFile(dir.path() / "segment-0000000000000001.djnl", "garbage");
  CommandResult all = ::daxpolicy::testing::Run(
      {BinaryPath("daxpolicyctl"), "restore", "--state-dir", dir.path().string(), "--all"});
  EXPECT_EQ(all.exit_code, 1) << all.out;
  EXPECT_NE(all.out.find("journal damaged: segment-0000000000000001.djnl"), std::string::npos)
      << all.out;
  // Still damaged on the next run: the segment was moved aside, not repaired.
  CommandResult again = ::daxpolicy::testing::Run(
      {BinaryPath("daxpolicyctl"), "restore", "--state-dir", dir.path().string(), "--all"});
  EXPECT_EQ(again.exit_code, 1) << again.out;
  EXPECT_NE(again.out.find("corrupt/segment-0000000000000001.djnl"), std::string::npos)
      << again.out;
}

}  // namespace
}  // namespace daxpolicy::testing
