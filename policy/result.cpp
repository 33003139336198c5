// SPDX-License-Identifier: Apache-2.0
#include "policy/result.h"

#include <cstring>

namespace daxpolicy {

Error ErrnoError(int err, const std::string& what) {
  return Error{what + ": " + std::strerror(err), err};
}

}  // namespace daxpolicy
