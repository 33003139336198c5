// SPDX-License-Identifier: Apache-2.0
#include "daemon/journal/journal.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "daemon/journal/crc32c.h"
#include "daemon/journal/identity.h"
#include "daemon/journal/segment.h"
#include "plugins/clock.h"
#include "plugins/unique_fd.h"
#include "tests/support/test_support.h"

namespace daxpolicy::journal {
namespace {

namespace fs = std::filesystem;
using policy::DaxState;
using testing::TempDir;

JournalEntry Entry(uint64_t ino, DaxState original, std::string path = "") {
  if (path.empty()) path = "dir/file" + std::to_string(ino);
  return JournalEntry{FileKey{42, ino}, "/srv/pmem", path, original};
}

Segment SampleSegment() {
  Segment s;
  s.sequence = 7;
  s.records.push_back(Record{RecordType::kOriginal, Entry(1, DaxState::kDax, "a\nb")});
  s.records.push_back(Record{RecordType::kOriginal, Entry(2, DaxState::kPageCache, "\xff\xfe/x")});
  Record forget;
  forget.type = RecordType::kForget;
  forget.entry.key = FileKey{42, 1};
  s.records.push_back(forget);
  return s;
}

std::vector<std::string> FilesIn(const fs::path& dir) {
  std::vector<std::string> names;
  if (!fs::exists(dir)) return names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> SegmentFiles(const fs::path& dir) {
  std::vector<std::string> out;
  for (const std::string& n : FilesIn(dir)) {
    if (n.rfind("segment-", 0) == 0) out.push_back(n);
  }
  return out;
}

std::unique_ptr<Journal> OpenOrDie(const fs::path& dir, JournalOptions options = {}) {
  Result<std::unique_ptr<Journal>> j = Journal::Open(dir, options);
  EXPECT_TRUE(j.ok()) << (j.ok() ? "" : j.error().message);
  return j.ok() ? std::move(j).value() : nullptr;
}

TEST(ACrc32c, MatchesTheCastagnoliCheckValue) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c("6789", Crc32c("12345")), 0xE3069283u);
}

TEST(ASegment, RoundTripsRecordsWithArbitraryBytesInPaths) {
  Segment in = SampleSegment();
  in.snapshot = true;
  Result<Segment> out = DecodeSegment(EncodeSegment(in));
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->sequence, 7u);
  EXPECT_TRUE(out->snapshot);
  ASSERT_EQ(out->records.size(), 3u);
  EXPECT_EQ(out->records[0].entry.path, "a\nb");
  EXPECT_EQ(out->records[0].entry.original, DaxState::kDax);
  EXPECT_EQ(out->records[1].entry.path, "\xff\xfe/x");
  EXPECT_EQ(out->records[1].entry.original, DaxState::kPageCache);
  EXPECT_EQ(out->records[1].entry.scope_root, "/srv/pmem");
  EXPECT_EQ(out->records[2].type, RecordType::kForget);
  EXPECT_EQ(out->records[2].entry.key, (FileKey{42, 1}));
}

TEST(ASegment, DetectsEverySingleBitFlip) {
  const std::string good = EncodeSegment(SampleSegment());
  for (size_t byte = 0; byte < good.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = good;
      bad[byte] = static_cast<char>(bad[byte] ^ (1 << bit));
      EXPECT_FALSE(DecodeSegment(bad).ok()) << "flip of bit " << bit << " in byte " << byte;
    }
  }
}

TEST(ASegment, DetectsEveryTruncationAndTrailingGarbage) {
  const std::string good = EncodeSegment(SampleSegment());
  for (size_t length = 0; length < good.size(); ++length) {
    EXPECT_FALSE(DecodeSegment(good.substr(0, length)).ok()) << "length " << length;
  }
  Result<Segment> longer = DecodeSegment(good + "x");
  ASSERT_FALSE(longer.ok());
  EXPECT_NE(longer.error().message.find("trailing bytes"), std::string::npos);
  Result<Segment> shorter = DecodeSegment(good.substr(0, good.size() - 1));
  ASSERT_FALSE(shorter.ok());
  EXPECT_NE(shorter.error().message.find("truncated"), std::string::npos);
}

TEST(ASegmentFileName, CarriesTheSequenceAndMarksTempFiles) {
  EXPECT_EQ(SegmentFileName(42), "segment-000000000000002a.djnl");
  uint64_t seq = 0;
  bool temp = true;
  ASSERT_TRUE(ParseSegmentFileName("segment-000000000000002a.djnl", &seq, &temp));
  EXPECT_EQ(seq, 42u);
  EXPECT_FALSE(temp);
  ASSERT_TRUE(ParseSegmentFileName("segment-000000000000002a.djnl.tmp", &seq, &temp));
  EXPECT_TRUE(temp);
  EXPECT_FALSE(ParseSegmentFileName("segment-2a.djnl", &seq, &temp));
  EXPECT_FALSE(ParseSegmentFileName("segment-000000000000002A.djnl", &seq, &temp));
  EXPECT_FALSE(ParseSegmentFileName("corrupt", &seq, &temp));
}

TEST(AJournal, KeepsOriginalsAcrossReopen) {
  TempDir dir;
  {
    auto j = OpenOrDie(dir.path() / "state");
    Result<size_t> n =
        j->RecordOriginals({Entry(1, DaxState::kDax), Entry(2, DaxState::kPageCache)});
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(*n, 2u);
  }
  auto j = OpenOrDie(dir.path() / "state");
  EXPECT_TRUE(j->problems().empty());
  ASSERT_EQ(j->size(), 2u);
  ASSERT_NE(j->Find({42, 1}), nullptr);
  EXPECT_EQ(j->Find({42, 1})->original, DaxState::kDax);
  EXPECT_EQ(j->Find({42, 2})->original, DaxState::kPageCache);
  EXPECT_EQ(j->Find({42, 1})->AbsolutePath(), "/srv/pmem/dir/file1");
}

TEST(AJournal, NeverOverwritesAnOriginalAlreadyRecorded) {
  TempDir dir;
  auto j = OpenOrDie(dir.path());
  ASSERT_TRUE(j->RecordOriginals({Entry(1, DaxState::kPageCache)}).ok());
  Result<size_t> again = j->RecordOriginals({Entry(1, DaxState::kDax), Entry(1, DaxState::kDax)});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0u);
  Result<size_t> dup =
      j->RecordOriginals({Entry(3, DaxState::kDax), Entry(3, DaxState::kPageCache)});
  ASSERT_TRUE(dup.ok());
  EXPECT_EQ(*dup, 1u);
  j.reset();
  j = OpenOrDie(dir.path());
  EXPECT_EQ(j->Find({42, 1})->original, DaxState::kPageCache);
  EXPECT_EQ(j->Find({42, 3})->original, DaxState::kDax);
  EXPECT_EQ(SegmentFiles(dir.path()).size(), 2u) << "a batch with nothing new writes nothing";
}

TEST(AJournal, WritesAWholeBatchAsOneSegment) {
  TempDir dir;
  auto j = OpenOrDie(dir.path());
  std::vector<JournalEntry> batch;
  for (uint64_t i = 1; i <= 10000; ++i)
    batch.push_back(Entry(i, i % 2 ? DaxState::kDax : DaxState::kPageCache));
  Result<size_t> n = j->RecordOriginals(batch);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 10000u);
  EXPECT_EQ(SegmentFiles(dir.path()).size(), 1u);
}

TEST(AJournal, ForgetsEntriesDurably) {
  TempDir dir;
  {
    auto j = OpenOrDie(dir.path());
    ASSERT_TRUE(j->RecordOriginals({Entry(1, DaxState::kDax), Entry(2, DaxState::kDax)}).ok());
    ASSERT_TRUE(j->Forget({EntryKey(Entry(1, DaxState::kDax)),
                           EntryKey(JournalEntry{FileKey{9, 9}, "/srv/pmem", "z"})})
                    .ok());
    EXPECT_EQ(j->size(), 1u);
  }
  auto j = OpenOrDie(dir.path());
  EXPECT_EQ(j->Find({42, 1}), nullptr);
  EXPECT_NE(j->Find({42, 2}), nullptr);
  // A file forgotten and changed again gets its new original.
  ASSERT_TRUE(j->RecordOriginals({Entry(1, DaxState::kPageCache)}).ok());
  EXPECT_EQ(j->Find({42, 1})->original, DaxState::kPageCache);
}

TEST(AJournal, MovesATornTempFileAsideAndReportsIt) {
  TempDir dir;
  {
    auto j = OpenOrDie(dir.path());
    ASSERT_TRUE(j->RecordOriginals({Entry(1, DaxState::kDax)}).ok());
  }
  std::string torn = EncodeSegment(SampleSegment()).substr(0, 20);
  testing::WriteFile(dir.path() / "segment-0000000000000002.djnl.tmp", torn);
  auto j = OpenOrDie(dir.path());
  ASSERT_EQ(j->problems().size(), 1u);
  EXPECT_EQ(j->problems()[0],
            "segment-0000000000000002.djnl.tmp: torn temporary segment, never committed; moved "
            "to corrupt/segment-0000000000000002.djnl.tmp");
  EXPECT_EQ(FilesIn(dir.path() / "corrupt"),
            std::vector<std::string>{"segment-0000000000000002.djnl.tmp"});
  EXPECT_EQ(testing::ReadFile(dir.path() / "corrupt/segment-0000000000000002.djnl.tmp"), torn);
  EXPECT_EQ(j->size(), 1u);
  // The next segment does not reuse the torn one's sequence.
  ASSERT_TRUE(j->RecordOriginals({Entry(5, DaxState::kDax)}).ok());
  EXPECT_EQ(SegmentFiles(dir.path()).back(), "segment-0000000000000003.djnl");
}

TEST(AJournal, MovesACorruptSegmentAsideWhileOthersSurvive) {
  TempDir dir;
  {
    auto j = OpenOrDie(dir.path());
    ASSERT_TRUE(j->RecordOriginals({Entry(1, DaxState::kDax)}).ok());
    ASSERT_TRUE(j->RecordOriginals({Entry(2, DaxState::kDax)}).ok());
    ASSERT_TRUE(j->RecordOriginals({Entry(3, DaxState::kPageCache)}).ok());
  }
  const fs::path middle = dir.path() / "segment-0000000000000002.djnl";
  std::string bytes = testing::ReadFile(middle);
  bytes[bytes.size() / 2] ^= 0x10;
  testing::WriteFile(middle, bytes);
  auto j = OpenOrDie(dir.path());
  ASSERT_EQ(j->problems().size(), 1u);
  EXPECT_EQ(j->problems()[0],
            "segment-0000000000000002.djnl: checksum mismatch; moved to "
            "corrupt/segment-0000000000000002.djnl");
  EXPECT_NE(j->Find({42, 1}), nullptr);
  EXPECT_EQ(j->Find({42, 2}), nullptr);
  EXPECT_NE(j->Find({42, 3}), nullptr);
  EXPECT_TRUE(fs::exists(dir.path() / "corrupt/segment-0000000000000002.djnl"));
}

TEST(AJournal, CompactsIntoASnapshotWithoutLosingEntries) {
  TempDir dir;
  JournalOptions options;
  options.compact_after_segments = 4;
  {
    auto j = OpenOrDie(dir.path(), options);
    for (uint64_t i = 1; i <= 10; ++i) {
      ASSERT_TRUE(
          j->RecordOriginals({Entry(i, i % 3 ? DaxState::kDax : DaxState::kPageCache)}).ok());
    }
    ASSERT_TRUE(j->Forget({EntryKey(Entry(4, DaxState::kDax))}).ok());
    EXPECT_LE(SegmentFiles(dir.path()).size(), 9u);
  }
  auto j = OpenOrDie(dir.path(), options);
  EXPECT_TRUE(j->problems().empty());
  EXPECT_EQ(j->size(), 9u);
  EXPECT_EQ(j->Find({42, 4}), nullptr);
  EXPECT_EQ(j->Find({42, 3})->original, DaxState::kPageCache);
  EXPECT_EQ(j->Find({42, 10})->original, DaxState::kDax);
}

TEST(AJournal, SurvivesACorruptNewestSnapshotThroughThePreviousGeneration) {
  TempDir dir;
  {
    JournalOptions options;
    options.compact_after_segments = 1000;
    auto j = OpenOrDie(dir.path(), options);
    ASSERT_TRUE(j->RecordOriginals({Entry(1, DaxState::kDax)}).ok());
    ASSERT_TRUE(j->Compact().ok());  // snapshot at 2
    ASSERT_TRUE(j->RecordOriginals({Entry(2, DaxState::kDax)}).ok());
    ASSERT_TRUE(j->Compact().ok());  // snapshot at 4: removes segments before 2 only
  }
  EXPECT_EQ(SegmentFiles(dir.path()), (std::vector<std::string>{"segment-0000000000000002.djnl",
                                                                "segment-0000000000000003.djnl",
                                                                "segment-0000000000000004.djnl"}));
  testing::WriteFile(dir.path() / "segment-0000000000000004.djnl", "garbage");
  auto j = OpenOrDie(dir.path());
  ASSERT_EQ(j->problems().size(), 1u);
  EXPECT_NE(j->Find({42, 1}), nullptr);
  EXPECT_NE(j->Find({42, 2}), nullptr);
}

TEST(AJournal, LetsOnlyOneProcessOpenTheStateDirectory) {
  TempDir dir;
  auto first = OpenOrDie(dir.path());
  Result<std::unique_ptr<Journal>> second = Journal::Open(dir.path());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().message, "state directory " + dir.path().string() +
                                        " is locked by another process (a running daxpolicyd "
                                        "or restore)");
  first.reset();
  EXPECT_TRUE(Journal::Open(dir.path()).ok());
}

TEST(AJournal, RecordsThroughItsBeforeChangeHookOnlyOnce) {
  TempDir dir;
  auto j = OpenOrDie(dir.path());
  auto hook = j->BeforeChangeHook("/srv/pmem");
  ASSERT_TRUE(hook(7, 8, "x/y", DaxState::kPageCache, -1).ok());
  ASSERT_TRUE(hook(7, 8, "x/y", DaxState::kDax, -1).ok());
  ASSERT_NE(j->Find({7, 8}), nullptr);
  EXPECT_EQ(j->Find({7, 8})->original, DaxState::kPageCache);
  EXPECT_EQ(j->Find({7, 8})->AbsolutePath(), "/srv/pmem/x/y");
  EXPECT_EQ(SegmentFiles(dir.path()).size(), 1u);
}

// A clock whose coarse wall time differs from its fine one, so that a test can tell which
// one the journal read.
class StoppedClock final : public plugins::Clock {
 public:
  int64_t MonotonicNs() const override { return 5'000'000'000; }
  int64_t WallNs() const override { return kWall; }
  int64_t WallCoarseNs() const override { return kWallCoarse; }
  static constexpr int64_t kWall = int64_t{1'767'225'600} * 1'000'000'000 + 123'456'789;
  static constexpr int64_t kWallCoarse = int64_t{1'767'225'600} * 1'000'000'000 + 120'000'000;
};

TEST(AJournal, StampsRecordsWithTheCoarseWallTimeOfTheClockItIsGiven) {
  TempDir dir;
  StoppedClock clock;
  JournalOptions options;
  options.clock = &clock;
  {
    auto j = OpenOrDie(dir.path(), options);
    ASSERT_TRUE(j->RecordOriginals({Entry(1, DaxState::kDax)}).ok());
    auto hook = j->BeforeChangeHook("/srv/pmem");
    ASSERT_TRUE(hook(7, 8, "x/y", DaxState::kPageCache, -1).ok());
    ASSERT_NE(j->Find({42, 1}), nullptr);
    EXPECT_EQ(j->Find({42, 1})->changed_ns, StoppedClock::kWallCoarse);
    ASSERT_NE(j->Find({7, 8}), nullptr);
    EXPECT_EQ(j->Find({7, 8})->changed_ns, StoppedClock::kWallCoarse);
  }
  auto j = OpenOrDie(dir.path());
  ASSERT_NE(j->Find({42, 1}), nullptr);
  EXPECT_EQ(j->Find({42, 1})->changed_ns, StoppedClock::kWallCoarse);
  EXPECT_EQ(j->Find({7, 8})->changed_ns, StoppedClock::kWallCoarse);
}

TEST(ASegment, ReadsVersion1SegmentsAndRoundTripsVersion2Records) {
  Segment old = SampleSegment();
  const std::string v1 = EncodeSegment(old, 1);
  EXPECT_EQ(v1[8], 1);  // format version 1 on disk
  Result<Segment> read = DecodeSegment(v1);
  ASSERT_TRUE(read.ok()) << read.error().message;
  EXPECT_EQ(read->version, 1u);
  ASSERT_EQ(read->records.size(), 3u);
  EXPECT_EQ(read->records[0].entry.key, (FileKey{42, 1}));
  EXPECT_TRUE(read->records[0].entry.id.handle.empty());

  Segment in;
  in.sequence = 3;
  JournalEntry e = Entry(5, DaxState::kDax);
  e.id.fs_uuid = std::string(16, '\x11');
  e.id.handle_type = 0x81;
  e.id.handle = std::string("\x01\x02\x00\x03", 4);
  e.id.btime_ns = 123456789;
  e.changed_ns = 987654321;
  Record scopes;
  scopes.type = RecordType::kScopes;
  scopes.scopes = {"/srv/pmem", "/data"};
  in.records.push_back(scopes);
  in.records.push_back(Record{RecordType::kOriginal, e, {}});
  in.records.push_back(Record{RecordType::kCorrect, e, {}});
  in.records.push_back(Record{RecordType::kForget, e, {}});
  Result<Segment> out = DecodeSegment(EncodeSegment(in));
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->version, 2u);
  ASSERT_EQ(out->records.size(), 4u);
  EXPECT_EQ(out->records[0].scopes, scopes.scopes);
  EXPECT_EQ(out->records[1].type, RecordType::kOriginal);
  EXPECT_EQ(out->records[1].entry.id, e.id);
  EXPECT_EQ(out->records[1].entry.changed_ns, e.changed_ns);
  EXPECT_EQ(out->records[2].type, RecordType::kCorrect);
  EXPECT_EQ(out->records[3].type, RecordType::kForget);
  EXPECT_EQ(EntryKey(out->records[3].entry), EntryKey(e));
}

// The fuzzer's seed corpus must be valid segments of both versions, or the fuzzer starts from
// inputs the reader rejects at the checksum.
TEST(ASegment, DecodesEverySeedOfTheFuzzCorpus) {
  const fs::path dir = fs::path(DAXPOLICY_SOURCE_DIR) / "tests/fuzz/corpus/journal";
  std::set<uint32_t> versions;
  size_t seeds = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    Result<Segment> segment = DecodeSegment(testing::ReadFile(e.path()));
    ASSERT_TRUE(segment.ok()) << e.path() << ": " << segment.error().message;
    versions.insert(segment->version);
    ++seeds;
  }
  EXPECT_GE(seeds, 5u);
  EXPECT_EQ(versions, (std::set<uint32_t>{1, 2}));
}

TEST(AJournal, KeepsReadingAJournalOfFormatVersion1AndKeepsItsFirstOriginals) {
  TempDir dir;
  Segment old = SampleSegment();  // file 1 recorded then forgotten, file 2 recorded
  old.sequence = 1;
  old.records.push_back(Record{RecordType::kOriginal, Entry(3, DaxState::kDax), {}});
  testing::WriteFile(dir.path() / SegmentFileName(1), EncodeSegment(old, 1));
  auto j = OpenOrDie(dir.path());
  EXPECT_TRUE(j->problems().empty());
  EXPECT_EQ(j->size(), 2u);
  // A new recording of file 3 (same dev + ino) cannot override the old original.
  JournalEntry again = Entry(3, DaxState::kPageCache);
  again.id.handle = "h";
  again.id.handle_type = 1;
  ASSERT_TRUE(j->RecordOriginals({again}).ok());
  EXPECT_EQ(j->size(), 2u);
  EXPECT_EQ(j->Find({42, 3})->original, DaxState::kDax);
}

TEST(AJournal, RefusesAStateDirectoryOthersCanWriteOrThroughASymlink) {
  TempDir dir;
  const fs::path state = dir.path() / "state";
  fs::create_directory(state);
  ASSERT_EQ(chmod(state.c_str(), 0777), 0);
  Result<std::unique_ptr<Journal>> open = Journal::Open(state);
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.error().message.find("writable by group or others (mode 0777)"), std::string::npos)
      << open.error().message;
  ASSERT_EQ(chmod(state.c_str(), 0770), 0);
  EXPECT_FALSE(Journal::Open(state).ok());
  ASSERT_EQ(chmod(state.c_str(), 0700), 0);
  EXPECT_TRUE(Journal::Open(state).ok());
  // Through a symlink: refused.
  fs::create_directory_symlink(state, dir.path() / "link");
  EXPECT_FALSE(Journal::Open(dir.path() / "link").ok());
}

TEST(AJournal, RefusesAStateDirectoryAnotherUserOwns) {
  DAXPOLICY_REQUIRE(testing::IsRoot(), "needs root to give the directory to another user");
  TempDir dir;
  const fs::path state = dir.path() / "state";
  fs::create_directory(state);
  ASSERT_EQ(chmod(state.c_str(), 0700), 0);
  ASSERT_EQ(chown(state.c_str(), 65534, 65534), 0);
  Result<std::unique_ptr<Journal>> open = Journal::Open(state);
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.error().message.find("is owned by uid 65534"), std::string::npos)
      << open.error().message;
}

TEST(AJournal, KeepsReportingDamageMovedAsideByAnEarlierOpen) {
  TempDir dir;
  {
    auto j = OpenOrDie(dir.path());
    ASSERT_TRUE(j->RecordOriginals({Entry(1, DaxState::kDax)}).ok());
  }
  testing::WriteFile(dir.path() / "segment-0000000000000001.djnl", "garbage");
  {
    auto j = OpenOrDie(dir.path());
    ASSERT_EQ(j->Damage().size(), 1u);
  }
  auto j = OpenOrDie(dir.path());
  EXPECT_TRUE(j->problems().empty());
  ASSERT_EQ(j->Damage().size(), 1u);
  EXPECT_NE(j->Damage()[0].find("corrupt/segment-0000000000000001.djnl"), std::string::npos);
}

// Issue: the batch records the flag the scan saw; an admin's chattr between the scan and the
// change must not be lost. The hook gets the flag read from the opened file.
TEST(AJournal, RecordsTheFlagReadRightBeforeTheChangeAndDropsFilesTheBatchDidNotChange) {
  TempDir dir;
  TempDir files;
  testing::WriteFile(files.path() / "changed", "x");
  testing::WriteFile(files.path() / "left", "y");
  struct stat changed {};
  struct stat left {};
  ASSERT_EQ(stat((files.path() / "changed").c_str(), &changed), 0);
  ASSERT_EQ(stat((files.path() / "left").c_str(), &left), 0);
  const std::string root = files.path().string();
  {
    auto j = OpenOrDie(dir.path());
    j->SetScopes({root});
    // The scan saw page-cache for both.
    ASSERT_TRUE(
        j->RecordOriginals(
             {JournalEntry{{changed.st_dev, changed.st_ino}, root, "changed", DaxState::kPageCache},
              JournalEntry{{left.st_dev, left.st_ino}, root, "left", DaxState::kPageCache}})
            .ok());
    const JournalEntry* provisional = j->Find({changed.st_dev, changed.st_ino});
    ASSERT_NE(provisional, nullptr);
    EXPECT_FALSE(provisional->id.handle.empty()) << "the identity was not taken from the file";
    EXPECT_GT(provisional->changed_ns, 0);
    // The admin set DAX in between; the driver read it from the opened fd.
    auto hook = j->BeforeChangeHook(root);
    daxpolicy::UniqueFd fd(open((files.path() / "changed").c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(hook(changed.st_dev, changed.st_ino, "changed", DaxState::kDax, fd.get()).ok());
    EXPECT_EQ(j->Find({changed.st_dev, changed.st_ino})->original, DaxState::kDax);
    // "left" was found already as wanted: no change, so no entry.
    ASSERT_TRUE(j->SettleBatch().ok());
    EXPECT_EQ(j->Find({left.st_dev, left.st_ino}), nullptr);
    // A later change of the same file keeps the first original.
    ASSERT_TRUE(
        hook(changed.st_dev, changed.st_ino, "changed", DaxState::kPageCache, fd.get()).ok());
  }
  auto j = OpenOrDie(dir.path());
  ASSERT_EQ(j->size(), 1u);
  EXPECT_EQ(j->Find({changed.st_dev, changed.st_ino})->original, DaxState::kDax);
  EXPECT_EQ(j->recorded_scopes(), std::set<std::string>{root});
}

// A batch that cannot open a file (here: its path is gone) records it by dev + ino only; the
// change of that very file must still confirm (and correct) the entry, or SettleBatch would
// forget the original of a file the daemon changed.
TEST(AJournal, KeepsAnEntryRecordedWithoutIdentityOnceItsChangeConfirmsIt) {
  TempDir dir;
  TempDir files;
  testing::WriteFile(files.path() / "file", "x");
  struct stat st {};
  ASSERT_EQ(stat((files.path() / "file").c_str(), &st), 0);
  const std::string root = files.path().string();
  {
    auto j = OpenOrDie(dir.path());
    ASSERT_EQ(*j->RecordOriginals(
                  {JournalEntry{{st.st_dev, st.st_ino}, root, "gone", DaxState::kPageCache}}),
              1u);
    const JournalEntry* recorded = j->Find({st.st_dev, st.st_ino});
    ASSERT_NE(recorded, nullptr);
    ASSERT_TRUE(recorded->id.handle.empty()) << "the test needs an entry without identity";
    auto hook = j->BeforeChangeHook(root);
    daxpolicy::UniqueFd fd(open((files.path() / "file").c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(hook(st.st_dev, st.st_ino, "file", DaxState::kDax, fd.get()).ok());
    ASSERT_TRUE(j->SettleBatch().ok());
    ASSERT_EQ(j->size(), 1u);
    EXPECT_EQ(j->Find({st.st_dev, st.st_ino})->original, DaxState::kDax);
  }
  auto j = OpenOrDie(dir.path());
  ASSERT_EQ(j->size(), 1u);
  EXPECT_EQ(j->Find({st.st_dev, st.st_ino})->original, DaxState::kDax);
}

// The records are durable once the segment is written: a compaction failing after that must
// not fail the write (the daemon would skip a batch whose originals are already recorded).
TEST(AJournal, ReportsAFailedCompactionWithoutFailingTheWrite) {
  TempDir dir;
  std::vector<std::string> warnings;
  JournalOptions options;
  options.compact_after_segments = 1;
  options.warn = [&warnings](const std::string& m) { warnings.push_back(m); };
  {
    auto j = OpenOrDie(dir.path(), options);
    // The snapshot (sequence 2) cannot be created while its temp name is taken.
    const fs::path blocker = dir.path() / "segment-0000000000000002.djnl.tmp";
    fs::create_directory(blocker);
    Result<size_t> recorded = j->RecordOriginals({Entry(1, DaxState::kDax)});
    ASSERT_TRUE(recorded.ok()) << recorded.error().message;
    EXPECT_EQ(*recorded, 1u);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("compaction"), std::string::npos) << warnings[0];
    // The next write compacts.
    fs::remove(blocker);
    ASSERT_TRUE(j->RecordOriginals({Entry(2, DaxState::kPageCache)}).ok());
    EXPECT_EQ(warnings.size(), 1u);
    EXPECT_EQ(SegmentFiles(dir.path()).size(), 3u);  // 1, 2 and the snapshot 3
  }
  auto j = OpenOrDie(dir.path());
  EXPECT_EQ(j->size(), 2u);
}

// A corrupt segment whose name is already taken in corrupt/ goes to name.1; the earlier file
// of that name is still earlier damage, and name.1 is not.
TEST(AJournal, TellsDamageFoundNowFromDamageOfTheSameNameFoundEarlier) {
  TempDir dir;
  const std::string name = "segment-0000000000000001.djnl";
  fs::create_directory(dir.path() / "corrupt");
  ASSERT_EQ(chmod((dir.path() / "corrupt").c_str(), 0700), 0);
  testing::WriteFile(dir.path() / "corrupt" / name, "old garbage");
  testing::WriteFile(dir.path() / name, "new garbage");
  auto j = OpenOrDie(dir.path());
  ASSERT_EQ(j->problems().size(), 1u);
  EXPECT_NE(j->problems()[0].find("moved to corrupt/" + name + ".1"), std::string::npos)
      << j->problems()[0];
  const std::vector<std::string> damage = j->Damage();
  ASSERT_EQ(damage.size(), 2u);
  EXPECT_EQ(damage[1], "corrupt/" + name + ": moved aside by an earlier open (torn or corrupt)");
}

TEST(AJournal, RefusesAnUnknownOriginal) {
  TempDir dir;
  auto j = OpenOrDie(dir.path());
  EXPECT_FALSE(j->RecordOriginals({Entry(1, DaxState::kUnknown)}).ok());
  EXPECT_EQ(j->size(), 0u);
}

TEST(APrintablePath, EscapesNewlinesControlBytesAndInvalidUtf8) {
  EXPECT_EQ(PrintablePath("/a/b c"), "/a/b c");
  EXPECT_EQ(PrintablePath("a\nb"), "a\\nb");
  EXPECT_EQ(PrintablePath("a\\b"), "a\\\\b");
  EXPECT_EQ(PrintablePath("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(PrintablePath("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_EQ(PrintablePath("\xc3"), "\\xc3");
  EXPECT_EQ(PrintablePath("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // a UTF-16 surrogate
  EXPECT_EQ(PrintablePath(std::string("a\x01", 2)), "a\\x01");
}

}  // namespace
}  // namespace daxpolicy::journal
