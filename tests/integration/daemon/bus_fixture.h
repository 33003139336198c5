// SPDX-License-Identifier: Apache-2.0
#pragma once

// A private system-type dbus-daemon and the bus_test_server on it, both children of the
// test, stopped and reaped when the objects die.

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace daxpolicy::testing {

// dbus-daemon --nofork with tests/integration/daemon/bus_test_bus.conf, listening on a
// socket in a world-accessible temporary directory.
class PrivateSystemBus {
 public:
  static std::unique_ptr<PrivateSystemBus> Start(std::string* error);
  ~PrivateSystemBus();
  const std::string& address() const { return address_; }

 private:
  PrivateSystemBus() = default;
  std::unique_ptr<TempDir> dir_;
  pid_t pid_ = -1;
  std::string address_;
};

// A child process with its stdout and stderr on pipes.
class Child {
 public:
  // Runs argv with extra environment entries ("NAME=value"); stdin is /dev/null. When
  // `new_group`, the child leads a new process group.
  static std::unique_ptr<Child> Spawn(const std::vector<std::string>& argv,
                                      const std::vector<std::string>& env, bool new_group,
                                      std::string* error);
  ~Child();  // SIGKILLs the process group (or the process) if still running, reaps it
  // Waits until stdout / stderr contains `needle` (collected so far), up to timeout_ms.
  bool WaitForOutput(const std::string& needle, int timeout_ms);
  bool WaitForError(const std::string& needle, int timeout_ms);
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }
  pid_t pid() const { return pid_; }
  // Sends `sig`, waits for the exit; returns the exit code (128+signal when killed).
  int StopWith(int sig);
  int Wait();

 private:
  Child() = default;
  bool WaitFor(const std::string& needle, bool in_err, int timeout_ms);
  void ReadAvailable(int timeout_ms);
  pid_t pid_ = -1;
  bool new_group_ = false;
  bool reaped_ = false;
  int status_ = 0;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
};

// Runs argv to completion with DBUS_SYSTEM_BUS_ADDRESS=address; as_nobody runs it as
// nobody:nogroup without supplementary groups (setpriv).
CommandResult RunOnBus(const std::string& address, const std::vector<std::string>& argv,
                       bool as_nobody = false);

// The argv prefix that runs a program as nobody.
std::vector<std::string> AsNobody();
uid_t NobodyUid();

bool HaveProgram(const std::string& name);

// A private system bus with bus_test_server on it, serving fake files under dir():
// db/a.sst (pending, one holder), db/b.sst (in-sync), logs/big.log (observed), keep/x
// (unmanaged), user/mine (in-sync, owned by nobody). Needs root, dbus-daemon, busctl, setpriv.
class BusServerTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  std::string Path(const std::string& relative) const { return dir_->path() / relative; }
  const std::string& address() const { return bus_->address(); }
  // busctl --address=... call <service> <object> <interface> member [signature args...]
  CommandResult Call(const std::string& member, const std::vector<std::string>& args = {},
                     bool as_nobody = false);
  // busctl --address=... <verb> ... with the service's name and object path inserted.
  CommandResult Busctl(const std::vector<std::string>& args, bool as_nobody = false);
  // daxpolicyctl on the private bus.
  CommandResult Ctl(const std::vector<std::string>& args, bool as_nobody = false);

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<PrivateSystemBus> bus_;
  std::unique_ptr<Child> server_;
};

}  // namespace daxpolicy::testing
