// SPDX-License-Identifier: Apache-2.0
#include "daemon/log.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace daxpolicy::daemon {

namespace {
LogLevel g_level = LogLevel::kInfo;
std::mutex g_mutex;  // the loop and the cycle worker both log: keep lines whole

bool UnderJournal() {
  static const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
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

void Log(LogLevel level, std::string_view message) {
  if (!LogEnabled(level)) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  if (UnderJournal()) {
    std::fprintf(stderr, "<%d>%.*s\n", static_cast<int>(level), static_cast<int>(message.size()),
                 message.data());
  } else {
    std::fprintf(stderr, "daxpolicyd: %s: %.*s\n", Tag(level), static_cast<int>(message.size()),
                 message.data());
  }
}

}  // namespace daxpolicy::daemon
