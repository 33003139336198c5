// SPDX-License-Identifier: Apache-2.0
#include "daemon/journal/segment.h"

#include <cerrno>
#include <cstdio>

#include "daemon/journal/crc32c.h"

namespace daxpolicy::journal {

namespace {

constexpr uint32_t kFlagSnapshot = 1;

// Record type bytes. Version 1 has only originals and forgets keyed by dev + ino; version 2
// gave both new bytes (with the whole identity) and added corrections and scope roots.
constexpr uint8_t kV1Original = 1;
constexpr uint8_t kV1Forget = 2;
constexpr uint8_t kV2Original = 3;
constexpr uint8_t kV2Forget = 4;
constexpr uint8_t kV2Correct = 5;
constexpr uint8_t kV2Scopes = 6;
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

std::string EntryKey(const JournalEntry& entry) {
  std::string key;
  if (entry.id.fs_uuid.empty()) {
    key = "d";
    Put(&key, entry.key.dev, 8);
  } else {
    key = "u" + entry.id.fs_uuid;
  }
  if (entry.id.handle.empty()) {
    key += "i";
    Put(&key, entry.key.ino, 8);
    Put(&key, static_cast<uint64_t>(entry.id.btime_ns), 8);
  } else {
    key += "h";
    Put(&key, entry.id.handle_type, 4);
    key += entry.id.handle;
  }
  return key;
}

namespace {

void PutId(std::string* out, const JournalEntry& e) {
  Put(out, e.key.dev, 8);
  Put(out, e.key.ino, 8);
  Put(out, e.id.fs_uuid.size(), 1);
  *out += e.id.fs_uuid;
  Put(out, e.id.handle_type, 4);
  Put(out, e.id.handle.size(), 1);
  *out += e.id.handle;
  Put(out, static_cast<uint64_t>(e.id.btime_ns), 8);
}

void PutOriginal(std::string* out, const JournalEntry& e, bool v2) {
  Put(out, e.original == policy::DaxState::kDax ? 1 : 0, 1);
  if (v2) Put(out, static_cast<uint64_t>(e.changed_ns), 8);
  Put(out, e.scope_root.size(), 4);
  Put(out, e.path.size(), 4);
  *out += e.scope_root;
  *out += e.path;
}

}  // namespace

std::string EncodeSegment(const Segment& segment, uint32_t version) {
  std::string body;
  const bool v2 = version >= 2;
  for (const Record& r : segment.records) {
    if (!v2) {
      if (r.type != RecordType::kOriginal && r.type != RecordType::kForget) continue;
      Put(&body, r.type == RecordType::kOriginal ? kV1Original : kV1Forget, 1);
      Put(&body, r.entry.key.dev, 8);
      Put(&body, r.entry.key.ino, 8);
      if (r.type == RecordType::kOriginal) PutOriginal(&body, r.entry, false);
      continue;
    }
    switch (r.type) {
      case RecordType::kOriginal:
      case RecordType::kCorrect:
        Put(&body, r.type == RecordType::kCorrect ? kV2Correct : kV2Original, 1);
        PutId(&body, r.entry);
        PutOriginal(&body, r.entry, true);
        break;
      case RecordType::kForget:
        Put(&body, kV2Forget, 1);
        PutId(&body, r.entry);
        break;
      case RecordType::kScopes:
        Put(&body, kV2Scopes, 1);
        Put(&body, r.scopes.size(), 4);
        for (const std::string& scope : r.scopes) {
          Put(&body, scope.size(), 4);
          body += scope;
        }
        break;
    }
  }
  std::string out(kSegmentMagic);
  Put(&out, v2 ? kSegmentVersion : 1, 4);
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
  if (version != 1 && version != kSegmentVersion) {
    return Corrupt("unsupported format version " + std::to_string(version));
  }
  if (flags & ~static_cast<uint64_t>(kFlagSnapshot)) return Corrupt("unknown flags");
  Segment segment;
  segment.sequence = sequence;
  segment.snapshot = (flags & kFlagSnapshot) != 0;
  segment.version = static_cast<uint32_t>(version);
  Reader body(bytes.substr(kSegmentHeaderSize, body_length));
  for (uint64_t i = 0; i < count; ++i) {
    const std::string where = "record " + std::to_string(i) + ": ";
    Record r;
    uint64_t type = 0;
    if (!body.Get(1, &type)) return Corrupt(where + "truncated");
    auto get_original = [&](bool v2) {
      uint64_t original = 0, scope_length = 0, path_length = 0, changed = 0;
      if (!body.Get(1, &original) || (v2 && !body.Get(8, &changed)) ||
          !body.Get(4, &scope_length) || !body.Get(4, &path_length) ||
          !body.GetBytes(scope_length, &r.entry.scope_root) ||
          !body.GetBytes(path_length, &r.entry.path)) {
        return std::string("truncated");
      }
      if (original > 1) return std::string("bad original flag");
      r.entry.original = original == 1 ? policy::DaxState::kDax : policy::DaxState::kPageCache;
      r.entry.changed_ns = static_cast<int64_t>(changed);
      return std::string();
    };
    auto get_id = [&]() {
      uint64_t uuid_length = 0, handle_type = 0, handle_length = 0, btime = 0;
      if (!body.Get(8, &r.entry.key.dev) || !body.Get(8, &r.entry.key.ino) ||
          !body.Get(1, &uuid_length) || uuid_length > 16 ||
          !body.GetBytes(uuid_length, &r.entry.id.fs_uuid) || !body.Get(4, &handle_type) ||
          !body.Get(1, &handle_length) || handle_length > 128 ||
          !body.GetBytes(handle_length, &r.entry.id.handle) || !body.Get(8, &btime)) {
        return false;
      }
      r.entry.id.handle_type = static_cast<uint32_t>(handle_type);
      r.entry.id.btime_ns = static_cast<int64_t>(btime);
      return true;
    };
    std::string problem;
    if (version == 1) {
      if (!body.Get(8, &r.entry.key.dev) || !body.Get(8, &r.entry.key.ino)) {
        return Corrupt(where + "truncated");
      }
      if (type == kV1Original) {
        r.type = RecordType::kOriginal;
        problem = get_original(false);
      } else if (type == kV1Forget) {
        r.type = RecordType::kForget;
      } else {
        return Corrupt(where + "unknown type " + std::to_string(type));
      }
    } else if (type == kV2Original || type == kV2Correct) {
      r.type = type == kV2Original ? RecordType::kOriginal : RecordType::kCorrect;
      problem = get_id() ? get_original(true) : "truncated or bad identity";
    } else if (type == kV2Forget) {
      r.type = RecordType::kForget;
      if (!get_id()) problem = "truncated or bad identity";
    } else if (type == kV2Scopes) {
      r.type = RecordType::kScopes;
      uint64_t scopes = 0;
      if (!body.Get(4, &scopes) || scopes > body_length) {
        problem = "truncated";
      } else {
        for (uint64_t k = 0; k < scopes && problem.empty(); ++k) {
          uint64_t length = 0;
          std::string scope;
          if (!body.Get(4, &length) || !body.GetBytes(length, &scope)) {
            problem = "truncated";
          } else {
            r.scopes.push_back(std::move(scope));
          }
        }
      }
    } else {
      return Corrupt(where + "unknown type " + std::to_string(type));
    }
    if (!problem.empty()) return Corrupt(where + problem);
    if (r.type != RecordType::kScopes && (r.entry.scope_root.find('\0') != std::string::npos ||
                                          r.entry.path.find('\0') != std::string::npos)) {
      return Corrupt(where + "NUL byte in a path");
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
