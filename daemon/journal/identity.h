// SPDX-License-Identifier: Apache-2.0
#pragma once

/// File identities for the journal: what makes "the file the daemon changed" recognisable
/// after a rename, a reboot onto another device number, or the reuse of its inode number.

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "daemon/journal/segment.h"
#include "policy/result.h"

namespace daxpolicy::journal {

/// The filesystem UUID (FS_IOC_GETFSUUID) of the filesystem holding `fd`, which must be a
/// real (not O_PATH) descriptor; "" when the kernel or the filesystem does not report one
/// (the generic ioctl needs Linux 6.9 or later).
std::string FsUuidOf(int fd);

/// Fills entry->key (dev, ino), entry->id.handle (name_to_handle_at: inode and generation) and
/// entry->id.btime_ns (statx) from `fd` (O_PATH is fine), and entry->id.fs_uuid from
/// `fs_uuid`. Fails only when `fd` cannot be stat'ed; a filesystem without handles or birth
/// times leaves those fields empty.
Result<void> FillIdentity(int fd, const std::string& fs_uuid, JournalEntry* entry);

/// True when `current` (filled by FillIdentity) is the file `recorded` names: the same
/// filesystem (UUID when both know it, else the device number) and the same file (handle when
/// both know it, else inode number plus birth time when both know it).
bool SameFile(const JournalEntry& recorded, const JournalEntry& current);

}  // namespace daxpolicy::journal
