// SPDX-License-Identifier: Apache-2.0
// The simulator's page-cache model: the kernel's active and inactive file
// lists, promotion on the second access, the balance of the two lists,
// eviction order, refaults and readahead, one interval at a time.

#include "policy/pagecache_model.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

namespace daxpolicy::policy {
namespace {

constexpr double kMiB = 1024.0 * 1024;

// One step of a case: reads of a file in the current interval, or the end of
// the interval (eviction, then the next interval).
struct Step {
  int file = -1;  // -1: end of the interval
  double read = 0, calls = 0, covered = 0, size = 0;
};
// `read_mib` read over `covered_mib` of a file of `size_mib`, in 4 KiB calls.
Step Read(int file, double read_mib, double covered_mib, double size_mib) {
  return Step{file, read_mib * kMiB, read_mib * 256, covered_mib * kMiB, size_mib * kMiB};
}
// One pass over `read_mib` of a 1 GiB file in 1 MiB calls.
Step Stream(int file, double read_mib) {
  return Step{file, read_mib * kMiB, read_mib, read_mib * kMiB, 1024 * kMiB};
}
const Step kEnd{};

// Expected state of one file after the steps (MiB, 0.01 MiB tolerance).
struct Lists {
  int file;
  double active, inactive;
};

struct Case {
  const char* name;
  double budget_mib;  // 0: no limit
  std::vector<Step> steps;
  std::vector<Lists> want;
  double last_misses_mib;  // misses of the last read step
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class ThePageCacheModel : public ::testing::TestWithParam<Case> {};

TEST_P(ThePageCacheModel, KeepsTheKernelsTwoLists) {
  const Case& c = GetParam();
  PageCacheModel m(4, c.budget_mib * kMiB);
  int64_t round = 0;
  double misses = -1;
  for (const Step& s : c.steps) {
    if (s.file < 0) {
      m.Evict(round++);
      continue;
    }
    misses = m.Read(static_cast<uint32_t>(s.file), round, s.read, s.calls, s.covered, s.size);
  }
  for (const Lists& l : c.want) {
    EXPECT_NEAR(m.active(static_cast<uint32_t>(l.file)) / kMiB, l.active, 0.01) << l.file;
    EXPECT_NEAR(m.inactive(static_cast<uint32_t>(l.file)) / kMiB, l.inactive, 0.01) << l.file;
  }
  EXPECT_NEAR(misses / kMiB, c.last_misses_mib, 0.01);
  if (c.budget_mib > 0) {
    EXPECT_LE(m.total(), c.budget_mib * kMiB + 1);
  }
}

const Case kCases[] = {
    // An 8 MiB file read once: 8 MiB missed, all of it on the inactive list.
    {"PutsFirstReadsOnTheInactiveList", 0, {Read(0, 8, 8, 8)}, {{0, 0, 8}}, 8},
    // Read again: every page hits and, at its second access, is activated.
    {"ActivatesPagesAtTheirSecondAccess",
     0,
     {Read(0, 8, 8, 8), kEnd, Read(0, 8, 8, 8)},
     {{0, 8, 0}},
     0},
    // 32 MiB read over 8 MiB in one interval: the share 1 - 1/u = 3/4 of the
    // missed pages is read again at once and activated.
    {"ActivatesPagesReadAgainInTheInterval", 0, {Read(0, 32, 8, 64)}, {{0, 6, 2}}, 8},
    // A stream (1 MiB calls, each byte once) gets no hits and stays inactive.
    {"LeavesAStreamInactive", 0, {Stream(1, 16), kEnd, Stream(1, 16)}, {{1, 0, 32}}, 16},
    // 64 MiB over a 48 MiB budget, half of it active: the active list is
    // shrunk to half the budget (inactive_ratio 1 under 1 GiB), its 8 MiB
    // joining the inactive list; then 16 MiB are evicted from the inactive
    // list, the bytes that joined first first: file 1's.
    {"ShrinksTheActiveListToItsShareThenEvictsTheOldestInactive",
     48,
     {Read(0, 32, 32, 32), kEnd, Read(0, 32, 32, 32), Read(1, 32, 32, 32), kEnd},
     {{0, 24, 8}, {1, 0, 16}},
     32},
    // Pages deactivated at the end of an interval join the inactive list
    // after the interval's faults: file 1's faults go first.
    {"EvictsTheIntervalsFaultsBeforeThePagesItDeactivated",
     32,
     {Read(0, 24, 24, 24), kEnd, Read(0, 24, 24, 24), kEnd, Read(1, 16, 16, 16), kEnd},
     {{0, 16, 8}, {1, 0, 8}},
     16},
    // The hot set moves from file 0 to a stream under a 48 MiB budget: file
    // 0's active pages are not read any more but stay, as the active list is
    // within its share, while the stream's pages are evicted, oldest first.
    {"KeepsAnOldHotSetWhileTheActiveListIsWithinItsShare",
     48,
     {Read(0, 24, 24, 24), kEnd, Read(0, 24, 24, 24), kEnd, Stream(1, 32), kEnd, Stream(1, 32),
      kEnd},
     {{0, 24, 0}, {1, 0, 24}},
     32},
    // The active list is shrunk from the files read longest ago: 8 MiB of
    // file 0's pages go, none of file 1's.
    {"DeactivatesTheFilesReadLongestAgoFirst",
     48,
     {Read(0, 16, 16, 16), Read(1, 16, 16, 16), kEnd, Read(0, 16, 16, 16), Read(1, 16, 16, 16),
      kEnd, Read(1, 16, 16, 16), Read(2, 24, 24, 24), kEnd},
     {{0, 8, 8}, {1, 16, 0}, {2, 0, 16}},
     24},
    // A file listed in an interval for its cached pages only (nothing read,
    // as the daemon's traces list cached files) has not been read: its
    // active pages go first.
    {"DoesNotCountAFileListedForItsCacheAsRead",
     48,
     {Read(0, 16, 16, 16), Read(1, 16, 16, 16), kEnd, Read(0, 16, 16, 16), Read(1, 16, 16, 16),
      kEnd, Step{1, 0, 0, 0, 16 * kMiB}, Read(0, 16, 16, 16), Read(2, 24, 24, 24), kEnd},
     {{0, 16, 0}, {1, 8, 8}, {2, 0, 16}},
     24},
    // A random reader (4 KiB calls) of a file half cached: 4 MiB of its
    // 8 MiB miss, and context readahead brings in 1 + r^2 / (1 - r) = 1.5
    // times that.
    {"ReadsAheadAroundRandomMissesInAPartlyCachedFile",
     0,
     {Read(0, 32, 32, 64), kEnd, Read(0, 8, 8, 64)},
     {{0, 4, 34}},
     6},
};

INSTANTIATE_TEST_SUITE_P(Table, ThePageCacheModel, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace daxpolicy::policy
