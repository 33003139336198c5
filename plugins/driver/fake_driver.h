// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <map>
#include <mutex>
#include <vector>

#include "plugins/driver/dax_driver.h"

namespace daxpolicy::driver {

/// An in-memory driver for tests of the daemon: files are keyed by FileRef::path (the scope
/// root fd is ignored), Apply() follows the same protocol as InodeFlagDriver (maps_sync before
/// turning DAX off, before_change before a change, refusals as outcomes) and every call is
/// recorded. Every call may come from any thread (the engine's loop re-checks
/// effective states while its worker applies): one lock guards the files,
/// held through Apply() (its hooks may call back on the same thread).
class FakeDriver : public DaxDriver {
 public:
  struct Call {
    std::string path;
    DaxState desired = DaxState::kUnknown;
  };

  /// Adds or replaces a file. Unknown paths read as vanished.
  void SetFile(const std::string& path, FileFlags flags);
  /// Makes Apply() on `path` refuse with `blocked` (after reading it).
  void Block(const std::string& path, Blocked blocked);
  /// Lets Apply() on `path` go through again.
  void Unblock(const std::string& path);
  /// A held file keeps its effective state when the physical flag changes (pending).
  void SetHeld(const std::string& path, bool held);
  /// The current state of a file (nullptr if unknown); valid until the next
  /// SetFile() or Apply() of that file.
  const FileFlags* Find(const std::string& path) const;

  std::string_view Name() const override { return "fake"; }
  Result<FileFlags> Read(const FileRef& ref) override;
  Result<ApplyOutcome> Apply(const FileRef& ref, DaxState desired,
                             const ApplyHooks& hooks) override;

  /// Every Apply() call, oldest first (read it while no Apply() runs).
  const std::vector<Call>& calls() const { return calls_; }

 private:
  mutable std::recursive_mutex mu_;
  std::map<std::string, FileFlags> files_;
  std::map<std::string, Blocked> blocks_;
  std::map<std::string, bool> held_;
  std::vector<Call> calls_;
};

}  // namespace daxpolicy::driver
