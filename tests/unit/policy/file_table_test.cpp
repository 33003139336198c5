// SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>

#include <utility>

#include "policy/snapshot.h"

namespace daxpolicy::policy {
namespace {

constexpr size_t kChunk = FileTable::kChunkRecords;

FileRecord Record(uint64_t i) {
  FileRecord r;
  r.ino = 1000 + i;
  r.size = i * 4096;
  r.name_offset = static_cast<uint32_t>(i * 7);
  r.name_length = 7;
  return r;
}

FileTable Table(size_t n) {
  FileTable t;
  for (size_t i = 0; i < n; ++i) t.push_back(Record(i));
  return t;
}

// The next cycle's table, built against `base` from the same records but for
// those `change` alters.
template <class Change>
FileTable Rebuilt(const FileTable& base, size_t n, Change change) {
  FileTable t;
  t.BeginBuild(base);
  for (size_t i = 0; i < n; ++i) {
    FileRecord r = i < base.size() ? base[i] : Record(i);
    change(i, &r);
    t.push_back(r);
  }
  t.EndBuild();
  return t;
}

TEST(FileTable, BehavesAsAVectorOfRecords) {
  FileTable t = Table(3 * kChunk + 5);
  ASSERT_EQ(t.size(), 3 * kChunk + 5);
  EXPECT_EQ(t.chunk_count(), 4u);
  for (size_t i = 0; i < t.size(); ++i) EXPECT_EQ(std::as_const(t)[i].ino, 1000 + i) << i;
  EXPECT_EQ(std::as_const(t).back().ino, 1000 + 3 * kChunk + 4);
  size_t n = 0;
  for (const FileRecord& r : t) EXPECT_EQ(r.ino, 1000 + n++);
  EXPECT_EQ(n, t.size());
  EXPECT_EQ(t.end() - t.begin(), static_cast<std::ptrdiff_t>(t.size()));
  t.resize(kChunk + 1);
  EXPECT_EQ(t.size(), kChunk + 1);
  EXPECT_EQ(t.chunk_count(), 2u);
  t.push_back(Record(77));
  EXPECT_EQ(std::as_const(t)[kChunk + 1].ino, 1077u);
  t.resize(kChunk + 4);
  EXPECT_EQ(std::as_const(t)[kChunk + 3].ino, 0u);  // grown with default records
  t.clear();
  EXPECT_TRUE(t.empty());
}

TEST(FileTable, CopiesShareChunksUntilOneWrites) {
  const FileTable a = Table(2 * kChunk);
  FileTable b = a;
  EXPECT_EQ(b.SharedChunks(a), 2u);
  b[kChunk + 3].size = 1;  // copies the second chunk only
  EXPECT_EQ(b.SharedChunks(a), 1u);
  EXPECT_EQ(a[kChunk + 3].size, (kChunk + 3) * 4096);
  EXPECT_EQ(std::as_const(b)[kChunk + 3].size, 1u);
  // Set() with the value the record holds copies nothing.
  FileTable c = a;
  c.Set(5, a[5]);
  EXPECT_EQ(c.SharedChunks(a), 2u);
  FileRecord r = a[5];
  r.cache_pages = 9;
  c.Set(5, r);
  EXPECT_EQ(c.SharedChunks(a), 1u);
  EXPECT_EQ(a[5].cache_pages, 0u);
  EXPECT_EQ(std::as_const(c)[5].cache_pages, 9u);
}

TEST(FileTable, ARebuildSharesTheChunksThatCameOutTheSame) {
  const size_t n = 4 * kChunk + 10;  // the last chunk partly filled
  const FileTable base = Table(n);
  const FileTable same = Rebuilt(base, n, [](size_t, FileRecord*) {});
  EXPECT_EQ(same.SharedChunks(base), 5u);

  // One record changed: its chunk alone is new, with the new value.
  const FileTable one = Rebuilt(base, n, [](size_t i, FileRecord* r) {
    if (i == 2 * kChunk + 1) r->cache_pages = 3;
  });
  EXPECT_EQ(one.SharedChunks(base), 4u);
  EXPECT_EQ(one[2 * kChunk + 1].cache_pages, 3u);
  EXPECT_EQ(base[2 * kChunk + 1].cache_pages, 0u);

  // A changed record in the last, partly filled chunk; and a table that ends
  // elsewhere does not take base's last chunk.
  const FileTable last = Rebuilt(base, n, [&](size_t i, FileRecord* r) {
    if (i == n - 1) r->holders = 1;
  });
  EXPECT_EQ(last.SharedChunks(base), 4u);
  const FileTable shorter = Rebuilt(base, n - 1, [](size_t, FileRecord*) {});
  EXPECT_EQ(shorter.SharedChunks(base), 4u);
  EXPECT_EQ(shorter.size(), n - 1);
  const FileTable longer = Rebuilt(base, n + 1, [](size_t, FileRecord*) {});
  EXPECT_EQ(longer.SharedChunks(base), 4u);
  EXPECT_EQ(longer[n].ino, 1000 + n);
}

TEST(FileTable, ARebuildHoldsBasesChunksWhileTheRecordsAreBases) {
  const size_t n = 3 * kChunk + 10;
  const FileTable base = Table(n);
  FileTable t;
  t.BeginBuild(base);
  // Half a chunk in: already base's chunk, not a copy of it.
  for (size_t i = 0; i < kChunk / 2; ++i) t.push_back(base[i]);
  EXPECT_TRUE(t.SameChunk(base, 0));
  EXPECT_EQ(t.SharedChunks(base), 1u);
  // The first record that differs gets a chunk of its own; base keeps its record.
  FileRecord changed = base[kChunk / 2];
  changed.cache_pages = 5;
  t.push_back(changed);
  EXPECT_FALSE(t.SameChunk(base, 0));
  for (size_t i = kChunk / 2 + 1; i < n; ++i) t.push_back(base[i]);
  t.EndBuild();
  EXPECT_EQ(t.SharedChunks(base), 3u);
  EXPECT_FALSE(t.SameChunk(base, 0));
  for (size_t k = 1; k < 4; ++k) EXPECT_TRUE(t.SameChunk(base, k)) << k;
  EXPECT_EQ(base[kChunk / 2].cache_pages, 0u);
  EXPECT_EQ(std::as_const(t)[kChunk / 2].cache_pages, 5u);
  for (size_t i = 0; i < n; ++i) {
    if (i != kChunk / 2) {
      EXPECT_TRUE(SameRecord(std::as_const(t)[i], base[i])) << i;
    }
  }
  // Past base's end the records are the table's own.
  FileTable longer;
  longer.BeginBuild(base);
  for (size_t i = 0; i < n; ++i) longer.push_back(base[i]);
  longer.push_back(base[0]);
  longer.EndBuild();
  EXPECT_FALSE(longer.SameChunk(base, 3));
  EXPECT_EQ(longer[n].ino, base[0].ino);
  EXPECT_EQ(base.size(), n);
  // Tables that are not builds share nothing unless copied.
  const FileTable apart = Table(n);
  EXPECT_FALSE(apart.SameChunk(base, 0));
  EXPECT_FALSE(apart.SameChunk(base, 99));
}

TEST(FileTable, AppendsBasesRecordsAsPushingEachWould) {
  const size_t n = 3 * kChunk + 10;
  const FileTable base = Table(n);
  // Whole chunks and parts of them, mixed with records pushed one by one.
  FileTable t;
  t.BeginBuild(base);
  t.AppendFromBase(kChunk / 2);
  EXPECT_TRUE(t.SameChunk(base, 0));
  t.push_back(base[kChunk / 2]);
  t.AppendFromBase(kChunk + kChunk / 2 - 1);
  FileRecord changed = base[2 * kChunk];
  changed.holders = 2;
  t.push_back(changed);      // chunk 2 becomes the table's own
  t.AppendFromBase(kChunk);  // the rest of chunk 2 is copied into it; then chunk 3
  t.AppendFromBase(100);     // nothing left in base
  t.EndBuild();
  ASSERT_EQ(t.size(), n);
  EXPECT_TRUE(t.SameChunk(base, 0));
  EXPECT_TRUE(t.SameChunk(base, 1));
  EXPECT_FALSE(t.SameChunk(base, 2));
  EXPECT_TRUE(t.SameChunk(base, 3));
  for (size_t i = 0; i < n; ++i) {
    if (i != 2 * kChunk) {
      EXPECT_TRUE(SameRecord(std::as_const(t)[i], base[i])) << i;
    }
  }
  EXPECT_EQ(std::as_const(t)[2 * kChunk].holders, 2u);
  EXPECT_EQ(base[2 * kChunk].holders, 0u);
  // Without a base there is nothing to append.
  FileTable alone;
  alone.AppendFromBase(5);
  EXPECT_TRUE(alone.empty());
}

TEST(FileTable, WritesAfterSharingNeverReachTheBase) {
  const FileTable base = Table(2 * kChunk);
  FileTable t;
  t.BeginBuild(base);
  for (size_t i = 0; i < kChunk; ++i) t.push_back(base[i]);
  ASSERT_EQ(t.SharedChunks(base), 1u);
  // The scanner takes back a directory's records it could not reuse: the
  // shared chunk is copied before the next record lands in it.
  t.resize(kChunk - 2);
  FileRecord other = Record(999);
  t.push_back(other);
  t.EndBuild();
  EXPECT_EQ(base[kChunk - 2].ino, 1000 + kChunk - 2);
  EXPECT_EQ(t[kChunk - 2].ino, 1999u);
  EXPECT_EQ(t.SharedChunks(base), 0u);
  // A shared chunk written through the non-const operator[] is copied too.
  FileTable u = Rebuilt(base, 2 * kChunk, [](size_t, FileRecord*) {});
  ASSERT_EQ(u.SharedChunks(base), 2u);
  u[0].ino = 1;
  EXPECT_EQ(base[0].ino, 1000u);
  EXPECT_EQ(u.SharedChunks(base), 1u);
}

}  // namespace
}  // namespace daxpolicy::policy
