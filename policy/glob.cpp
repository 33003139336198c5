// SPDX-License-Identifier: Apache-2.0
#include "policy/glob.h"

namespace daxpolicy::policy {

namespace {

// fnmatch-like matching of one component. `pattern` was validated at compile time.
bool MatchComponent(std::string_view pattern, std::string_view name) {
  size_t p = 0, n = 0;
  size_t star_p = std::string_view::npos, star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size()) {
      char c = pattern[p];
      if (c == '*') {
        star_p = p++;
        star_n = n;
        continue;
      }
      if (c == '?') {
        ++p;
        ++n;
        continue;
      }
      if (c == '[') {
        size_t q = p + 1;
        bool negate = false;
        if (q < pattern.size() && (pattern[q] == '!' || pattern[q] == '^')) {
          negate = true;
          ++q;
        }
        bool matched = false;
        bool first = true;
        while (q < pattern.size() && (pattern[q] != ']' || first)) {
          first = false;
          char lo = pattern[q];
          if (lo == '\\' && q + 1 < pattern.size()) lo = pattern[++q];
          char hi = lo;
          if (q + 2 < pattern.size() && pattern[q + 1] == '-' && pattern[q + 2] != ']') {
            hi = pattern[q + 2];
            if (hi == '\\' && q + 3 < pattern.size()) {
              hi = pattern[q + 3];
              ++q;
            }
            q += 2;
          }
          unsigned char ch = static_cast<unsigned char>(name[n]);
          if (ch >= static_cast<unsigned char>(lo) && ch <= static_cast<unsigned char>(hi)) {
            matched = true;
          }
          ++q;
        }
        if (matched != negate) {
          p = q + 1;
          ++n;
          continue;
        }
      } else {
        if (c == '\\' && p + 1 < pattern.size()) c = pattern[++p];
        if (c == name[n]) {
          ++p;
          ++n;
          continue;
        }
      }
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p + 1;
    n = ++star_n;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool HasWildcard(std::string_view component) {
  for (char c : component) {
    if (c == '*' || c == '?' || c == '[' || c == '\\') return true;
  }
  return false;
}

}  // namespace

bool PathIsWithin(std::string_view path, std::string_view dir) {
  if (dir == "/") return !path.empty() && path[0] == '/';
  if (path.size() < dir.size() || path.substr(0, dir.size()) != dir) return false;
  return path.size() == dir.size() || path[dir.size()] == '/';
}

std::optional<Glob> Glob::Compile(std::string_view pattern, std::string* error,
                                  size_t* error_offset) {
  *error_offset = 0;
  if (pattern.empty()) {
    *error = "empty path pattern";
    return std::nullopt;
  }
  if (pattern[0] != '/') {
    *error = "path pattern '" + std::string(pattern) + "' is not absolute";
    return std::nullopt;
  }
  Glob glob;
  glob.pattern_ = std::string(pattern);
  size_t pos = 1;
  bool only_literals = true;
  if (pattern.size() == 1) {  // "/" alone
    glob.literal_prefix_ = "/";
    return glob;
  }
  while (pos <= pattern.size()) {
    size_t end = pattern.find('/', pos);
    if (end == std::string_view::npos) end = pattern.size();
    std::string_view comp = pattern.substr(pos, end - pos);
    if (comp.empty()) {
      if (end == pattern.size()) break;  // a trailing '/' is harmless
      *error = "empty path component ('//') in '" + std::string(pattern) + "'";
      *error_offset = pos;
      return std::nullopt;
    }
    if (comp == "." || comp == "..") {
      *error = "'" + std::string(comp) + "' is not allowed in path pattern '" +
               std::string(pattern) + "'";
      *error_offset = pos;
      return std::nullopt;
    }
    Segment seg;
    if (comp == "**") {
      seg.kind = Segment::kAnyDepth;
    } else {
      size_t dstar = comp.find("**");
      if (dstar != std::string_view::npos) {
        *error = "'**' must be a whole path component in '" + std::string(pattern) + "'";
        *error_offset = pos + dstar;
        return std::nullopt;
      }
      // Validate brackets and escapes.
      for (size_t i = 0; i < comp.size(); ++i) {
        if (comp[i] == '\\') {
          if (i + 1 >= comp.size()) {
            *error = "trailing '\\' in path pattern '" + std::string(pattern) + "'";
            *error_offset = pos + i;
            return std::nullopt;
          }
          ++i;
        } else if (comp[i] == '[') {
          size_t j = i + 1;
          if (j < comp.size() && (comp[j] == '!' || comp[j] == '^')) ++j;
          if (j < comp.size() && comp[j] == ']') ++j;  // "[]x]" has a literal ']'
          while (j < comp.size() && comp[j] != ']') {
            if (comp[j] == '\\') ++j;
            ++j;
          }
          if (j >= comp.size()) {
            *error = "unclosed '[' in path pattern '" + std::string(pattern) + "'";
            *error_offset = pos + i;
            return std::nullopt;
          }
          i = j;
        }
      }
      seg.kind = HasWildcard(comp) ? Segment::kWildcard : Segment::kLiteral;
      seg.text = std::string(comp);
    }
    if (seg.kind == Segment::kLiteral && only_literals) {
      glob.literal_prefix_ += "/" + seg.text;
      ++glob.literal_segments_;
    } else {
      only_literals = false;
    }
    glob.segments_.push_back(std::move(seg));
    pos = end + 1;
  }
  if (glob.literal_prefix_.empty()) glob.literal_prefix_ = "/";
  glob.whole_subtree_ = glob.segments_.size() == glob.literal_segments_ + 1 &&
                        glob.segments_.back().kind == Segment::kAnyDepth;
  if (!glob.segments_.empty()) {
    const Segment& last = glob.segments_.back();
    if (last.kind == Segment::kLiteral) {
      glob.required_suffix_ = "/" + last.text;
    } else if (last.kind == Segment::kWildcard && last.text[0] == '*' &&
               !HasWildcard(std::string_view(last.text).substr(1))) {
      glob.required_suffix_ = last.text.substr(1);
    }
  }
  return glob;
}

bool Glob::Matches(std::string_view path) const {
  if (!PathIsWithin(path, literal_prefix_)) return false;
  if (whole_subtree_) return true;
  if (!required_suffix_.empty() && (path.size() < required_suffix_.size() ||
                                    path.compare(path.size() - required_suffix_.size(),
                                                 required_suffix_.size(), required_suffix_) != 0)) {
    return false;
  }
  std::string_view rest = path.substr(literal_prefix_ == "/" ? 0 : literal_prefix_.size());
  return MatchFrom(literal_segments_, rest);
}

// `rest` is the unmatched tail of the path: "" or "/comp/comp...".
bool Glob::MatchFrom(size_t seg, std::string_view rest) const {
  while (seg < segments_.size()) {
    const Segment& s = segments_[seg];
    if (s.kind == Segment::kAnyDepth) {
      if (seg + 1 == segments_.size()) return true;
      // Try every split point: zero components, then one more each time.
      for (;;) {
        if (MatchFrom(seg + 1, rest)) return true;
        if (rest.empty()) return false;
        size_t next = rest.find('/', 1);
        rest = next == std::string_view::npos ? std::string_view() : rest.substr(next);
      }
    }
    if (rest.empty()) return false;
    size_t next = rest.find('/', 1);
    std::string_view comp = rest.substr(1, next == std::string_view::npos ? rest.npos : next - 1);
    bool ok = s.kind == Segment::kLiteral ? comp == s.text : MatchComponent(s.text, comp);
    if (!ok) return false;
    rest = next == std::string_view::npos ? std::string_view() : rest.substr(next);
    ++seg;
  }
  return rest.empty();
}

}  // namespace daxpolicy::policy
