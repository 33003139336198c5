// SPDX-License-Identifier: Apache-2.0
#include "policy/glob.h"

#include <algorithm>

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
  for (size_t i = 0; i < glob.segments_.size() && i < 64; ++i) {
    if (glob.segments_[i].kind == Segment::kAnyDepth) glob.any_depth_mask_ |= uint64_t{1} << i;
  }
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

bool Glob::Matches(std::string_view path, uint64_t* steps) const {
  if (!PathIsWithin(path, literal_prefix_)) return false;
  if (whole_subtree_) return true;
  if (!required_suffix_.empty() && (path.size() < required_suffix_.size() ||
                                    path.compare(path.size() - required_suffix_.size(),
                                                 required_suffix_.size(), required_suffix_) != 0)) {
    return false;
  }
  std::string_view rest = path.substr(literal_prefix_ == "/" ? 0 : literal_prefix_.size());
  return MatchFrom(literal_segments_, rest, steps);
}

// `rest` is the unmatched tail of the path: "" or "/comp/comp...".
//
// A simulation of the pattern as a nondeterministic automaton over path
// components: active[i] means the components read so far are matched by the
// segments before i. A literal or wildcard segment i moves to i + 1 on a
// matching component; `**` stays on i for any component and also lets i + 1
// be active without reading one. Every component is read once and tried
// against each segment at most once, so a match costs O(segments x components)
// component comparisons, however many `**` the pattern has (a backtracking
// matcher is exponential in their number).
bool Glob::MatchFrom(size_t first, std::string_view rest, uint64_t* steps) const {
  const size_t n = segments_.size();
  auto component = [&rest]() {
    size_t end = rest.find('/', 1);
    std::string_view comp = rest.substr(1, end == std::string_view::npos ? rest.npos : end - 1);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    return comp;
  };
  auto step = [&](size_t i, std::string_view comp) {
    if (steps) ++*steps;
    const Segment& s = segments_[i];
    return s.kind == Segment::kLiteral ? comp == s.text : MatchComponent(s.text, comp);
  };
  if (n < 64) {
    // The usual case: the active set is a bit mask.
    uint64_t active = uint64_t{1} << first;
    auto close = [this](uint64_t set) {
      for (uint64_t more; (more = (set & any_depth_mask_) << 1 & ~set) != 0;) set |= more;
      return set;
    };
    active = close(active);
    while (!rest.empty()) {
      std::string_view comp = component();
      uint64_t stay = active & any_depth_mask_;
      if (steps) *steps += static_cast<uint64_t>(__builtin_popcountll(stay));
      uint64_t next = stay;
      for (uint64_t todo = active & ~any_depth_mask_ & ~(uint64_t{1} << n); todo != 0;
           todo &= todo - 1) {
        size_t i = static_cast<size_t>(__builtin_ctzll(todo));
        if (step(i, comp)) next |= uint64_t{1} << (i + 1);
      }
      if (next == 0) return false;
      active = close(next);
    }
    return (active >> n) & 1;
  }
  std::vector<uint8_t> active(n + 1, 0), next(n + 1, 0);
  auto close = [&](std::vector<uint8_t>& set) {
    for (size_t i = 0; i < n; ++i) {
      if (set[i] && segments_[i].kind == Segment::kAnyDepth) set[i + 1] = 1;
    }
  };
  active[first] = 1;
  close(active);
  while (!rest.empty()) {
    std::string_view comp = component();
    bool any = false;
    for (size_t i = 0; i < n; ++i) {
      if (!active[i]) continue;
      size_t to;
      if (segments_[i].kind == Segment::kAnyDepth) {
        if (steps) ++*steps;
        to = i;
      } else if (step(i, comp)) {
        to = i + 1;
      } else {
        continue;
      }
      next[to] = 1;
      any = true;
    }
    if (!any) return false;
    std::fill(active.begin(), active.end(), 0);
    active.swap(next);
    close(active);
  }
  return active[n] != 0;
}

}  // namespace daxpolicy::policy
