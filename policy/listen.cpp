// SPDX-License-Identifier: Apache-2.0
#include "policy/listen.h"

#include <algorithm>
#include <cctype>

namespace daxpolicy::policy {

std::optional<std::string> MetricsListenProblem(std::string_view listen) {
  if (listen == "off") return std::nullopt;
  if (listen.empty()) return "empty; use HOST:PORT, PORT or off";
  if (listen.front() == '[' || std::count(listen.begin(), listen.end(), ':') > 1) {
    return "IPv6 is not supported by this build's HTTP server; use an IPv4 address such as "
           "127.0.0.1:9847";
  }
  const size_t colon = listen.find(':');
  const std::string_view port = colon == std::string_view::npos ? listen : listen.substr(colon + 1);
  if (colon == 0) return "missing host before ':' (use 0.0.0.0:PORT for every address)";
  const bool digits = !port.empty() && std::all_of(port.begin(), port.end(), [](unsigned char c) {
    return std::isdigit(c) != 0;
  });
  if (!digits || port.size() > 5 || std::stoul(std::string(port)) > 65535) {
    return "the port must be a number 0-65535 (HOST:PORT, e.g. 127.0.0.1:9847, or off)";
  }
  if (colon != std::string_view::npos) {
    for (unsigned char c : listen.substr(0, colon)) {
      if (!std::isalnum(c) && c != '.' && c != '-') {
        return "the host must be an IPv4 address or a host name";
      }
    }
  }
  return std::nullopt;
}

}  // namespace daxpolicy::policy
