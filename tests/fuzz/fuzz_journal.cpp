// SPDX-License-Identifier: Apache-2.0
// Fuzzes the journal segment reader (the bytes restore and the daemon read from the state
// directory). Each input is decoded as is, and once more with its length field and checksum
// repaired, so that the fuzzer reaches the record parser instead of stopping at the CRC. What
// decodes must encode again to bytes that decode to the same records.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "daemon/journal/crc32c.h"
#include "daemon/journal/segment.h"

using namespace daxpolicy::journal;

namespace {

void PutLe32(std::string* bytes, size_t at, uint32_t value) {
  for (int i = 0; i < 4; ++i) (*bytes)[at + i] = static_cast<char>((value >> (8 * i)) & 0xFF);
}

bool SameRecords(const Segment& a, const Segment& b) {
  if (a.sequence != b.sequence || a.snapshot != b.snapshot ||
      a.records.size() != b.records.size()) {
    return false;
  }
  for (size_t i = 0; i < a.records.size(); ++i) {
    const Record& x = a.records[i];
    const Record& y = b.records[i];
    if (x.type != y.type || x.scopes != y.scopes) return false;
    if (x.type == RecordType::kScopes) continue;
    if (EntryKey(x.entry) != EntryKey(y.entry) || x.entry.key != y.entry.key) return false;
    if (x.type == RecordType::kForget) continue;
    if (x.entry.scope_root != y.entry.scope_root || x.entry.path != y.entry.path ||
        x.entry.original != y.entry.original || x.entry.changed_ns != y.entry.changed_ns) {
      return false;
    }
  }
  return true;
}

void Check(std::string_view bytes) {
  daxpolicy::Result<Segment> segment = DecodeSegment(bytes);
  if (!segment.ok()) {
    if (segment.error().message.empty()) __builtin_trap();  // a refusal always says why
    return;
  }
  if (segment->version == 1 && EncodeSegment(*segment, 1) != bytes) __builtin_trap();
  const std::string again = EncodeSegment(*segment);
  daxpolicy::Result<Segment> back = DecodeSegment(again);
  if (!back.ok() || !SameRecords(*segment, *back)) __builtin_trap();
  if (EncodeSegment(*back) != again) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1u << 20)) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Check(bytes);
  uint64_t sequence = 0;
  bool temp = false;
  (void)ParseSegmentFileName(bytes, &sequence, &temp);
  if (size >= kSegmentHeaderSize + 4 && bytes.substr(0, kSegmentMagic.size()) == kSegmentMagic) {
    std::string repaired(bytes);
    PutLe32(&repaired, 28, static_cast<uint32_t>(size - kSegmentHeaderSize - 4));
    PutLe32(&repaired, size - 4, Crc32c(std::string_view(repaired).substr(0, size - 4)));
    Check(repaired);
  }
  return 0;
}
