// SPDX-License-Identifier: Apache-2.0
#include "tests/integration/daemon/bus_fixture.h"

#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

extern char** environ;

namespace daxpolicy::testing {
namespace {

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string ReplaceAll(std::string text, const std::string& from, const std::string& to) {
  for (size_t pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos)) {
    text.replace(pos, from.size(), to);
    pos += to.size();
  }
  return text;
}

}  // namespace

bool HaveProgram(const std::string& name) {
  return Run({"sh", "-c", "command -v " + name}).exit_code == 0;
}

std::vector<std::string> AsNobody() {
  return {"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"};
}

uid_t NobodyUid() {
  passwd* pw = getpwnam("nobody");
  return pw != nullptr ? pw->pw_uid : 65534;
}

std::unique_ptr<PrivateSystemBus> PrivateSystemBus::Start(std::string* error) {
  std::unique_ptr<PrivateSystemBus> bus(new PrivateSystemBus);
  bus->dir_ = std::make_unique<TempDir>();
  // nobody must reach the socket.
  chmod(bus->dir_->path().c_str(), 0755);
  const std::string socket = (bus->dir_->path() / "system_bus_socket").string();
  std::string config = ReadFile(std::filesystem::path(DAXPOLICY_SOURCE_DIR) /
                                "tests/integration/daemon/bus_test_bus.conf");
  config = ReplaceAll(config, "@LISTEN@", "unix:path=" + socket);
  const std::string config_path = (bus->dir_->path() / "bus.conf").string();
  WriteFile(config_path, config);

  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) {
    *error = std::string("pipe: ") + std::strerror(errno);
    return nullptr;
  }
  pid_t pid = fork();
  if (pid == 0) {
    dup2(p[1], 3);
    execlp("dbus-daemon", "dbus-daemon", ("--config-file=" + config_path).c_str(), "--nofork",
           "--print-address=3", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(p[1]);
  if (pid < 0) {
    close(p[0]);
    *error = std::string("fork: ") + std::strerror(errno);
    return nullptr;
  }
  bus->pid_ = pid;
  std::string line;
  char c;
  while (read(p[0], &c, 1) == 1 && c != '\n') line.push_back(c);
  close(p[0]);
  if (line.empty()) {
    *error = "dbus-daemon printed no address";
    return nullptr;
  }
  bus->address_ = line;
  return bus;
}

PrivateSystemBus::~PrivateSystemBus() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    int status;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

std::unique_ptr<Child> Child::Spawn(const std::vector<std::string>& argv,
                                    const std::vector<std::string>& env, bool new_group,
                                    std::string* error) {
  std::unique_ptr<Child> child(new Child);
  child->new_group_ = new_group;
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    *error = std::string("pipe: ") + std::strerror(errno);
    return nullptr;
  }
  std::vector<std::string> environment;
  for (char** e = environ; *e != nullptr; ++e) environment.emplace_back(*e);
  for (const auto& e : env) environment.push_back(e);
  std::vector<char*> envp, args;
  for (auto& e : environment) envp.push_back(e.data());
  envp.push_back(nullptr);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    if (new_group) setpgid(0, 0);
    int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    execvpe(args[0], args.data(), envp.data());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  if (pid < 0) {
    close(out[0]);
    close(err[0]);
    *error = std::string("fork: ") + std::strerror(errno);
    return nullptr;
  }
  if (new_group) setpgid(pid, pid);  // also here: no race with an early kill
  child->pid_ = pid;
  child->out_fd_ = out[0];
  child->err_fd_ = err[0];
  return child;
}

void Child::ReadAvailable(int timeout_ms) {
  pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
  if (poll(fds, 2, timeout_ms) <= 0) return;
  char buf[4096];
  for (int i = 0; i < 2; ++i) {
    if (fds[i].revents & (POLLIN | POLLHUP)) {
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) (i == 0 ? out_ : err_).append(buf, static_cast<size_t>(n));
      if (n == 0) {
        // End of file: poll() ignores negative descriptors.
        close(fds[i].fd);
        (i == 0 ? out_fd_ : err_fd_) = -1;
      }
    }
  }
}

bool Child::WaitFor(const std::string& needle, bool in_err, int timeout_ms) {
  const int64_t deadline = NowMs() + timeout_ms;
  for (;;) {
    if ((in_err ? err_ : out_).find(needle) != std::string::npos) return true;
    const int64_t left = deadline - NowMs();
    if (left <= 0) return false;
    ReadAvailable(static_cast<int>(left));
  }
}

bool Child::WaitForOutput(const std::string& needle, int timeout_ms) {
  return WaitFor(needle, false, timeout_ms);
}
bool Child::WaitForError(const std::string& needle, int timeout_ms) {
  return WaitFor(needle, true, timeout_ms);
}

int Child::Wait() {
  if (!reaped_) {
    while (waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    // Collect what is left in the pipes.
    for (int i = 0; i < 8; ++i) ReadAvailable(0);
  }
  return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
}

int Child::StopWith(int sig) {
  if (!reaped_) kill(pid_, sig);
  return Wait();
}

Child::~Child() {
  if (!reaped_) {
    kill(new_group_ ? -pid_ : pid_, SIGKILL);
    Wait();
  }
  if (out_fd_ >= 0) close(out_fd_);
  if (err_fd_ >= 0) close(err_fd_);
}

CommandResult RunOnBus(const std::string& address, const std::vector<std::string>& argv,
                       bool as_nobody) {
  std::vector<std::string> full = {"env", "DBUS_SYSTEM_BUS_ADDRESS=" + address};
  if (as_nobody) {
    auto prefix = AsNobody();
    full.insert(full.begin(), prefix.begin(), prefix.end());
  }
  full.insert(full.end(), argv.begin(), argv.end());
  return Run(full);
}

void BusServerTest::SetUp() {
  DAXPOLICY_REQUIRE(IsRoot(), "root (to run clients as nobody and own the bus name)");
  DAXPOLICY_REQUIRE(HaveProgram("dbus-daemon"), "dbus-daemon (package dbus-daemon)");
  DAXPOLICY_REQUIRE(HaveProgram("busctl"), "busctl (package systemd)");
  DAXPOLICY_REQUIRE(HaveProgram("setpriv"), "setpriv (package util-linux)");
  dir_ = std::make_unique<TempDir>();
  chmod(dir_->path().c_str(), 0755);
  for (const char* sub : {"db", "logs", "keep", "user"}) {
    std::filesystem::create_directory(dir_->path() / sub);
  }
  for (const char* f : {"db/a.sst", "db/b.sst", "logs/big.log", "keep/x", "user/mine"}) {
    WriteFile(dir_->path() / f, "data");
  }
  ASSERT_EQ(chown(Path("user/mine").c_str(), NobodyUid(), static_cast<gid_t>(-1)), 0);
  std::string error;
  bus_ = PrivateSystemBus::Start(&error);
  ASSERT_NE(bus_, nullptr) << error;
  server_ = Child::Spawn({BinaryPath("bus_test_server"), dir_->path().string()},
                         {"DBUS_SYSTEM_BUS_ADDRESS=" + bus_->address()}, false, &error);
  ASSERT_NE(server_, nullptr) << error;
  ASSERT_TRUE(server_->WaitForOutput("ready\n", 10000)) << server_->err();
}

void BusServerTest::TearDown() {
  if (server_) {
    // A clean exit also shows that no handler ever aborted the server.
    EXPECT_EQ(server_->StopWith(SIGTERM), 0) << server_->err();
  }
  server_.reset();
  bus_.reset();
}

CommandResult BusServerTest::Busctl(const std::vector<std::string>& args, bool as_nobody) {
  std::vector<std::string> argv;
  if (as_nobody) argv = AsNobody();
  argv.push_back("busctl");
  argv.push_back("--address=" + bus_->address());
  argv.insert(argv.end(), args.begin(), args.end());
  return ::daxpolicy::testing::Run(argv);
}

CommandResult BusServerTest::Call(const std::string& member, const std::vector<std::string>& args,
                                  bool as_nobody) {
  std::vector<std::string> argv = {"call", "org.daxpolicy.DaxPolicy1", "/org/daxpolicy/DaxPolicy1",
                                   "org.daxpolicy.DaxPolicy1.Manager", member};
  argv.insert(argv.end(), args.begin(), args.end());
  return Busctl(argv, as_nobody);
}

CommandResult BusServerTest::Ctl(const std::vector<std::string>& args, bool as_nobody) {
  std::vector<std::string> argv = {BinaryPath("daxpolicyctl")};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunOnBus(bus_->address(), argv, as_nobody);
}

}  // namespace daxpolicy::testing
