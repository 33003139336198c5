// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The on-disk format of one journal segment.
///
/// A segment is one immutable file `segment-<16 hex digits sequence>.djnl`, written as a temp
/// file, fsync'ed, renamed into place (the rename is the commit) and followed by an fsync of
/// the directory. All integers little-endian:
///
///     offset  size  field
///     0       8     magic "DAXPJNL1"
///     8       4     format version (1)
///     12      4     flags: bit 0 = snapshot (the complete state; older segments are superseded)
///     16      8     sequence number (equals the one in the file name)
///     24      4     record count
///     28      4     length in bytes of the records that follow
///     32      ...   records
///     end-4   4     CRC-32C of every preceding byte of the file
///
/// Record "original" (type 1): u8 type, u64 dev, u64 ino, u8 original flag (0 = page-cache,
/// 1 = dax), u32 scope root length, u32 path length, scope root bytes, path bytes (any bytes
/// but NUL; the path is relative to the scope root).
/// Record "forget" (type 2): u8 type, u64 dev, u64 ino.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/result.h"
#include "policy/snapshot.h"

namespace daxpolicy::journal {

/// The identity the journal keys files by (the DAX flag belongs to the inode).
struct FileKey {
  uint64_t dev = 0;
  uint64_t ino = 0;
  auto operator<=>(const FileKey&) const = default;
};

/// One recorded original: a file the daemon changed and its DAX flag before the first change.
struct JournalEntry {
  FileKey key;
  std::string scope_root;  ///< absolute path of the scope root
  std::string path;        ///< relative to scope_root ("" = the root itself)
  policy::DaxState original = policy::DaxState::kPageCache;  ///< kDax or kPageCache

  /// scope_root + "/" + path.
  std::string AbsolutePath() const;
};

enum class RecordType : uint8_t { kOriginal = 1, kForget = 2 };

struct Record {
  RecordType type = RecordType::kOriginal;
  JournalEntry entry;  ///< for kForget only entry.key is meaningful
};

struct Segment {
  uint64_t sequence = 0;
  bool snapshot = false;
  std::vector<Record> records;
};

inline constexpr std::string_view kSegmentMagic = "DAXPJNL1";
inline constexpr uint32_t kSegmentVersion = 1;
inline constexpr size_t kSegmentHeaderSize = 32;

/// The bytes of a segment file.
std::string EncodeSegment(const Segment& segment);
/// Parses and verifies a segment file; the error message says what is wrong ("checksum
/// mismatch", "truncated", ...).
Result<Segment> DecodeSegment(std::string_view bytes);

/// "segment-000000000000002a.djnl".
std::string SegmentFileName(uint64_t sequence);
/// The sequence in a segment file name (also for its ".tmp" form); false if it is none.
bool ParseSegmentFileName(std::string_view name, uint64_t* sequence, bool* temp);

}  // namespace daxpolicy::journal
