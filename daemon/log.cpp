// SPDX-License-Identifier: Apache-2.0
#include "daemon/log.h"

#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace daxpolicy::daemon {

namespace {
LogLevel g_level = LogLevel::kInfo;
std::mutex g_mutex;  // the loop and the cycle worker both log: keep lines whole
// SYSLOG_IDENTIFIER and the stderr prefix.
constexpr std::string_view kIdentifier = "daxpolicyd";

// True when stderr is the journal stream systemd connected us to: the
// JOURNAL_STREAM variable names its device and inode (systemd.exec(5)). A
// child that inherited the variable but not the stream logs to stderr.
bool UnderJournal() {
  static const bool journal = [] {
    const char* e = std::getenv("JOURNAL_STREAM");
    if (e == nullptr) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(e, "%llu:%llu", &dev, &ino) != 2) return false;
    struct stat st {};
    if (fstat(STDERR_FILENO, &st) != 0) return false;
    return st.st_dev == dev && st.st_ino == ino;
  }();
  return journal;
}

const char* Tag(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return "error";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kNotice:
      return "notice";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kDebug:
      return "debug";
  }
  return "?";
}

struct EventInfo {
  Event event;
  const char* id;
  const char* name;
};
// Never change an id: journalctl queries and the catalog refer to it.
constexpr EventInfo kEvents[] = {
    {Event::kSwitchApplied, "ded655cdbbf1475685049c21b09843df", "switch-applied"},
    {Event::kSwitchBlocked, "2813f74d82664baa9d2c96795f9f834d", "switch-blocked"},
    {Event::kSwitchPending, "c1e7294903dd4744b0696f44c69e0186", "switch-pending"},
    {Event::kReloadOk, "7c96c7783ad6431a8edafdf54bfa4786", "reload-ok"},
    {Event::kReloadFailed, "815fca0738cd45faadb7fc75a7ac3738", "reload-failed"},
    {Event::kHoldTaken, "d8c12a7174564cae93971f07707ae42a", "hold-taken"},
    {Event::kHoldReleased, "dae17cab5d2f47048cf999a9cec9630a", "hold-released"},
    {Event::kDegraded, "c976cf3382174458a60f3e34c341fb3a", "degraded"},
};

const EventInfo& InfoOf(Event e) {
  for (const EventInfo& i : kEvents) {
    if (i.event == e) return i;
  }
  return kEvents[0];  // unreachable: every Event is listed
}

void Emit(const Event* event, LogLevel level, std::string_view message,
          const std::vector<LogField>& fields) {
  if (!LogEnabled(level)) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  if (UnderJournal()) {
    std::vector<std::string> record = JournalRecord(event, level, message, fields);
    std::vector<iovec> iov;
    iov.reserve(record.size());
    for (std::string& s : record) iov.push_back({s.data(), s.size()});
    if (sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) >= 0) return;
  }
  std::string line = StderrLine(level, message);
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}
}  // namespace

bool ParseLogLevel(std::string_view name, LogLevel* out) {
  for (LogLevel l : {LogLevel::kError, LogLevel::kWarning, LogLevel::kNotice, LogLevel::kInfo,
                     LogLevel::kDebug}) {
    if (name == Tag(l)) {
      *out = l;
      return true;
    }
  }
  return false;
}

void SetLogLevel(LogLevel level) { g_level = level; }

bool LogEnabled(LogLevel level) { return static_cast<int>(level) <= static_cast<int>(g_level); }

void Log(LogLevel level, std::string_view message) { Emit(nullptr, level, message, {}); }

void LogEvent(Event event, LogLevel level, std::string_view message,
              const std::vector<LogField>& fields) {
  Emit(&event, level, message, fields);
}

std::string_view EventMessageId(Event event) { return InfoOf(event).id; }
std::string_view EventName(Event event) { return InfoOf(event).name; }

std::string OneLine(std::string_view message) {
  std::string out;
  out.reserve(message.size());
  for (char c : message) {
    auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

std::vector<std::string> JournalRecord(const Event* event, LogLevel level, std::string_view message,
                                       const std::vector<LogField>& fields) {
  std::vector<std::string> r;
  r.push_back("MESSAGE=" + OneLine(message));
  r.push_back("PRIORITY=" + std::to_string(static_cast<int>(level)));
  r.push_back("SYSLOG_IDENTIFIER=" + std::string(kIdentifier));
  if (event != nullptr) {
    r.push_back("MESSAGE_ID=" + std::string(EventMessageId(*event)));
    r.push_back("DAXPOLICY_EVENT=" + std::string(EventName(*event)));
  }
  for (const LogField& f : fields) r.push_back(f.key + "=" + f.value);
  return r;
}

std::string StderrLine(LogLevel level, std::string_view message) {
  return std::string(kIdentifier) + ": " + Tag(level) + ": " + OneLine(message);
}

namespace field {
LogField Path(std::string_view v) { return {"DAXPOLICY_PATH", std::string(v)}; }
LogField Rule(std::string_view v) { return {"DAXPOLICY_RULE", std::string(v)}; }
LogField From(std::string_view v) { return {"DAXPOLICY_FROM", std::string(v)}; }
LogField To(std::string_view v) { return {"DAXPOLICY_TO", std::string(v)}; }
LogField Reason(std::string_view v) { return {"DAXPOLICY_REASON", std::string(v)}; }
LogField CallerUid(uid_t v) { return {"DAXPOLICY_CALLER_UID", std::to_string(v)}; }
LogField CallerPid(pid_t v) { return {"DAXPOLICY_CALLER_PID", std::to_string(v)}; }
LogField Caller(std::string_view v) { return {"DAXPOLICY_CALLER", std::string(v)}; }
LogField Hold(uint32_t v) { return {"DAXPOLICY_HOLD", std::to_string(v)}; }
LogField Generation(uint64_t v) { return {"DAXPOLICY_GENERATION", std::to_string(v)}; }
LogField Degraded(std::string_view v) { return {"DAXPOLICY_DEGRADED", std::string(v)}; }
}  // namespace field

}  // namespace daxpolicy::daemon
