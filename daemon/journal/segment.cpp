// SPDX-License-Identifier: Apache-2.0
#include "daemon/journal/segment.h"

#include <cerrno>
#include <cstdio>

#include "daemon/journal/crc32c.h"

namespace daxpolicy::journal {

namespace {

constexpr uint32_t kFlagSnapshot = 1;
constexpr std::string_view kPrefix = "segment-";
constexpr std::string_view kSuffix = ".djnl";
constexpr std::string_view kTempSuffix = ".tmp";

void Put(std::string* out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

// Bounds-checked little-endian reader over untrusted bytes.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool Get(int bytes, uint64_t* value) {
    if (data_.size() - pos_ < static_cast<size_t>(bytes)) return false;
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) {
      v |= static_cast<uint64_t>(static_cast<unsigned char>(data_[pos_ + i])) << (8 * i);
    }
    pos_ += bytes;
    *value = v;
    return true;
  }
  bool GetBytes(uint64_t length, std::string* out) {
    if (data_.size() - pos_ < length) return false;
    out->assign(data_.substr(pos_, length));
    pos_ += length;
    return true;
  }
  size_t pos() const { return pos_; }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

Error Corrupt(const std::string& what) { return Error{what, EBADMSG}; }

}  // namespace

std::string JournalEntry::AbsolutePath() const {
  if (path.empty()) return scope_root;
  if (!scope_root.empty() && scope_root.back() == '/') return scope_root + path;
  return scope_root + "/" + path;
}

std::string EncodeSegment(const Segment& segment) {
  std::string body;
  for (const Record& r : segment.records) {
    Put(&body, static_cast<uint8_t>(r.type), 1);
    Put(&body, r.entry.key.dev, 8);
    Put(&body, r.entry.key.ino, 8);
    if (r.type == RecordType::kOriginal) {
      Put(&body, r.entry.original == policy::DaxState::kDax ? 1 : 0, 1);
      Put(&body, r.entry.scope_root.size(), 4);
      Put(&body, r.entry.path.size(), 4);
      body += r.entry.scope_root;
      body += r.entry.path;
    }
  }
  std::string out(kSegmentMagic);
  Put(&out, kSegmentVersion, 4);
  Put(&out, segment.snapshot ? kFlagSnapshot : 0, 4);
  Put(&out, segment.sequence, 8);
  Put(&out, segment.records.size(), 4);
  Put(&out, body.size(), 4);
  out += body;
  Put(&out, Crc32c(out), 4);
  return out;
}

Result<Segment> DecodeSegment(std::string_view bytes) {
  if (bytes.size() < kSegmentHeaderSize + 4) {
    return Corrupt("truncated: " + std::to_string(bytes.size()) + " bytes, shorter than a header");
  }
  if (bytes.substr(0, kSegmentMagic.size()) != kSegmentMagic) return Corrupt("bad magic");
  Reader header(bytes.substr(kSegmentMagic.size()));
  uint64_t version = 0, flags = 0, sequence = 0, count = 0, body_length = 0;
  header.Get(4, &version);
  header.Get(4, &flags);
  header.Get(8, &sequence);
  header.Get(4, &count);
  header.Get(4, &body_length);
  // Length before checksum: a truncated file is named as such, not as a checksum mismatch.
  const uint64_t expected_size = kSegmentHeaderSize + body_length + 4;
  if (bytes.size() != expected_size) {
    return Corrupt((bytes.size() < expected_size ? "truncated: " : "trailing bytes: ") +
                   std::to_string(bytes.size()) + " bytes, header says " +
                   std::to_string(expected_size));
  }
  uint64_t stored_crc = 0;
  Reader(bytes.substr(bytes.size() - 4)).Get(4, &stored_crc);
  if (Crc32c(bytes.substr(0, bytes.size() - 4)) != stored_crc) {
    return Corrupt("checksum mismatch");
  }
  if (version != kSegmentVersion) {
    return Corrupt("unsupported format version " + std::to_string(version));
  }
  if (flags & ~static_cast<uint64_t>(kFlagSnapshot)) return Corrupt("unknown flags");
  Segment segment;
  segment.sequence = sequence;
  segment.snapshot = (flags & kFlagSnapshot) != 0;
  Reader body(bytes.substr(kSegmentHeaderSize, body_length));
  for (uint64_t i = 0; i < count; ++i) {
    const std::string where = "record " + std::to_string(i) + ": ";
    Record r;
    uint64_t type = 0;
    if (!body.Get(1, &type) || !body.Get(8, &r.entry.key.dev) || !body.Get(8, &r.entry.key.ino)) {
      return Corrupt(where + "truncated");
    }
    if (type == static_cast<uint8_t>(RecordType::kOriginal)) {
      uint64_t original = 0, scope_length = 0, path_length = 0;
      if (!body.Get(1, &original) || !body.Get(4, &scope_length) || !body.Get(4, &path_length) ||
          !body.GetBytes(scope_length, &r.entry.scope_root) ||
          !body.GetBytes(path_length, &r.entry.path)) {
        return Corrupt(where + "truncated");
      }
      if (original > 1) return Corrupt(where + "bad original flag");
      r.type = RecordType::kOriginal;
      r.entry.original = original == 1 ? policy::DaxState::kDax : policy::DaxState::kPageCache;
    } else if (type == static_cast<uint8_t>(RecordType::kForget)) {
      r.type = RecordType::kForget;
    } else {
      return Corrupt(where + "unknown type " + std::to_string(type));
    }
    segment.records.push_back(std::move(r));
  }
  if (body.pos() != body_length) return Corrupt("record count does not match the body length");
  return segment;
}

std::string SegmentFileName(uint64_t sequence) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "segment-%016llx.djnl", static_cast<unsigned long long>(sequence));
  return buf;
}

bool ParseSegmentFileName(std::string_view name, uint64_t* sequence, bool* temp) {
  *temp = name.size() > kTempSuffix.size() &&
          name.substr(name.size() - kTempSuffix.size()) == kTempSuffix;
  if (*temp) name.remove_suffix(kTempSuffix.size());
  if (name.size() != kPrefix.size() + 16 + kSuffix.size()) return false;
  if (name.substr(0, kPrefix.size()) != kPrefix) return false;
  if (name.substr(name.size() - kSuffix.size()) != kSuffix) return false;
  uint64_t value = 0;
  for (char c : name.substr(kPrefix.size(), 16)) {
    int digit = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (digit < 0) return false;
    value = value << 4 | static_cast<uint64_t>(digit);
  }
  *sequence = value;
  return true;
}

}  // namespace daxpolicy::journal
