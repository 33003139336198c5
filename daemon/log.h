// SPDX-License-Identifier: Apache-2.0
#pragma once

// Leveled logging. Under systemd (stderr is the journal stream named by
// JOURNAL_STREAM) every message goes to the journal with sd_journal_send():
// PRIORITY, SYSLOG_IDENTIFIER and, for the events below, a MESSAGE_ID and
// DAXPOLICY_* fields. Elsewhere it is one plain line on stderr. A message is
// always one line: embedded newlines and control characters are escaped.
//
// Events have a MESSAGE_ID each, described in the message catalog
// (systemd/daxpolicy.catalog, installed for `journalctl -x`):
//
//   LogEvent(Event::kReloadFailed, LogLevel::kError, "reload refused: ...",
//            {field::Path(config), field::CallerUid(uid)});
//
// and `journalctl MESSAGE_ID=<id>` or `journalctl DAXPOLICY_PATH=/srv/pmem/x`
// finds them.

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

namespace daxpolicy::daemon {

enum class LogLevel { kError = 3, kWarning = 4, kNotice = 5, kInfo = 6, kDebug = 7 };

bool ParseLogLevel(std::string_view name, LogLevel* out);  // error warning notice info debug
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
void Log(LogLevel level, std::string_view message);

inline void LogError(std::string_view m) { Log(LogLevel::kError, m); }
inline void LogWarning(std::string_view m) { Log(LogLevel::kWarning, m); }
inline void LogNotice(std::string_view m) { Log(LogLevel::kNotice, m); }
inline void LogInfo(std::string_view m) { Log(LogLevel::kInfo, m); }
inline void LogDebug(std::string_view m) {
  if (LogEnabled(LogLevel::kDebug)) Log(LogLevel::kDebug, m);
}

// The event types with a MESSAGE_ID (the catalog documents each).
enum class Event {
  kSwitchApplied,  // a file's DAX flag was changed (DAXPOLICY_PATH, _RULE, _FROM, _TO)
  kSwitchBlocked,  // a wanted change cannot be made (DAXPOLICY_PATH, _RULE, _TO, _REASON)
  kSwitchPending,  // flag set, effective after holders close (DAXPOLICY_PATH, _TO)
  kReloadOk,       // a new policy is in force (DAXPOLICY_PATH, _GENERATION)
  kReloadFailed,   // a new policy was refused, the old one stays (DAXPOLICY_PATH)
  kHoldTaken,      // an application holds a file in a mode (DAXPOLICY_PATH, _TO, _CALLER_*)
  kHoldReleased,   // a hold ended (DAXPOLICY_HOLD, _CALLER_*)
  kDegraded,       // the daemon runs degraded, or no longer (DAXPOLICY_DEGRADED)
};

// The MESSAGE_ID of an event: 32 lowercase hex digits.
std::string_view EventMessageId(Event event);
// Its short name ("switch-applied"), the journal's DAXPOLICY_EVENT field.
std::string_view EventName(Event event);

// One structured field: key without the leading underscore, uppercase
// (DAXPOLICY_PATH), value as is (the journal stores any bytes).
struct LogField {
  std::string key;
  std::string value;
};

namespace field {
LogField Path(std::string_view path);
LogField Rule(std::string_view rule);
LogField From(std::string_view state);
LogField To(std::string_view state);
LogField Reason(std::string_view reason);
LogField CallerUid(uid_t uid);
LogField CallerPid(pid_t pid);
LogField Caller(std::string_view bus_name);  // the unique bus name
LogField Hold(uint32_t cookie);
LogField Generation(uint64_t generation);
LogField Degraded(std::string_view what);
}  // namespace field

void LogEvent(Event event, LogLevel level, std::string_view message,
              const std::vector<LogField>& fields = {});

// The message as logged: newlines as "\n", other control characters as \xNN
// (backslashes stay: paths in messages are already escaped by PrintablePath).
std::string OneLine(std::string_view message);

// What goes to the journal: "MESSAGE=...", "PRIORITY=...", ... (for tests).
std::vector<std::string> JournalRecord(const Event* event, LogLevel level, std::string_view message,
                                       const std::vector<LogField>& fields);
// What goes to stderr when not under systemd, without the final newline: the level and the
// message (the journal alone keeps the event and its fields).
std::string StderrLine(LogLevel level, std::string_view message);

}  // namespace daxpolicy::daemon
