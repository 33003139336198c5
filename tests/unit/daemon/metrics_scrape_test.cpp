// SPDX-License-Identifier: Apache-2.0
// The exporter over real HTTP: curl, promtool and a real Prometheus server.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "daemon/metrics.h"
#include "tests/support/test_support.h"
#include "tests/unit/daemon/metrics_fake_source.h"

extern char** environ;

namespace daxpolicy::daemon {
namespace {

using daxpolicy::testing::CommandResult;
using daxpolicy::testing::TempDir;
using daxpolicy::testing::WriteFile;
using ::testing::HasSubstr;

bool HaveProgram(const std::string& name) {
  return daxpolicy::testing::Run({"sh", "-c", "command -v " + name}).exit_code == 0;
}

CommandResult Curl(const std::string& url) {
  return daxpolicy::testing::Run({"curl", "-sS", "--max-time", "5", "--fail", url});
}

// A port nobody listens on right now (the kernel's pick for port 0).
int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// A child process killed and reaped when the object goes away.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv, const std::string& log_path) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    if (posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~Child() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  bool running() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  pid_t pid_ = -1;
};

TEST(TheMetricsEndpoint, ServesTheRegistryOverHttpInAFormatPromtoolAccepts) {
  DAXPOLICY_REQUIRE(HaveProgram("curl"), "curl");
  DAXPOLICY_REQUIRE(HaveProgram("promtool"), "promtool (Debian package prometheus)");
  Metrics metrics("0.1.0");
  testing::FakeMetricsSource source = testing::TypicalSource();
  metrics.Update(source, 0.004);
  auto exposer = MetricsExposer::Start("127.0.0.1:0", metrics.registry());
  ASSERT_TRUE(exposer.ok()) << exposer.error().message;
  const std::string base = "http://127.0.0.1:" + std::to_string(exposer.value()->port());

  CommandResult scrape = Curl(base + "/metrics");
  ASSERT_EQ(scrape.exit_code, 0) << scrape.err;
  EXPECT_THAT(scrape.out, HasSubstr("daxpolicy_files{state=\"in-sync\"} 120\n"));
  EXPECT_THAT(scrape.out, HasSubstr("daxpolicy_build_info{version=\"0.1.0\"} 1\n"));
  EXPECT_THAT(scrape.out, HasSubstr("daxpolicy_cycle_duration_seconds_count 1\n"));

  TempDir dir;
  WriteFile(dir.path() / "scrape.prom", scrape.out);
  CommandResult check = daxpolicy::testing::Run(
      {"sh", "-c", "promtool check metrics < '" + (dir.path() / "scrape.prom").string() + "'"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_EQ(check.out + check.err, "") << "promtool reported problems";

  EXPECT_NE(daxpolicy::testing::Run({"curl", "-sS", "--fail", base + "/other"}).exit_code, 0);
}

// A TCP connection to 127.0.0.1:port that sends `request` (maybe nothing, maybe
// half a request) and then stays open without another byte.
class IdleClient {
 public:
  IdleClient(int port, const std::string& request) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    connected_ = fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                 (request.empty() || send(fd_, request.data(), request.size(), MSG_NOSIGNAL) ==
                                         static_cast<ssize_t>(request.size()));
  }
  ~IdleClient() {
    if (fd_ >= 0) close(fd_);
  }
  IdleClient(const IdleClient&) = delete;
  IdleClient& operator=(const IdleClient&) = delete;
  bool connected() const { return connected_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

// Two idle connections once stopped every scrape for 30 s: the exporter had two
// threads and civetweb waits 30 s for a request by default.
TEST(TheMetricsEndpoint, AnswersScrapesWhileIdleAndSlowClientsHoldConnections) {
  DAXPOLICY_REQUIRE(HaveProgram("curl"), "curl");
  Metrics metrics("0.1.0");
  testing::FakeMetricsSource source = testing::TypicalSource();
  metrics.Update(source, 0.004);
  auto exposer = MetricsExposer::Start("127.0.0.1:0", metrics.registry());
  ASSERT_TRUE(exposer.ok()) << exposer.error().message;
  const int port = exposer.value()->port();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/metrics";

  // All threads but one held: idle clients, a slow one in the middle of its
  // request line and headers, one that sent a request and never reads.
  std::vector<std::unique_ptr<IdleClient>> clients;
  for (int i = 0; i + 3 < kMetricsThreads; ++i) {
    clients.push_back(std::make_unique<IdleClient>(port, ""));
  }
  clients.push_back(std::make_unique<IdleClient>(port, "GET /metr"));
  clients.push_back(std::make_unique<IdleClient>(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n"));
  for (const auto& c : clients) ASSERT_TRUE(c->connected());
  // A scrape gets the free thread at once (well within a second; the limit
  // only keeps a regression from hanging the test).
  CommandResult scrape = daxpolicy::testing::Run({"curl", "-sS", "--max-time", "2", "--fail", url});
  ASSERT_EQ(scrape.exit_code, 0) << scrape.err;
  EXPECT_THAT(scrape.out, HasSubstr("daxpolicy_files{state=\"in-sync\"} 120\n"));

  // Every thread held twice over: the request timeout frees them, so the scrape
  // is answered after at most two timeouts instead of waiting 30 s per client.
  for (int i = 0; i < kMetricsThreads + 3; ++i) {
    clients.push_back(std::make_unique<IdleClient>(port, ""));
  }
  const auto start = std::chrono::steady_clock::now();
  scrape = daxpolicy::testing::Run({"curl", "-sS", "--max-time", "15", "--fail", url});
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(scrape.exit_code, 0) << scrape.err;
  EXPECT_THAT(scrape.out, HasSubstr("daxpolicy_files{state=\"in-sync\"} 120\n"));
  RecordProperty("scrape_seconds_behind_idle_clients", std::to_string(seconds));
  std::printf("scrape behind %zu idle clients: %.2f s\n", clients.size(), seconds);
}

TEST(TheMetricsEndpoint, ShowsAnUpdateInTheNextScrape) {
  DAXPOLICY_REQUIRE(HaveProgram("curl"), "curl");
  Metrics metrics("0.1.0");
  testing::FakeMetricsSource source = testing::TypicalSource();
  metrics.Update(source, 0.004);
  auto exposer = MetricsExposer::Start("127.0.0.1:0", metrics.registry());
  ASSERT_TRUE(exposer.ok()) << exposer.error().message;
  const std::string url =
      "http://127.0.0.1:" + std::to_string(exposer.value()->port()) + "/metrics";
  source.gauges_.files_by_state[policy::FileState::kBlocked] = 9;
  metrics.Update(source, 0.004);
  CommandResult scrape = Curl(url);
  ASSERT_EQ(scrape.exit_code, 0) << scrape.err;
  EXPECT_THAT(scrape.out, HasSubstr("daxpolicy_files{state=\"blocked\"} 9\n"));
}

TEST(APrometheusServer, ScrapesTheExporterAndAnswersAQueryWithTheFileCounts) {
  DAXPOLICY_REQUIRE(HaveProgram("curl"), "curl");
  DAXPOLICY_REQUIRE(HaveProgram("prometheus"), "prometheus (Debian package prometheus)");
  Metrics metrics("0.1.0");
  testing::FakeMetricsSource source = testing::TypicalSource();
  metrics.Update(source, 0.004);
  auto exposer = MetricsExposer::Start("127.0.0.1:0", metrics.registry());
  ASSERT_TRUE(exposer.ok()) << exposer.error().message;

  TempDir dir;
  const std::string target = "127.0.0.1:" + std::to_string(exposer.value()->port());
  WriteFile(dir.path() / "prometheus.yml",
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: daxpolicy\n    static_configs:\n"
            "      - targets: ['" +
                target + "']\n");
  const int port = FreeLoopbackPort();
  ASSERT_GT(port, 0);
  const std::string web = "127.0.0.1:" + std::to_string(port);
  Child server(
      {"prometheus", "--config.file=" + (dir.path() / "prometheus.yml").string(),
       "--storage.tsdb.path=" + (dir.path() / "data").string(), "--web.listen-address=" + web},
      (dir.path() / "prometheus.log").string());
  ASSERT_TRUE(server.running());

  // The first scrape happens within a scrape interval of the target being
  // discovered; allow a generous bound for a loaded machine.
  const std::string query = "http://" + web + "/api/v1/query?query=daxpolicy_files";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::string answer;
  while (std::chrono::steady_clock::now() < deadline) {
    CommandResult r = Curl(query);
    if (r.exit_code == 0 && r.out.find("\"state\":\"in-sync\"") != std::string::npos) {
      answer = r.out;
      break;
    }
    ASSERT_TRUE(server.running()) << daxpolicy::testing::ReadFile(dir.path() / "prometheus.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_FALSE(answer.empty()) << "no scrape within 60 s\n"
                               << daxpolicy::testing::ReadFile(dir.path() / "prometheus.log");
  EXPECT_THAT(answer, HasSubstr("\"status\":\"success\""));
  const std::pair<const char*, const char*> expected[] = {{"unmanaged", "4"}, {"in-sync", "120"},
                                                          {"pending", "2"},   {"deferred", "5"},
                                                          {"observed", "0"},  {"blocked", "1"}};
  for (const auto& [state, value] : expected) {
    // Labels come sorted: __name__, instance, job, state.
    const std::regex series(std::string("\"state\":\"") + state + "\"\\},\"value\":\\[[0-9.]+,\"" +
                            value + "\"\\]");
    EXPECT_TRUE(std::regex_search(answer, series)) << state << " = " << value << " in " << answer;
  }
}

}  // namespace
}  // namespace daxpolicy::daemon
