#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Guest side of the vm_systemd_bus test (run-vm.sh --systemd): systemd is PID 1,
# the system reached multi-user, the system bus answers, and a unit started over
# the bus runs. Exits with STATUS when every check passed, so the host can tell
# that the status made it back.
#   systemd-bus.sh [STATUS]
source "$(dirname "${BASH_SOURCE[0]}")/../guest-lib.sh"
status=${1:-0}
vm_require_cmd systemctl busctl

vm_expect_eq "PID 1 is systemd" systemd "$(cat /proc/1/comm)"
state=$(timeout 120 systemctl is-system-running --wait 2>&1)
vm_expect_eq "the boot finished cleanly" running "$state" ||
  systemctl list-units --failed --no-pager --plain | sed 's/^/#   /'
vm_expect_eq "multi-user.target is active" active "$(systemctl is-active multi-user.target)"
vm_expect_eq "this script runs inside daxvm-test.service" daxvm-test.service \
  "$(sed -n 's|^0::/system.slice/||p' /proc/self/cgroup)"

vm_expect "the system bus answers (busctl list)" busctl --system --no-pager list
vm_expect "the bus has org.freedesktop.systemd1" \
  bash -c 'busctl --system --no-pager --no-legend list | grep -q "^org.freedesktop.systemd1 "'
version=$(busctl --system get-property org.freedesktop.systemd1 /org/freedesktop/systemd1 \
  org.freedesktop.systemd1.Manager Version 2>&1)
vm_expect_eq "systemd answers a property read over the bus" \
  "s \"$(systemctl --version | sed -n '1s/^systemd [0-9]* (\(.*\))$/\1/p')\"" "$version"

# A unit started through the bus (systemctl talks to PID 1 over D-Bus) runs and
# reports its result.
marker=/run/daxvm-echo.out
cat >/etc/systemd/system/daxvm-echo.service <<UNIT
[Unit]
Description=daxpolicy VM echo unit
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "echo unit ran as \$\$(id -un)" > $marker'
UNIT
systemctl daemon-reload
vm_expect "systemctl start of a new unit succeeds" systemctl start daxvm-echo.service
vm_expect_eq "the unit reports Result=success" success \
  "$(systemctl show -P Result daxvm-echo.service)"
vm_expect "the unit's command ran" grep -qx 'echo unit ran as root' "$marker"
vm_expect "the unit is in the journal" bash -c \
  'journalctl --no-pager -u daxvm-echo.service | grep -q "Finished daxvm-echo.service"'

vm_done "$status"
