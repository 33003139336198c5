// SPDX-License-Identifier: Apache-2.0
// The per-user limit on method calls, on a private system bus with bus_test_server: a
// process running as nobody floods GetFileState with many calls in flight, while root's
// GetFileState calls go on being answered. The flooder gets LimitExceeded once over its
// limit, and so does any other connection of the same user. The latencies of root's calls
// with and without the flood are reported, not asserted.

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sdbus-c++/sdbus-c++.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/bus/bus_names.h"
#include "daemon/bus/call_limits.h"
#include "tests/integration/daemon/bus_fixture.h"

namespace daxpolicy::testing {
namespace {

using Clock = std::chrono::steady_clock;
using Dict = std::map<std::string, sdbus::Variant>;

struct FloodCounts {
  long sent = 0, ok = 0, other = 0;
  long limited[2] = {0, 0};  // per connection
  double seconds = 0;
  char refusal[256] = {};  // the first LimitExceeded message
};

// In a child: becomes nobody (unless `as_root`) and keeps `window` GetFileState calls in
// flight, spread over two connections, for `seconds`, or for at least `seconds` and at most
// a minute until each connection was refused 10 times when `until_limited` (the time it
// takes depends on how fast the machine is). Writes the counts to `out` and exits.
[[noreturn]] void Flood(const std::string& address, const std::string& path, bool as_root,
                        bool until_limited, int window, double seconds, int out) {
  group* nogroup = getgrnam("nogroup");
  if (!as_root && (setgroups(0, nullptr) != 0 || nogroup == nullptr ||
                   setgid(nogroup->gr_gid) != 0 || setuid(NobodyUid()) != 0)) {
    _exit(3);
  }
  FloodCounts c;
  try {
    std::unique_ptr<sdbus::IConnection> connections[2] = {
        sdbus::createSessionBusConnectionWithAddress(address),
        sdbus::createSessionBusConnectionWithAddress(address)};
    std::unique_ptr<sdbus::IProxy> proxies[2] = {
        sdbus::createProxy(*connections[0], bus::kBusName, bus::kObjectPath),
        sdbus::createProxy(*connections[1], bus::kBusName, bus::kObjectPath)};
    long in_flight = 0;
    const auto start = Clock::now();
    const auto min_end = start + std::chrono::duration<double>(seconds);
    const auto max_end = start + std::chrono::seconds(60);
    auto sending = [&] {
      const auto now = Clock::now();
      if (!until_limited || now >= max_end) return now < min_end;
      return now < min_end || c.limited[0] < 10 || c.limited[1] < 10;
    };
    while (sending() || in_flight > 0) {
      while (in_flight < window && sending()) {
        const int i = static_cast<int>(c.sent % 2);
        proxies[i]
            ->callMethodAsync("GetFileState")
            .onInterface(bus::kInterface)
            .withArguments(path)
            .uponReplyInvoke([&c, &in_flight, i](const sdbus::Error* error, const Dict&) {
              --in_flight;
              if (error == nullptr) {
                ++c.ok;
              } else if (error->getName() == bus::kErrorLimitExceeded) {
                if (c.limited[0] + c.limited[1] == 0) {
                  std::snprintf(c.refusal, sizeof c.refusal, "%s", error->getMessage().c_str());
                }
                ++c.limited[i];
              } else {
                ++c.other;
              }
            });
        ++in_flight;
        ++c.sent;
      }
      pollfd fds[2];
      int wait = 100;
      for (int i = 0; i < 2; ++i) {
        while (connections[i]->processPendingRequest()) {
        }
        auto pd = connections[i]->getEventLoopPollData();
        fds[i] = {pd.fd, pd.events, 0};
        if (pd.getPollTimeout() >= 0 && pd.getPollTimeout() < wait) wait = pd.getPollTimeout();
      }
      poll(fds, 2, wait);
    }
    c.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  } catch (const sdbus::Error&) {
    _exit(4);
  }
  if (write(out, &c, sizeof c) != static_cast<ssize_t>(sizeof c)) _exit(5);
  _exit(0);
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

using ACallLimit = BusServerTest;

TEST_F(ACallLimit, RefusesAFloodingUserAndKeepsAnsweringOthers) {
  auto root = sdbus::createSessionBusConnectionWithAddress(address());
  auto proxy = sdbus::createProxy(*root, bus::kBusName, bus::kObjectPath);
  const std::string file = Path("db/b.sst");
  auto call = [&]() -> double {
    const auto t0 = Clock::now();
    Dict d;
    proxy->callMethod("GetFileState")
        .onInterface(bus::kInterface)
        .withArguments(file)
        .storeResultsTo(d);
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  };
  // Root's calls while a flooder runs; `quiet` when none does.
  auto measure = [&](std::optional<bool> flooder_is_root, double seconds, FloodCounts* counts) {
    std::vector<double> latencies;
    if (!flooder_is_root) {
      for (int i = 0; i < 300; ++i) latencies.push_back(call());
      return latencies;
    }
    int p[2];
    EXPECT_EQ(pipe2(p, O_CLOEXEC), 0);
    pid_t flooder = fork();
    EXPECT_GE(flooder, 0);
    if (flooder == 0) {
      Flood(address(), Path("user/mine"), *flooder_is_root, !*flooder_is_root, 64, seconds, p[1]);
    }
    close(p[1]);
    int status = 0;
    while (waitpid(flooder, &status, WNOHANG) == 0) {
      try {
        latencies.push_back(call());
      } catch (const sdbus::Error& e) {
        ADD_FAILURE() << "root's call failed during the flood: " << e.getName() << ": "
                      << e.getMessage();
      }
    }
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "flooder status " << status;
    EXPECT_EQ(read(p[0], counts, sizeof *counts), static_cast<ssize_t>(sizeof *counts));
    close(p[0]);
    return latencies;
  };
  FloodCounts by_root, by_nobody;
  const std::vector<double> quiet = measure(std::nullopt, 0, nullptr);
  const std::vector<double> limited = measure(false, 3, &by_nobody);
  // As long a flood by root, whose calls are never limited: what a flood cost before.
  const std::vector<double> unlimited = measure(true, by_nobody.seconds, &by_root);

  auto line = [](const char* what, const std::vector<double>& v) {
    std::printf(
        "[ figures  ] root's GetFileState %s: p50 %.3f ms, p99 %.3f ms, max %.3f ms (%zu "
        "calls)\n",
        what, Percentile(v, 0.5), Percentile(v, 0.99), Percentile(v, 1.0), v.size());
  };
  line("without a flood", quiet);
  line("during root's (unlimited) flood", unlimited);
  line("during nobody's (limited) flood", limited);
  for (const auto& [who, c] : {std::pair{"root", by_root}, std::pair{"nobody", by_nobody}}) {
    std::printf(
        "[ figures  ] flood by %s (2 connections, 64 calls in flight, %.1f s): %ld calls, "
        "%ld answered, %ld + %ld LimitExceeded, %ld other errors\n",
        who, c.seconds, c.sent, c.ok, c.limited[0], c.limited[1], c.other);
  }

  EXPECT_EQ(by_root.limited[0] + by_root.limited[1], 0) << "root was limited";
  // Each of nobody's connections was refused: the limit is per user, not per connection.
  EXPECT_GT(by_nobody.limited[0], 0) << "the flooder was never limited";
  EXPECT_GT(by_nobody.limited[1], 0) << "the flooder's second connection was never limited";
  EXPECT_EQ(by_nobody.other, 0);
  // Within the burst and the rate (with a second of slack), never more.
  EXPECT_GT(by_nobody.ok, 0);
  EXPECT_LE(by_nobody.ok,
            static_cast<long>(bus::kCallBurst + bus::kCallsPerSecond * (by_nobody.seconds + 1)));
  EXPECT_FALSE(limited.empty());

  // What a limited caller is told.
  EXPECT_EQ(std::string(by_nobody.refusal),
            "GetFileState: too many calls from uid " + std::to_string(NobodyUid()) +
                ": at most 200 per second after a burst of 500; try again later");
}

}  // namespace
}  // namespace daxpolicy::testing
