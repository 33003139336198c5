// SPDX-License-Identifier: Apache-2.0
#include "plugins/host/dax_capability.h"

#include <system_error>

#include "plugins/host/text_io.h"

namespace daxpolicy::host {

using internal::Quote;

namespace {

// Leading decimal number of `text` starting at *pos; advances *pos.
std::optional<int> TakeNumber(std::string_view text, size_t* pos) {
  size_t start = *pos;
  int value = 0;
  while (*pos < text.size() && text[*pos] >= '0' && text[*pos] <= '9') {
    if (*pos - start >= 6) return std::nullopt;
    value = value * 10 + (text[*pos] - '0');
    ++*pos;
  }
  if (*pos == start) return std::nullopt;
  return value;
}

bool AtLeast(const KernelDaxSupport& k, int major, int minor) {
  return k.major > major || (k.major == major && k.minor >= minor);
}

std::string Join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return a + "; " + b;
}

// Why the filesystem type rules out per-file DAX; "" for ext4 and xfs.
std::string FsTypeReason(const MountEntry& m) {
  const std::string& t = m.fs_type;
  const std::string head = "mount " + m.mount_point + " is " + t + ": ";
  if (t == "ext4" || t == "xfs") return "";
  if (t == "virtiofs") {
    return head + "the FUSE server decides DAX per file, FS_XFLAG_DAX is only a hint";
  }
  if (t == "fuse" || t.rfind("fuse.", 0) == 0 || t == "fuseblk") {
    return head + "FUSE filesystems have no DAX";
  }
  if (t == "ext2" || t == "erofs") {
    return head + "it has only the mount-wide dax option, no per-file DAX flag";
  }
  if (t == "tmpfs" || t == "ramfs" || t == "hugetlbfs") {
    return head + "its files live in memory already, there is no DAX";
  }
  if (t == "nfs" || t == "nfs4" || t == "cifs" || t == "smb3" || t == "ceph" || t == "9p") {
    return head + "network filesystems have no DAX";
  }
  return head + "per-file DAX needs ext4 or xfs";
}

}  // namespace

Result<KernelDaxSupport> AssessKernelRelease(std::string_view release) {
  KernelDaxSupport k;
  size_t pos = 0;
  auto major = TakeNumber(release, &pos);
  if (!major || pos >= release.size() || release[pos] != '.') {
    return Error{"kernel release " + Quote(release) + " does not start with <major>.<minor>"};
  }
  ++pos;
  auto minor = TakeNumber(release, &pos);
  if (!minor) {
    return Error{"kernel release " + Quote(release) + " does not start with <major>.<minor>"};
  }
  k.major = *major;
  k.minor = *minor;
  const std::string version = std::to_string(k.major) + "." + std::to_string(k.minor);
  k.per_file_dax = AtLeast(k, 5, 8);
  if (!k.per_file_dax) {
    k.per_file_dax_reason =
        "kernel " + version + " has no per-file DAX (dax=inode and FS_XFLAG_DAX need 5.8)";
  }
  k.switch_on_last_close = AtLeast(k, 5, 11);
  if (!k.switch_on_last_close) {
    k.switch_on_last_close_reason =
        k.per_file_dax
            ? "kernel " + version +
                  " applies a changed DAX flag only when the inode is evicted (drop_caches or "
                  "unmount), not on last close (needs 5.11)"
            : k.per_file_dax_reason;
  }
  return k;
}

std::string_view DaxMountOptionName(DaxMountOption option) {
  switch (option) {
    case DaxMountOption::kAbsent:
      return "absent";
    case DaxMountOption::kInode:
      return "dax=inode";
    case DaxMountOption::kAlways:
      return "dax=always";
    case DaxMountOption::kNever:
      return "dax=never";
    case DaxMountOption::kLegacy:
      return "dax";
    case DaxMountOption::kOther:
      return "dax=?";
  }
  return "?";
}

Result<std::string> ResolveDisk(const Roots& roots, unsigned major, unsigned minor) {
  std::filesystem::path link =
      roots.sys / "dev" / "block" / (std::to_string(major) + ":" + std::to_string(minor));
  std::error_code ec;
  std::filesystem::path target = std::filesystem::canonical(link, ec);
  if (ec) return ErrnoError(ec.value(), "block device " + link.string());
  std::filesystem::path disk_dir = target;
  if (std::filesystem::exists(target / "partition", ec)) disk_dir = target.parent_path();
  std::string disk = disk_dir.filename().string();
  if (disk.empty()) return Error{"block device " + link.string() + " resolves to no name"};
  return disk;
}

Result<bool> ReadDeviceDax(const Roots& roots, std::string_view disk) {
  std::filesystem::path path = roots.sys / "block" / std::string(disk) / "queue" / "dax";
  auto text = internal::ReadWholeFile(path);
  if (!text) return text.error();
  std::string_view value = internal::Trim(*text);
  if (value == "1") return true;
  if (value == "0") return false;
  Error error{path.string() + " holds " + Quote(value) + ", expected 0 or 1"};
  error.code = EINVAL;
  return error;
}

MountDaxCapability AssessMountDax(const MountEntry& mount, const Roots& roots,
                                  const DaxCheckInput& input) {
  MountDaxCapability cap;
  cap.mount_point = mount.mount_point;
  cap.fs_type = mount.fs_type;

  // The option as listed; "dax" alone is the pre-5.8 and ext2 spelling of always.
  if (auto value = OptionValue(mount.super_options, "dax")) {
    if (*value == "inode") {
      cap.option = DaxMountOption::kInode;
    } else if (*value == "always") {
      cap.option = DaxMountOption::kAlways;
    } else if (*value == "never") {
      cap.option = DaxMountOption::kNever;
    } else {
      cap.option = DaxMountOption::kOther;
    }
  } else if (HasOption(mount.super_options, "dax")) {
    cap.option = DaxMountOption::kLegacy;
  }

  // (a) the per-file flag.
  const std::string where = "mount " + mount.mount_point;
  std::string reason = FsTypeReason(mount);
  if (reason.empty() && mount.read_only()) {
    if (!HasOption(mount.super_options, "ro")) {
      // The filesystem is writable, only this view of it is not: the sandbox
      // of daxpolicyd.service (ProtectSystem=strict) unless the scope is listed
      // in ReadWritePaths=.
      reason = where +
               " is read-only for daxpolicyd (the filesystem is writable, this mount is not): "
               "under systemd, list the scope in ReadWritePaths= with a drop-in, see "
               "/usr/share/doc/daxpolicy/scopes.conf.example";
    } else {
      reason = where + " is read-only (option ro): the DAX flag cannot be changed";
    }
  }
  if (reason.empty()) {
    switch (cap.option) {
      case DaxMountOption::kAbsent:
      case DaxMountOption::kInode:
        break;
      case DaxMountOption::kAlways:
        reason = where + " has dax=always: every file uses DAX, the per-file flag is ignored";
        break;
      case DaxMountOption::kNever:
        reason = where + " has dax=never: no file uses DAX, the per-file flag is ignored";
        break;
      case DaxMountOption::kLegacy:
        reason = where +
                 " has the legacy option dax (= dax=always): every file uses DAX, the per-file "
                 "flag is ignored";
        break;
      case DaxMountOption::kOther:
        reason = where + " has an unknown option dax=" +
                 OptionValue(mount.super_options, "dax").value_or("") + ", expected dax=inode";
        break;
    }
  }
  if (reason.empty() && input.kernel && !input.kernel->per_file_dax) {
    reason = where + ": " + input.kernel->per_file_dax_reason;
  }
  cap.per_file_flag = Verdict{reason.empty(), reason};

  // (b) effective DAX: device capability and block size.
  std::string device_reason;
  if (mount.major == 0) {
    device_reason = where + " (" + mount.fs_type +
                    ") has no block device (device 0:" + std::to_string(mount.minor) +
                    "), DAX needs a DAX-capable block device";
  } else if (auto disk = ResolveDisk(roots, mount.major, mount.minor); !disk) {
    device_reason = where + ": cannot find its disk: " + disk.error().message;
  } else {
    cap.disk = *disk;
    auto dax = ReadDeviceDax(roots, *disk);
    std::string attribute = (roots.sys / "block" / *disk / "queue" / "dax").string();
    if (!dax) {
      device_reason =
          "device " + *disk + " does not say whether it can do DAX: " + dax.error().message;
    } else {
      cap.device_dax = *dax;
      if (!*dax) device_reason = "device " + *disk + " cannot do DAX (" + attribute + " is 0)";
    }
  }
  std::string size_reason;
  if (input.block_size == 0) {
    size_reason = where + ": block size unknown, DAX needs it to equal the page size " +
                  std::to_string(input.page_size);
  } else if (input.block_size != input.page_size) {
    size_reason = where + " has block size " + std::to_string(input.block_size) +
                  ", DAX needs the page size " + std::to_string(input.page_size);
  }
  std::string effective_reason = Join(device_reason, size_reason);
  cap.effective = Verdict{effective_reason.empty(), effective_reason};
  return cap;
}

}  // namespace daxpolicy::host
