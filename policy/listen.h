// SPDX-License-Identifier: Apache-2.0
#pragma once

// The one check of a metrics listen address, used by the policy loader (and so by
// --check-config and `daxpolicyctl check`), by --metrics-listen and by the exporter itself:
// what one accepts, the others accept.

#include <optional>
#include <string>
#include <string_view>

namespace daxpolicy::policy {

// Why `listen` cannot be used, or nullopt. Accepted: "off", "PORT" and "HOST:PORT" with
// an IPv4 address or a host name (letters, digits, '.', '-') and a port 0-65535.
std::optional<std::string> MetricsListenProblem(std::string_view listen);

}  // namespace daxpolicy::policy
