// SPDX-License-Identifier: Apache-2.0
#pragma once

/// What the two fanotify watchers (CloseWatcher, TreeWatcher) share: reading a
/// group's queue in bounded portions, parsing its records, and naming a file by
/// its handle key (fsid + handle type + handle bytes) and back.

#include <fcntl.h>
#include <sys/fanotify.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "plugins/unique_fd.h"
#include "policy/result.h"

namespace daxpolicy::files {

/// The file identity record of an event (FAN_EVENT_INFO_TYPE_FID, _DFID or
/// _DFID_NAME), pointing into the read buffer (valid during the callback only).
struct FanotifyFid {
  uint8_t info_type = 0;       ///< FAN_EVENT_INFO_TYPE_*
  const char* fsid = nullptr;  ///< 8 bytes, as statfs(2) f_fsid
  int handle_type = 0;
  const char* handle = nullptr;
  unsigned handle_bytes = 0;
  std::string_view name;  ///< the entry name of a _DFID_NAME record, else empty
};

/// One event: its metadata, copied out, and its first file identity record
/// (nullptr when it has none, as for FAN_Q_OVERFLOW).
using FanotifyEventFn =
    std::function<void(const fanotify_event_metadata& meta, const FanotifyFid* fid)>;

/// Reads the non-blocking fanotify group `fd` into `buffer` until the queue is
/// empty or `max_reads` read()s were made, and calls `on_event` for each event.
/// Records are only 4-byte aligned in the buffer (the kernel packs them so):
/// every structure is copied out, never read in place. Closes any event fd.
/// Returns true when it stopped at the bound with events maybe still queued.
/// Errors: a read() failure other than EAGAIN, an unknown metadata version.
Result<bool> ReadFanotifyEvents(int fd, std::vector<char>* buffer, int max_reads,
                                const FanotifyEventFn& on_event);

/// Sets *key to fsid (8 bytes) + handle type (4) + handle bytes, reusing its storage.
void MakeHandleKey(const void* fsid, int handle_type, const void* handle, size_t handle_bytes,
                   std::string* key);

/// Opens the file whose handle key is `key` (open_by_handle_at) through the fd
/// kept for its filesystem in `mount_fds` (fsid -> a directory opened for
/// reading: open_by_handle_at refuses O_PATH fds). Invalid with errno set:
/// ESTALE for a file that is gone, ENODEV when no fd is kept for its fsid,
/// EINVAL for a key too short.
UniqueFd OpenByHandleKey(const std::unordered_map<std::string, UniqueFd>& mount_fds,
                         std::string_view key, int flags);

}  // namespace daxpolicy::files
