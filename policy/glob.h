// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Absolute path globs, compiled once when the policy is loaded.
///
/// Syntax, per path component: `*` any run of characters except '/', `?` one
/// character, `[abc]` `[a-z]` `[!a-z]` a character class, `\x` a literal x.
/// A component that is exactly `**` matches zero or more whole components, so
/// "/srv/pmem/db/**" matches /srv/pmem/db itself and everything below it.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace daxpolicy::policy {

class Glob {
 public:
  // Returns nullopt and sets *error (with *error_offset, 0-based into pattern) on a bad pattern.
  static std::optional<Glob> Compile(std::string_view pattern, std::string* error,
                                     size_t* error_offset);

  // Linear in the path: O(segments x components) component comparisons, whatever
  // the pattern (see MatchFrom). With `steps`, adds the number of (segment,
  // component) comparisons made, for tests that bound the work.
  bool Matches(std::string_view path, uint64_t* steps = nullptr) const;
  const std::string& pattern() const { return pattern_; }
  // The leading components without wildcards, e.g. "/srv/pmem/db" for "/srv/pmem/db/**/*.sst".
  const std::string& literal_prefix() const { return literal_prefix_; }
  // True when every path below literal_prefix() matches (pattern is "<prefix>/**").
  bool MatchesWholeSubtree() const { return whole_subtree_; }

 private:
  struct Segment {
    enum Kind { kLiteral, kWildcard, kAnyDepth } kind;
    std::string text;  // literal text, or the wildcard pattern with escapes kept
  };
  bool MatchFrom(size_t first, std::string_view rest, uint64_t* steps) const;

  std::string pattern_;
  std::string literal_prefix_;
  std::vector<Segment> segments_;
  size_t literal_segments_ = 0;  // leading kLiteral segments, covered by literal_prefix_
  bool whole_subtree_ = false;
  uint64_t any_depth_mask_ = 0;  // bit i: segments_[i] is `**` (for the first 64 segments)
  // Every match ends with this text (from a last component like "*.sst"): a
  // cheap test that rejects most paths before the component walk.
  std::string required_suffix_;
};

// True when `path` is `dir` or lies below it (component-wise, not a string prefix).
bool PathIsWithin(std::string_view path, std::string_view dir);

}  // namespace daxpolicy::policy
