# SPDX-License-Identifier: Apache-2.0
# daemon/metrics: the Prometheus families of the contract and the /metrics exporter.
add_library(daxpolicy_metrics STATIC metrics.cpp)
target_link_libraries(daxpolicy_metrics
  PUBLIC daxpolicy_policy daxpolicy_engine prometheus-cpp::core
  PRIVATE daxpolicy_media prometheus-cpp::pull)
