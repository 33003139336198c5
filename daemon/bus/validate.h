// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Checks of the arguments that arrive over D-Bus, shared by the service (which refuses bad
/// input with InvalidArgument) and daxpolicyctl (which refuses it before sending).

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "policy/evaluate.h"
#include "policy/policy.h"

namespace daxpolicy::bus {

/// Longest path accepted, in bytes (PATH_MAX including the terminating NUL is 4096).
inline constexpr size_t kMaxPathBytes = 4096;
/// Longest hold reason accepted, in bytes.
inline constexpr size_t kMaxReasonBytes = 4096;

/// True when `text` is well-formed UTF-8 (no overlong forms, no surrogates, <= U+10FFFF).
bool IsValidUtf8(std::string_view text);

/// Every string the daemon puts on the bus is valid UTF-8 without NUL. File names and
/// messages may hold any bytes, so they are escaped: a backslash becomes "\\" and each
/// byte that is not part of well-formed UTF-8 (and NUL) becomes "\xHH" (two lowercase hex
/// digits); everything else is sent unchanged. A client maps back by replacing "\\" with
/// "\" and "\xHH" with the byte HH. Path arguments are read the same way, except that a
/// backslash followed by anything else stands for itself.
std::string EscapeForBus(std::string_view text);
/// The inverse of EscapeForBus, for path arguments (lenient as described above).
std::string UnescapeFromBus(std::string_view text);

/// Most files ListFiles answers with; DumpFiles has no limit.
inline constexpr size_t kMaxListFiles = 50000;

/// The NotManaged message about a file that does not exist, also given about a file the
/// caller could not reach itself (the two are not told apart).
std::string NoSuchFileMessage(std::string_view path);

/// Most bytes of a client's argument an error message quotes.
inline constexpr size_t kMaxQuotedBytes = 96;
/// `arg` as error messages quote it: escaped like EscapeForBus, cut after kMaxQuotedBytes
/// bytes of the argument with "..." appended when longer.
std::string QuoteArgument(std::string_view arg);

/// Why `path` is not acceptable, or nullopt when it is: it must be non-empty, absolute,
/// normalized (no "." or ".." component, no "//", no trailing "/"), valid UTF-8 without NUL,
/// and at most kMaxPathBytes long.
std::optional<std::string> PathProblem(std::string_view path);
/// PathProblem for a file name as the file system holds it (a path argument after
/// UnescapeFromBus): the same checks except UTF-8, since a name may hold any byte but NUL.
/// Messages quote the path escaped (QuoteArgument).
std::optional<std::string> RawPathProblem(std::string_view path);

/// "dax" -> kDax, "page-cache" -> kPageCache; anything else nullopt.
std::optional<policy::DaxState> HoldModeByName(std::string_view name);

/// A contract state name ("unmanaged", "in-sync", "pending", "deferred", "observed",
/// "blocked") -> its FileState; anything else nullopt.
std::optional<policy::FileState> FileStateByName(std::string_view name);

/// The contract's name for a desired state: "keep" when kUnknown, else DaxStateName.
std::string DesiredName(policy::DaxState desired);

}  // namespace daxpolicy::bus
