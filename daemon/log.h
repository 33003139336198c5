// SPDX-License-Identifier: Apache-2.0
#pragma once

// Leveled logging to stderr. Under systemd (JOURNAL_STREAM set) each line
// carries a syslog priority prefix so journald records the level.

#include <string>
#include <string_view>

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

}  // namespace daxpolicy::daemon
