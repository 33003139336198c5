// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The mount table of a mount namespace, parsed from <proc>/self/mountinfo,
/// and the placement of paths on mounts.
///
/// Each line has six fixed fields, zero or more optional fields, a lone "-",
/// and three more fields, separated by single spaces, for example
///   50 28 259:4 /db /srv/pmem/db rw,relatime shared:40 - xfs /dev/pmem0 rw,attr2
/// mount id, parent id, major:minor of st_dev, root of the mount inside its
/// filesystem, mount point, per-mount options, optional fields ("shared:40"),
/// "-", filesystem type, source, super-block options. The kernel escapes
/// space, tab, newline and backslash in paths as "\ooo" (three octal digits),
/// so every line is one mount.

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plugins/host/roots.h"
#include "policy/result.h"

namespace daxpolicy::host {

/// One line of mountinfo, with escapes decoded.
struct MountEntry {
  int mount_id = 0;
  int parent_id = 0;
  unsigned major = 0;  ///< of st_dev for files on this mount
  unsigned minor = 0;
  std::string root;         ///< path inside the filesystem that is mounted here ("/" unless bind)
  std::string mount_point;  ///< absolute path in this namespace
  std::vector<std::string> mount_options;    ///< per-mount, e.g. "rw", "relatime"
  std::vector<std::string> optional_fields;  ///< e.g. "shared:1", "master:2"
  std::string fs_type;                       ///< e.g. "xfs", "fuse.sshfs"
  std::string source;                        ///< e.g. "/dev/pmem0", "none"
  std::vector<std::string> super_options;    ///< per-superblock, e.g. "rw", "dax=never"

  /// makedev(major, minor): equals st_dev / statx dev of files on this mount.
  dev_t dev() const;
  /// True when the per-mount or the super-block options contain "ro".
  bool read_only() const;
};

/// True when `options` holds `name` exactly (a flag such as "ro" or "dax").
bool HasOption(const std::vector<std::string>& options, std::string_view name);
/// The value of "key=value" in `options`; nullopt when no such key is listed.
/// The last occurrence wins, as with repeated mount options.
std::optional<std::string> OptionValue(const std::vector<std::string>& options,
                                       std::string_view key);

/// Decodes the kernel's "\ooo" escapes ("\040" = space, "\012" = newline,
/// "\134" = backslash). A backslash not followed by three octal digits of a
/// value <= 0377 is an error.
Result<std::string> DecodeMountinfoEscapes(std::string_view field);

/// Parses one mountinfo line (without its trailing newline). Errors name the
/// field that is missing or malformed.
Result<MountEntry> ParseMountinfoLine(std::string_view line);

/// All mounts of one namespace, in mountinfo order (which is mount order).
class MountTable {
 public:
  /// Parses a whole mountinfo text. Strict on purpose: a single malformed line
  /// fails the parse ("mountinfo line 3: ...") because a missing mount would
  /// silently place paths on the wrong (parent) filesystem.
  static Result<MountTable> Parse(std::string_view text);
  /// Reads and parses <roots.proc>/self/mountinfo.
  static Result<MountTable> Load(const Roots& roots);

  const std::vector<MountEntry>& entries() const { return entries_; }

  /// The mount that `path` lives on: among the visible mounts, the one whose
  /// mount point is the longest path-component prefix of `path` ("/srv/pmem"
  /// is a prefix of "/srv/pmem/a", not of "/srv/pmem2"). A mount is hidden
  /// (overmounted) when a later line has the same mount point, or when a mount
  /// it sits below is hidden (an overmount itself, whose parent is the mount
  /// it covers, stays visible); so for several mounts on one point the last
  /// one wins, and mounts below a covered one disappear with it.
  /// `path` must be absolute; it is normalised lexically (".", "..", repeated
  /// and trailing "/") but symlinks are not resolved: pass a canonical path.
  /// Returns nullptr for a relative path or when no mount covers it.
  const MountEntry* Place(const std::filesystem::path& path) const;

  /// Visible mounts strictly below `scope` (mount point under it, not equal to
  /// it), in table order: a tree walk from `scope` must not descend into them.
  std::vector<const MountEntry*> SubMountsBelow(const std::filesystem::path& scope) const;

  /// Why the scope root `path` (normalised, absolute) must not be managed because of a mount
  /// over it, or "" when it may. `root_mount_id` is the mount id the kernel gives for the
  /// opened root (statx STATX_MNT_ID; 0 = unknown). Refused: a root whose mount is not the one
  /// the table places it on (the table changed under us), a mount of another filesystem
  /// stacked over another at the same point, and a bind mount of another directory of the
  /// same filesystem over the root. A root that is the mount point of its own filesystem is
  /// fine, and so is a directory bound onto itself (systemd's ReadWritePaths= makes one for
  /// every scope of the shipped unit).
  std::string MountOverProblem(const std::filesystem::path& path, uint64_t root_mount_id) const;

  /// False when the mount is hidden as described for Place(). Index into entries().
  bool Visible(size_t index) const { return visible_[index]; }

 private:
  std::vector<MountEntry> entries_;
  std::vector<bool> visible_;
};

/// True when `prefix` equals `path` or is a whole-component prefix of it.
/// Both must be normalised absolute paths without trailing "/" (except "/").
bool IsPathPrefix(std::string_view prefix, std::string_view path);

}  // namespace daxpolicy::host
