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
///     8       4     format version (2; version 1 segments are still read)
///     12      4     flags: bit 0 = snapshot (the complete state; older segments are superseded)
///     16      8     sequence number (equals the one in the file name)
///     24      4     record count
///     28      4     length in bytes of the records that follow
///     32      ...   records
///     end-4   4     CRC-32C of every preceding byte of the file
///
/// Version 2 records. A file identity ("id") is: u64 dev, u64 ino, u8 uuid length (0..16),
/// the filesystem UUID (FS_IOC_GETFSUUID), u32 handle type, u8 handle length (0..128), the
/// file handle (name_to_handle_at: inode and generation), i64 birth time in ns (0 = unknown).
///   type 3 "original": u8 type, id, u8 original flag (0 = page-cache, 1 = dax), i64 wall
///     time of the recording in ns, u32 scope root length, u32 path length, scope root
///     bytes, path bytes (any bytes but NUL; the path is relative to the scope root).
///   type 4 "forget": u8 type, id.
///   type 5 "correct": like "original", but replaces the original already recorded for the
///     id (the flag read from the opened file right before the change differed from the
///     one recorded for the batch).
///   type 6 "scopes": u8 type, u32 count, then per scope root u32 length and its bytes: the
///     scope roots of the policy the daemon ran with; restore refuses entries outside them.
/// Version 1 records (read only): type 1 "original": u8 type, u64 dev, u64 ino, u8 original,
/// u32 scope root length, u32 path length, scope root, path; type 2 "forget": u8 type, u64
/// dev, u64 ino. Their identity is dev + ino only.

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

/// The identity of a file that survives a device-number change and tells a reused inode
/// number from the file the daemon changed. Fields left empty/0 are unknown (journals of
/// format version 1 carry dev and ino only).
struct FileId {
  std::string fs_uuid;       ///< FS_IOC_GETFSUUID bytes (Linux 6.9+); "" unknown
  uint32_t handle_type = 0;  ///< name_to_handle_at handle type
  std::string handle;        ///< handle bytes: encode inode and generation; "" unknown
  int64_t btime_ns = 0;      ///< statx birth time; 0 unknown
  bool operator==(const FileId&) const = default;
};

/// One recorded original: a file the daemon changed and its DAX flag before the first change.
struct JournalEntry {
  FileKey key;             ///< dev and ino when recorded (dev is only a hint once fs_uuid is known)
  std::string scope_root;  ///< absolute path of the scope root
  std::string path;        ///< relative to scope_root ("" = the root itself)
  policy::DaxState original = policy::DaxState::kPageCache;  ///< kDax or kPageCache
  FileId id{};             ///< the rest of the identity (filled by the journal when recording)
  int64_t changed_ns = 0;  ///< wall-clock time of the recording; 0 unknown (version 1)

  /// scope_root + "/" + path.
  std::string AbsolutePath() const;
};

/// The key entries are stored under: filesystem (UUID, else dev) + file (handle, else ino
/// and birth time). Two entries with equal keys are the same file.
std::string EntryKey(const JournalEntry& entry);

/// What a record means; the type bytes on disk are segment.cpp's (they differ by version).
enum class RecordType : uint8_t {
  kOriginal,  ///< the flag before the daemon's first change (the first one recorded wins)
  kForget,    ///< drops the entry
  kCorrect,   ///< replaces the original of a provisional entry (version 2 only)
  kScopes,    ///< the scope roots of the policy (version 2 only)
};

struct Record {
  RecordType type = RecordType::kOriginal;
  JournalEntry entry;                 ///< for kForget only the identity is meaningful
  std::vector<std::string> scopes{};  ///< kScopes only
};

struct Segment {
  uint64_t sequence = 0;
  bool snapshot = false;
  std::vector<Record> records;
  uint32_t version = 2;  ///< as read; always written as 2
};

inline constexpr std::string_view kSegmentMagic = "DAXPJNL1";
inline constexpr uint32_t kSegmentVersion = 2;
inline constexpr size_t kSegmentHeaderSize = 32;

/// The bytes of a segment file, in format `version` (2; 1 is kept for tests of old journals
/// and drops every record version 1 cannot hold).
std::string EncodeSegment(const Segment& segment, uint32_t version = kSegmentVersion);
/// Parses and verifies a segment file; the error message says what is wrong ("checksum
/// mismatch", "truncated", ...).
Result<Segment> DecodeSegment(std::string_view bytes);

/// "segment-000000000000002a.djnl".
std::string SegmentFileName(uint64_t sequence);
/// The sequence in a segment file name (also for its ".tmp" form); false if it is none.
bool ParseSegmentFileName(std::string_view name, uint64_t* sequence, bool* temp);

}  // namespace daxpolicy::journal
