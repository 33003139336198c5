// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Names of the D-Bus contract (DESIGN.md "D-Bus"): keep them exactly.

namespace daxpolicy::bus {

inline constexpr const char* kBusName = "org.daxpolicy.DaxPolicy1";
inline constexpr const char* kObjectPath = "/org/daxpolicy/DaxPolicy1";
inline constexpr const char* kInterface = "org.daxpolicy.DaxPolicy1.Manager";

inline constexpr const char* kErrorNotManaged = "org.daxpolicy.DaxPolicy1.Error.NotManaged";
inline constexpr const char* kErrorPermissionDenied =
    "org.daxpolicy.DaxPolicy1.Error.PermissionDenied";
inline constexpr const char* kErrorInvalidArgument =
    "org.daxpolicy.DaxPolicy1.Error.InvalidArgument";
inline constexpr const char* kErrorPolicyInvalid = "org.daxpolicy.DaxPolicy1.Error.PolicyInvalid";
/// An answer would exceed a documented limit (ListFiles beyond kMaxListFiles).
inline constexpr const char* kErrorLimitExceeded = "org.daxpolicy.DaxPolicy1.Error.LimitExceeded";
/// Anything unexpected inside the service (a bug): the standard generic error.
inline constexpr const char* kErrorFailed = "org.freedesktop.DBus.Error.Failed";

}  // namespace daxpolicy::bus
