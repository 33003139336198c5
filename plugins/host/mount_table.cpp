// SPDX-License-Identifier: Apache-2.0
#include "plugins/host/mount_table.h"

#include <sys/sysmacros.h>

#include <unordered_map>

#include "plugins/host/text_io.h"

namespace daxpolicy::host {

using internal::ParseUnsigned;
using internal::Quote;
using internal::Split;

dev_t MountEntry::dev() const { return makedev(major, minor); }

bool MountEntry::read_only() const {
  return HasOption(mount_options, "ro") || HasOption(super_options, "ro");
}

bool HasOption(const std::vector<std::string>& options, std::string_view name) {
  for (const std::string& option : options) {
    if (option == name) return true;
  }
  return false;
}

std::optional<std::string> OptionValue(const std::vector<std::string>& options,
                                       std::string_view key) {
  std::optional<std::string> value;
  for (const std::string& option : options) {
    if (option.size() > key.size() && option.compare(0, key.size(), key) == 0 &&
        option[key.size()] == '=') {
      value = option.substr(key.size() + 1);
    }
  }
  return value;
}

Result<std::string> DecodeMountinfoEscapes(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] != '\\') {
      out.push_back(field[i]);
      continue;
    }
    if (field.size() - i < 4) {
      return Error{"bad escape at end of " + Quote(field) + ": expected \\ and three octal digits"};
    }
    int value = 0;
    for (size_t k = 1; k <= 3; ++k) {
      char c = field[i + k];
      if (c < '0' || c > '7') {
        return Error{"bad escape " + Quote(field.substr(i, 4)) + " in " + Quote(field) +
                     ": expected three octal digits"};
      }
      value = value * 8 + (c - '0');
    }
    if (value > 0377) {
      return Error{"bad escape " + Quote(field.substr(i, 4)) + " in " + Quote(field) +
                   ": value above \\377"};
    }
    out.push_back(static_cast<char>(value));
    i += 3;
  }
  return out;
}

namespace {

std::vector<std::string> SplitOptions(std::string_view text) {
  std::vector<std::string> options;
  for (std::string_view piece : Split(text, ',')) {
    if (!piece.empty()) options.emplace_back(piece);
  }
  return options;
}

std::optional<int> ParseId(std::string_view text) {
  auto value = ParseUnsigned(text);
  if (!value || *value > 0x7fffffff) return std::nullopt;
  return static_cast<int>(*value);
}

std::string Normalise(const std::filesystem::path& path) {
  std::string s = path.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

}  // namespace

Result<MountEntry> ParseMountinfoLine(std::string_view line) {
  std::vector<std::string_view> fields = Split(line, ' ');
  // Six fixed fields, the "-" separator, then three more.
  size_t separator = 0;
  for (size_t i = 6; i < fields.size(); ++i) {
    if (fields[i] == "-") {
      separator = i;
      break;
    }
  }
  if (fields.size() < 10) {
    return Error{"truncated line (" + std::to_string(fields.size()) +
                 " fields, at least 10 expected): " + Quote(line)};
  }
  if (separator == 0) return Error{"no \"-\" separator after the optional fields: " + Quote(line)};
  if (fields.size() - separator - 1 < 3) {
    return Error{"truncated line: fs type, source and super options expected after \"-\": " +
                 Quote(line)};
  }

  MountEntry entry;
  auto mount_id = ParseId(fields[0]);
  if (!mount_id) return Error{"bad mount id " + Quote(fields[0])};
  auto parent_id = ParseId(fields[1]);
  if (!parent_id) return Error{"bad parent id " + Quote(fields[1])};
  entry.mount_id = *mount_id;
  entry.parent_id = *parent_id;

  std::vector<std::string_view> dev = Split(fields[2], ':');
  std::optional<uint64_t> major, minor;
  if (dev.size() == 2) {
    major = ParseUnsigned(dev[0]);
    minor = ParseUnsigned(dev[1]);
  }
  // dev_t holds a 32-bit major and a 32-bit minor in glibc; the kernel uses 12/20.
  if (!major || !minor || *major > 0xffffffffu || *minor > 0xffffffffu) {
    return Error{"bad major:minor " + Quote(fields[2])};
  }
  entry.major = static_cast<unsigned>(*major);
  entry.minor = static_cast<unsigned>(*minor);

  auto root = DecodeMountinfoEscapes(fields[3]);
  if (!root) return Error{"root: " + root.error().message};
  auto mount_point = DecodeMountinfoEscapes(fields[4]);
  if (!mount_point) return Error{"mount point: " + mount_point.error().message};
  if (mount_point->empty() || mount_point->front() != '/') {
    return Error{"mount point is not absolute: " + Quote(fields[4])};
  }
  entry.root = std::move(*root);
  entry.mount_point = Normalise(*mount_point);
  entry.mount_options = SplitOptions(fields[5]);
  for (size_t i = 6; i < separator; ++i) {
    if (!fields[i].empty()) entry.optional_fields.emplace_back(fields[i]);
  }
  entry.fs_type = std::string(fields[separator + 1]);
  if (entry.fs_type.empty()) return Error{"empty filesystem type: " + Quote(line)};
  auto source = DecodeMountinfoEscapes(fields[separator + 2]);
  if (!source) return Error{"source: " + source.error().message};
  entry.source = std::move(*source);
  // Super options never contain spaces, but be tolerant of extra fields after them.
  entry.super_options = SplitOptions(fields[separator + 3]);
  return entry;
}

Result<MountTable> MountTable::Parse(std::string_view text) {
  MountTable table;
  size_t line_number = 0;
  for (std::string_view line : Split(text, '\n')) {
    ++line_number;
    if (line.empty()) continue;
    auto entry = ParseMountinfoLine(line);
    if (!entry) {
      return Error{"mountinfo line " + std::to_string(line_number) + ": " + entry.error().message};
    }
    table.entries_.push_back(std::move(*entry));
  }
  if (table.entries_.empty()) return Error{"mountinfo is empty"};

  // A mount is covered when a later line mounts on the same point.
  const size_t n = table.entries_.size();
  std::vector<bool> covered(n, false);
  std::unordered_map<std::string_view, size_t> last_on_point;
  for (size_t i = 0; i < n; ++i) {
    auto [it, inserted] = last_on_point.try_emplace(table.entries_[i].mount_point, i);
    if (!inserted) {
      covered[it->second] = true;
      it->second = i;
    }
  }
  std::unordered_map<int, size_t> index_of_id;
  for (size_t i = 0; i < n; ++i) index_of_id[table.entries_[i].mount_id] = i;
  // Hidden if covered, or if an ancestor is. An overmount's parent is the mount
  // it covers (same mount point): that coverage is by the overmount itself, so
  // it is skipped, but the walk continues above it. The step limit guards
  // against parent cycles in a corrupt table.
  table.visible_.assign(n, true);
  for (size_t i = 0; i < n; ++i) {
    size_t current = i;
    const std::string* child_point = nullptr;
    for (size_t steps = 0; steps <= n; ++steps) {
      const MountEntry& e = table.entries_[current];
      bool covered_by_child = child_point != nullptr && *child_point == e.mount_point;
      if (covered[current] && !covered_by_child) {
        table.visible_[i] = false;
        break;
      }
      auto parent = index_of_id.find(e.parent_id);
      if (parent == index_of_id.end() || parent->second == current) break;
      child_point = &e.mount_point;
      current = parent->second;
    }
  }
  return table;
}

Result<MountTable> MountTable::Load(const Roots& roots) {
  std::filesystem::path path = roots.proc / "self" / "mountinfo";
  auto text = internal::ReadWholeFile(path);
  if (!text) return text.error();
  auto table = Parse(*text);
  if (!table) return Error{path.string() + ": " + table.error().message};
  return table;
}

bool IsPathPrefix(std::string_view prefix, std::string_view path) {
  if (prefix == "/") return !path.empty() && path.front() == '/';
  if (path.size() < prefix.size() || path.compare(0, prefix.size(), prefix) != 0) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

const MountEntry* MountTable::Place(const std::filesystem::path& path) const {
  if (!path.is_absolute()) return nullptr;
  std::string normal = Normalise(path);
  const MountEntry* best = nullptr;
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (!visible_[i]) continue;
    const MountEntry& e = entries_[i];
    if (!IsPathPrefix(e.mount_point, normal)) continue;
    // ">=" so that among equals the later line wins, should visibility ever
    // leave two on one point.
    if (best == nullptr || e.mount_point.size() >= best->mount_point.size()) best = &e;
  }
  return best;
}

std::string MountTable::MountOverProblem(const std::filesystem::path& path,
                                         uint64_t root_mount_id) const {
  const MountEntry* placed = Place(path);
  if (placed == nullptr) return "no mount found for the scope in the mount table";
  if (root_mount_id != 0 && static_cast<uint64_t>(placed->mount_id) != root_mount_id) {
    return "the scope root is not on the mount the mount table places it on (mount id " +
           std::to_string(root_mount_id) + " instead of " + std::to_string(placed->mount_id) +
           "); something was mounted or unmounted over it";
  }
  if (placed->mount_point != Normalise(path)) return "";
  for (const MountEntry& e : entries_) {
    if (e.mount_id != placed->parent_id) continue;
    if (e.dev() == placed->dev()) {
      // A directory bound onto itself (systemd's ReadWritePaths= does this for every scope):
      // the mount shows exactly what it covers.
      std::string below = e.root == "/" ? "" : e.root;
      if (placed->mount_point != e.mount_point) {
        below += placed->mount_point.substr(e.mount_point == "/" ? 0 : e.mount_point.size());
      }
      if (below.empty()) below = "/";
      if (below == placed->root) return "";
      return "the scope root is a bind mount of " + placed->root + " of its own filesystem (" +
             placed->source + ") over " + below + "; a mount over a scope root is never managed";
    }
    if (e.mount_point == placed->mount_point) {
      return "a mount (" + placed->fs_type + " " + placed->source +
             ") is stacked over another at " + placed->mount_point +
             "; a scope root must not be covered by a mount";
    }
  }
  return "";
}

std::vector<const MountEntry*> MountTable::SubMountsBelow(
    const std::filesystem::path& scope) const {
  std::vector<const MountEntry*> below;
  if (!scope.is_absolute()) return below;
  std::string normal = Normalise(scope);
  for (size_t i = 0; i < entries_.size(); ++i) {
    const MountEntry& e = entries_[i];
    if (visible_[i] && e.mount_point != normal && IsPathPrefix(normal, e.mount_point)) {
      below.push_back(&e);
    }
  }
  return below;
}

}  // namespace daxpolicy::host
