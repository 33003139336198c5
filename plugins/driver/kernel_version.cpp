// SPDX-License-Identifier: Apache-2.0
#include "plugins/driver/kernel_version.h"

#include <sys/utsname.h>

namespace daxpolicy::driver {

KernelVersion KernelVersion::Parse(std::string_view release) {
  int parts[3] = {0, 0, 0};
  size_t i = 0;
  for (int p = 0; p < 3; ++p) {
    int value = 0;
    bool any = false;
    while (i < release.size() && release[i] >= '0' && release[i] <= '9') {
      value = value * 10 + (release[i] - '0');
      any = true;
      ++i;
    }
    if (!any) break;
    parts[p] = value;
    if (i >= release.size() || release[i] != '.') break;
    ++i;
  }
  return KernelVersion{parts[0], parts[1], parts[2]};
}

KernelVersion KernelVersion::Running() {
  struct utsname u {};
  if (uname(&u) != 0) return KernelVersion{};
  return Parse(u.release);
}

}  // namespace daxpolicy::driver
