// SPDX-License-Identifier: Apache-2.0
#pragma once

/// A ManagerBackend over plain data, for tests of the bus service and daxpolicyctl: tests
/// fill the public fields and read back what the service did.

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "daemon/bus/manager_backend.h"

namespace daxpolicy::bus {

class FakeBackend : public ManagerBackend {
 public:
  FakeBackend();

  /// Tracked files by path; GetFile and Explain fail with kNotManaged for other paths.
  std::map<std::string, FileView> files;
  /// Explain text by path; a tracked file without one gets a generated line.
  std::map<std::string, std::string> explanations;
  media::MediaReport media_report;
  std::string degraded;
  policy::Mode current_mode = policy::Mode::kEnforce;
  uint64_t current_generation = 1;
  std::string last_reload_result = "loaded at start";
  /// When set, Reload fails with kPolicyInvalid and this message.
  std::optional<std::string> reload_error;
  std::vector<HoldInfo> holds;
  std::vector<EndedHold> ended;
  /// Called once per reload before its `done`, as the daemon emits Reloaded.
  std::function<void(bool ok, const std::string& message)> on_reloaded;
  uint32_t next_cookie = 1;
  int reload_calls = 0;
  /// What Recording() answers; StartRecording and StopRecording change it.
  daemon::RecorderStatus recording;
  /// The file StartRecording("") records to.
  std::string default_trace = "/var/lib/daxpolicy/traces/daxpolicy-test.trace";
  /// When set, StartRecording fails with kFailed and this message.
  std::optional<std::string> recording_error;

  ApiResult<FileView> GetFile(const std::string& path) const override;
  ApiResult<std::string> Explain(const std::string& path) const override;
  void ListFiles(std::optional<policy::FileState> state,
                 const std::function<void(const FileView&)>& visit) const override;
  const media::MediaReport& media() const override { return media_report; }
  std::string Degraded() const override { return degraded; }
  uint64_t ManagedFiles() const override;
  uint64_t PendingFiles() const override;
  ApiResult<uint32_t> AddHold(const std::string& path, policy::DaxState mode,
                              const std::string& reason, const Caller& caller) override;
  bool ReleaseHold(uint32_t cookie, const Caller& caller) override;
  size_t ReleaseHoldsOf(const std::string& owner) override;
  void ForEachHold(const Caller& caller,
                   const std::function<void(const HoldInfo&)>& visit) const override;
  std::vector<EndedHold> TakeEndedHolds() override;
  policy::Mode mode() const override { return current_mode; }
  void SetMode(policy::Mode mode) override { current_mode = mode; }
  uint64_t generation() const override { return current_generation; }
  /// Reloads at once: `done` is called before Reload returns.
  void Reload(const Caller& caller, ReloadDone done) override;
  std::string LastReloadResult() const override { return last_reload_result; }
  ApiResult<std::string> StartRecording(const std::string& path, uint64_t max_bytes,
                                        const Caller& caller) override;
  ApiResult<bool> StopRecording(const Caller& caller) override;
  daemon::RecorderStatus Recording() const override { return recording; }
};

/// Shorthands for ApiResult values.
template <class T>
ApiResult<T> ApiOk(T value) {
  ApiResult<T> r;
  r.value = std::move(value);
  return r;
}
template <class T>
ApiResult<T> ApiFail(ApiError error, std::string message) {
  ApiResult<T> r;
  r.failure = ApiFailure{error, std::move(message)};
  return r;
}

}  // namespace daxpolicy::bus
