// SPDX-License-Identifier: Apache-2.0
#pragma once

/// NvdimmTopologySource backed by libndctl and libdaxctl (ndctl 76).

#include "plugins/media/topology.h"

namespace daxpolicy::media {

/// Reads the real topology from sysfs through libndctl/libdaxctl. Every
/// Enumerate() creates a fresh library context (enumeration is cached per
/// context) and releases it before returning. The libraries have no internal
/// locking, so one instance must be used from one thread at a time.
class LibNvdimmTopologySource : public NvdimmTopologySource {
 public:
  /// `log` receives library messages (instead of stderr); may be empty.
  /// `query_smart`: send the SMART command to each DIMM (an ioctl on
  /// /dev/nmemN, needs root); when false every DIMM reports why SMART was not
  /// asked.
  explicit LibNvdimmTopologySource(LogSink log = {}, bool query_smart = true);

  Result<Topology> Enumerate() override;

 private:
  LogSink log_;
  bool query_smart_;
};

}  // namespace daxpolicy::media
