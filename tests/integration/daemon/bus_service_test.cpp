// SPDX-License-Identifier: Apache-2.0
// BusService on a private system bus, called by independent clients: busctl, an unprivileged
// busctl (setpriv nobody), and an sdbus-c++ client in this process that also subscribes to
// the signals. The server is bus_test_server (BusService over a FakeBackend).

#include <poll.h>
#include <sdbus-c++/sdbus-c++.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "daemon/bus/bus_names.h"
#include "daxpolicy/version.h"
#include "tests/integration/daemon/bus_fixture.h"

namespace daxpolicy::testing {
namespace {

using Dict = std::map<std::string, sdbus::Variant>;
using Holders = std::vector<sdbus::Struct<uint32_t, std::string>>;

constexpr int kTimeoutMs = 10000;

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// An sdbus-c++ client of the private bus, driven by hand (no loop thread).
class Client {
 public:
  explicit Client(const std::string& address)
      : connection_(sdbus::createSessionBusConnectionWithAddress(address)),
        proxy_(sdbus::createProxy(*connection_, bus::kBusName, bus::kObjectPath)) {}
  ~Client() { proxy_.reset(); }

  sdbus::IProxy& proxy() { return *proxy_; }
  sdbus::IConnection& connection() { return *connection_; }

  // Processes incoming messages until done() or the timeout.
  bool PumpUntil(const std::function<bool()>& done, int timeout_ms = kTimeoutMs) {
    const int64_t deadline = NowMs() + timeout_ms;
    for (;;) {
      while (connection_->processPendingRequest()) {
      }
      if (done()) return true;
      const int64_t left = deadline - NowMs();
      if (left <= 0) return false;
      auto pd = connection_->getEventLoopPollData();
      int wait = static_cast<int>(left);
      if (pd.getPollTimeout() >= 0 && pd.getPollTimeout() < wait) wait = pd.getPollTimeout();
      pollfd fd = {pd.fd, pd.events, 0};
      poll(&fd, 1, wait);
    }
  }

  // The D-Bus error name a call fails with, "" when it succeeds.
  std::string ErrorOf(const std::function<void(sdbus::IProxy&)>& call) {
    try {
      call(*proxy_);
      return "";
    } catch (const sdbus::Error& e) {
      last_message_ = e.getMessage();
      return e.getName();
    }
  }
  const std::string& last_message() const { return last_message_; }

 private:
  std::unique_ptr<sdbus::IConnection> connection_;
  std::unique_ptr<sdbus::IProxy> proxy_;
  std::string last_message_;
};

std::string GetFileStateError(Client& c, const std::string& path) {
  return c.ErrorOf([&](sdbus::IProxy& p) {
    Dict d;
    p.callMethod("GetFileState").onInterface(bus::kInterface).withArguments(path).storeResultsTo(d);
  });
}

using ABusService = BusServerTest;

TEST_F(ABusService, AnswersGetFileStateWithEveryContractKey) {
  CommandResult r = Call("GetFileState", {"s", Path("db/a.sst")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "a{sv} 9 \"Desired\" s \"dax\" \"Effective\" s \"page-cache\" \"Holders\" a(us) 1 "
            "4242 \"postgres\" \"Managed\" b true \"Path\" s \"" +
                Path("db/a.sst") +
                "\" \"Physical\" s \"dax\" \"Reason\" s \"waiting for 1 holder to close the "
                "file\" \"Rule\" s \"reread-heavy\" \"State\" s \"pending\"\n");
}

TEST_F(ABusService, ReportsDesiredKeepForAnUnmanagedFile) {
  CommandResult r = Call("GetFileState", {"s", Path("keep/x")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"Desired\" s \"keep\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"Managed\" b false"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"Holders\" a(us) 0"), std::string::npos) << r.out;
}

TEST_F(ABusService, ExplainsAFile) {
  CommandResult r = Call("Explain", {"s", Path("db/a.sst")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // busctl escapes quotes and newlines.
  EXPECT_EQ(r.out,
            "s \"rule \\'reread-heavy\\' matched: media.latency_ratio = 3.5 >= 2\\nrule "
            "\\'large-streams\\' lost: path does not match\\n\"\n");
}

TEST_F(ABusService, ListsAllFilesOrThoseInOneState) {
  CommandResult all = Call("ListFiles", {"s", ""});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(all.out.rfind("a(sssss) 5 ", 0), 0u) << all.out;
  CommandResult pending = Call("ListFiles", {"s", "pending"});
  ASSERT_EQ(pending.exit_code, 0) << pending.err;
  EXPECT_EQ(pending.out,
            "a(sssss) 1 \"" + Path("db/a.sst") + "\" \"dax\" \"dax\" \"page-cache\" \"pending\"\n");
  CommandResult blocked = Call("ListFiles", {"s", "blocked"});
  EXPECT_EQ(blocked.out, "a(sssss) 0\n");
}

TEST_F(ABusService, ListsMediaWithLatencyKeysOnlyWhenMeasured) {
  Client c(address());
  std::vector<Dict> media;
  c.proxy().callMethod("GetMedia").onInterface(bus::kInterface).storeResultsTo(media);
  ASSERT_EQ(media.size(), 2u);
  EXPECT_EQ(media[0].at("Name").get<std::string>(), "pmem0");
  EXPECT_EQ(media[0].at("Kind").get<std::string>(), "fsdax");
  EXPECT_EQ(media[0].at("Size").get<uint64_t>(), 16ull << 30);
  EXPECT_EQ(media[0].at("NumaNode").get<int32_t>(), 0);
  EXPECT_EQ(media[0].at("Health").get<std::string>(), "ok");
  EXPECT_DOUBLE_EQ(media[0].at("ReadLatencyNs").get<double>(), 350.5);
  EXPECT_DOUBLE_EQ(media[0].at("WriteLatencyNs").get<double>(), 900);
  EXPECT_DOUBLE_EQ(media[0].at("LatencyRatio").get<double>(), 3.505);
  EXPECT_EQ(media[0].size(), 8u);
  EXPECT_EQ(media[1].at("Name").get<std::string>(), "dax1.0");
  EXPECT_EQ(media[1].at("NumaNode").get<int32_t>(), -1);
  EXPECT_EQ(media[1].at("Health").get<std::string>(), "unknown");
  EXPECT_EQ(media[1].count("ReadLatencyNs"), 0u);
  EXPECT_EQ(media[1].size(), 5u);
  // busctl reads the same.
  CommandResult r = Call("GetMedia");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("aa{sv} 2 8 ", 0), 0u) << r.out;
}

TEST_F(ABusService, ServesEveryPropertyAndRefusesToSetThem) {
  const std::map<std::string, std::string> expected = {
      {"Mode", "s \"enforce\"\n"},
      {"PolicyGeneration", "t 1\n"},
      {"LastReloadResult", "s \"loaded at start\"\n"},
      {"Degraded", "s \"\"\n"},
      {"ManagedFiles", "t 4\n"},
      {"PendingFiles", "t 1\n"},
      {"Recording", "b false\n"},
      {"RecordingFile", "s \"\"\n"},
      {"RecordingResult", "s \"\"\n"},
      {"Version", "s \"" + std::string(kVersion) + "\"\n"},
  };
  for (const auto& [name, value] : expected) {
    CommandResult r =
        Busctl({"get-property", bus::kBusName, bus::kObjectPath, bus::kInterface, name});
    EXPECT_EQ(r.exit_code, 0) << name << ": " << r.err;
    EXPECT_EQ(r.out, value) << name;
  }
  CommandResult set = Busctl(
      {"set-property", bus::kBusName, bus::kObjectPath, bus::kInterface, "Mode", "s", "observe"});
  EXPECT_NE(set.exit_code, 0);
  EXPECT_EQ(Busctl({"get-property", bus::kBusName, bus::kObjectPath, bus::kInterface, "Mode"}).out,
            "s \"enforce\"\n");
}

// busctl's table with runs of spaces collapsed.
std::string Squeezed(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == ' ' && !out.empty() && out.back() == ' ') continue;
    out.push_back(c);
  }
  return out;
}

TEST_F(ABusService, IntrospectsTheContractMembers) {
  CommandResult r = Busctl({"introspect", bus::kBusName, bus::kObjectPath, bus::kInterface});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string table = Squeezed(r.out);
  for (const char* line : {
           ".GetFileState method s a{sv} -\n",
           ".Explain method s s -\n",
           ".ListFiles method s a(sssss) -\n",
           ".GetMedia method - aa{sv} -\n",
           ".Hold method sss u -\n",
           ".Release method u - -\n",
           ".Reload method - - -\n",
           ".SetMode method s - -\n",
           ".StartRecording method st s -\n",
           ".StopRecording method - - -\n",
           ".Recording property b false emits-change\n",
           ".RecordingFile property s \"\" emits-change\n",
           ".RecordingResult property s \"\" emits-change\n",
           ".Degraded property s \"\" emits-change\n",
           ".LastReloadResult property s \"loaded at start\" emits-change\n",
           ".ManagedFiles property t 4 emits-change\n",
           ".Mode property s \"enforce\" emits-change\n",
           ".PendingFiles property t 1 emits-change\n",
           ".PolicyGeneration property t 1 emits-change\n",
           ".Reloaded signal bs - -\n",
           ".StateChanged signal sssss - -\n",
           ".SwitchPending signal ssa(us) - -\n",
       }) {
    EXPECT_NE(table.find(line), std::string::npos) << line << "\n" << r.out;
  }
  EXPECT_NE(table.find(".Version property s \"" + std::string(kVersion) + "\" const\n"),
            std::string::npos);
}

TEST_F(ABusService, TakesAndReleasesAHoldForRoot) {
  CommandResult hold = Call("Hold", {"sss", Path("db/b.sst"), "dax", "benchmark"});
  ASSERT_EQ(hold.exit_code, 0) << hold.err;
  EXPECT_EQ(hold.out, "u 1\n");
  EXPECT_TRUE(server_->WaitForError("hold 1 on " + Path("db/b.sst") + " (dax) by :", kTimeoutMs));
  // busctl has left the bus by now: its hold went with it.
  EXPECT_TRUE(server_->WaitForError("released 1 hold(s) of :", kTimeoutMs)) << server_->err();
  CommandResult release = Call("Release", {"u", "1"});
  EXPECT_NE(release.exit_code, 0);
  EXPECT_NE(release.err.find("no hold of yours has cookie 1"), std::string::npos) << release.err;
}

TEST_F(ABusService, ReleasesAHoldOnRequestAndRefusesUnknownCookies) {
  Client c(address());
  uint32_t cookie = 0;
  c.proxy()
      .callMethod("Hold")
      .onInterface(bus::kInterface)
      .withArguments(Path("db/a.sst"), std::string("page-cache"), std::string("test"))
      .storeResultsTo(cookie);
  EXPECT_EQ(cookie, 1u);
  EXPECT_EQ(c.ErrorOf([&](sdbus::IProxy& p) {
    p.callMethod("Release").onInterface(bus::kInterface).withArguments(cookie);
  }),
            "");
  EXPECT_EQ(c.ErrorOf([&](sdbus::IProxy& p) {
    p.callMethod("Release").onInterface(bus::kInterface).withArguments(cookie);
  }),
            bus::kErrorInvalidArgument);
  EXPECT_EQ(c.last_message(), "no hold of yours has cookie 1");
  EXPECT_EQ(c.ErrorOf([&](sdbus::IProxy& p) {
    p.callMethod("Release").onInterface(bus::kInterface).withArguments(uint32_t{0});
  }),
            bus::kErrorInvalidArgument);
}

TEST_F(ABusService, ReleasesTheHoldsOfAClientThatLeavesTheBus) {
  {
    Client holder(address());
    for (const char* f : {"db/a.sst", "db/b.sst"}) {
      uint32_t cookie = 0;
      holder.proxy()
          .callMethod("Hold")
          .onInterface(bus::kInterface)
          .withArguments(Path(f), std::string("dax"), std::string(""))
          .storeResultsTo(cookie);
    }
    ASSERT_TRUE(server_->WaitForError("hold 2 on", kTimeoutMs));
    EXPECT_EQ(server_->err().find("released"), std::string::npos);
  }
  EXPECT_TRUE(server_->WaitForError("released 2 hold(s) of :", kTimeoutMs)) << server_->err();
}

TEST_F(ABusService, LetsAnUnprivilegedUserReadEverything) {
  for (const auto& [member, args] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"GetFileState", {"s", Path("db/a.sst")}},
           {"Explain", {"s", Path("db/a.sst")}},
           {"ListFiles", {"s", ""}},
           {"GetMedia", {}}}) {
    CommandResult r = Call(member, args, /*as_nobody=*/true);
    EXPECT_EQ(r.exit_code, 0) << member << ": " << r.err;
  }
  CommandResult all = Busctl({"call", bus::kBusName, bus::kObjectPath,
                              "org.freedesktop.DBus.Properties", "GetAll", "s", bus::kInterface},
                             true);
  EXPECT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(all.out.rfind("a{sv} 10 ", 0), 0u) << all.out;
}

TEST_F(ABusService, AnswersAnUnprivilegedUserOnlyAboutPathsItCouldReach) {
  // db/ becomes root's private directory: for nobody, its files are like missing ones.
  ASSERT_EQ(chmod(Path("db").c_str(), 0700), 0);
  const std::string hidden = Path("db/a.sst"), missing = Path("logs/none");
  CommandResult r = Call("GetFileState", {"s", hidden}, true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("'" + hidden + "': No such file or directory"), std::string::npos) << r.err;
  for (const char* member : {"Explain", "GetFileState"}) {
    CommandResult h = Call(member, {"s", hidden}, true);
    CommandResult m = Call(member, {"s", Path("db/none")}, true);
    EXPECT_EQ(h.err, std::string(m.err).replace(m.err.find("db/none"), 7, "db/a.sst")) << member;
  }
  CommandResult hold = Call("Hold", {"sss", hidden, "dax", ""}, true);
  EXPECT_NE(hold.err.find("No such file or directory"), std::string::npos) << hold.err;
  CommandResult list = Call("ListFiles", {"s", ""}, true);
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(list.out.find("/db/"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("/logs/big.log"), std::string::npos) << list.out;
  CommandResult files = Ctl({"files"}, true);
  ASSERT_EQ(files.exit_code, 0) << files.err;
  EXPECT_EQ(files.out.find("/db/"), std::string::npos) << files.out;
  EXPECT_NE(files.out.find("/logs/big.log"), std::string::npos) << files.out;
  // Root sees everything.
  EXPECT_EQ(Call("GetFileState", {"s", hidden}).exit_code, 0);
  EXPECT_NE(Ctl({"files"}).out.find(hidden), std::string::npos);
  EXPECT_NE(Call("ListFiles", {"s", ""}).out.find(hidden), std::string::npos);
}

TEST_F(ABusService, ListsAMillionFilesThroughAFileDescriptor) {
  // ListFiles answers up to its documented cap and refuses more with a clear error.
  WriteFile(Path("many"), "1000000");
  Client c(address());
  EXPECT_EQ(c.ErrorOf([](sdbus::IProxy& p) {
    std::vector<sdbus::Struct<std::string, std::string, std::string, std::string, std::string>>
        files;
    p.callMethod("ListFiles")
        .onInterface(bus::kInterface)
        .withArguments(std::string())
        .storeResultsTo(files);
  }),
            bus::kErrorLimitExceeded);
  EXPECT_EQ(c.last_message(),
            "more than 50000 files to list, more than ListFiles answers; use DumpFiles "
            "(daxpolicyctl files does)");
  // daxpolicyctl files streams the whole listing.
  CommandResult files = Ctl({"files", "--state", "in-sync"});
  ASSERT_EQ(files.exit_code, 0) << files.err;
  size_t lines = std::count(files.out.begin(), files.out.end(), '\n');
  EXPECT_GE(lines, 1'000'001u);
  EXPECT_NE(files.out.find(Path("many/f999999") + "  in-sync"), std::string::npos);
  // The service still answers.
  EXPECT_EQ(GetFileStateError(c, Path("db/a.sst")), "");
}

TEST_F(ABusService, RefusesReloadAndSetModeToAnUnprivilegedUser) {
  CommandResult reload = Call("Reload", {}, true);
  EXPECT_NE(reload.exit_code, 0);
  EXPECT_NE(reload.err.find("Reload needs root (caller uid " + std::to_string(NobodyUid()) + ")"),
            std::string::npos)
      << reload.err;
  CommandResult mode = Call("SetMode", {"s", "observe"}, true);
  EXPECT_NE(mode.exit_code, 0);
  EXPECT_NE(mode.err.find("SetMode needs root"), std::string::npos) << mode.err;
  EXPECT_EQ(Busctl({"get-property", bus::kBusName, bus::kObjectPath, bus::kInterface, "Mode"}).out,
            "s \"enforce\"\n");
  EXPECT_EQ(
      Busctl({"get-property", bus::kBusName, bus::kObjectPath, bus::kInterface, "PolicyGeneration"})
          .out,
      "t 1\n");
}

TEST_F(ABusService, StartsAndStopsRecordingForRootOnly) {
  auto property = [&](const std::string& name) {
    return Busctl({"get-property", bus::kBusName, bus::kObjectPath, bus::kInterface, name}).out;
  };
  const std::string uid = std::to_string(NobodyUid());
  for (const auto& [member, args] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"StartRecording", {"st", "", "0"}}, {"StopRecording", {}}}) {
    CommandResult r = Call(member, args, /*as_nobody=*/true);
    EXPECT_NE(r.exit_code, 0) << member;
    EXPECT_NE(r.err.find(member + " needs root (caller uid " + uid + ")"), std::string::npos)
        << r.err;
  }
  EXPECT_EQ(property("Recording"), "b false\n");

  CommandResult relative = Call("StartRecording", {"st", "x.trace", "0"});
  EXPECT_NE(relative.exit_code, 0);
  CommandResult small = Call("StartRecording", {"st", "", "4096"});
  EXPECT_NE(small.exit_code, 0);
  EXPECT_NE(small.err.find("between 64 KiB and 2 GiB"), std::string::npos) << small.err;

  CommandResult start = Call("StartRecording", {"st", "", "0"});
  ASSERT_EQ(start.exit_code, 0) << start.err;
  EXPECT_EQ(start.out, "s \"/var/lib/daxpolicy/traces/daxpolicy-test.trace\"\n");
  EXPECT_EQ(property("Recording"), "b true\n");
  EXPECT_EQ(property("RecordingFile"), "s \"/var/lib/daxpolicy/traces/daxpolicy-test.trace\"\n");
  CommandResult stop = Call("StopRecording");
  ASSERT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_EQ(property("Recording"), "b false\n");
  const std::string result = property("RecordingResult");
  EXPECT_EQ(result.rfind("s \"stopped by :", 0), 0u) << result;
  EXPECT_NE(result.find(" (uid 0, pid "), std::string::npos) << result;
  CommandResult again = Call("StopRecording");
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("no trace is being recorded"), std::string::npos) << again.err;
  CommandResult chosen = Call("StartRecording", {"st", Path("t.trace"), "1048576"});
  ASSERT_EQ(chosen.exit_code, 0) << chosen.err;
  EXPECT_EQ(chosen.out, "s \"" + Path("t.trace") + "\"\n");
}

TEST_F(ABusService, LetsAnUnprivilegedUserHoldOnlyItsOwnFiles) {
  CommandResult other = Call("Hold", {"sss", Path("db/a.sst"), "dax", ""}, true);
  EXPECT_NE(other.exit_code, 0);
  EXPECT_NE(other.err.find("uid " + std::to_string(NobodyUid()) + " may not hold " +
                           Path("db/a.sst") + ": only its owner (uid 0) or root may"),
            std::string::npos)
      << other.err;
  CommandResult own = Call("Hold", {"sss", Path("user/mine"), "page-cache", "mine"}, true);
  EXPECT_EQ(own.exit_code, 0) << own.err;
  EXPECT_EQ(own.out, "u 1\n");
}

TEST_F(ABusService, KeepsOneUsersHoldsFromAnother) {
  Client root(address());
  uint32_t cookie = 0;
  root.proxy()
      .callMethod("Hold")
      .onInterface(bus::kInterface)
      .withArguments(Path("db/a.sst"), std::string("dax"), std::string(""))
      .storeResultsTo(cookie);
  CommandResult r = Call("Release", {"u", std::to_string(cookie)}, true);
  EXPECT_NE(r.exit_code, 0);
  // The same answer as for a cookie nobody holds: nothing about root's hold leaks.
  EXPECT_NE(r.err.find("no hold of yours has cookie 1"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("uid 0"), std::string::npos) << r.err;
  CommandResult unknown = Call("Release", {"u", "2"}, true);
  EXPECT_EQ(unknown.err, std::string(r.err).replace(r.err.find("cookie 1"), 8, "cookie 2"));
  // ListHolds: root sees the hold, nobody sees none of it.
  CommandResult all = Call("ListHolds");
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(all.out.rfind("a(ussssub) 1 1 \"" + Path("db/a.sst") + "\" \"dax\" \"\" \":", 0), 0u)
      << all.out;
  EXPECT_NE(all.out.find(" 0 true\n"), std::string::npos) << all.out;
  CommandResult theirs = Call("ListHolds", {}, true);
  ASSERT_EQ(theirs.exit_code, 0) << theirs.err;
  EXPECT_EQ(theirs.out, "a(ussssub) 0\n");
}

TEST_F(ABusService, SignalsHoldEndedWhenAHoldIsReleased) {
  Client sub(address());
  std::vector<std::string> ended;
  sub.proxy()
      .uponSignal("HoldEnded")
      .onInterface(bus::kInterface)
      .call([&](uint32_t cookie, const std::string& path, const std::string& why) {
        ended.push_back(std::to_string(cookie) + " " + path + " " + why);
      });
  sub.proxy().finishRegistration();
  ASSERT_EQ(GetFileStateError(sub, Path("db/a.sst")), "");
  // busctl takes a hold and leaves the bus: its hold ends with it.
  ASSERT_EQ(Call("Hold", {"sss", Path("db/a.sst"), "dax", ""}).exit_code, 0);
  ASSERT_TRUE(sub.PumpUntil([&] { return ended.size() == 1; }));
  EXPECT_EQ(ended[0], "1 " + Path("db/a.sst") + " holder left the bus");
  Client holder(address());
  uint32_t cookie = 0;
  holder.proxy()
      .callMethod("Hold")
      .onInterface(bus::kInterface)
      .withArguments(Path("db/b.sst"), std::string("page-cache"), std::string(""))
      .storeResultsTo(cookie);
  holder.proxy().callMethod("Release").onInterface(bus::kInterface).withArguments(cookie);
  ASSERT_TRUE(sub.PumpUntil([&] { return ended.size() == 2; }));
  EXPECT_EQ(ended[1], "2 " + Path("db/b.sst") + " released");
}

struct BadCall {
  std::string what;
  std::function<void(sdbus::IProxy&)> call;
  std::string error;
  std::string message;
};

TEST_F(ABusService, RefusesBadArgumentsWithAClearError) {
  Client c(address());
  const std::string long_path = "/" + std::string(4096, 'a');
  auto file_state = [](std::string path) {
    return [path](sdbus::IProxy& p) {
      Dict d;
      p.callMethod("GetFileState")
          .onInterface(bus::kInterface)
          .withArguments(path)
          .storeResultsTo(d);
    };
  };
  auto hold = [](std::string path, std::string mode, std::string reason) {
    return [=](sdbus::IProxy& p) {
      uint32_t cookie;
      p.callMethod("Hold")
          .onInterface(bus::kInterface)
          .withArguments(path, mode, reason)
          .storeResultsTo(cookie);
    };
  };
  const std::string a = Path("db/a.sst");
  std::vector<BadCall> cases = {
      {"empty", file_state(""), bus::kErrorInvalidArgument, "the path is empty"},
      {"relative", file_state("db/a.sst"), bus::kErrorInvalidArgument,
       "the path 'db/a.sst' is not absolute"},
      {"dot-dot", file_state("/srv/../etc/passwd"), bus::kErrorInvalidArgument,
       "the path '/srv/../etc/passwd' is not normalized (it contains a '..' component)"},
      {"dot", file_state("/srv/./x"), bus::kErrorInvalidArgument,
       "the path '/srv/./x' is not normalized (it contains a '.' component)"},
      {"double slash", file_state("/srv//x"), bus::kErrorInvalidArgument,
       "the path '/srv//x' is not normalized (it contains '//')"},
      {"trailing slash", file_state("/srv/x/"), bus::kErrorInvalidArgument,
       "the path '/srv/x/' ends with '/'"},
      {"too long", file_state(long_path), bus::kErrorInvalidArgument,
       "the path is 4097 bytes long, more than the 4096 allowed"},
      {"untracked", file_state("/etc/passwd"), bus::kErrorNotManaged,
       "/etc/passwd is not tracked by daxpolicyd"},
      {"explain relative",
       [](sdbus::IProxy& p) {
         std::string s;
         p.callMethod("Explain")
             .onInterface(bus::kInterface)
             .withArguments(std::string("x"))
             .storeResultsTo(s);
       },
       bus::kErrorInvalidArgument, "the path 'x' is not absolute"},
      {"hold mode", hold(a, "on", ""), bus::kErrorInvalidArgument,
       "unknown hold mode 'on': expected dax or page-cache"},
      {"hold empty mode", hold(a, "", ""), bus::kErrorInvalidArgument,
       "unknown hold mode '': expected dax or page-cache"},
      {"hold path", hold("", "dax", ""), bus::kErrorInvalidArgument, "the path is empty"},
      {"hold reason", hold(a, "dax", std::string(4097, 'r')), bus::kErrorInvalidArgument,
       "the reason is 4097 bytes long, more than the 4096 allowed"},
      {"hold untracked", hold("/etc/passwd", "dax", ""), bus::kErrorNotManaged,
       "/etc/passwd is not managed by daxpolicyd"},
      {"list state",
       [](sdbus::IProxy& p) {
         std::vector<sdbus::Struct<std::string, std::string, std::string, std::string, std::string>>
             f;
         p.callMethod("ListFiles")
             .onInterface(bus::kInterface)
             .withArguments(std::string("in_sync"))
             .storeResultsTo(f);
       },
       bus::kErrorInvalidArgument,
       "unknown state 'in_sync': expected \"\" or one of unmanaged, in-sync, pending, deferred, "
       "observed, blocked"},
      {"set mode",
       [](sdbus::IProxy& p) {
         p.callMethod("SetMode").onInterface(bus::kInterface).withArguments(std::string("dax"));
       },
       bus::kErrorInvalidArgument, "unknown mode 'dax': expected enforce or observe"},
      {"release unknown",
       [](sdbus::IProxy& p) {
         p.callMethod("Release").onInterface(bus::kInterface).withArguments(uint32_t{77});
       },
       bus::kErrorInvalidArgument, "no hold of yours has cookie 77"},
  };
  for (const auto& bad : cases) {
    EXPECT_EQ(c.ErrorOf(bad.call), bad.error) << bad.what;
    EXPECT_EQ(c.last_message(), bad.message) << bad.what;
  }
  // Still serving.
  EXPECT_EQ(GetFileStateError(c, a), "");
}

TEST_F(ABusService, NeverSeesInvalidUtf8BecauseClientsCannotSendIt) {
  // sd-bus validates strings while building the message: busctl fails before sending.
  CommandResult r = Call("GetFileState", {"s", "/srv/\xff\xfe"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("Invalid argument"), std::string::npos) << r.err;
  // So does sdbus-c++, with an sdbus::Error and no message sent.
  Client c(address());
  EXPECT_EQ(GetFileStateError(c, "/srv/\xc0\xaf"), "org.freedesktop.DBus.Error.InvalidArgs");
  // The service is unharmed and keeps answering.
  EXPECT_EQ(GetFileStateError(c, Path("db/a.sst")), "");
}

TEST_F(ABusService, EmitsPropertiesChangedWhenSetModeChangesTheMode) {
  Client sub(address());
  std::vector<std::pair<std::string, Dict>> changes;
  sub.proxy()
      .uponSignal("PropertiesChanged")
      .onInterface("org.freedesktop.DBus.Properties")
      .call([&](const std::string& iface, const Dict& changed, const std::vector<std::string>&) {
        changes.emplace_back(iface, changed);
      });
  sub.proxy().finishRegistration();
  CommandResult r = Call("SetMode", {"s", "observe"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(sub.PumpUntil([&] { return !changes.empty(); }));
  EXPECT_EQ(changes[0].first, bus::kInterface);
  ASSERT_EQ(changes[0].second.count("Mode"), 1u);
  EXPECT_EQ(changes[0].second.at("Mode").get<std::string>(), "observe");
  EXPECT_EQ(Busctl({"get-property", bus::kBusName, bus::kObjectPath, bus::kInterface, "Mode"}).out,
            "s \"observe\"\n");
  // Back to enforce: one more signal, and none for the no-op in between.
  ASSERT_EQ(Call("SetMode", {"s", "observe"}).exit_code, 0);
  ASSERT_EQ(Call("SetMode", {"s", "enforce"}).exit_code, 0);
  ASSERT_TRUE(sub.PumpUntil([&] { return changes.size() >= 2; }));
  EXPECT_EQ(changes[1].second.at("Mode").get<std::string>(), "enforce");
}

TEST_F(ABusService, EmitsReloadedOnEveryReloadAndRefusesABadPolicy) {
  Client sub(address());
  std::vector<std::pair<bool, std::string>> reloads;
  std::vector<Dict> changes;
  sub.proxy()
      .uponSignal("Reloaded")
      .onInterface(bus::kInterface)
      .call([&](bool ok, const std::string& message) { reloads.emplace_back(ok, message); });
  sub.proxy()
      .uponSignal("PropertiesChanged")
      .onInterface("org.freedesktop.DBus.Properties")
      .call([&](const std::string&, const Dict& changed, const std::vector<std::string>&) {
        changes.push_back(changed);
      });
  sub.proxy().finishRegistration();

  CommandResult ok = Call("Reload");
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  ASSERT_TRUE(sub.PumpUntil([&] { return reloads.size() == 1 && changes.size() == 1; }));
  EXPECT_EQ(reloads[0], std::make_pair(true, std::string("ok: generation 2")));
  EXPECT_EQ(changes[0].at("PolicyGeneration").get<uint64_t>(), 2u);
  EXPECT_EQ(changes[0].at("LastReloadResult").get<std::string>(), "ok: generation 2");

  WriteFile(Path("bad-policy"), "/etc/daxpolicy/policy.yaml:3:5: unknown key 'ruels'");
  Client caller(address());
  EXPECT_EQ(
      caller.ErrorOf([](sdbus::IProxy& p) { p.callMethod("Reload").onInterface(bus::kInterface); }),
      bus::kErrorPolicyInvalid);
  EXPECT_EQ(caller.last_message(), "/etc/daxpolicy/policy.yaml:3:5: unknown key 'ruels'");
  ASSERT_TRUE(sub.PumpUntil([&] { return reloads.size() == 2 && changes.size() == 2; }));
  EXPECT_EQ(
      reloads[1],
      std::make_pair(false,
                     std::string("refused: /etc/daxpolicy/policy.yaml:3:5: unknown key 'ruels'")));
  EXPECT_EQ(changes[1].count("PolicyGeneration"), 0u);  // the old policy stays
  EXPECT_EQ(
      Busctl({"get-property", bus::kBusName, bus::kObjectPath, bus::kInterface, "PolicyGeneration"})
          .out,
      "t 2\n");

  // SIGHUP in the daemon emits through EmitReloaded / Publish.
  std::filesystem::remove(Path("bad-policy"));
  kill(server_->pid(), SIGHUP);
  ASSERT_TRUE(sub.PumpUntil([&] { return reloads.size() == 3; }));
  EXPECT_EQ(reloads[2], std::make_pair(true, std::string("ok: generation 3")));
}

TEST_F(ABusService, DeliversStateChangedAndSwitchPendingToSubscribers) {
  Client sub(address());
  std::vector<std::vector<std::string>> states;
  std::vector<std::pair<std::string, Holders>> pendings;
  Dict counts;
  int property_signals = 0;
  sub.proxy()
      .uponSignal("StateChanged")
      .onInterface(bus::kInterface)
      .call([&](const std::string& path, const std::string& state, const std::string& physical,
                const std::string& effective, const std::string& rule) {
        states.push_back({path, state, physical, effective, rule});
      });
  sub.proxy()
      .uponSignal("SwitchPending")
      .onInterface(bus::kInterface)
      .call([&](const std::string& path, const std::string& desired, const Holders& holders) {
        pendings.emplace_back(path + " " + desired, holders);
      });
  sub.proxy()
      .uponSignal("PropertiesChanged")
      .onInterface("org.freedesktop.DBus.Properties")
      .call([&](const std::string&, const Dict& changed, const std::vector<std::string>&) {
        counts = changed;
        ++property_signals;
      });
  sub.proxy().finishRegistration();
  // A round trip: the match rules are in place at the bus before the server emits.
  ASSERT_EQ(GetFileStateError(sub, Path("db/a.sst")), "");
  kill(server_->pid(), SIGUSR1);
  ASSERT_TRUE(
      sub.PumpUntil([&] { return !states.empty() && !pendings.empty() && !counts.empty(); }));
  EXPECT_EQ(states[0],
            (std::vector<std::string>{Path("db/a.sst"), "in-sync", "dax", "dax", "reread-heavy"}));
  EXPECT_EQ(pendings[0].first, Path("db/b.sst") + " dax");
  ASSERT_EQ(pendings[0].second.size(), 1u);
  EXPECT_EQ(pendings[0].second[0].get<0>(), 4242u);
  EXPECT_EQ(pendings[0].second[0].get<1>(), "postgres");
  EXPECT_EQ(counts.at("PendingFiles").get<uint64_t>(), 2u);
  EXPECT_EQ(counts.at("ManagedFiles").get<uint64_t>(), 5u);
  // Published twice, announced once: nothing changed between the two. A duplicate would
  // come before the answer to a later call (one sender's messages stay in order), so one
  // round trip and a drain of what arrived before it show it if there is one.
  ASSERT_EQ(GetFileStateError(sub, Path("db/a.sst")), "");
  sub.PumpUntil([] { return true; });
  EXPECT_EQ(property_signals, 1);
}

}  // namespace
}  // namespace daxpolicy::testing
