#include "daemon/log.h"
#include "daemon/options.h"
#include "policy/policy.h"

namespace daxpolicy::daemon {

int RunOnce(const Options& /*options*/, const policy::Policy& /*policy*/) {
  LogError("--once is not available yet");
  return 2;
}

}  // namespace daxpolicy::daemon
