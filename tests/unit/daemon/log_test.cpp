// SPDX-License-Identifier: Apache-2.0
#include "daemon/log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

namespace daxpolicy::daemon {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr Event kAll[] = {Event::kSwitchApplied, Event::kSwitchBlocked, Event::kSwitchPending,
                          Event::kReloadOk,      Event::kReloadFailed,  Event::kHoldTaken,
                          Event::kHoldReleased,  Event::kDegraded};

TEST(LogTest, MessagesAreOneLine) {
  EXPECT_EQ(OneLine("a\nb"), "a\\nb");
  EXPECT_EQ(OneLine("tab\there\r"), "tab\\x09here\\x0d");
  EXPECT_EQ(OneLine("plain /srv/p\\x0amem"), "plain /srv/p\\x0amem");
  std::string line = StderrLine(LogLevel::kError, "reload: a.yaml:1:2: bad\nb.yaml:3:4: worse");
  EXPECT_EQ(line, "daxpolicyd: error: reload: a.yaml:1:2: bad\\nb.yaml:3:4: worse");
}

TEST(LogTest, EveryEventHasItsOwnMessageId) {
  std::set<std::string> ids;
  for (Event e : kAll) {
    std::string id(EventMessageId(e));
    ASSERT_EQ(id.size(), 32u) << EventName(e);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    EXPECT_TRUE(ids.insert(id).second) << "duplicate " << id;
  }
}

TEST(LogTest, JournalRecordCarriesIdPriorityAndFields) {
  Event e = Event::kSwitchApplied;
  auto r =
      JournalRecord(&e, LogLevel::kInfo, "switched /srv/pmem/a\nb to dax",
                    {field::Path("/srv/pmem/a\nb"), field::Rule("r1"), field::From("page-cache"),
                     field::To("dax"), field::CallerUid(1000), field::CallerPid(42)});
  EXPECT_THAT(r, Contains("MESSAGE=switched /srv/pmem/a\\nb to dax"));
  EXPECT_THAT(r, Contains("PRIORITY=6"));
  EXPECT_THAT(r, Contains("SYSLOG_IDENTIFIER=daxpolicyd"));
  EXPECT_THAT(r, Contains("MESSAGE_ID=" + std::string(EventMessageId(e))));
  // Field values are stored as they are: the journal keeps any byte.
  EXPECT_THAT(r, Contains("DAXPOLICY_PATH=/srv/pmem/a\nb"));
  EXPECT_THAT(r, Contains("DAXPOLICY_RULE=r1"));
  EXPECT_THAT(r, Contains("DAXPOLICY_FROM=page-cache"));
  EXPECT_THAT(r, Contains("DAXPOLICY_TO=dax"));
  EXPECT_THAT(r, Contains("DAXPOLICY_CALLER_UID=1000"));
  EXPECT_THAT(r, Contains("DAXPOLICY_CALLER_PID=42"));
  auto plain = JournalRecord(nullptr, LogLevel::kWarning, "x", {});
  for (const std::string& f : plain) EXPECT_THAT(f, Not(HasSubstr("MESSAGE_ID=")));
}

// journalctl -x explains every event: the installed catalog has an entry per id.
TEST(LogTest, CatalogDescribesEveryEvent) {
  std::ifstream in(std::string(DAXPOLICY_SOURCE_DIR) + "/systemd/daxpolicy.catalog");
  ASSERT_TRUE(in) << "systemd/daxpolicy.catalog missing";
  std::stringstream text;
  text << in.rdbuf();
  for (Event e : kAll) {
    EXPECT_THAT(text.str(), HasSubstr("\n-- " + std::string(EventMessageId(e)) + "\nSubject: "))
        << EventName(e);
  }
}

}  // namespace
}  // namespace daxpolicy::daemon
