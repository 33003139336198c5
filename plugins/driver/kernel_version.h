// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string_view>

namespace daxpolicy::driver {

/// A kernel release as major.minor.patch, parsed from uname(2) release text such as
/// "6.18.44-fc-v669". Unparsable parts read as 0.
struct KernelVersion {
  int major = 0;
  int minor = 0;
  int patch = 0;

  static KernelVersion Parse(std::string_view release);
  /// The running kernel (uname).
  static KernelVersion Running();
  bool AtLeast(int want_major, int want_minor) const {
    return major != want_major ? major > want_major : minor >= want_minor;
  }
};

}  // namespace daxpolicy::driver
