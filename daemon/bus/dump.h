// SPDX-License-Identifier: Apache-2.0
#pragma once

/// DumpFiles: the listing written into a sealed memfd that is handed to the client, so that
/// a listing of any size needs neither one huge D-Bus message nor a copy of it in the daemon
/// (the same idea as systemd-oomd's DumpByFileDescriptor).
///
/// Format: one line per file, fields separated by a tab:
///   PATH \t STATE \t DESIRED \t PHYSICAL \t EFFECTIVE \n
/// PATH is escaped like every string on the bus (EscapeForBus) and, in addition, a tab is
/// written as \x09 and a newline as \x0a; the other fields are contract names. The client
/// reads the fd from offset 0 to its end.

#include <functional>
#include <string>
#include <string_view>

#include "plugins/unique_fd.h"
#include "policy/result.h"

namespace daxpolicy::bus {

/// Appends `path` escaped for a dump line.
void AppendDumpField(std::string* line, std::string_view path);

/// Calls `fill` with a writer into a new memfd (buffered), seals the memfd against changes
/// and returns it positioned at offset 0.
Result<UniqueFd> DumpToMemfd(
    const std::function<void(const std::function<void(std::string_view)>& write)>& fill);

}  // namespace daxpolicy::bus
