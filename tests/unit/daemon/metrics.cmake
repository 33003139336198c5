# SPDX-License-Identifier: Apache-2.0
# Tests of daemon/metrics and of the files around it: the systemd unit, the
# D-Bus bus policy, the Grafana dashboard, the alert rules and the man pages.
daxpolicy_add_test(NAME metrics_unit_test
  SOURCES metrics_test.cpp
  LIBS daxpolicy_metrics daxpolicy_media
  LABELS unit)

# Real HTTP: curl, promtool check metrics and a Prometheus server on loopback.
daxpolicy_add_test(NAME metrics_scrape_test
  SOURCES metrics_scrape_test.cpp
  LIBS daxpolicy_metrics daxpolicy_media
  LABELS integration)

# The unit, bus policy, activation file, dashboard, alert rules and man pages,
# each checked by the tool that reads it (systemd-analyze, dbus-daemon, promtool,
# groff, man).
daxpolicy_add_test(NAME metrics_packaging_test
  SOURCES metrics_packaging_test.cpp
  LIBS daxpolicy_metrics daxpolicy_media
  LABELS integration)
